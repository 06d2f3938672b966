"""results.json in tau2-bench's format, and the run summary."""

from __future__ import annotations

import json
import random

import msgspec
import pytest
from test_grading import CONFIRM, GREETING, gold_of, gold_tasks, play

from domains import get_domain
from writ_async.conversation.messages import (
    STOP,
    AssistantMessage,
    Message,
    ToolCall,
    ToolMessage,
    Usage,
)
from writ_async.conversation.messages import UserMessage as User
from writ_async.conversation.records import (
    Check,
    EpisodeRecord,
    RewardInfo,
    Timing,
    derive_seed,
    episode_id,
)
from writ_async.conversation.task import Action, EvaluationCriteria, Task, UserScenario
from writ_async.export.sft import ExportFilter
from writ_async.grading.grade import grade
from writ_async.grading.results import TIMING_FIELDS, message_to_tau2, summary, to_tau2_results

DOMAIN = get_domain("airline")
AIRLINE = DOMAIN.toolbox
STAMP = "2025-01-01T00:00:00+00:00"


def make_task(task_id: str, actions: list[Action], **criteria) -> Task:
    return Task(id=task_id, user_scenario=UserScenario(instructions=f"task {task_id}"),
                evaluation_criteria=EvaluationCriteria(actions=actions, **criteria))


CANCEL = Action(action_id="a_1", name="cancel_reservation", arguments={"reservation_id": "R"})
LOOKUP = Action(action_id="a_0", name="get_reservation_details",
                arguments={"reservation_id": "R"})
TASKS = [
    make_task("first", [LOOKUP, CANCEL], communicate_info=["cancelled"]),
    make_task("second", [], nl_assertions=["Agent refuses."],
              reward_basis=["DB", "NL_ASSERTION"]),
]


def conversation(done: bool) -> list[Message]:
    return [
        AssistantMessage(content=GREETING, turn_idx=0),
        User(content=CONFIRM, turn_idx=1),
        AssistantMessage(tool_calls=(ToolCall(id="c1", name=LOOKUP.name,
                                              arguments=LOOKUP.arguments),), turn_idx=2,
                         usage=Usage(120, 8)),
        ToolMessage(id="c1", content='{"reservation_id": "R"}', turn_idx=3),
        AssistantMessage(tool_calls=(ToolCall(id="c2", name=CANCEL.name,
                                              arguments=CANCEL.arguments),), turn_idx=4),
        ToolMessage(id="c2", content="Error: nope" if not done else "{}", error=not done,
                    turn_idx=5),
        AssistantMessage(content="Your reservation is cancelled." if done else "Sorry.",
                         turn_idx=6),
        User(content=STOP, turn_idx=7),
    ]


def record(task: Task, trial: int, *, done: bool = True, termination: str = "user_stop",
           start: float = 1000.0, nl: list[Check] | None = None) -> EpisodeRecord:
    messages = conversation(done)
    final = "gold" if done else "base"
    info = grade(task, messages, termination, final, "gold", AIRLINE, nl)
    return EpisodeRecord(
        episode_id=episode_id(task.id, trial), task_id=task.id, trial=trial,
        seed=derive_seed(300, task.id, trial), domain="airline", termination=termination,
        messages=messages, final_db_hash=final, reward_info=info, agent="scripted",
        user="scripted",
        timing=Timing(start_time=start, end_time=start + 2.5, duration=2.5,
                      model_seconds=1.0),
    )


RECORDS = [record(TASKS[0], 0), record(TASKS[0], 1, done=False),
           record(TASKS[1], 0, nl=[Check(name="Agent refuses.", passed=True, detail="ok")]),
           record(TASKS[1], 1)]
INFO = {"num_trials": 2, "max_steps": 200, "max_errors": 10, "seed": 300,
        "agent_llm": "mock-agent", "user_llm": "mock-user", "policy": "Be nice."}


def results(records: list[EpisodeRecord] = RECORDS, **kw) -> dict:
    return json.loads(to_tau2_results(records, TASKS, INFO, domain=DOMAIN, timestamp=STAMP,
                                      **kw))


