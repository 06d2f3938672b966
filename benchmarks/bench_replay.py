"""Episodes replayed and verified per second, on one core (issue 6).

A scripted airline run over tau2-bench's tasks (``--trials`` per task, seeded mistakes so
that rewards, evidence failures and end states vary) is recorded once; then every
episode is verified as ``writ replay RUN --all`` does it: the journal read in one pass,
each episode re-executed on a fresh overlay with its recorded messages, every event
compared, the final state checked through its delta hash and the episode re-graded.

Rows: the first pass (which also replays each task's gold actions once, for grading),
the best of the following passes, the same with the full tau2 hash computed for every
episode (``--full-hash``), and, for scale, the environment alone on the same episodes
(tool calls plus a delta hash after each write and at the end, nothing else).

    python benchmarks/bench_replay.py [--trials 40] [--mistake-rate 0.3] [--run DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
from pathlib import Path

import msgspec
from _common import SHARED_TAU2, open_replay, plan_of, table

from writ_async.config import default_config
from writ_async.conversation.messages import AssistantMessage
from writ_async.engine.journal import EpisodeFinished
from writ_async.engine.replay.verify import iter_events, verify_all
from writ_async.engine.simulate import simulate
from writ_async.environment.tools import ToolKind

GOAL = 2_000  # airline episodes verified per second


def record_run(out: Path, trials: int, mistake_rate: float) -> None:
    config = default_config().with_domain(
        "airline", db_path=str(SHARED_TAU2 / "airline" / "db.json"))
    replace = msgspec.structs.replace
    config = replace(
        config,
        simulate=replace(config.simulate, tasks=str(SHARED_TAU2 / "airline" / "tasks.json"),
                         trials=trials, mistake_rate=mistake_rate),
    )
    asyncio.run(simulate(plan_of(config), out=out))


def environment_only(run_dir: Path) -> tuple[int, float]:
    """The same episodes' tool calls and delta hashes, and nothing else: the floor."""
    run = open_replay(run_dir)
    setup = run.setup
    records = [e.record for e in iter_events(run.contents.path, run.contents.valid_bytes)
               if isinstance(e, EpisodeFinished)]
    start = time.perf_counter()
    for record in records:
        env = setup.domain.environment(setup.base, setup.toolbox)
        for message in record.messages:
            if isinstance(message, AssistantMessage):
                for call in message.tool_calls or ():
                    env.call(call.name, call.arguments)
                    if setup.toolbox.kind(call.name) is ToolKind.WRITE:
                        env.overlay.delta_hash()
        env.overlay.delta_hash()
        env.overlay.encode_delta()
    return len(records), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40, help="trials per task (50 tasks)")
    parser.add_argument("--mistake-rate", type=float, default=0.3)
    parser.add_argument("--run", type=Path, help="verify this run instead of recording one")
    parser.add_argument("--passes", type=int, default=3, help="warm passes (best is shown)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run
        if run_dir is None:
            run_dir = Path(tmp) / "run"
            start = time.perf_counter()
            record_run(run_dir, args.trials, args.mistake_rate)
            print(f"recorded {run_dir} in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        run = open_replay(run_dir)
        load = time.perf_counter() - start

        def timed(full_hash: bool = False) -> tuple[int, int, float]:
            gc.collect()
            begin = time.perf_counter()
            verdicts = asyncio.run(verify_all(run, full_hash=full_hash))
            return (len(verdicts), sum(1 for v in verdicts if not v.ok),
                    time.perf_counter() - begin)

        rows = []
        n, bad, seconds = timed()
        rows.append(["verify, first pass (+ gold per task)", n, bad, f"{seconds:.3f}",
                     f"{n / seconds:,.0f}"])
        best = min((timed() for _ in range(args.passes)), key=lambda r: r[2])
        n, bad, seconds = best
        rate = n / seconds
        rows.append(["verify (best of warm passes)", n, bad, f"{seconds:.3f}", f"{rate:,.0f}"])
        n, bad, seconds = timed(full_hash=True)
        rows.append(["verify --full-hash", n, bad, f"{seconds:.3f}", f"{n / seconds:,.0f}"])
        n, seconds = min((environment_only(run_dir) for _ in range(args.passes)),
                         key=lambda r: r[1])
        rows.append(["environment only (tools + delta hashes)", n, "-", f"{seconds:.3f}",
                     f"{n / seconds:,.0f}"])
        print(f"run opened in {load:.3f} s (manifest, base rebuilt and hashed, journal read)")
        print(table(["what", "episodes", "diverged", "seconds", "episodes/s"], rows))
        print(f"airline: {rate / GOAL:.2f}x the {GOAL:,} episodes/s goal")


if __name__ == "__main__":
    main()
