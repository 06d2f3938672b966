"""Pass^1 of one agent model on tau2's test split and on writ's held-out read-heavy tasks.

Runs ``python -m writ_async simulate`` once per domain and task set, with the model
behind ``--agent-url`` (any OpenAI-compatible server: on the GPU machine, `transformers
serve` of a model saved by ``train.py``) as the agent and writ's scripted user as the user,
graded by writ's tau2-exact grader (no judge: NL assertions are reported as not graded, as
writ does everywhere). Then it reads each run's ``results.json`` and prints Pass^1 with the
number of episodes, per domain and set, and over both domains; episodes that ended on the
infrastructure (``infrastructure_error``) are counted apart and left out of Pass^1, as writ
leaves them out of its rewards.

The sets, read from ``--data`` (``arms.py``'s ``carry/`` folder, or any folder laid out so):

* ``test``       tau2-bench's test-split tasks: ``tau2/<domain>/tasks.json`` restricted to
                 ``split_tasks.json``'s ``test`` ids, run on ``tau2/<domain>/db.json``;
* ``read_heavy`` ``heldout/<domain>_read_heavy.json`` (synthesized by ``arms.py``, none of
                 them trained on), on the same database.

``--agent scripted`` / ``scripted-http`` run writ's own scripted agent instead of a model
(its ceiling, and what CI uses with the mock server).

    python benchmarks/train_effect/evaluate.py --label base --agent-url http://127.0.0.1:8000/v1
        [--agent-model NAME] [--data runs/train_effect/carry] [--out runs/train_effect/eval]
        [--domains airline,retail] [--sets test,read_heavy] [--limit N] [--concurrency 32]
        [--max-steps 100] [--max-tokens 512] [--parallel] [--deadline SECONDS] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from arms import _table, domain_table  # noqa: E402  (same config writer as the arms)

from writ_async.conversation.episode import ARGUMENTS_REFUSED  # noqa: E402

DOMAINS = ("airline", "retail")
SETS = ("test", "read_heavy")
SET_LABELS = {"test": "tau2 test", "read_heavy": "read-heavy (held out)"}
INFRA = "infrastructure_error"  # writ_async.grading.results.NOT_EVALUABLE
ENDPOINT = "finetuned"
GRACE = 30.0  # seconds a stopped run may take to finish its episodes in flight


class EvalError(RuntimeError):
    """A set could not be evaluated (missing data, a run without results)."""


def set_tasks(data: Path, domain: str, which: str, limit: int | None) -> list[dict[str, Any]]:
    """The task dicts of one set, in file order, the first ``limit`` of them."""
    if which == "test":
        tasks = json.loads((data / "tau2" / domain / "tasks.json").read_text(encoding="utf-8"))
        split = json.loads((data / "tau2" / domain / "split_tasks.json")
                           .read_text(encoding="utf-8"))
        ids = {str(i) for i in split["test"]}
        tasks = [t for t in tasks if str(t["id"]) in ids]
    else:
        path = data / "heldout" / f"{domain}_read_heavy.json"
        if not path.is_file():
            raise EvalError(f"{path} is missing (arms.py --heldout N writes it)")
        tasks = json.loads(path.read_text(encoding="utf-8"))
    return tasks[:limit] if limit is not None else tasks


def eval_config(domain: str, tasks_file: Path, args: argparse.Namespace) -> str:
    text = _table("run", {"seed": args.seed, "domain": domain})
    text += _table(f"domains.{domain}", domain_table(domain, args.data / "tau2"))
    text += _table("logging", {"level": "warning"})
    agent = args.agent
    if args.agent_url:
        agent = "agent"
        # Several servers of one model (each answering one request at a time, say) are one
        # agent: writ's pool sends each call to the one with the fewest in flight.
        names = [ENDPOINT] if len(args.agent_url) == 1 else [
            f"{ENDPOINT}_{i}" for i in range(len(args.agent_url))]
        for name, url in zip(names, args.agent_url, strict=True):
            text += _table(f"models.endpoints.{name}", {
                "base_url": url, "model": args.agent_model, "stream": False,
                "initial_concurrency": args.concurrency, "max_concurrency": args.concurrency})
            text += _table(f"models.endpoints.{name}.timeouts",
                           {"first_token": args.timeout, "total": args.timeout})
        text += _table("models.roles", {"agent": names})
        text += _table("models.retry", {"max_attempts": 3})
    simulate: dict[str, Any] = {"tasks": str(tasks_file), "trials": args.trials,
                                "concurrency": args.concurrency, "agent": agent,
                                "user": "scripted", "max_steps": args.max_steps,
                                "temperature": 0.0}
    if args.max_tokens:
        simulate["max_tokens"] = args.max_tokens
    return text + _table("simulate", simulate)


def score(results: Mapping[str, Any]) -> dict[str, Any]:
    """Pass^1 (mean reward over the evaluable episodes), episodes and terminations."""
    sims = results.get("simulations") or []
    evaluable = [s for s in sims if s.get("termination_reason") != INFRA]
    rewards = [float((s.get("reward_info") or {}).get("reward") or 0.0) for s in evaluable]
    return {
        "episodes": len(evaluable),
        "infrastructure_errors": len(sims) - len(evaluable),
        "passed": sum(1 for r in rewards if r >= 1.0),
        "pass_1": sum(rewards) / len(rewards) if rewards else None,
        "terminations": dict(sorted(Counter(s.get("termination_reason") for s in sims)
                                    .items())),
        "model_calls": sum(((s.get("info") or {}).get("writ") or {}).get("model_calls", 0)
                           for s in sims),
        **tool_use(sims),
    }


def tool_use(sims: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """What the agent did with the tools: its answers, the calls it issued, and how the
    tools took them (a call whose arguments could not be held, any other error)."""
    answers = calls = bad_arguments = errors = 0
    for sim in sims:
        for message in sim.get("messages") or []:
            if message.get("role") == "assistant":
                answers += 1
                calls += len(message.get("tool_calls") or [])
            elif message.get("role") == "tool" and message.get("requestor") != "user":
                if str(message.get("content") or "").startswith(ARGUMENTS_REFUSED):
                    bad_arguments += 1
                elif message.get("error"):
                    errors += 1
    return {"agent_answers": answers, "tool_calls": calls,
            "tool_calls_bad_arguments": bad_arguments, "tool_errors": errors}


def of_tasks(part: Mapping[str, Any], expected: int) -> dict[str, Any]:
    """The stricter reading beside Pass^1: every episode the set asked for (tasks times
    trials) counted, the ones a deadline left unfinished and the ones lost to the
    infrastructure as failures (a deadline admits the quick episodes first, and a server
    that fails on what the model wrote is the model's failure too)."""
    total = (part["pass_1"] or 0.0) * part["episodes"]
    return {"unfinished": expected - part["episodes"] - part["infrastructure_errors"],
            "pass_1_of_tasks": total / expected if expected else None}


def combine(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Pass^1 over several sets: the episodes pooled (each episode weighs the same)."""
    episodes = sum(p["episodes"] for p in parts)
    total = sum((p["pass_1"] or 0.0) * p["episodes"] for p in parts)
    pooled = {"episodes": episodes,
              "infrastructure_errors": sum(p["infrastructure_errors"] for p in parts),
              "passed": sum(p["passed"] for p in parts),
              "pass_1": total / episodes if episodes else None}
    expected = sum(p["expected_episodes"] for p in parts)
    return {"tasks": sum(p["tasks"] for p in parts), "expected_episodes": expected,
            **pooled, **of_tasks(pooled, expected)}


def _wait_until(proc: subprocess.Popen[bytes], deadline: float | None) -> bool:
    """Wait for a writ run; at the deadline stop it as an operator would (SIGINT: finish
    the episodes in flight; a second SIGINT after ``GRACE`` seconds cancels them). The
    run writes the results of what finished either way. True when it was stopped."""
    if deadline is None:
        proc.wait()
        return False
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=GRACE)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        proc.wait()
    return True


def run_set(domain: str, which: str, args: argparse.Namespace) -> dict[str, Any]:
    work = args.out / args.label / f"{domain}_{which}"
    if work.exists():  # a fresh run: an old one's episodes must not be mixed in
        shutil.rmtree(work)
    work.mkdir(parents=True)
    tasks = set_tasks(args.data, domain, which, args.limit)
    tasks_file = work / "tasks.json"
    tasks_file.write_text(json.dumps(tasks))
    config = work / "config.toml"
    config.write_text(eval_config(domain, tasks_file, args))
    run = work / "run"
    command = [sys.executable, "-m", "writ_async", "simulate", "--config", str(config),
               "--out", str(run)]
    log = work / "simulate.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(command, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT)
        stopped = _wait_until(proc, args.deadline)
    done = subprocess.CompletedProcess(command, proc.returncode, "", log.read_text())
    results_path = run / "results.json"
    if not results_path.is_file():
        raise EvalError(f"{domain} {which}: `{' '.join(command)}` exited {done.returncode} "
                        f"without results.json:\n{done.stderr[-2000:]}")
    # writ exits non-zero when no episode could run: the result says so (all infra errors)
    out = score(json.loads(results_path.read_text(encoding="utf-8")))
    expected = len(tasks) * args.trials
    out.update({"tasks": len(tasks), "expected_episodes": expected, "run": str(run),
                "exit": done.returncode, "stopped_at_deadline": stopped,
                **of_tasks(out, expected)})
    # Every journaled episode re-run from its journal and compared (0: complete, verified).
    replay = subprocess.run([sys.executable, "-m", "writ_async", "replay", str(run), "--all"],
                            cwd=REPO, capture_output=True, text=True)
    (work / "replay.log").write_text(replay.stdout + replay.stderr)
    out["replay_exit"] = replay.returncode
    return out


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    domains = [d for d in args.domains.split(",") if d]
    sets = [s for s in args.sets.split(",") if s]
    for name, known, given in (("domain", DOMAINS, domains), ("set", SETS, sets)):
        bad = [g for g in given if g not in known]
        if bad:
            raise EvalError(f"unknown {name} {bad[0]!r} (known: {', '.join(known)})")
    keys = [(domain, which) for which in sets for domain in domains]
    # The sets are independent runs: at once, a slow set does not hold the others back.
    with ThreadPoolExecutor(max_workers=len(keys) if args.parallel else 1) as pool:
        done = list(pool.map(lambda key: run_set(*key, args), keys))
    per: dict[str, dict[str, Any]] = {}
    for (domain, which), part in zip(keys, done, strict=True):
        per[f"{domain}/{which}"] = part
        print(f"  {domain} {which}: {part['episodes']} episodes, {part['tool_calls']} tool "
              f"calls, replay exit {part['replay_exit']}", file=sys.stderr, flush=True)
    overall = {which: combine([per[f"{d}/{which}"] for d in domains]) for which in sets}
    agent = (f"{', '.join(args.agent_url)} ({args.agent_model})" if args.agent_url
             else args.agent)
    return {"label": args.label, "agent": agent,
            "sets": per, "overall": overall}


def table(summary: Mapping[str, Any]) -> str:
    rows = [("set", "domain", "tasks", "episodes", "passed", "Pass^1", "infra errors",
             "unfinished", "Pass^1 of tasks")]

    def line(which: str, domain: str, part: Mapping[str, Any]) -> None:
        p, strict = part["pass_1"], part["pass_1_of_tasks"]
        rows.append((SET_LABELS[which], domain, str(part["tasks"]), str(part["episodes"]),
                     str(part["passed"]), "n/a" if p is None else f"{p:.4f}",
                     str(part["infrastructure_errors"]), str(part["unfinished"]),
                     "n/a" if strict is None else f"{strict:.4f}"))

    for key, part in summary["sets"].items():
        domain, which = key.split("/")
        line(which, domain, part)
    for which, part in summary["overall"].items():
        line(which, "both", part)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    text = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    text.insert(1, "-|-".join("-" * w for w in widths))
    return f"{summary['label']}: agent {summary['agent']}\n" + "\n".join(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", required=True,
                        help="the model's name in the output (base, write_only, ...)")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--agent-url", action="append",
                     help="the agent model's OpenAI-compatible base URL (.../v1); again, or "
                          "comma-separated, for several servers of the same model")
    who.add_argument("--agent", choices=("scripted", "scripted-http"),
                     help="writ's scripted agent instead of a model")
    parser.add_argument("--agent-model", default="model",
                        help="the model name sent with each request (default `model`)")
    parser.add_argument("--data", type=Path, default=REPO / "runs" / "train_effect" / "carry",
                        help="tau2/<domain>/... and heldout/ (arms.py's carry/ folder)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "train_effect" / "eval")
    parser.add_argument("--domains", default=",".join(DOMAINS))
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--limit", type=int, help="the first N tasks of each set only")
    parser.add_argument("--trials", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=32, help="episodes in flight")
    parser.add_argument("--max-steps", type=int, default=100, help="steps per episode")
    parser.add_argument("--max-tokens", type=int, default=512,
                        help="tokens per agent answer (0: the server's limit)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds per model call (first token and total)")
    parser.add_argument("--deadline", type=float, metavar="SECONDS",
                        help="stop each run this long after the start (Pass^1 then counts "
                             "the episodes that finished; the summary says it stopped)")
    parser.add_argument("--parallel", action="store_true",
                        help="run the domains' sets at once (one writ run each)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    if args.agent_url:
        args.agent_url = [u for given in args.agent_url for u in given.split(",") if u]
    if args.deadline is not None:  # from here on, an absolute time
        args.deadline = time.monotonic() + args.deadline
    args.data = args.data.resolve()
    args.out = args.out.resolve()
    try:
        summary = evaluate(args)
    except EvalError as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 1
    path = args.out / args.label / "summary.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2) if args.json else table(summary))
    print(f"summary: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
