"""GuideLLM as a peer load tester for the benchmarks (issues 7 and 9): build it into its
own cached venv, write its prompt file, run it against an OpenAI base URL, and read its
JSON output.

Facts about GuideLLM 0.8 this module relies on (found by running it):
- ``--data kind=json_file`` rows with a ``messages`` column are sent verbatim as the chat
  messages (string contents); a ``prompt`` column is sent as a list of content parts,
  which writ's mock (string contents only) refuses with 422.
- Every request in the JSON output carries ``info.timings.targeted_start`` (when its
  schedule meant to send it) and ``info.timings.request_start`` (when it did);
  ``request_dispatch_delay`` is the difference: GuideLLM's own send lag.
- TTFT and TPOT are measured from ``request_start`` (not from the intended time);
  ``time_per_output_token_ms`` includes the first token, ``inter_token_latency_ms``
  (last token - first token) / (output tokens - 1) does not, which is writ's TPOT.
- Errored requests (HTTP errors, and answers with no streamed content) are listed under
  ``requests.errored`` with an ``info.error`` string; requests cut off by a duration
  constraint under ``requests.incomplete``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VENV = Path(os.environ.get("WRIT_GUIDELLM_VENV",
                           Path.home() / ".cache" / "writ-bench" / "guidellm-venv"))
QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))


def ensure_guidellm() -> Path:
    """The ``guidellm`` executable in its own venv, installed there (once) if missing."""
    exe = VENV / "bin" / "guidellm"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "guidellm"], check=True)
    return exe


def guidellm_version() -> str:
    done = subprocess.run([str(ensure_guidellm()), "--version"], capture_output=True,
                          text=True, check=True)
    return done.stdout.strip().split()[-1]


def write_prompts(path: Path, conversations: Iterable[Sequence[dict[str, str]]]) -> Path:
    """One JSON line per request: ``{"messages": [...]}``, sent as is by GuideLLM."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for messages in conversations:
            fh.write(json.dumps({"messages": list(messages)}) + "\n")
    return path


@dataclass(frozen=True)
class Profile:
    """A GuideLLM load profile: ``constant``/``poisson`` at each of ``loads`` requests/s,
    ``concurrent`` with each of ``loads`` streams, or ``sweep`` (GuideLLM's own: a
    synchronous and a throughput run, then rates between; ``loads=(n,)`` sets how many
    benchmarks in all)."""

    kind: str
    loads: tuple[float, ...] = ()

    def args(self) -> list[str]:
        if self.kind == "sweep":
            size = f",sweep_size={int(self.loads[0])}" if self.loads else ""
            return ["--profile", f"kind=sweep{size}"]
        key = "streams" if self.kind == "concurrent" else "rate"
        values = [f"{v:g}" for v in self.loads]
        out = ["--profile", f"kind={self.kind},{key}={values[0]}"]
        if len(values) > 1:  # one GuideLLM process runs every load in turn
            out += ["--override", f"profile.{key}", ",".join(values)]
        return out


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    out = {name: ordered[min(len(ordered) - 1, int(q * len(ordered)))]
           for name, q in QUANTILES}
    out["max"] = ordered[-1]
    return out


@dataclass
class Result:
    """One GuideLLM benchmark (one load of a profile), read from its JSON output."""

    strategy: str
    load: float | None
    successful: int
    errored: int
    incomplete: int
    duration_s: float
    errors: Counter[str] = field(default_factory=Counter)
    # GuideLLM's own summary figures over successful requests (its percentiles)
    requests_per_s: float = 0.0
    output_tokens_per_s: float = 0.0
    ttft_ms: dict[str, float] = field(default_factory=dict)
    itl_ms: dict[str, float] = field(default_factory=dict)
    tpot_ms: dict[str, float] = field(default_factory=dict)  # GuideLLM's: includes 1st token
    e2e_ms: dict[str, float] = field(default_factory=dict)
    output_tokens: dict[str, float] = field(default_factory=dict)
    dispatch_lag_ms: dict[str, float] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def window(self, start_s: float, length_s: float) -> dict[str, Any]:
        """Requests whose schedule put them in ``[start_s, start_s + length_s)`` after the
        first scheduled send: how many succeeded, failed or were cut off, the rate of
        successful sends that actually happened inside the window, and their send lag
        (GuideLLM's dispatch delay). Mirrors writ's warm-up and measured window."""
        groups = self.raw["requests"]
        every = [r for kind in ("successful", "errored", "incomplete")
                 for r in groups.get(kind) or []]
        targeted = [r["info"]["timings"]["targeted_start"] for r in every
                    if r["info"]["timings"].get("targeted_start") is not None]
        if not targeted:
            return {"successful": 0, "errored": 0, "incomplete": 0, "delivered_per_s": 0.0,
                    "lag_ms": {}}
        t0 = min(targeted) + start_s
        t1 = t0 + length_s

        def scheduled_inside(r: dict[str, Any]) -> bool:
            t = r["info"]["timings"].get("targeted_start")
            return t is not None and t0 <= t < t1

        ok = [r for r in groups.get("successful") or [] if scheduled_inside(r)]
        sent_inside = [r for r in groups.get("successful") or []
                       if t0 <= (r["info"]["timings"].get("request_start") or 0) < t1]
        return {
            "successful": len(ok),
            "errored": sum(1 for r in groups.get("errored") or [] if scheduled_inside(r)),
            "incomplete": sum(1 for r in groups.get("incomplete") or []
                              if scheduled_inside(r)),
            "delivered_per_s": len(sent_inside) / length_s,
            "lag_ms": _quantiles([1000 * r["request_dispatch_delay"] for r in ok
                                  if r.get("request_dispatch_delay") is not None]),
        }


