"""`writ simulate` end to end: scripted runs, determinism, HTTP parity, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
from conftest import require, tau2_dir
from planning import plan_of

from writ_async.config import default_config
from writ_async.engine.journal import read_journal
from writ_async.engine.simulate import simulate
from writ_async.errors import RunDirError
from writ_async.grading.results import TIMING_FIELDS


def tau2_config(domain: str, **simulate_settings: object):
    db = require(tau2_dir() / domain / "db.json", f"tau2-bench {domain} db.json")
    tasks = require(tau2_dir() / domain / "tasks.json", f"tau2-bench {domain} tasks.json")
    config = default_config().with_domain(domain, db_path=str(db))
    replace = msgspec.structs.replace
    return replace(config, run=replace(config.run, domain=domain),
                   simulate=replace(config.simulate, tasks=str(tasks), **simulate_settings))


def strip_timing(value: object) -> object:
    if isinstance(value, dict):
        return {k: strip_timing(v) for k, v in value.items() if k not in TIMING_FIELDS}
    if isinstance(value, list):
        return [strip_timing(v) for v in value]
    return value


def results_without_timing(run_dir: Path) -> object:
    return strip_timing(json.loads((run_dir / "results.json").read_text()))


@pytest.mark.asyncio
async def test_scripted_run_over_tau2_tasks_keeps_every_gold_episode(tmp_path: Path) -> None:
    outcome = await simulate(plan_of(tau2_config("airline", trials=2)), out=tmp_path / "run")
    assert outcome.summary["episodes"] == 100
    assert outcome.summary["average_reward"] == 1.0
    assert outcome.export.kept == 100
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert len(results["simulations"]) == 100
    assert {s["termination_reason"] for s in results["simulations"]} == {"user_stop"}
    rows = (tmp_path / "run" / "export" / "sft_openai.jsonl").read_text().splitlines()
    assert len(rows) == outcome.export.written
    first = json.loads(rows[0])
    assert first["messages"][0]["role"] == "system"
    assert "<policy>" in first["messages"][0]["content"]


@pytest.mark.asyncio
async def test_same_seed_same_results_at_concurrency_1_and_1000(tmp_path: Path) -> None:
    # Over HTTP, so that episodes really interleave at concurrency 1000.
    http = {"agent": "scripted-http", "user": "scripted-http", "mistake_rate": 0.5}
    one = await simulate(plan_of(tau2_config("retail", concurrency=1, **http)), out=tmp_path / "c1")
    many = await simulate(plan_of(tau2_config("retail", concurrency=1000, **http)),
                          out=tmp_path / "c1000")
    assert results_without_timing(one.run_dir) == results_without_timing(many.run_dir)
    for name in ("sft_openai.jsonl", "sft_sharegpt.jsonl"):
        a = (one.run_dir / "export" / name).read_bytes()
        assert a == (many.run_dir / "export" / name).read_bytes()
    assert 0 < one.summary["average_reward"] < 1  # the mistakes really happened


@pytest.mark.asyncio
async def test_scripted_over_http_matches_in_process(tmp_path: Path) -> None:
    local = await simulate(plan_of(tau2_config("airline")), out=tmp_path / "local")
    remote = await simulate(
        plan_of(tau2_config("airline", agent="scripted-http", user="scripted-http")),
        out=tmp_path / "http")
    assert (local.run_dir / "export" / "sft_openai.jsonl").read_bytes() == (
        remote.run_dir / "export" / "sft_openai.jsonl").read_bytes()
    assert remote.records[0].model_calls > 0 and local.records[0].model_calls == 0


@pytest.mark.asyncio
async def test_existing_run_directory_is_refused(tmp_path: Path) -> None:
    await simulate(plan_of(tau2_config("airline", trials=1)), out=tmp_path / "run")
    with pytest.raises(RunDirError):
        await simulate(plan_of(tau2_config("airline", trials=1)), out=tmp_path / "run")


@pytest.mark.asyncio
async def test_resume_with_different_settings_is_refused(tmp_path: Path) -> None:
    await simulate(plan_of(tau2_config("airline", trials=1)), out=tmp_path / "run")
    with pytest.raises(RunDirError, match="trials"):
        await simulate(plan_of(tau2_config("airline", trials=2)), out=tmp_path / "run", resume=True)


@pytest.mark.asyncio
async def test_resuming_a_finished_run_redoes_nothing(tmp_path: Path) -> None:
    first = await simulate(plan_of(tau2_config("airline")), out=tmp_path / "run")
    again = await simulate(plan_of(tau2_config("airline")), out=tmp_path / "run", resume=True)
    assert again.progress is None  # nothing was left to run
    assert results_without_timing(first.run_dir) == results_without_timing(again.run_dir)


def test_killed_run_resumes_with_every_episode_exactly_once(tmp_path: Path) -> None:
    require(tau2_dir() / "retail" / "db.json", "tau2-bench retail db.json")
    config = tmp_path / "config.toml"
    config.write_text(f"""