def test_top_level_and_info() -> None:
    doc = results()
    assert list(doc) == ["timestamp", "info", "tasks", "simulations"]
    assert doc["timestamp"] == STAMP
    info = doc["info"]
    assert list(info) == ["git_commit", "num_trials", "max_steps", "max_errors", "user_info",
                          "agent_info", "environment_info", "seed"]
    assert (info["num_trials"], info["max_steps"], info["max_errors"], info["seed"]) == (
        2, 200, 10, 300)
    assert info["agent_info"] == {"implementation": "scripted", "llm": "mock-agent",
                                  "llm_args": None}
    assert info["user_info"]["implementation"] == "scripted"
    assert info["user_info"]["llm"] == "mock-user"
    assert info["environment_info"] == {"domain_name": "airline", "policy": "Be nice.",
                                        "tool_defs": None}


def test_given_info_dicts_are_laid_over_tau2s_required_keys() -> None:
    given = {"agent_info": {"implementation": "llm_agent"},
             "environment_info": {"domain_name": "retail"}}
    info = json.loads(to_tau2_results(RECORDS, TASKS, given, domain=DOMAIN,
                                      timestamp=STAMP))["info"]
    assert info["agent_info"] == {"implementation": "llm_agent", "llm": None,
                                  "llm_args": None}
    assert info["environment_info"] == {"domain_name": "retail", "policy": "",
                                        "tool_defs": None}
    assert info["git_commit"] == "" and info["max_steps"] == 200


def test_tasks_round_trip() -> None:
    doc = results()
    assert msgspec.convert(doc["tasks"], list[Task]) == TASKS
    assert "axes" not in doc["tasks"][0]


def test_simulations_in_task_then_trial_order() -> None:
    shuffled = RECORDS[:]
    random.Random(7).shuffle(shuffled)
    doc = results(shuffled)
    assert [(s["task_id"], s["trial"]) for s in doc["simulations"]] == [
        ("first", 0), ("first", 1), ("second", 0), ("second", 1)]
    assert to_tau2_results(shuffled, TASKS, INFO, domain=DOMAIN, timestamp=STAMP) == \
        to_tau2_results(RECORDS, TASKS, INFO, domain=DOMAIN, timestamp=STAMP)


def test_a_simulation() -> None:
    sim = results()["simulations"][0]
    assert list(sim) == ["id", "task_id", "timestamp", "start_time", "end_time", "duration",
                         "termination_reason", "agent_cost", "user_cost", "reward_info",
                         "messages", "trial", "seed", "info"]
    assert sim["id"] == "first:0"
    assert sim["start_time"] == "1970-01-01T00:16:40+00:00"
    assert sim["duration"] == 2.5
    assert sim["termination_reason"] == "user_stop"
    assert sim["seed"] == derive_seed(300, "first", 0)
    assert sim["info"]["writ"]["final_db_hash"] == "gold"


def test_reward_info_as_tau2_writes_it() -> None:
    sims = results()["simulations"]
    ok = sims[0]["reward_info"]
    assert list(ok) == ["reward", "db_check", "env_assertions", "action_checks",
                        "nl_assertions", "communicate_checks", "reward_basis",
                        "reward_breakdown", "info"]
    assert ok["reward"] == 1.0
    assert ok["db_check"] == {"db_match": True, "db_reward": 1.0}
    assert ok["reward_basis"] == ["DB", "COMMUNICATE"]
    assert ok["reward_breakdown"] == {"DB": 1.0, "COMMUNICATE": 1.0}
    assert ok["action_checks"][1] == {
        "action": {"action_id": "a_1", "requestor": "assistant", "name": "cancel_reservation",
                   "arguments": {"reservation_id": "R"}, "info": None, "compare_args": None},
        "action_match": True, "action_reward": 1.0, "tool_type": "write"}
    assert ok["communicate_checks"][0]["info"] == "cancelled"
    assert ok["communicate_checks"][0]["met"] is True
    assert "justification" in ok["communicate_checks"][0]
    assert ok["info"]["writ_evidence_ok"] is True
    assert [c["kind"] for c in ok["info"]["writ_evidence_checks"]] == [
        "confirmation", "evidence"]

    failed = sims[1]["reward_info"]
    assert failed["reward"] == 0.0
    assert failed["db_check"] == {"db_match": False, "db_reward": 0.0}

    judged, unjudged = sims[2]["reward_info"], sims[3]["reward_info"]
    assert judged["nl_assertions"] == [
        {"nl_assertion": "Agent refuses.", "met": True, "justification": "ok"}]
    assert unjudged["nl_assertions"] is None
    assert unjudged["info"]["not_graded"] == ["NL_ASSERTION"]
    assert "not graded" in unjudged["info"]["note"]


