"""writ's load tester and GuideLLM against the same llama.cpp server in the same run
(issue 9): TTFT, time per output token and throughput at p50, and the server's own
per-request timings (llama.cpp prints them to stderr when verbose, the default).

The server is the one ``bench_real_server.py`` builds (llama-cpp-python serving Gemma 3
270M, its cached venv), started here on loopback with one thread so that the load testers
keep the other core. Both tools send the same requests in the same order: a short system
prompt and an explicit instruction ("Write a numbered list of ..."), ``max_tokens`` fixed,
temperature 0, streamed, at a fixed number of requests in flight (closed loop). The same
prompts under which the model answers: an answer with no text is counted as its own class
("empty"), not folded into errors or successes.

    python benchmarks/bench_real_server_load.py [--concurrency 1,2] [--requests 30]
        [--max-tokens 48] [--server-python /tmp/llama-venv/bin/python]

How each figure is defined (both tools time from the actual send):
- TTFT: send to the first streamed content chunk.
- TPOT: (last token - first token) / (output tokens - 1); writ's ``tpot``, GuideLLM's
  ``inter_token_latency_ms``. Each tool counts output tokens its own way when the server
  sends no usage in the stream (llama-cpp-python does not), so the table also shows the
  same quantity per streamed chunk (llama.cpp streams one token per chunk).
- requests/s: each tool's own figure (writ: successful requests over a window that, with
  a request-count bound, ends when the last request is sent, so requests still in flight
  then count in a shorter window; GuideLLM: successful requests over its benchmark
  duration), and "completions" computed alike from both tools' per-request records.
- Server: from ``llama_perf_context_print``, per request: ``prompt eval time`` (prompt
  tokens not already cached), ``eval time`` / runs (ms per generated token) and ``total
  time`` (prompt, generation and sampling; the server-side counterpart of e2e at
  concurrency 1).

Waits while another llama.cpp server runs on this machine (two would share 2 cores).
Not part of the test suite: the build is too slow for CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _guidellm
import bench_real_server
from _common import table
from bench_real_server import ALIAS, ensure_server_venv

from writ_async.errors import ModelCallError
from writ_async.llm.protocol import ChatRequest, Message
from writ_async.loadtest.cli import load_test
from writ_async.loadtest.run import LoadConfig
from writ_async.loadtest.traffic import COMPLETED, FAILED, Ended, Sender

SYSTEM = "You are a helpful assistant. Answer the request directly."
SUBJECTS = ("animals", "fruits", "countries in Europe", "colours", "musical instruments",
            "vegetables", "sports", "kitchen tools", "birds", "rivers", "trees",
            "car brands", "programming languages", "board games", "flowers", "planets and moons",
            "breakfast foods", "jobs", "cities in Asia", "insects")
PERF = re.compile(r"llama_perf_context_print:\s+(prompt eval|eval|total) time =\s+([\d.]+) ms"
                  r" /\s+(\d+) (?:tokens|runs)")


def instructions() -> list[str]:
    return [f"Write a numbered list of twenty {s}, one per line, with a short note on each."
            for s in SUBJECTS]


class InstructionTraffic:
    """Single-turn conversations: conversation ``i`` asks instruction ``i % n``. Counts
    answers with no text (``empty``) and finish reasons, which the load tester's records
    do not keep."""

    def __init__(self, prompts: list[str], max_tokens: int, model: str) -> None:
        self.prompts, self.max_tokens, self.model = prompts, max_tokens, model
        self.empty = 0
        self.finish: Counter[str] = Counter()

    def describe(self) -> dict[str, Any]:
        return {"kind": "instructions", "prompts": len(self.prompts),
                "max_tokens": self.max_tokens}

    def messages(self, index: int) -> list[dict[str, str]]:
        return [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": self.prompts[index % len(self.prompts)]}]

    async def converse(self, index: int, sender: Sender) -> Ended:
        request = ChatRequest(model=self.model, max_tokens=self.max_tokens, temperature=0.0,
                              messages=[Message(role=m["role"], content=m["content"])
                                        for m in self.messages(index)])
        try:
            result = await sender.complete("agent", request)
        except ModelCallError:
            return Ended(FAILED, 1)
        choice = result.completion.choices[0]
        self.finish[choice.finish_reason or "none"] += 1
        if not (choice.message.content or "").strip() and not choice.message.tool_calls:
            self.empty += 1
        return Ended(COMPLETED, 1)


def other_servers() -> list[str]:
    done = subprocess.run(["pgrep", "-af", "llama_cpp.server"], capture_output=True, text=True,
                          check=False)
    return [line for line in done.stdout.splitlines() if "pgrep" not in line]


def start_server(python: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The server as bench_real_server.py runs it, but one thread (the load testers keep
    the other core) and its log kept: its per-request timings are the server's own view
    of the same requests. By default a request that arrives while another streams ends
    that stream at once ("data: [DONE]", no finish_reason, usually no text), so with
    more than one request in flight nearly every answer came back empty: interrupts off."""
    return bench_real_server.start_server(
        python, bench_real_server.model_path(python), n_ctx=4096, threads=1,
        chat_format=None, log=log, interrupt=False)


