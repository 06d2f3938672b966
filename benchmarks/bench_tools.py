"""Tool calls per second on each domain: mixed read/write walks, reads alone, writes alone.

Walks are recorded first (``sample_call`` proposes from live state), then timed by
replaying the recorded calls on fresh overlays, so only tool execution (argument
binding, lookups through the overlay, mutation, rendering the output string) is timed;
the DB hash after each call is timed separately. One core, one process.

    python benchmarks/bench_tools.py [--source tau2|gen] [--episodes 300] [--calls 30]
"""

from __future__ import annotations

import argparse
import time

from _common import load_base, record_walks, table

from domains import get_domain

GOAL_READS_PER_S = 50_000


def run(domain: str, source: str, episodes: int, calls: int) -> list[list[object]]:
    dom = get_domain(domain)
    base = load_base(domain, source)
    base.db_hash()  # build the hash index outside the timed region
    walks = record_walks(domain, base, episodes, calls)
    kinds = {name: dom.toolbox.kind(name) for seq in walks for name, _ in seq}
    rows = []
    for label, keep in (
        ("mixed", lambda k: True),
        ("reads", lambda k: k is not None and k.value == "read"),
        ("writes", lambda k: k is not None and k.value == "write"),
    ):
        n = 0
        start = time.perf_counter()
        for seq in walks:
            env = dom.environment(base)
            for name, args in seq:
                if keep(kinds[name]):
                    env.call(name, args)
                    n += 1
        elapsed = time.perf_counter() - start
        rows.append([domain, source, label, n, f"{n / elapsed:,.0f}"])
    # A hash after every call: tau2's full-DB hash (cached while nothing changed, else
    # one pass over the whole canonical text) and the cheap delta hash.
    for label, digest in (("mixed + db_hash", "db_hash"), ("mixed + delta_hash", "delta_hash")):
        n = 0
        start = time.perf_counter()
        for seq in walks[: max(1, episodes // 5)]:
            env = dom.environment(base)
            for name, args in seq:
                env.call(name, args)
                getattr(env.overlay, digest)()
                n += 1
        elapsed = time.perf_counter() - start
        rows.append([domain, source, label, n, f"{n / elapsed:,.0f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=["tau2", "gen"], default="tau2")
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    rows = []
    for domain in ("airline", "retail"):
        rows += run(domain, args.source, args.episodes, args.calls)
    print(table(["domain", "db", "calls", "n", "calls/s"], rows))
    for row in rows:
        if row[2] == "reads":
            rate = float(str(row[4]).replace(",", ""))
            print(f"{row[0]}: reads {rate / GOAL_READS_PER_S:.2f}x the 50,000 calls/s goal")


if __name__ == "__main__":
    main()
