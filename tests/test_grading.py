"""Grading as tau2-bench grades, and writ's evidence check.

The first half builds, for every tau2-bench airline and retail task with gold actions, the
episode that carries the gold plan out (each gold action executed on a fresh environment
over tau2's own db.json) and checks that it reaches reward 1, then breaks it one way at a
time. The second half pins each rule on small hand-made episodes that need no data.
"""

from __future__ import annotations

import json
import math
from functools import cache

import pytest
from conftest import conformance_dir, require, tau2_dir

from domains import get_domain
from writ_async.conversation.messages import (
    STOP,
    AssistantMessage,
    Message,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from writ_async.conversation.records import Check, RewardInfo
from writ_async.conversation.task import (
    Action,
    EvaluationCriteria,
    Provenance,
    Task,
    UserScenario,
    load_tasks,
)
from writ_async.environment.overlay import BaseDB
from writ_async.environment.tools import ToolKind
from writ_async.errors import DataError
from writ_async.grading.evidence import (
    CONFIRMATION,
    EVIDENCE,
    check_kind,
    default_evidence_plan,
)
from writ_async.grading.gold import GoldCache, GoldReplay, gold_db_hash
from writ_async.grading.grade import average_reward, grade, is_success, pass_hat_k
from writ_async.grading.matching import action_matches

DOMAINS = ("airline", "retail")
GREETING = "Hi! How can I help you today?"
CONFIRM = "Yes, please go ahead."


# -- tau2-bench's tasks over tau2-bench's data ----------------------------------------------


@cache
def base_db(domain: str) -> BaseDB:
    path = require(tau2_dir() / domain / "db.json", f"tau2-bench {domain} db.json")
    return get_domain(domain).load_db(path)


@cache
def gold_tasks(domain: str) -> tuple[Task, ...]:
    path = require(tau2_dir() / domain / "tasks.json", f"tau2-bench {domain} tasks.json")
    return tuple(t for t in load_tasks(path) if t.gold_actions)


GOLD = GoldCache()


def gold_of(domain: str, task: Task) -> GoldReplay:
    return GOLD.get(get_domain(domain), base_db(domain), task)


def play(domain: str, task: Task, *, drop: int | None = None, final: str | None = None,
         confirm: str = CONFIRM) -> tuple[list[Message], str]:
    """The gold plan as an episode: greeting, a confirming user, one assistant message per
    gold action (minus ``drop``) with its real result, a closing message carrying every
    communicate_info string (or ``final``), and the user's stop."""
    env = get_domain(domain).environment(base_db(domain))
    toolbox = get_domain(domain).toolbox
    messages: list[Message] = [AssistantMessage(content=GREETING, turn_idx=0),
                               UserMessage(content=confirm, turn_idx=1)]
    writes = 0
    for i, action in enumerate(task.gold_actions):
        if i == drop:
            continue
        if toolbox.kind(action.name) is ToolKind.WRITE:
            if writes:  # each later write gets its own confirmation
                messages.append(AssistantMessage(content="Shall I go ahead?",
                                                 turn_idx=len(messages)))
                messages.append(UserMessage(content=confirm, turn_idx=len(messages)))
            writes += 1
        call = ToolCall(id=f"call_{i}", name=action.name, arguments=action.arguments)
        result = env.call(action.name, action.arguments)
        turn = len(messages)
        messages.append(AssistantMessage(tool_calls=(call,), turn_idx=turn))
        messages.append(ToolMessage(id=call.id, content=result.output, error=result.error,
                                    turn_idx=turn + 1))
    infos = (task.evaluation_criteria.communicate_info or []) if task.evaluation_criteria else []
    text = final if final is not None else "All done. " + "; ".join(infos)
    messages.append(AssistantMessage(content=text, turn_idx=len(messages)))
    messages.append(UserMessage(content=STOP, turn_idx=len(messages)))
    return messages, env.db_hash()


def grade_played(domain: str, task: Task, termination: str = "user_stop", **changes):
    messages, final_hash = play(domain, task, **changes)
    gold = gold_of(domain, task)
    return grade(task, messages, termination, final_hash, gold, get_domain(domain).toolbox)


@pytest.mark.parametrize("domain", DOMAINS)
def test_gold_hash_is_tau2s(domain: str) -> None:
    path = require(conformance_dir() / f"{domain}_gold.jsonl", "conformance vectors")
    want = {}
    for line in path.read_text().splitlines():
        if line.strip():
            entry = json.loads(line)
            want[entry["task_id"]] = entry["final_db_hash"]
    tasks = gold_tasks(domain)
    assert {t.id for t in tasks} == set(want)
    for task in tasks:
        assert gold_db_hash(get_domain(domain), base_db(domain), task) == want[task.id], task.id


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_gold_plan_reaches_reward_1(domain: str) -> None:
    failures = []
    for task in gold_tasks(domain):
        info = grade_played(domain, task)
        criteria = task.evaluation_criteria
        assert criteria is not None
        ok = (info.reward == 1.0 and info.db_match is True and info.evidence_ok
              and all(c.passed for c in info.communicate_checks)
              and all(c.passed for c in info.action_checks)
              and info.final_db_hash == info.gold_db_hash)
        judged = "NL_ASSERTION" in criteria.reward_basis and bool(criteria.nl_assertions)
        ok = ok and (info.not_graded == (["NL_ASSERTION"] if judged else []))
        ok = ok and (("not graded" in info.note) == judged)
        if not ok:
            failures.append((task.id, info.reward, info.db_match, info.not_graded, info.note,
                             [c for c in info.evidence_checks if not c.passed]))
    assert not failures, failures


@pytest.mark.parametrize("domain", DOMAINS)
def test_evidence_checks_cover_every_successful_write(domain: str) -> None:
    toolbox = get_domain(domain).toolbox
    for task in gold_tasks(domain)[:20]:
        messages, _ = play(domain, task)
        info = grade_played(domain, task)
        succeeded = [m for m in messages if isinstance(m, ToolMessage) and not m.error
                     and toolbox.kind(task.gold_actions[int(m.id.split("_")[1])].name)
                     is ToolKind.WRITE]
        kinds = [check_kind(c) for c in info.evidence_checks]
        assert kinds.count(CONFIRMATION) == kinds.count(EVIDENCE) == len(succeeded), task.id


@pytest.mark.parametrize("domain", DOMAINS)
def test_dropping_a_write_fails_the_db_check(domain: str) -> None:
    toolbox = get_domain(domain).toolbox
    tried = 0
    for task in gold_tasks(domain):
        gold = gold_of(domain, task)
        writes = [i for i, a in enumerate(task.gold_actions)
                  if toolbox.kind(a.name) is ToolKind.WRITE and i not in gold.failed]
        if not writes:
            continue
        tried += 1
        info = grade_played(domain, task, drop=writes[-1])
        assert info.db_match is False, task.id
        assert info.reward == 0.0, task.id
        assert info.breakdown["DB"] == 0.0
    assert tried > 10


def test_gold_writes_that_fail_by_design_are_noted() -> None:
    tasks = {t.id: t for t in gold_tasks("retail")}
    for task_id in ("64", "105"):
        info = grade_played("retail", tasks[task_id])
        assert info.reward == 1.0
        assert "fail on a fresh environment" in info.note


@pytest.mark.parametrize("domain", DOMAINS)
def test_a_missing_communicate_string(domain: str) -> None:
    tried = 0
    for task in gold_tasks(domain):
        criteria = task.evaluation_criteria
        assert criteria is not None
        if not criteria.communicate_info:
            continue
        tried += 1
        info = grade_played(domain, task, final="All done, have a nice day.")
        assert info.db_match is True
        assert not all(c.passed for c in info.communicate_checks)
        if "COMMUNICATE" in criteria.reward_basis:  # airline
            assert info.reward == 0.0, task.id
            assert info.breakdown["COMMUNICATE"] == 0.0
        else:  # retail: tau2 reports it but does not count it
            assert info.reward == 1.0, task.id
    assert tried > 0


@pytest.mark.parametrize("termination", ["max_steps", "too_many_errors", "agent_error"])
def test_only_user_or_agent_stop_is_rewarded(termination: str) -> None:
    task = gold_tasks("airline")[0]
    info = grade_played("airline", task, termination=termination)
    assert info.reward == 0.0
    assert info.db_match is True  # components still computed and reported
    assert info.breakdown["DB"] == 1.0
    assert termination in info.note
    assert grade_played("airline", task, termination="agent_stop").reward == 1.0


def test_a_write_without_confirmation_fails_evidence_not_reward() -> None:
    task = next(t for t in gold_tasks("airline") if any(
        get_domain("airline").toolbox.kind(a.name) is ToolKind.WRITE for a in t.gold_actions))
    info = grade_played("airline", task, confirm="Sure, whatever you think.")
    assert info.reward == 1.0
    assert not info.evidence_ok
    failed = [c for c in info.evidence_checks if not c.passed]
    assert failed and all(check_kind(c) == CONFIRMATION for c in failed)


def test_gold_cache_replays_each_task_once() -> None:
    domain = get_domain("airline")
    base = base_db("airline")
    task = gold_tasks("airline")[0]
    cached = GoldCache()
    first = cached.get(domain, base, task)
    assert cached.get(domain, base, task) is first
    assert cached.db_hash(domain, base, task) == first.db_hash
    assert (cached.hits, cached.misses) == (2, 1)
    assert "hits=2" in repr(cached)
    assert cached.evidence_plan(domain, base, task) == default_evidence_plan(
        task, domain.toolbox, first.failed)


def test_gold_cache_drops_failing_gold_reads_from_the_plan() -> None:
    domain = get_domain("retail")
    task = {t.id: t for t in gold_tasks("retail")}["35"]  # first lookup: an unknown email
    replay = GOLD.get(domain, base_db("retail"), task)
    assert 0 in replay.failed
    plan = GOLD.evidence_plan(domain, base_db("retail"), task)
    assert plan and all(task.gold_actions[0] not in reads for reads in plan.values())


# -- the rules, on hand-made episodes (no data needed) ---------------------------------------

AIRLINE = get_domain("airline").toolbox


def make_task(actions: list[Action] | None, *, communicate: list[str] | None = None,
              nl: list[str] | None = None, basis: list[str] | None = None) -> Task:
    criteria = EvaluationCriteria(actions=actions, communicate_info=communicate,
                                  nl_assertions=nl,
                                  reward_basis=basis or ["DB", "COMMUNICATE"])
    return Task(id="t", user_scenario=UserScenario(instructions="x"),
                evaluation_criteria=criteria)


def read(name: str = "get_reservation_details", **args) -> Action:
    return Action(name=name, arguments=args or {"reservation_id": "ABC123"})


CANCEL = Action(name="cancel_reservation", arguments={"reservation_id": "ABC123"})
USER_ARGS = {"name": "get_user_details", "arguments": {"user_id": "mia_li_3668"}}
READ_ARGS = {"name": "get_reservation_details", "arguments": {"reservation_id": "ABC123"}}
USER = Action(**USER_ARGS)


def episode(*steps: object) -> list[Message]:
    """Steps: a str is a user line; a list of (name, args[, error]) is one assistant
    message with those tool calls, followed by their results."""
    messages: list[Message] = [AssistantMessage(content=GREETING)]
    n = 0
    for step in steps:
        if isinstance(step, str):
            messages.append(UserMessage(content=step))
            continue
        assert isinstance(step, list)
        calls, results = [], []
        for spec in step:
            name, args, *rest = spec
            n += 1
            calls.append(ToolCall(id=f"c{n}", name=name, arguments=args))
            results.append(ToolMessage(id=f"c{n}", content="{}", error=bool(rest and rest[0])))
        messages.append(AssistantMessage(tool_calls=tuple(calls)))
        messages.extend(results)
    messages.append(AssistantMessage(content="Done."))
    return messages


def grade_hand(task: Task, messages: list[Message], **kw) -> RewardInfo:
    return grade(task, messages, "user_stop", "h", "h", AIRLINE, **kw)


def test_action_matching_follows_tau2() -> None:
    gold = Action(name="update_reservation_baggages",
                  arguments={"reservation_id": "R", "total_baggages": 2, "nonfree_baggages": 0,
                             "payment_id": "p"},
                  compare_args=["reservation_id", "total_baggages"])
    call = ToolCall(id="1", name=gold.name, arguments={
        "reservation_id": "R", "total_baggages": 2, "nonfree_baggages": 1, "payment_id": "q"})
    assert action_matches(gold, call)  # only compare_args count
    wrong = ToolCall(id="2", name=gold.name, arguments={**call.arguments, "total_baggages": 3})
    assert not action_matches(gold, wrong)
    assert not action_matches(gold, ToolCall(id="3", name="cancel_reservation",
                                             arguments=call.arguments))
    # compare_args null: the call's own keys are compared
    every = Action(name="cancel_reservation", arguments={"reservation_id": "R"})
    assert action_matches(every, ToolCall(id="4", name="cancel_reservation",
                                          arguments={"reservation_id": "R"}))
    assert not action_matches(every, ToolCall(id="5", name="cancel_reservation",
                                              arguments={"reservation_id": "S"}))
    assert not action_matches(every, ToolCall(id="6", name="cancel_reservation",
                                              arguments={"reservation_id": "R", "x": 1}))
    assert action_matches(every, ToolCall(id="7", name="cancel_reservation", arguments={}))
    # compare_args empty: any call of that name
    transfer = Action(name="transfer_to_human_agents", arguments={"summary": "a"},
                      compare_args=[])
    assert action_matches(transfer, ToolCall(id="8", name="transfer_to_human_agents",
                                             arguments={"summary": "b"}))


def test_action_checks_are_reported_but_not_in_the_airline_basis() -> None:
    task = make_task([USER, CANCEL])
    messages = episode("yes", [("get_user_details", USER.arguments)])
    info = grade_hand(task, messages)
    assert [c.passed for c in info.action_checks] == [True, False]
    assert "ACTION" not in info.breakdown
    assert info.reward == 1.0
    in_basis = make_task([USER, CANCEL], basis=["DB", "ACTION"])
    assert grade_hand(in_basis, messages).reward == 0.0
    assert grade_hand(in_basis, messages).breakdown == {"DB": 1.0, "ACTION": 0.0}


def test_communicate_is_case_insensitive_and_ignores_commas_in_the_message() -> None:
    task = make_task([], communicate=["1628", "refund of $50"])
    messages = [AssistantMessage(content="Your total is 1,628 and a REFUND OF $50 is due.")]
    info = grade(task, messages, "user_stop", "h", "h", AIRLINE)
    assert [c.passed for c in info.communicate_checks] == [True, True]
    assert info.reward == 1.0
    half = [AssistantMessage(content="Your total is 1,628.")]
    info = grade(task, half, "user_stop", "h", "h", AIRLINE)
    assert [c.passed for c in info.communicate_checks] == [True, False]
    assert info.reward == 0.0
    assert "not communicated" in info.communicate_checks[1].detail
    # only assistant text counts, and an empty list passes
    said_by_user = [UserMessage(content="1628 refund of $50")]
    assert grade(task, said_by_user, "user_stop", "h", "h", AIRLINE).reward == 0.0
    assert grade(make_task([]), said_by_user, "user_stop", "h", "h", AIRLINE).reward == 1.0


def test_db_check_compares_hashes() -> None:
    task = make_task([CANCEL])
    assert grade(task, [], "user_stop", "a", "a", AIRLINE).db_match is True
    info = grade(task, [], "user_stop", "a", "b", AIRLINE)
    assert (info.db_match, info.reward, info.gold_db_hash, info.final_db_hash) == (
        False, 0.0, "b", "a")
    # tau2: no actions and no env assertions at all means nothing to compare
    assert grade(make_task(None), [], "user_stop", "a", "b", AIRLINE).db_match is True
    assert grade(make_task([]), [], "user_stop", "a", "b", AIRLINE).db_match is False


def test_nl_assertions_without_a_judge_are_said_to_be_ungraded() -> None:
    task = make_task([], nl=["The agent refuses."], basis=["DB", "NL_ASSERTION"])
    info = grade_hand(task, episode())
    assert info.reward == 1.0
    assert info.not_graded == ["NL_ASSERTION"]
    assert info.breakdown == {"DB": 1.0}
    assert "not graded" in info.note and "no judge" in info.note
    met = [Check(name="The agent refuses.", passed=True, detail="it did")]
    info = grade_hand(task, episode(), nl_results=met)
    assert (info.reward, info.not_graded, info.nl_assertions) == (1.0, [], met)
    unmet = [Check(name="The agent refuses.", passed=False)]
    assert grade_hand(task, episode(), nl_results=unmet).reward == 0.0
    # no assertions: nothing to judge, met (tau2), and not "ungraded"
    bare = make_task([], basis=["DB", "NL_ASSERTION"])
    info = grade_hand(bare, episode())
    assert (info.reward, info.not_graded, info.breakdown) == (
        1.0, [], {"DB": 1.0, "NL_ASSERTION": 1.0})
    # NL outside the basis (airline): neither counted nor reported as ungraded
    outside = make_task([], nl=["x"], basis=["DB", "COMMUNICATE"])
    assert grade_hand(outside, episode()).not_graded == []


def test_unknown_reward_basis_is_a_data_error() -> None:
    with pytest.raises(DataError, match="BOGUS"):
        grade_hand(make_task([], basis=["DB", "BOGUS"]), episode())


def test_no_evaluation_criteria_is_not_graded() -> None:
    # tau2 gives 1.0 for nothing to check; writ says it verified nothing
    task = Task(id="t", user_scenario=UserScenario(instructions="x"))
    info = grade(task, [], "user_stop", "a", "b", AIRLINE)
    assert (info.reward, info.verdict) == (0.0, "not_graded")
    assert grade(task, [], "max_steps", "a", "b", AIRLINE).reward == 0.0


# -- evidence ------------------------------------------------------------------------------


def evidence_of(info: RewardInfo, kind: str) -> list[Check]:
    return [c for c in info.evidence_checks if check_kind(c) == kind]


def test_default_plan_takes_the_reads_before_each_write() -> None:
    second = read(reservation_id="ZZZ999")
    task = make_task([USER, read(), CANCEL, second,
                      Action(name="cancel_reservation", arguments={"reservation_id": "ZZZ999"}),
                      Action(name="transfer_to_human_agents", arguments={"summary": "s"})])
    plan = default_evidence_plan(task, AIRLINE)
    assert plan == {2: [USER, read()], 4: [USER, read(), second]}
    # gold reads that fail on a fresh environment are not required
    assert default_evidence_plan(task, AIRLINE, failed={0}) == {
        2: [read()], 4: [read(), second]}


def test_a_synthesized_read_plan_narrows_the_default() -> None:
    task = make_task([Action(action_id="u", **USER_ARGS), Action(action_id="r", **READ_ARGS),
                      CANCEL])
    task.synthesis = Provenance(generator="g", seed=1, task_seed=2, base_db_hash="b",
                                gold_db_hash="g", read_plan=["r"])
    assert [r.action_id for r in default_evidence_plan(task, AIRLINE)[2]] == ["r"]
    messages = episode([("get_reservation_details", read().arguments)], "yes",
                       [("cancel_reservation", CANCEL.arguments)])
    assert grade_hand(task, messages).evidence_ok


def test_reads_then_confirmed_write_pass() -> None:
    task = make_task([USER, read(), CANCEL])
    messages = episode("hello", [("get_user_details", USER.arguments)],
                       [("get_reservation_details", read().arguments)],
                       "YES, cancel it.", [("cancel_reservation", CANCEL.arguments)])
    info = grade_hand(task, messages)
    assert info.evidence_ok
    assert [c.name for c in info.evidence_checks] == [
        "confirmation:cancel_reservation[c3]", "evidence:cancel_reservation[c3]"]


def test_a_skipped_read_fails_evidence_but_not_the_reward() -> None:
    task = make_task([USER, read(), CANCEL])
    messages = episode([("get_user_details", USER.arguments)], "yes",
                       [("cancel_reservation", CANCEL.arguments)])
    info = grade_hand(task, messages)
    assert info.reward == 1.0
    assert not info.evidence_ok
    [bad] = [c for c in info.evidence_checks if not c.passed]
    assert check_kind(bad) == EVIDENCE
    assert "get_reservation_details(reservation_id='ABC123')" in bad.detail
    assert "Evidence" in info.note


def test_a_read_must_be_answered_before_the_write_is_sent() -> None:
    task = make_task([read(), CANCEL])
    same_message = episode("yes", [("get_reservation_details", read().arguments),
                                   ("cancel_reservation", CANCEL.arguments)])
    assert not grade_hand(task, same_message).evidence_ok
    after = episode("yes", [("cancel_reservation", CANCEL.arguments)],
                    [("get_reservation_details", read().arguments)])
    assert not grade_hand(task, after).evidence_ok


def test_a_failed_read_is_no_evidence_and_a_wrong_read_neither() -> None:
    task = make_task([read(), CANCEL])
    failed = episode([("get_reservation_details", read().arguments, True)], "yes",
                     [("cancel_reservation", CANCEL.arguments)])
    assert not grade_hand(task, failed).evidence_ok
    other = episode([("get_reservation_details", {"reservation_id": "OTHER1"})], "yes",
                    [("cancel_reservation", CANCEL.arguments)])
    assert not grade_hand(task, other).evidence_ok


def test_only_successful_writes_with_a_gold_counterpart_need_evidence() -> None:
    task = make_task([read(), CANCEL])
    failed_write = episode("no", [("cancel_reservation", CANCEL.arguments, True)])
    info = grade_hand(task, failed_write)
    assert info.evidence_checks == [] and info.evidence_ok
    stray = episode("yes", [("cancel_reservation", {"reservation_id": "NOTGOLD"})])
    info = grade_hand(task, stray)
    assert info.evidence_ok
    assert "no gold counterpart" in evidence_of(info, EVIDENCE)[0].detail


def test_confirmation_is_the_last_user_message_before_the_write() -> None:
    task = make_task([read(), CANCEL])
    for line, ok in [("yes", True), ("Yes.", True), ("oh YES please", True),
                     ("yesterday", False), ("eyes", False), ("no", False)]:
        messages = episode([("get_reservation_details", read().arguments)], "yes, first",
                           line, [("cancel_reservation", CANCEL.arguments)])
        [check] = evidence_of(grade_hand(task, messages), CONFIRMATION)
        assert check.passed is ok, line
    before_any_user = episode([("get_reservation_details", read().arguments)],
                              [("cancel_reservation", CANCEL.arguments)])
    [check] = evidence_of(grade_hand(task, before_any_user), CONFIRMATION)
    assert not check.passed


def test_an_explicit_plan_replaces_the_default() -> None:
    task = make_task([USER, read(), CANCEL])
    messages = episode([("get_user_details", USER.arguments)], "yes",
                       [("cancel_reservation", CANCEL.arguments)])
    assert not grade_hand(task, messages).evidence_ok
    assert grade_hand(task, messages, evidence_plan={2: [USER]}).evidence_ok
    with pytest.raises(DataError, match="write index 7"):
        grade_hand(task, messages, evidence_plan={7: [USER]})


def test_a_gold_replay_spares_reads_that_fail_by_design() -> None:
    task = make_task([USER, read(), CANCEL])
    messages = episode([("get_reservation_details", read().arguments)], "yes",
                       [("cancel_reservation", CANCEL.arguments)])
    assert not grade(task, messages, "user_stop", "h", "h", AIRLINE).evidence_ok
    spared = GoldReplay("h", frozenset({0}))
    assert grade(task, messages, "user_stop", "h", spared, AIRLINE).evidence_ok


def test_repeated_writes_match_distinct_gold_writes() -> None:
    first, second = read(reservation_id="AAA111"), read(reservation_id="BBB222")
    cancel_a = Action(name="cancel_reservation", arguments={"reservation_id": "AAA111"})
    bags = Action(name="update_reservation_baggages",
                  arguments={"reservation_id": "AAA111"}, compare_args=[])
    task = make_task([first, bags, second, bags, cancel_a])
    messages = episode([("get_reservation_details", first.arguments)], "yes",
                       [("update_reservation_baggages", {"reservation_id": "AAA111"})],
                       "yes", [("update_reservation_baggages", {"reservation_id": "AAA111"})])
    checks = evidence_of(grade_hand(task, messages), EVIDENCE)
    assert [c.passed for c in checks] == [True, False]  # the second needs BBB222 read too


# -- pass^k --------------------------------------------------------------------------------


def test_pass_hat_k_by_hand() -> None:
    rewards = {"a": [1.0, 1.0, 0.0], "b": [1.0, 1.0, 1.0], "c": [0.5, 1.0]}
    assert pass_hat_k(rewards, 1) == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)  # 13/18
    assert pass_hat_k(rewards, 2) == pytest.approx((1 / 3 + 1 + 0) / 3)  # 4/9
    assert pass_hat_k(rewards, 3) == pytest.approx((0 + 1) / 2)  # "c" has too few trials
    assert math.isnan(pass_hat_k(rewards, 4))
    assert average_reward(rewards) == pytest.approx(6.5 / 8)
    assert math.isnan(average_reward({}))
    with pytest.raises(ValueError):
        pass_hat_k(rewards, 0)


def test_success_is_within_tau2s_tolerance() -> None:
    assert is_success(1.0) and is_success(1 - 1e-7) and is_success(1 + 1e-7)
    assert not is_success(1 - 1e-5) and not is_success(0.0)
    assert pass_hat_k({"a": [0.9999999, 1.0000001]}, 2) == 1.0
