"""``writ tasks generate``: synthesize a tau2-format task file (WRIT stage 1)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import msgspec

from domains import get_domain
from domains import names as domain_names
from writ_async.commands.args import (
    add_database_args,
    checked_config,
    open_database,
    positive,
    run_async,
)
from writ_async.errors import ConfigError, DataError


def add_parser(commands: Any) -> None:
    tasks = commands.add_parser("tasks", help="synthesize tasks (WRIT stage 1)")
    task_commands = tasks.add_subparsers(dest="tasks_command", required=True, metavar="ACTION")
    p = task_commands.add_parser("generate", help="write a tau2-format task file")
    add_database_args(p, domain_required=False)
    p.add_argument("--count", type=positive(int), required=True, help="tasks to produce")
    p.add_argument("--task-seed", type=int, default=None,
                   help="synthesis seed (default: the same as --seed)")
    p.add_argument("--exclude", metavar="PATH", action="append", default=[],
                   help="a task file whose gold writes must never be reproduced (repeatable)")
    p.add_argument("--config", metavar="PATH",
                   help="config.toml whose [synthesis] section sets the mix and ranges")
    p.add_argument("--rewrite", metavar="ROLE",
                   help="rewrite each task's instructions through this role of "
                        "[models.roles]; rewrites that lose a fact are not used")
    p.add_argument("--out", required=True, metavar="PATH", help="where to write tasks.json")
    p.set_defaults(run=cmd_tasks_generate)


def cmd_tasks_generate(args: argparse.Namespace) -> int:
    from writ_async.conversation.task import load_tasks
    from writ_async.synthesis.driver import format_distribution, tasks_from_config

    config = checked_config(args.config)
    if args.domain is None and not args.config:
        raise ConfigError("<command line>", "give --domain, or a --config whose [run] domain "
                          "to use", "--domain")
    name = args.domain or config.run.domain
    if name not in domain_names():
        raise ConfigError(args.config, f"unknown domain `{name}`; known domains: "
                          f"{', '.join(domain_names())}", "run.domain")
    domain = get_domain(name)
    synthesis = config.synthesis
    if args.task_seed is not None:
        synthesis = msgspec.structs.replace(synthesis, seed=args.task_seed)
    base = open_database(domain, args.db, args.seed, args.scale)
    exclude = [t for path in args.exclude for t in load_tasks(path)]
    start = time.perf_counter()
    tasks = tasks_from_config(domain, base, args.count, args.seed, synthesis, exclude)
    if args.rewrite is not None:
        tasks = _rewrite(config, tasks, args.rewrite, args.config or "<defaults>", args.seed)
    elapsed = time.perf_counter() - start
    out = Path(args.out)
    text = msgspec.json.format(msgspec.json.encode(tasks), indent=2) + b"\n"
    tmp = out.with_name(out.name + ".tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(text)
        tmp.replace(out)
    except OSError as exc:
        raise DataError(out, f"cannot write tasks: {exc.strerror or exc}") from None
    print(f"wrote {len(tasks)} {name} tasks to {out} in {elapsed:.2f} s")
    print("tasks by writes (rows) and evidence reads (columns):")
    print(format_distribution(tasks))
    return 0


def _rewrite(config: Any, tasks: list[Any], role: str, source: str, seed: int) -> list[Any]:
    from writ_async.llm.setup import open_pool
    from writ_async.synthesis.rewrite import rewrite_tasks

    if role not in config.models.roles:
        raise ConfigError(source, f"`{role}` is not a role of [models.roles]", "--rewrite")

    async def run() -> tuple[list[Any], Any]:
        async with open_pool(config.models, mock_config=config.mock, seed=seed) as pool:
            return await rewrite_tasks(tasks, pool, role, seed=seed)

    rewritten, report = run_async(run())
    print(f"rewrote {report.rewritten} of {report.tasks} instructions; "
          f"{len(report.kept_original)} kept their template wording")
    for task_id, why in list(report.kept_original.items())[:5]:
        print(f"  {task_id}: {why}")
    return rewritten
