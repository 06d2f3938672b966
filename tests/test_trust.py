"""Nothing wrong is exported as verified (issue 13): task/database checks, verdicts, write
errors, and one meaning of "kept", over the real `writ` command and the pure parts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from conftest import require, tau2_dir

from domains import get_domain
from writ_async.cli import main
from writ_async.conversation.messages import (
    AssistantMessage,
    Message,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from writ_async.conversation.records import EpisodeRecord
from writ_async.conversation.task import (
    Action,
    EvaluationCriteria,
    Provenance,
    Task,
    UserScenario,
    check_base,
    check_gold_actions,
    load_tasks,
)
from writ_async.errors import DataError
from writ_async.export.sft import ExportFilter, keep
from writ_async.grading.evidence import write_errors
from writ_async.grading.gold import GoldReplay
from writ_async.grading.grade import grade
from writ_async.grading.results import to_tau2_results
from writ_async.logs import reset_logging

AIRLINE = get_domain("airline").toolbox


@pytest.fixture(autouse=True)
def _logging() -> Iterator[None]:
    yield
    reset_logging()  # `writ simulate` configures logging for the process


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def generate(tmp_path: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> Path:
    out = tmp_path / "tasks.json"
    code, _, err = run(["tasks", "generate", "--domain", "airline", "--count", "3",
                        "--out", str(out), *flags], capsys)
    assert code == 0, err
    return out


def simulations(run_dir: Path) -> list[dict[str, Any]]:
    return json.loads((run_dir / "results.json").read_text())["simulations"]


def exported_ids(run_dir: Path) -> list[str]:
    rows = (run_dir / "export" / "sft_openai.jsonl").read_text().splitlines()
    return [json.loads(row)["metadata"]["episode_id"] for row in rows]


def tau2_subset(tmp_path: Path, domain: str, ids: list[str] | None = None) -> Path:
    tasks = json.loads(require(tau2_dir() / domain / "tasks.json",
                               f"tau2-bench {domain} tasks.json").read_text())
    path = tmp_path / f"{domain}_tasks.json"
    path.write_text(json.dumps([t for t in tasks if ids is None or t["id"] in ids]))
    return path


# -- 1. a synthesized task file runs only on its own database ------------------------------


def test_tasks_generate_records_the_base_hash(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    tasks = load_tasks(generate(tmp_path, capsys, "--seed", "7", "--scale", "0.5"))
    want = get_domain("airline").base(None, 7, 0.5).db_hash()
    assert {t.synthesis.base_db_hash for t in tasks if t.synthesis} == {want}
    assert all(t.synthesis is not None for t in tasks)


def test_tasks_of_another_database_are_refused_before_any_episode(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tasks_file = generate(tmp_path, capsys, "--seed", "7", "--scale", "0.5")
    code, _, err = run(["simulate", "--tasks", str(tasks_file), "--out",
                        str(tmp_path / "run")], capsys)
    assert code == 2
    domain = get_domain("airline")
    expected = domain.base(None, 7, 0.5).db_hash()[:12]
    actual = domain.base(None, 0, 1.0).db_hash()[:12]
    assert str(tasks_file) in err and expected in err and actual in err
    assert all(flag in err for flag in ("--db", "--seed", "--scale"))
    assert not (tmp_path / "run").exists()  # refused before the run directory
    # the flags the message names are the ones that fix it
    code, _, err = run(["simulate", "--tasks", str(tasks_file), "--seed", "7", "--scale",
                        "0.5", "--out", str(tmp_path / "ok")], capsys)
    assert code == 0, err
    assert all(s["reward_info"]["reward"] == 1.0 for s in simulations(tmp_path / "ok"))


def provenance(base_hash: str) -> Provenance:
    return Provenance(generator="g", seed=1, task_seed=2, base_db_hash=base_hash,
                      gold_db_hash="")


def bare_task(task_id: str, actions: list[Action] | None = None,
              synthesis: Provenance | None = None, **criteria: Any) -> Task:
    return Task(id=task_id, user_scenario=UserScenario(instructions="x"),
                evaluation_criteria=EvaluationCriteria(actions=actions or [], **criteria),
                synthesis=synthesis)


def test_mixed_base_hashes_in_one_file_are_refused() -> None:
    tasks = [bare_task("a", synthesis=provenance("1" * 64)),
             bare_task("b", synthesis=provenance("2" * 64))]
    with pytest.raises(DataError, match=r"2 different databases.*'a'.*'b'"):
        check_base(tasks, "1" * 64, "f.json")
    check_base(tasks[:1], "1" * 64, "f.json")  # one database, the loaded one
    check_base([bare_task("c")], "9" * 64, "f.json")  # no provenance: nothing recorded


# -- 2. tau2-bench tasks on a generated database ------------------------------------------


def test_tau2_tasks_on_a_generated_database_warn_and_are_invalid(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tasks_file = tau2_subset(tmp_path, "airline")
    out = tmp_path / "run"
    code, stdout, err = run(["simulate", "--tasks", str(tasks_file), "--out", str(out)],
                            capsys)
    assert code == 0, err
    warning = next(line for line in err.splitlines() if line.startswith("writ: warning:"))
    assert str(tasks_file) in warning and "--db" in warning
    sims = simulations(out)
    invalid = {s["id"] for s in sims if s["reward_info"]["info"]["writ_verdict"]
               == "invalid_task"}
    assert len(invalid) > 30  # most of them look up users this database does not have
    assert all(s["reward_info"]["reward"] == 0.0 for s in sims if s["id"] in invalid)
    assert not invalid & set(exported_ids(out))
    assert "invalid task" in stdout


def test_tau2_tasks_on_their_own_database_grade_as_tau2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 64 and 105: gold writes that fail by design; 35, 46: gold lookups that fail
    tasks_file = tau2_subset(tmp_path, "retail", ["35", "46", "64", "105"])
    db = require(tau2_dir() / "retail" / "db.json", "tau2-bench retail db.json")
    out = tmp_path / "run"
    code, _, err = run(["simulate", "--domain", "retail", "--tasks", str(tasks_file),
                        "--db", str(db), "--out", str(out)], capsys)
    assert code == 0, err
    assert "warning" not in err
    sims = simulations(out)
    assert [s["reward_info"]["reward"] for s in sims] == [1.0] * 4
    assert {s["reward_info"]["info"]["writ_verdict"] for s in sims} == {"graded"}
    assert all(s["reward_info"]["info"]["writ_write_errors"] == [] for s in sims)
    assert len(exported_ids(out)) == 4


# -- 3. gold actions are checked at load time ---------------------------------------------


@pytest.mark.parametrize(("change", "expected"), [
    ({"name": "book_flight"}, "no such tool"),
    ({"arguments": {"reservation_id": "ABC", "reason": "x"}},
     "unexpected keyword argument 'reason'"),
    ({"arguments": {}}, "missing 1 required positional argument: 'reservation_id'"),
    ({"requestor": "user"}, "no user tools"),
])
def test_a_gold_action_the_toolbox_refuses_is_a_load_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, Any],
        expected: str) -> None:
    action = {"action_id": "x", "name": "cancel_reservation",
              "arguments": {"reservation_id": "ABC"}, **change}
    task = {"id": "broken", "user_scenario": {"instructions": "x"}, "evaluation_criteria": {
        "actions": [{"action_id": "r", "name": "get_user_details",
                     "arguments": {"user_id": "u"}}, action]}}
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps([task]))
    code, _, err = run(["simulate", "--tasks", str(path), "--out", str(tmp_path / "run")],
                       capsys)
    assert code == 2
    assert str(path) in err and "task 'broken' gold action 1" in err and expected in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("domain", ["airline", "retail"])
def test_every_tau2_task_binds(domain: str) -> None:
    path = require(tau2_dir() / domain / "tasks.json", f"tau2-bench {domain} tasks.json")
    check_gold_actions(load_tasks(path), get_domain(domain).toolbox, path)


# -- 4. nothing to grade is not graded ----------------------------------------------------


def test_a_task_without_criteria_is_not_graded_and_not_exported(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    task = {"id": "free", "user_scenario": {"instructions": {
        "domain": "airline", "reason_for_call": "You want to chat.",
        "task_instructions": "Say hello and leave."}}}
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps([task]))
    out = tmp_path / "run"
    code, stdout, err = run(["simulate", "--tasks", str(path), "--out", str(out)], capsys)
    assert code == 0, err
    (sim,) = simulations(out)
    assert sim["termination_reason"] == "user_stop"
    assert sim["reward_info"]["reward"] == 0.0  # tau2's empty product would say 1.0
    assert sim["reward_info"]["info"]["writ_verdict"] == "not_graded"
    assert exported_ids(out) == []
    assert "not graded: 1" in stdout


@pytest.mark.parametrize("basis", [[], ["NL_ASSERTION"]])
def test_a_basis_with_nothing_gradable_is_not_graded(basis: list[str]) -> None:
    task = bare_task("t", [Action(name="get_user_details", arguments={"user_id": "u"})],
                     reward_basis=basis, nl_assertions=["The agent was polite."])
    info = grade(task, [], "user_stop", "h", "h", AIRLINE)
    assert (info.reward, info.verdict) == (0.0, "not_graded")
    record = episode(task, [], info)
    assert keep(record, ExportFilter(min_reward=0.0))[1].startswith("not graded")
    to_tau2_results([record], [task], {}, domain=get_domain("airline"))  # still a tau2 results file


# -- 5. a refused write is never training data, unless the gold expects it ----------------


def cancel(call_id: str, reservation: str) -> AssistantMessage:
    return AssistantMessage(tool_calls=(ToolCall(id=call_id, name="cancel_reservation",
                                                 arguments={"reservation_id": reservation}),))


def refused_then_done() -> list[Message]:
    return [
        UserMessage(content="Cancel ABC123, yes please."),
        cancel("c1", "ABC12"),
        ToolMessage(id="c1", content="Error: Reservation ABC12 not found", error=True),
        UserMessage(content="It is ABC123, yes."),
        cancel("c2", "ABC123"),
        ToolMessage(id="c2", content="{}"),
        AssistantMessage(content="Done."),
    ]


def episode(task: Task, messages: list[Message], info: Any) -> EpisodeRecord:
    return EpisodeRecord(episode_id=f"{task.id}:0", task_id=task.id, trial=0, seed=0,
                         domain="airline", termination="user_stop", messages=messages,
                         final_db_hash="h", reward_info=info)


def test_an_episode_with_a_refused_write_is_not_exported() -> None:
    gold = Action(name="cancel_reservation", arguments={"reservation_id": "ABC123"})
    task = bare_task("t", [gold], reward_basis=["DB"])
    messages = refused_then_done()
    info = grade(task, messages, "user_stop", "h", "h", AIRLINE)
    assert info.reward == 1.0 and info.evidence_ok  # the end state is right...
    assert info.write_errors == ["cancel_reservation(reservation_id='ABC12'): "
                                 "Error: Reservation ABC12 not found"]
    ok, why = keep(episode(task, messages, info), ExportFilter())
    assert not ok and why.startswith("write error: cancel_reservation")  # ...the data is not


def test_a_refused_write_the_gold_expects_is_kept() -> None:
    # like retail 64 and 105: the gold write itself fails on a fresh environment
    gold = Action(name="cancel_reservation", arguments={"reservation_id": "ABC12"})
    messages = refused_then_done()[:3]
    assert write_errors(messages, [gold], AIRLINE, failed={0}) == []
    assert len(write_errors(messages, [gold], AIRLINE, failed=set())) == 1
    task = bare_task("t", [gold], reward_basis=["DB"])
    info = grade(task, [*messages, AssistantMessage(content="It cannot be cancelled.")],
                 "user_stop", "h", GoldReplay("h", frozenset({0})), AIRLINE)
    assert info.write_errors == []


def test_invalid_task_only_where_the_gold_must_succeed() -> None:
    gold = Action(name="cancel_reservation", arguments={"reservation_id": "ABC12"})
    task = bare_task("t", [gold], reward_basis=["DB"])
    done = [AssistantMessage(content="Done.")]
    by_design = grade(task, done, "user_stop", "h", GoldReplay("h", frozenset({0})), AIRLINE)
    foreign = grade(task, done, "user_stop", "h",
                    GoldReplay("h", frozenset({0}), must_succeed=True), AIRLINE)
    assert (by_design.verdict, by_design.reward) == ("graded", 1.0)
    assert (foreign.verdict, foreign.reward) == ("invalid_task", 0.0)
    assert "0 cancel_reservation" in foreign.note


def test_old_journal_records_still_decode() -> None:
    info = grade(bare_task("t", reward_basis=["DB"]), [], "user_stop", "h", "h", AIRLINE)
    plain = msgspec.to_builtins(info)
    del plain["verdict"], plain["write_errors"]
    old = msgspec.convert(plain, type(info))
    assert (old.verdict, old.write_errors) == ("graded", [])


# -- 6. "kept" means exported, in the summary and the export line ------------------------


def test_summary_kept_and_export_kept_are_one_number(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code, stdout, err = run(["simulate", "--task-count", "20", "--mistake-rate", "0.5",
                             "--out", str(out)], capsys)
    assert code == 0, err
    passed = sum(s["reward_info"]["reward"] == 1.0 for s in simulations(out))
    summary_kept = int(re.search(r"^\s+kept\s+(\d+)$", stdout, re.M).group(1))
    export_kept = int(re.search(r"^export: (\d+) of \d+ episodes kept", stdout, re.M).group(1))
    assert summary_kept == export_kept == len(exported_ids(out))
    assert passed > summary_kept  # some reward-1 episodes are dropped (evidence): not kept
