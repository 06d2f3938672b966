"""The ``writ`` commands: one module per command, each registering its own subparser
(``add_parser``) and holding what only that command does; ``writ_async.cli`` builds the
parser from them."""