def server_requests(text: str) -> list[dict[str, float]]:
    """Every request whose timings llama.cpp printed in ``text``, in order: prompt eval ms
    (the prompt tokens not already in its cache), generation ms per token (``eval time`` /
    runs) and total ms (prompt, generation and sampling)."""
    out = []
    current: dict[str, tuple[float, int]] = {}
    for kind, ms, n in PERF.findall(text):
        current[kind] = (float(ms), int(n))
        if kind == "total":
            eval_ms, runs = current.get("eval", (0.0, 0))
            out.append({"prompt_ms": current.get("prompt eval", (0.0, 0))[0],
                        "ms_per_token": eval_ms / runs if runs else float("nan"),
                        "total_ms": float(ms)})
            current = {}
    return out


def since(log: Path, mark: int) -> str:
    """What the server wrote to ``log`` after byte ``mark``."""
    return log.read_bytes()[mark:].decode(errors="replace")


def server_summary(requests: list[dict[str, float]]) -> dict[str, float]:
    """p50 of the server's per-request timings."""
    out = {"requests": float(len(requests))}
    for key in ("prompt_ms", "ms_per_token", "total_ms"):
        if requests:
            out[key] = statistics.median(r[key] for r in requests)
    return out


def completion_rate(ends: list[float]) -> float | None:
    """Requests completed per second between the first and the last completion: the same
    formula over both tools' per-request records (each tool's own figure bounds its
    window differently)."""
    if len(ends) < 2:
        return None
    ends = sorted(ends)
    return (len(ends) - 1) / (ends[-1] - ends[0])


def p50(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def writ_step(url: str, concurrency: int, requests: int, max_tokens: int, out: Path
              ) -> dict[str, Any]:
    traffic = InstructionTraffic(instructions(), max_tokens, ALIAS)
    config = LoadConfig(base_url=url, model=ALIAS, concurrency=concurrency, requests=requests,
                        drain_s=300, first_token_timeout_s=300, total_timeout_s=600)
    report = asyncio.run(load_test([config], traffic, out))
    step = report["steps"][0]
    records = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]
    per_chunk = [(r["e2e_ms"] - r["ttft_ms"]) / (r["chunks"] - 1) for r in records
                 if r["ok"] and r.get("ttft_ms") is not None and r["chunks"] > 1]
    lat, thr = step["latency_ms"], step["throughput"]
    return {
        "ok": step["requests"]["ok"], "errors": step["requests"]["errors"],
        "empty": traffic.empty, "finish": dict(traffic.finish),
        "ttft": lat["ttft"].get("p50"), "tpot": lat["tpot"].get("p50"),
        "per_chunk": p50(per_chunk), "e2e": lat["e2e"].get("p50"),
        "req_s": thr["requests_per_s"], "out_tok_s": thr["output_tokens_per_s"],
        "req_s_ends": completion_rate([r["intended"] + r["e2e_intended_ms"] / 1000
                                       for r in records if r["ok"]]),
        "tokens": p50([r["completion_tokens"] for r in records if r["ok"]]),
    }