[run]
domain = "retail"
[domains.retail]
db_path = "{tau2_dir() / 'retail' / 'db.json'}"
[simulate]
tasks = "{tau2_dir() / 'retail' / 'tasks.json'}"
trials = 2
concurrency = 4
agent = "scripted-http"
user = "scripted-http"
[mock]
ttft_ms = 3.0
""")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "writ_async", "simulate", "--config", str(config)]
    child = subprocess.Popen([*cmd, "--out", str(run)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until a few episodes have finished
            journal = run / "journal.bin"
            if journal.exists() and len(read_journal(journal).finished) >= 10:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the run made no progress")
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    killed_at = len(read_journal(run / "journal.bin").finished)
    assert 10 <= killed_at < 228, "the kill must land mid-run"

    done = subprocess.run([*cmd, "--resume", str(run)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    results = json.loads((run / "results.json").read_text())
    ids = [(s["task_id"], s["trial"]) for s in results["simulations"]]
    assert len(ids) == len(set(ids)) == 228
    rows = [json.loads(line) for line in
            (run / "export" / "sft_openai.jsonl").read_text().splitlines()]
    episodes = [r["metadata"]["episode_id"] for r in rows]
    assert len(episodes) == len(set(episodes))
    contents = read_journal(run / "journal.bin")
    assert len(contents.finished) == 228 and contents.duplicate_finishes == 0


@pytest.mark.asyncio
async def test_a_judge_that_answers_nonsense_leaves_nl_assertions_not_graded(
        tmp_path: Path) -> None:
    # The embedded mock's default policy answers with prose, not the verdict JSON.
    outcome = await simulate(plan_of(tau2_config("retail", judge="judge")), out=tmp_path / "run")
    judged = [r for r in outcome.records if r.reward_info and r.reward_info.not_graded]
    assert judged, "retail tasks carry NL assertions"
    assert all("judge" in r.reward_info.note for r in judged)


def test_ctrl_c_stops_cleanly_and_leaves_a_resumable_run(tmp_path: Path) -> None:
    require(tau2_dir() / "airline" / "db.json", "tau2-bench airline db.json")
    config = tmp_path / "config.toml"
    config.write_text(f"""
