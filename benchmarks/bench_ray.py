"""The same run in one plain process and over a local Ray cluster with 1 and 2 workers.

A Ray head on loopback (``ray start --head --block --num-cpus=2``, stopped at the end)
runs each shard in a worker process. Each configuration runs the same synthesized
airline tasks (scripted agent and user, in-process or behind the mock over HTTP) at two
sizes; the Ray path's cost is fitted as ``time = fixed + per_episode * episodes`` for
each configuration, so that its start-up (actor, shard tasks, each shard preparing the
domain, merging) and its cost per episode are told apart. Every Ray run's results are
checked equal to the plain run's (timing fields aside).

    python benchmarks/bench_ray.py [--sizes 100 400] [--participants scripted|scripted-http]
                                   [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec
from _common import plan_of, table

from writ_async.cluster.ray_run import RayOptions, simulate_on_ray
from writ_async.config import Config, default_config
from writ_async.engine.simulate import simulate
from writ_async.grading.results import TIMING_FIELDS
from writ_async.logs import configure_logging


def config_for(tasks: int, participants: str, concurrency: int) -> Config:
    config = default_config()
    replace = msgspec.structs.replace
    return replace(config, simulate=replace(config.simulate, task_count=tasks,
                                            agent=participants, user=participants,
                                            concurrency=concurrency))


def strip(value: object) -> object:
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if k not in TIMING_FIELDS}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


def results(run: Path) -> object:
    return strip(json.loads((run / "results.json").read_text()))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least squares ``seconds = fixed + per_episode * episodes``."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return my - slope * mx, slope


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 400])
    parser.add_argument("--participants", choices=["scripted", "scripted-http"],
                        default="scripted-http")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3, help="runs per point; the fastest "
                        "counts (the machine is shared: the others measure its load)")
    args = parser.parse_args()
    configure_logging("warning", "json")
    import ray

    print(f"load before: {os.getloadavg()}  (2-core machine shared with other work)")
    temp = Path(tempfile.mkdtemp(prefix="writ-bench-ray-"))
    port = free_port()
    head = subprocess.Popen(
        [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
         f"--port={port}", "--num-cpus=2", "--node-ip-address=127.0.0.1",
         f"--temp-dir={temp / 'ray'}", "--include-dashboard=false", "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        while True:
            try:
                ray.init(address=address, log_to_driver=False, logging_level="warning")
                break
            except ConnectionError:
                time.sleep(0.2)
        print(f"cluster up and connected in {time.perf_counter() - started:.1f} s")
        # warm-up: worker processes import writ once
        asyncio.run(simulate_on_ray(plan_of(config_for(4, args.participants, args.concurrency)),
                                    out=temp / "warm", options=RayOptions(address, workers=2)))
        best: dict[tuple[str, int], tuple[int, float]] = {}

        def keep(name: str, size: int, episodes: int, seconds: float) -> None:
            if (name, size) not in best or seconds < best[name, size][1]:
                best[name, size] = (episodes, seconds)

        for rep in range(args.repeat):
            for size in args.sizes:
                config = config_for(size, args.participants, args.concurrency)
                t = time.perf_counter()
                plain = asyncio.run(simulate(plan_of(config), out=temp / f"plain-{size}-{rep}"))
                keep("plain", size, len(plain.records), time.perf_counter() - t)
                for workers in (1, 2):
                    t = time.perf_counter()
                    run = asyncio.run(simulate_on_ray(plan_of(
                        config), out=temp / f"ray{workers}-{size}-{rep}",
                        options=RayOptions(address, workers=workers)))
                    keep(f"ray-{workers}", size, len(run.run.records), time.perf_counter() - t)
                    same = results(run.run.run_dir) == results(plain.run_dir)
                    assert same, f"ray-{workers} results differ from the plain run at {size}"
        times = {name: [best[name, size] for size in args.sizes]
                 for name in ("plain", "ray-1", "ray-2")}
    finally:
        if ray.is_initialized():
            ray.shutdown()
        head.terminate()
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)

    rows = []
    _, plain_slope = fit(times["plain"])
    for name, points in times.items():
        fixed, slope = fit(points)
        n, secs = points[-1]
        rows.append([name, *[f"{s:.2f}" for _, s in points], f"{n / secs:,.0f}",
                     f"{fixed:.2f}", f"{slope * 1e3:.2f}",
                     "-" if name == "plain" else f"{(slope - plain_slope) * 1e3:+.2f}",
                     f"{plain_slope / slope:.2f}x"])
    headers = ["run", *[f"s @{n}" for n, _ in times["plain"]], "ep/s (largest)",
               "fixed s", "ms/episode", "Ray overhead ms/episode", "speed vs plain"]
    print(f"participants={args.participants} concurrency={args.concurrency} "
          f"episodes={[n for n, _ in times['plain']]} fastest of {args.repeat}")
    print(table(headers, rows))
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
