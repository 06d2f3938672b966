"""``writ show``: one episode of a run as a readable transcript."""

from __future__ import annotations

import argparse
from typing import Any

from writ_async.commands.args import EPISODE_HELP
from writ_async.commands.replay import open_replay, warn_if_corrupt


def add_parser(commands: Any) -> None:
    p = commands.add_parser("show", help="print an episode as a readable transcript")
    p.add_argument("run_dir", metavar="RUN", help="a run directory")
    p.add_argument("episode", metavar="EPISODE", help=EPISODE_HELP)
    p.add_argument("--full", action="store_true", help="do not shorten long tool outputs")
    p.set_defaults(run=cmd_show)


def cmd_show(args: argparse.Namespace) -> int:
    from writ_async.engine import show

    run = open_replay(args.run_dir)
    warn_if_corrupt(run)
    print(show.render_episode(run, args.episode, full=args.full))
    return 0
