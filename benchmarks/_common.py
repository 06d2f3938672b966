"""Small helpers shared by the benchmark scripts (measurement only, no assertions)."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from domains import get_domain
from writ_async.environment.overlay import BaseDB

SHARED_TAU2 = Path(os.environ.get(
    "WRIT_TAU2_DIR", Path(__file__).resolve().parents[2] / "shared" / "tau2"))


def plan_of(config: Any) -> Any:
    """The run plan ``writ simulate`` resolves from ``config`` (the command's lookup)."""
    from writ_async.engine.plan import resolve_plan

    return resolve_plan(config, get_domain(config.run.domain))


def open_replay(run_dir: Path) -> Any:
    """A run directory opened for replay as ``writ replay`` opens it."""
    from writ_async.engine.replay.run import open_run, run_config

    _, config = run_config(run_dir)
    return open_run(run_dir, get_domain(config.run.domain))


def rss_mib() -> float:
    """Resident set size of this process, from /proc (Linux)."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def load_base(domain: str, source: str) -> BaseDB:
    """``source`` is 'tau2' (the reference db.json) or 'gen' (the seeded generator)."""
    if source == "tau2":
        return get_domain(domain).load_db(SHARED_TAU2 / domain / "db.json")
    return get_domain(domain).generate_db(seed=0, scale=1.0)


def record_walks(
    domain: str, base: BaseDB, episodes: int, calls: int, seed: int = 0
) -> list[list[tuple[str, dict[str, Any]]]]:
    """Seeded walks: each episode's calls, proposed from its own evolving state."""
    dom = get_domain(domain)
    out = []
    for ep in range(episodes):
        rng = random.Random(f"{seed}:{ep}")
        env = dom.environment(base)
        seq = []
        for _ in range(calls):
            name, args = dom.sample_call(env.overlay, rng)
            env.call(name, args)
            seq.append((name, args))
        out.append(seq)
    return out


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [headers] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "-|-".join("-" * w for w in widths))
    return "\n".join(lines)