def guidellm_steps(url: str, loads: list[int], requests: int, max_tokens: int, out: Path
                   ) -> list[dict[str, Any]]:
    traffic = InstructionTraffic(instructions(), max_tokens, ALIAS)
    prompts = _guidellm.write_prompts(out / "prompts.jsonl",
                                      (traffic.messages(i) for i in range(requests)))
    # llama-cpp-python reads max_tokens (GuideLLM's own limit is max_completion_tokens) and
    # has no /health route, so the probe is off.
    results = _guidellm.run(url, ALIAS, prompts,
                            _guidellm.Profile("concurrent", tuple(float(c) for c in loads)),
                            out, max_requests=requests, validate_backend=False,
                            body={"max_tokens": max_tokens, "temperature": 0})
    steps = []
    for result in results:
        ok = result.raw["requests"].get("successful") or []
        errored = result.raw["requests"].get("errored") or []
        # GuideLLM files an answer with no text as an error ("empty response payload");
        # here it is its own class, apart from the other errors.
        empty_errors = [r for r in errored if "empty response" in (r["info"].get("error") or "")]
        empty = len(empty_errors) + sum(1 for r in ok if not (r.get("output") or "").strip())
        errors = Counter((r["info"].get("error") or "?").split("\n")[0][:120] for r in errored
                         if r not in empty_errors)
        per_chunk = []
        for r in ok:
            t = r["info"]["timings"]
            if t.get("first_token_iteration") and t.get("last_token_iteration") \
                    and t.get("token_iterations", 0) > 1:
                per_chunk.append(1000 * (t["last_token_iteration"] - t["first_token_iteration"])
                                 / (t["token_iterations"] - 1))
        steps.append({
            "ok": result.successful, "errors": dict(errors), "empty": empty,
            "incomplete": result.incomplete,
            "ttft": result.ttft_ms.get("p50"), "tpot": result.itl_ms.get("p50"),
            "per_chunk": p50(per_chunk), "e2e": result.e2e_ms.get("p50"),
            "req_s": result.successful / result.duration_s if result.duration_s else 0.0,
            "req_s_ends": completion_rate([r["request_end_time"] for r in ok
                                           if r.get("request_end_time") is not None]),
            "out_tok_s": result.output_tokens_per_s,
            "tokens": result.output_tokens.get("p50"),
        })
    return steps


def diff(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b:
        return "-"
    return f"{(a - b) / b:+.1%}"


def fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,2", help="requests in flight, per step")
    parser.add_argument("--requests", type=int, default=30, help="requests per step and tool")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--server-python", type=Path, default=None,
                        help="python of a venv with llama-cpp-python[server] and the model "
                             "package (default: bench_real_server.py's cached venv)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of both tools, alternating which goes first")
    parser.add_argument("--wait", type=float, default=3600,
                        help="max seconds to wait for another llama.cpp server to finish")
    args = parser.parse_args()
    loads = [int(c) for c in args.concurrency.split(",")]
    python = args.server_python or ensure_server_venv()
    deadline = time.monotonic() + args.wait
    while (others := other_servers()) and time.monotonic() < deadline:
        print(f"waiting: another llama.cpp server is running ({others[0][:80]})", flush=True)
        time.sleep(20)
    if other_servers():
        raise SystemExit("another llama.cpp server is still running; not measuring")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        log = root / "server.log"
        proc, url = start_server(python, log)
        try:
            warm = InstructionTraffic(instructions(), args.max_tokens, ALIAS)
            asyncio.run(load_test([LoadConfig(base_url=url, model=ALIAS, concurrency=1,
                                              requests=2, drain_s=300)], warm, root / "warm"))
            print(f"load before: {os.getloadavg()}", flush=True)
            rounds: list[tuple[list[Any], list[Any]]] = []
            for k in range(args.rounds):
                # The one-thread server's own speed drifts by 10-15 % between minutes on
                # a 2-core machine; alternating which tool goes first and taking the
                # median over rounds cancels the drift instead of charging it to a tool.
                rows: list[Any] = []
                servers: list[Any] = []
                for tool in (("writ", "guidellm") if k % 2 == 0 else ("guidellm", "writ")):
                    if tool == "writ":
                        for c in loads:
                            mark = log.stat().st_size
                            w = writ_step(url, c, args.requests, args.max_tokens,
                                          root / f"writ-{k}-{c}")
                            servers.append(("writ", c, server_summary(
                                server_requests(since(log, mark)))))
                            rows.append(("writ", c, w))
                    else:
                        steps = _guidellm_with_marks(url, loads, args, root / f"g{k}", log,
                                                     servers)
                        rows += [("guidellm", c, g) for c, g in zip(loads, steps, strict=True)]
                rounds.append((rows, servers))
                print(f"round {k + 1} of {args.rounds} done, load {os.getloadavg()}",
                      flush=True)
            print(f"load after: {os.getloadavg()}")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    rows, servers = combine(rounds)
    if args.rounds > 1:
        print(f"\nmedian over {args.rounds} rounds of each figure's p50 (totals summed)")
    report(rows, servers, loads)


