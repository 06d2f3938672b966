"""``python -m writ_async``: the same as the ``writ`` command."""

import sys

from writ_async.cli import main

if __name__ == "__main__":
    sys.exit(main())
