"""``writ data stats``: statistics of exported training data."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from domains import get_domain
from domains import names as domain_names
from writ_async.errors import ConfigError


def add_parser(commands: Any) -> None:
    data = commands.add_parser("data", help="inspect exported training data")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    p = data_commands.add_parser(
        "stats", help="rows, tokens, turns, tool calls and the variety of the assistant's text")
    p.add_argument("run_dir", metavar="RUN",
                   help="a run directory (its export/sft_openai.jsonl) or an OpenAI JSONL file")
    p.add_argument("--against", metavar="TASKS",
                   help="a tasks.json: count rows whose writes equal a task's gold writes")
    p.add_argument("--split", help="with --against: a split of split_tasks.json beside it")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.set_defaults(run=cmd_data_stats)


def cmd_data_stats(args: argparse.Namespace) -> int:
    from writ_async.export import datastats

    if args.split and not args.against:
        raise ConfigError("<command line>", "--split goes with --against")
    # An export may hold rows of any registered domain: each is classified by its own.
    kinds = datastats.toolbox_kinds({name: get_domain(name) for name in domain_names()})
    stats = datastats.stats_of(args.run_dir, kind_of=kinds, against=args.against,
                               split=args.split)
    if args.json:
        sys.stdout.write(datastats.encode(stats).decode())
    else:
        print(datastats.render(stats))
    return 0