def combine(rounds: list[tuple[list[Any], list[Any]]]) -> tuple[list[Any], list[Any]]:
    """One row per (tool, concurrency): the median over rounds of every figure, the sums
    of the counts."""
    rows, servers = [], []
    for tool, c, _ in rounds[0][0]:
        each = [r for rs, _ in rounds for t, cc, r in rs if (t, cc) == (tool, c)]
        merged: dict[str, Any] = {}
        for key, value in each[0].items():
            values = [r[key] for r in each]
            if key in ("ok", "empty"):
                merged[key] = sum(values)
            elif isinstance(value, dict):
                total: Counter[str] = Counter()
                for v in values:
                    total.update(v)
                merged[key] = dict(total)
            else:
                present = [v for v in values if v is not None]
                merged[key] = statistics.median(present) if present else None
        rows.append((tool, c, merged))
        srv = [s for _, ss in rounds for t, cc, s in ss if (t, cc) == (tool, c)]
        servers.append((tool, c, {key: statistics.median(x[key] for x in srv if key in x)
                                  for key in srv[0]}))
    return rows, servers


def _guidellm_with_marks(url: str, loads: list[int], args: argparse.Namespace, root: Path,
                         log: Path, servers: list[tuple[str, int, dict[str, float]]]
                         ) -> list[dict[str, Any]]:
    """GuideLLM runs every concurrency in one process; the server's timings for its run are
    split between the steps in request order (each step sends ``--requests``)."""
    mark = log.stat().st_size
    steps = guidellm_steps(url, loads, args.requests, args.max_tokens, root / "guidellm")
    done = server_requests(since(log, mark))
    for i, c in enumerate(loads):
        servers.append(("guidellm", c, server_summary(
            done[i * args.requests:(i + 1) * args.requests])))
    return steps


def report(rows: list[tuple[str, int, dict[str, Any]]],
           servers: list[tuple[str, int, dict[str, float]]], loads: list[int]) -> None:
    by = {(tool, c): r for tool, c, r in rows}
    srv = {(tool, c): s for tool, c, s in servers}
    print("\nPer tool and concurrency (p50 unless said; ms):")
    out = []
    for tool, c, r in rows:
        s = srv.get((tool, c), {})
        out.append([tool, c, r["ok"], sum(r["errors"].values()), r["empty"], fmt(r["ttft"]),
                    fmt(r["tpot"], 2), fmt(r["per_chunk"], 2), fmt(r["e2e"]),
                    fmt(r["req_s"], 3), fmt(r["out_tok_s"]), fmt(r["tokens"], 0),
                    fmt(s.get("prompt_ms")), fmt(s.get("ms_per_token"), 2),
                    fmt(s.get("total_ms"))])
    print(table(["tool", "conc", "ok", "errors", "empty", "TTFT", "TPOT", "per chunk",
                 "e2e", "req/s", "out tok/s", "out tokens", "server prompt eval",
                 "server ms/token", "server total"], out))
    print("\nwrit vs GuideLLM (goal: within 10 % at p50):")
    cmp_rows = []
    for c in loads:
        w, g = by[("writ", c)], by[("guidellm", c)]
        for name, key in (("TTFT", "ttft"), ("TPOT", "tpot"), ("per chunk", "per_chunk"),
                          ("e2e", "e2e"), ("requests/s", "req_s"),
                          ("requests/s, completions", "req_s_ends"),
                          ("output tokens/s", "out_tok_s")):
            d = diff(w[key], g[key])
            within = "-" if d == "-" else ("yes" if abs(w[key] - g[key]) <= 0.1 * g[key]
                                           else "no")
            cmp_rows.append([c, name, fmt(w[key], 2), fmt(g[key], 2), d, within])
    print(table(["conc", "figure", "writ", "GuideLLM", "writ vs GuideLLM", "within 10 %"],
                cmp_rows))
    for tool, c, r in rows:
        if r["errors"]:
            print(f"{tool} c={c} errors: {r['errors']}")
        if r.get("finish"):
            print(f"{tool} c={c} finish reasons: {r['finish']}")


if __name__ == "__main__":
    main()
