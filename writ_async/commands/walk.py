"""``writ walk``: seeded random tool-call episodes over a domain, and their summary."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from domains import get_domain
from writ_async.commands.args import add_domain_arg, checked_config, positive
from writ_async.environment.domain import Domain
from writ_async.environment.overlay import BaseDB
from writ_async.environment.tools import Toolbox
from writ_async.logs import configure_logging, get_logger
from writ_async.seeds import run_seed, walk_rng

Clock = Callable[[], float]


def add_parser(commands: Any) -> None:
    p = commands.add_parser("walk", help="run seeded random tool-call episodes, print a summary")
    p.add_argument("--config", metavar="PATH", help="config.toml (default: built-in defaults)")
    add_domain_arg(p, required=False, note="; overrides [run] domain")
    p.add_argument("--episodes", type=positive(int), help="overrides [walk] episodes")
    p.add_argument("--calls", type=positive(int), help="overrides [walk] calls_per_episode")
    p.add_argument("--seed", type=int, help="overrides [run] seed")
    p.set_defaults(run=cmd_walk)


@dataclass(slots=True)
class ToolCounts:
    calls: int = 0
    errors: int = 0

    @property
    def ok(self) -> int:
        return self.calls - self.errors


@dataclass(slots=True)
class WalkStats:
    episodes: int = 0
    calls: int = 0
    seconds: float = 0.0
    per_tool: dict[str, ToolCounts] = field(default_factory=dict)
    final_hashes: set[str] = field(default_factory=set)


def walk(
    domain: Domain,
    base: BaseDB,
    toolbox: Toolbox,
    *,
    episodes: int,
    calls: int,
    seed: int,
    clock: Clock = time.perf_counter,
) -> WalkStats:
    """Run independent seeded episodes, each on a fresh overlay, and count the outcomes."""
    stats = WalkStats(per_tool={name: ToolCounts() for name in toolbox.names()})
    start = clock()
    for episode in range(episodes):
        rng = walk_rng(seed, episode)
        env = domain.environment(base, toolbox)
        for _ in range(calls):
            name, arguments = domain.sample_call(env.overlay, rng)
            result = env.call(name, arguments)
            counts = stats.per_tool.setdefault(name, ToolCounts())
            counts.calls += 1
            counts.errors += result.error
        stats.final_hashes.add(env.db_hash())
        stats.episodes += 1
        stats.calls += calls
    stats.seconds = clock() - start
    return stats


def render_walk(stats: WalkStats, load_seconds: float, base_unchanged: bool) -> str:
    width = max([len("tool"), *(len(n) for n in stats.per_tool)])
    lines = [f"{'tool':<{width}}  {'calls':>8}  {'ok':>8}  {'errors':>8}"]
    for name, c in stats.per_tool.items():
        lines.append(f"{name:<{width}}  {c.calls:>8}  {c.ok:>8}  {c.errors:>8}")
    errors = sum(c.errors for c in stats.per_tool.values())
    lines.append(f"{'total':<{width}}  {stats.calls:>8}  {stats.calls - errors:>8}  {errors:>8}")
    rate = f"{stats.calls / stats.seconds:.0f}" if stats.seconds > 0 else "-"
    lines += [
        "",
        f"load time                 {load_seconds:.3f} s",
        f"walk time                 {stats.seconds:.3f} s",
        f"calls/s                   {rate}",
        f"distinct final DB hashes  {len(stats.final_hashes)} of {stats.episodes} episodes",
        f"base DB unchanged         {'yes' if base_unchanged else 'NO (a tool mutated it)'}",
    ]
    return "\n".join(lines)


def cmd_walk(args: argparse.Namespace, clock: Clock = time.perf_counter) -> int:
    config = checked_config(args.config)
    configure_logging(config.logging.level, config.logging.format)
    name = args.domain or config.run.domain
    seed = run_seed(config, args.seed)
    episodes = args.episodes or config.walk.episodes
    calls = args.calls or config.walk.calls_per_episode
    settings = config.domain_settings(name)
    log = get_logger(domain=name, seed=seed)

    domain = get_domain(name)
    if settings.db_path is None:
        from writ_async.environment.capacity import check_scale

        check_scale(domain, settings.scale, args.config or "<defaults>",
                    f"domains.{name}.scale")
    start = clock()
    base = domain.base(settings.db_path, seed, settings.scale)
    base_hash = base.db_hash()  # builds the hash index, so the walk times only the calls
    toolbox = domain.toolbox_with_schemas(settings.tools_path)
    domain.policy(settings.policy_path)  # a bad policy path fails now, not mid-run
    load_seconds = clock() - start
    sizes = {table: len(records) for table, records in base.tables.items()}
    log.info("walk.loaded", db_hash=base_hash, tables=sizes, seconds=round(load_seconds, 3))

    stats = walk(domain, base, toolbox, episodes=episodes, calls=calls, seed=seed, clock=clock)
    # Episodes must only ever change their overlays; recomputing the base text proves it.
    unchanged = base.verify_unchanged()
    log.info("walk.done", calls=stats.calls, seconds=round(stats.seconds, 3))
    print(f"walk {name}: seed {seed}, {episodes} episodes x {calls} calls, base DB {base_hash}")
    print(render_walk(stats, load_seconds, unchanged))
    return 0 if unchanged else 1
