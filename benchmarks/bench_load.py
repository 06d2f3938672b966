"""Time and memory to load each base database, and to build its hash index.

Each row is measured in a fresh interpreter, so memory freed by an earlier row cannot
hide the cost of a later one.

    python benchmarks/bench_load.py
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time

from _common import SHARED_TAU2, rss_mib, table

from domains import get_domain


def measure(domain: str, source: str, scale: float) -> list[object]:
    dom = get_domain(domain)
    gc.collect()
    before = rss_mib()
    start = time.perf_counter()
    if source == "tau2":
        base = dom.load_db(SHARED_TAU2 / domain / "db.json")
    else:
        base = dom.generate_db(seed=0, scale=scale)
    loaded = time.perf_counter() - start
    after_load = rss_mib()
    start = time.perf_counter()
    base.db_hash()
    indexed = time.perf_counter() - start
    after_index = rss_mib()
    sizes = ", ".join(f"{t}={len(r)}" for t, r in base.tables.items())
    return [domain, f"{source}" + (f" x{scale:g}" if source == "gen" else ""), sizes,
            f"{loaded * 1000:.0f}", f"{after_load - before:.1f}",
            f"{indexed * 1000:.0f}", f"{after_index - after_load:.1f}"]


def measured_apart(domain: str, source: str, scale: float) -> list[object]:
    out = subprocess.run(
        [sys.executable, __file__, "--one", domain, source, str(scale)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--one":
        print(json.dumps(measure(sys.argv[2], sys.argv[3], float(sys.argv[4]))))
        return
    rows = []
    for domain in ("airline", "retail"):
        if (SHARED_TAU2 / domain / "db.json").exists():
            rows.append(measured_apart(domain, "tau2", 1.0))
        for scale in (1.0, 10.0):
            rows.append(measured_apart(domain, "gen", scale))
    print(table(["domain", "db", "records", "load ms", "load MiB", "hash index ms",
                 "index MiB"], rows))


if __name__ == "__main__":
    main()