def test_messages_as_tau2_writes_them_and_back() -> None:
    sim = results()["simulations"][0]
    first, user, call, tool = sim["messages"][:4]
    assert first == {"role": "assistant", "content": GREETING, "tool_calls": None,
                     "turn_idx": 0, "timestamp": None, "cost": None, "usage": None}
    assert user["role"] == "user" and user["content"] == CONFIRM
    assert call["tool_calls"] == [{"id": "c1", "name": "get_reservation_details",
                                   "arguments": {"reservation_id": "R"},
                                   "requestor": "assistant"}]
    assert call["usage"] == {"prompt_tokens": 120, "completion_tokens": 8}
    assert tool == {"role": "tool", "id": "c1", "content": '{"reservation_id": "R"}',
                    "requestor": "assistant", "error": False, "turn_idx": 3,
                    "timestamp": None}
    assert msgspec.convert(sim["messages"], list[Message]) == RECORDS[0].messages
    assert message_to_tau2(RECORDS[0].messages[-1])["content"] == STOP


def test_runs_differ_only_in_timing() -> None:
    later = [msgspec.structs.replace(r, timing=Timing(start_time=5e6, end_time=5e6 + 9,
                                                      duration=9.0, model_seconds=3.0))
             for r in RECORDS]
    a, b = results(), results(later)
    assert a != b

    def untimed(doc: dict) -> dict:
        doc = dict(doc, timestamp=None)
        doc["simulations"] = [{k: v for k, v in s.items() if k not in TIMING_FIELDS}
                              for s in doc["simulations"]]
        for s in doc["simulations"]:
            s["info"]["writ"].pop("model_seconds")
        return doc

    assert untimed(a) == untimed(b)


def test_output_is_stable_bytes() -> None:
    raw = to_tau2_results(RECORDS, TASKS, INFO, domain=DOMAIN, timestamp=STAMP)
    assert raw == to_tau2_results(list(RECORDS), list(TASKS), dict(INFO), domain=DOMAIN,
                                 timestamp=STAMP)
    assert raw.endswith(b"}\n") and raw.startswith(b'{\n  "timestamp"')


def test_records_of_unknown_tasks_are_refused() -> None:
    stray = record(make_task("elsewhere", []), 0)
    with pytest.raises(ValueError, match="elsewhere"):
        to_tau2_results([stray], TASKS, INFO, domain=DOMAIN, timestamp=STAMP)


def test_timestamp_falls_back_to_info_then_now() -> None:
    doc = json.loads(to_tau2_results(RECORDS, TASKS, {"timestamp": "then"}, domain=DOMAIN))
    assert doc["timestamp"] == "then"
    assert json.loads(to_tau2_results(RECORDS, TASKS, {}, domain=DOMAIN))["timestamp"]


def test_an_ungraded_record() -> None:
    bare = msgspec.structs.replace(RECORDS[0], reward_info=None, termination="agent_error",
                                   error="model returned garbage")
    sim = results([bare])["simulations"][0]
    assert sim["reward_info"] is None
    assert sim["info"]["writ"]["error"] == "model returned garbage"


# -- summary -------------------------------------------------------------------------------