def _percentiles(metric: dict[str, Any], scale: float = 1.0) -> dict[str, float]:
    stats = (metric or {}).get("successful") or {}
    pct = stats.get("percentiles") or {}
    out = {name: pct[name] * scale for name in ("p50", "p90", "p99") if pct.get(name) is not None}
    if stats.get("mean") is not None:
        out["mean"] = stats["mean"] * scale
    return out


def parse(path: Path) -> list[Result]:
    """Every benchmark in a GuideLLM JSON output file."""
    report = json.loads(path.read_text())
    results = []
    for bench in report["benchmarks"]:
        strategy = bench["config"]["strategy"]
        kind = strategy.get("type_", "?")
        load = strategy.get("rate") if kind in ("constant", "poisson") else strategy.get("streams")
        made = bench["scheduler_metrics"]["requests_made"]
        metrics = bench["metrics"]
        errors: Counter[str] = Counter()
        for r in bench["requests"].get("errored") or []:
            errors[(r["info"].get("error") or "?").split("\n")[0][:120]] += 1
        successful = bench["requests"].get("successful") or []
        results.append(Result(
            strategy=kind, load=load, successful=made["successful"], errored=made["errored"],
            incomplete=made["incomplete"], duration_s=bench["duration"], errors=errors,
            requests_per_s=((metrics["requests_per_second"].get("successful") or {})
                            .get("mean") or 0.0),
            output_tokens_per_s=((metrics["output_tokens_per_second"].get("successful") or {})
                                 .get("mean") or 0.0),
            ttft_ms=_percentiles(metrics["time_to_first_token_ms"]),
            itl_ms=_percentiles(metrics["inter_token_latency_ms"]),
            tpot_ms=_percentiles(metrics["time_per_output_token_ms"]),
            e2e_ms=_percentiles(metrics["request_latency"], 1000.0),
            output_tokens=_percentiles(metrics["output_token_count"]),
            dispatch_lag_ms=_quantiles([1000 * r["request_dispatch_delay"] for r in successful
                                        if r.get("request_dispatch_delay") is not None]),
            raw=bench))
    return results


def run(base_url: str, model: str, prompts: Path, profile: Profile, out_dir: Path, *,
        max_seconds: float | None = None, max_requests: int | None = None,
        body: dict[str, Any] | None = None, validate_backend: bool = True,
        workers: int | None = None, timeout_s: float = 1800) -> list[Result]:
    """Run GuideLLM against an OpenAI base URL (``http://host:port/v1``) and parse its
    output. ``max_seconds``/``max_requests`` bound each load; ``body`` adds fields to every
    request body (GuideLLM's own output limit goes out as ``max_completion_tokens``, which
    not every server reads: pass ``{"max_tokens": N}`` here instead); ``workers`` caps
    GuideLLM's worker processes (None: its default, 10)."""
    if max_seconds is None and max_requests is None:
        raise ValueError("bound the run with max_seconds or max_requests")
    target = base_url.rstrip("/").removesuffix("/v1")
    backend = f"kind=openai_http,target={target},model={model}"
    for key, value in (body or {}).items():
        backend += f",extras.body.{key}={json.dumps(value)}"
    if not validate_backend:
        backend += ",validate_backend=false"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "guidellm.json"
    cmd = [str(ensure_guidellm()), "run", "--backend", backend, *profile.args(),
           "--data", f"kind=json_file,path={prompts}", "--output", f"kind=json,path={out}",
           "--disable-console"]
    if max_seconds is not None:
        cmd += ["--constraint", f"kind=max_duration,seconds={max_seconds:g}"]
    if max_requests is not None:
        cmd += ["--constraint", f"kind=max_requests,count={max_requests}"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if workers is not None:
        env["GUIDELLM__MAX_WORKER_PROCESSES"] = str(workers)
    log = out_dir / "guidellm.log"
    with log.open("w") as fh:
        done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                              timeout=timeout_s, check=False)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"guidellm exited {done.returncode}; see {log}:\n"
                           + log.read_text()[-3000:])
    return parse(out)


def command_line(base_url: str, model: str, profile: Profile) -> str:
    """The equivalent command, for the README."""
    target = base_url.rstrip("/").removesuffix("/v1")
    return " ".join(["guidellm run --backend", f"kind=openai_http,target={target},model={model}",
                     *profile.args(), "--data kind=json_file,path=prompts.jsonl",
                     "--output kind=json,path=guidellm.json"])