[run]
domain = "airline"
[domains.airline]
db_path = "{tau2_dir() / 'airline' / 'db.json'}"
[simulate]
tasks = "{tau2_dir() / 'airline' / 'tasks.json'}"
trials = 4
concurrency = 2
agent = "scripted-http"
user = "scripted-http"
[mock]
ttft_ms = 5.0
""")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "writ_async", "simulate", "--config", str(config)]
    child = subprocess.Popen([*cmd, "--out", str(run)], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        journal = run / "journal.bin"
        if journal.exists() and len(read_journal(journal).finished) >= 4:
            break
        time.sleep(0.05)
    else:
        child.kill()
        child.wait()
        pytest.fail("the run made no progress")
    child.send_signal(signal.SIGINT)  # stop admitting; running episodes finish
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 130  # a run Ctrl-C stopped exits as SIGINT stopped it
    assert "resume with `writ simulate --resume" in out
    stopped = read_journal(run / "journal.bin")
    assert not stopped.unfinished  # the running ones finished, none were cut
    assert 4 <= len(stopped.finished) < 200
    done = subprocess.run([*cmd, "--resume", str(run)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(json.loads((run / "results.json").read_text())["simulations"]) == 200


@pytest.mark.asyncio
async def test_behaviour_scenarios_are_distinct_episodes_with_the_gold_outcome(
        tmp_path: Path) -> None:
    from writ_async.participants.behaviours.scenarios import BehaviourMix

    mix = BehaviourMix(weights={"one_fact_when_asked": 1.0, "verbose": 1.0,
                                "correctable_id_mistake": 1.0, "forbidden_first": 1.0},
                       per_task=2)
    local = await simulate(plan_of(tau2_config("airline", behaviours=mix)), out=tmp_path / "local")
    assert local.summary["episodes"] == 100
    assert local.summary["average_reward"] == 1.0
    ids = [r.episode_id for r in local.records]
    assert len(set(ids)) == 100 and all("@" in i for i in ids)
    assert all(r.behaviours and r.episode_id.startswith(f"{r.task_id}@") for r in local.records)
    row = json.loads((local.run_dir / "export" / "sft_openai.jsonl").read_text().splitlines()[0])
    assert row["metadata"]["behaviours"]
    remote = await simulate(plan_of(tau2_config("airline", behaviours=mix, agent="scripted-http",
                                        user="scripted-http")), out=tmp_path / "http")
    assert (local.run_dir / "export" / "sft_openai.jsonl").read_bytes() == (
        remote.run_dir / "export" / "sft_openai.jsonl").read_bytes()


@pytest.mark.asyncio
async def test_tool_arguments_that_are_not_json_become_error_results(tmp_path: Path) -> None:
    from writ_async.mock.server import FaultRates

    config = tau2_config("airline", agent="agent", max_errors=3)
    config = msgspec.structs.replace(config, mock=msgspec.structs.replace(
        config.mock, faults=FaultRates(invalid_tool_args=1.0)))
    config = msgspec.structs.replace(config, simulate=msgspec.structs.replace(
        config.simulate, tasks=None, task_count=5))
    config = msgspec.structs.replace(config, domains=default_config().domains)
    outcome = await simulate(plan_of(config), out=tmp_path / "run")
    assert outcome.summary["episodes"] == 5
    # never an agent error: the model's bad arguments are answered, and the error limit
    # ends the episode the way tau2-bench's does
    assert set(outcome.summary["termination_reasons"]) <= {"too_many_errors", "max_steps",
                                                            "user_stop"}
    errors = [m for r in outcome.records for m in r.messages
              if getattr(m, "error", False) and "not a JSON object" in m.content]
    assert errors
    calls = [c for r in outcome.records for m in r.messages
             for c in (getattr(m, "tool_calls", None) or ()) if c.raw_arguments is not None]
    assert calls and all(c.arguments == {} for c in calls)


@pytest.mark.asyncio
async def test_answers_cut_at_max_tokens_are_kept_not_fatal(tmp_path: Path) -> None:
    config = tau2_config("airline", agent="agent", user="user", max_tokens=3, max_steps=12)
    config = msgspec.structs.replace(config, simulate=msgspec.structs.replace(
        config.simulate, tasks=None, task_count=3))
    config = msgspec.structs.replace(config, domains=default_config().domains)
    outcome = await simulate(plan_of(config), out=tmp_path / "run")
    reasons = outcome.summary["termination_reasons"]
    assert "agent_error" not in reasons and "user_error" not in reasons
    texts = [m.content for r in outcome.records for m in r.messages[1:]
             if getattr(m, "content", None) and not getattr(m, "tool_calls", None)]
    assert texts  # the cut answers are in the conversation


@pytest.mark.asyncio
async def test_the_progress_line_counts_kept_as_the_runs_export_filter_does(
        tmp_path: Path) -> None:
    """With ``[export] terminations = ["max_steps"]`` no user-stopped episode is kept: the
    progress line must say so too, not count them by the default filter."""
    import io

    class Terminal(io.StringIO):
        def isatty(self) -> bool:  # the progress line is drawn on terminals only
            return True

    config = default_config()
    replace = msgspec.structs.replace
    config = replace(config, simulate=replace(config.simulate, task_count=3),
                     export=replace(config.export, terminations=["max_steps"]))
    stream = Terminal()
    outcome = await simulate(plan_of(config), out=tmp_path / "run", progress_stream=stream)
    assert outcome.export.written == 0
    final = stream.getvalue().rstrip().split("\r")[-1]
    assert "done 3/3" in final and "kept 0" in final