def test_summary_by_hand() -> None:
    records = [
        record(TASKS[0], 0), record(TASKS[0], 1), record(TASKS[0], 2, done=False),
        record(TASKS[1], 0), record(TASKS[1], 1, termination="max_steps"),
        record(TASKS[1], 2, termination="infrastructure_error"),
    ]
    out = summary(records, TASKS)
    # first: [1, 1, 0]; second: [1, 0] (the infrastructure error is left out)
    assert out["episodes"] == 6
    assert out["evaluated"] == 5
    assert out["tasks"] == 2
    assert out["average_reward"] == pytest.approx(3 / 5)
    assert out["pass_hat_1"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert out["pass_hat_2"] == pytest.approx((1 / 3 + 0) / 2)
    assert out["pass_hat_3"] == pytest.approx(0.0)  # only "first" has three trials
    assert "pass_hat_4" not in out
    assert out["termination_reasons"] == {"infrastructure_error": 1, "max_steps": 1,
                                          "user_stop": 4}
    assert out["kept"] == 3
    assert out["verdicts"] == {"graded": 6}
    json.dumps(out, allow_nan=False)


def test_summary_kept_is_the_export_filter_decision() -> None:
    unconfirmed = conversation(True)
    unconfirmed[1] = User(content="Go on.", turn_idx=1)
    info = grade(TASKS[0], unconfirmed, "user_stop", "gold", "gold", AIRLINE)
    rec = msgspec.structs.replace(record(TASKS[0], 0), messages=unconfirmed, reward_info=info)
    assert info.reward == 1.0 and not info.evidence_ok
    assert summary([rec], TASKS)["kept"] == 0  # reward 1, but the export drops it
    lenient = ExportFilter(require_evidence=False)
    assert summary([rec], TASKS, lenient)["kept"] == 1


def test_summary_of_nothing() -> None:
    out = summary([], TASKS)
    assert out["average_reward"] is None
    assert out["kept"] == 0
    json.dumps(out, allow_nan=False)


# -- tau2-bench's own tasks ----------------------------------------------------------------


@pytest.mark.parametrize("domain", ["airline", "retail"])
def test_gold_plans_export_and_summarize(domain: str) -> None:
    tasks = list(gold_tasks(domain))
    toolbox = get_domain(domain).toolbox
    records = []
    for task in tasks:
        gold = gold_of(domain, task)
        for trial in range(2):
            messages, final = play(domain, task)
            info = grade(task, messages, "user_stop", final, gold, toolbox)
            records.append(EpisodeRecord(
                episode_id=episode_id(task.id, trial), task_id=task.id, trial=trial,
                seed=derive_seed(300, task.id, trial), domain=domain,
                termination="user_stop", messages=messages, final_db_hash=final,
                reward_info=info))
    doc = json.loads(to_tau2_results(records, tasks, {"seed": 300}, domain=get_domain(domain),
                                     timestamp=STAMP))
    assert len(doc["simulations"]) == 2 * len(tasks)
    assert all(s["reward_info"]["reward"] == 1.0 for s in doc["simulations"])
    assert all(s["reward_info"]["db_check"]["db_match"] for s in doc["simulations"])
    assert doc["info"]["environment_info"]["domain_name"] == domain
    for sim, rec in zip(doc["simulations"], records, strict=True):
        assert msgspec.convert(sim["messages"], list[Message]) == rec.messages
    out = summary(records, tasks)
    assert (out["pass_hat_1"], out["pass_hat_2"], out["average_reward"]) == (1.0, 1.0, 1.0)
    assert out["kept"] == 2 * len(tasks)


def test_reward_info_fields_map_one_to_one() -> None:
    # every RewardInfo field reaches results.json somewhere
    exported = results()["simulations"][0]["reward_info"]
    flat = json.dumps(exported)
    for field in RewardInfo.__struct_fields__:
        value = getattr(RECORDS[0].reward_info, field)
        if isinstance(value, str) and value:
            assert json.dumps(value)[1:-1] in flat, field
