"""The ``writ`` command line.

    writ tools list --domain NAME [--tools-json PATH]
    writ tools call --domain NAME [--db PATH] [--seed N] [--scale X] [FILE]
    writ db hash --domain NAME [--db PATH] [--seed N] [--scale X]
    writ db generate --domain NAME [--seed N] [--scale X] --out PATH
    writ walk [--config PATH] [--domain NAME] [--episodes N] [--calls N] [--seed N]
    writ replay RUN EPISODE | RUN --all       verify episodes from the journal
    writ replay RUN EPISODE --from STEP       fork an episode, go on live
    writ replay RUN --failed                  re-run failed episodes
    writ show RUN EPISODE                     a readable transcript
    writ journal salvage RUN [--out NEW]      copy a corrupt run's intact part, resumable

Every operator-facing failure is a ``WritError``; ``main`` prints it as one line,
``writ: error: <message>``, and returns 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from writ_async.commands import (
    data,
    db,
    journal,
    mock_server,
    replay,
    show,
    simulate,
    taskgen,
    tools,
    walk,
)
from writ_async.errors import WritError
from writ_async.loadtest.cli import add_parser as add_loadtest


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except WritError as exc:
        sys.stdout.flush()  # what was already produced comes out before the error
        print(f"writ: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`writ tools call ... | head`): not an error of ours.
        # Point stdout at devnull so the interpreter's final flush does not complain.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="writ", description="Synthesize verified tool-use trajectories (WRIT)."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # In the order `writ --help` lists them.
    for command in (tools, db, walk, taskgen, simulate, mock_server):
        command.add_parser(commands)
    add_loadtest(commands)
    for command in (replay, show, journal, data):
        command.add_parser(commands)
    return parser
