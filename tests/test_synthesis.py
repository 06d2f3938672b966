"""Write-intensive task synthesis (WRIT stage 1, first slice) on the default databases."""

from __future__ import annotations

import re
from collections import Counter

import msgspec
import pytest
from conftest import require, tau2_dir

from domains import get_domain
from domains.airline.data_model import Available, Cancelled, Certificate, Flying, Landed
from domains.airline.generator import FREE_BAGS
from domains.retail.data_model import GiftCard
from domains.retail.tools import CANCEL_REASONS
from writ_async.conversation.task import Task, load_tasks
from writ_async.environment.tools import ToolKind
from writ_async.synthesis.driver import (
    SynthesisError,
    format_distribution,
    generate_tasks,
    gold_key,
    replay_gold,
)

DOMAINS = ("airline", "retail")
BATCH = 300


@pytest.fixture(scope="module")
def bases():
    return {name: get_domain(name).generate_db(seed=0, scale=1.0) for name in DOMAINS}


@pytest.fixture(scope="module")
def batches(bases):
    return {name: generate_tasks(get_domain(name), bases[name], BATCH, seed=11) for name in DOMAINS}


def _writes(task: Task, domain: str) -> list:
    box = get_domain(domain).toolbox
    return [a for a in task.gold_actions if box.kind(a.name) is ToolKind.WRITE]


# -- gold ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DOMAINS)
def test_gold_actions_replay_without_error_to_the_recorded_hash(name, bases, batches):
    domain = get_domain(name)
    for task in batches[name]:
        env = domain.environment(bases[name])
        for action in task.gold_actions:
            result = env.call(action.name, action.arguments)
            assert not result.error, (task.id, action.name, result.output)
        assert task.synthesis is not None
        assert env.db_hash() == task.synthesis.gold_db_hash, task.id
        assert task.synthesis.base_db_hash == bases[name].db_hash()
        assert replay_gold(domain, bases[name], task) == task.synthesis.gold_db_hash


@pytest.mark.parametrize("name", DOMAINS)
def test_axes_count_gold_writes_and_reads(name, batches):
    box = get_domain(name).toolbox
    for task in batches[name]:
        kinds = [box.kind(a.name) for a in task.gold_actions]
        assert None not in kinds
        reads = [a.action_id for a, k in zip(task.gold_actions, kinds, strict=True)
                 if k is ToolKind.READ]
        assert task.axes is not None and task.synthesis is not None
        assert task.axes.writes == kinds.count(ToolKind.WRITE)
        assert task.axes.evidence == len(task.synthesis.read_plan) == len(reads)
        assert task.synthesis.read_plan == reads
        assert task.trajectory_type == "write_intensive"
        # one request per write, plus the refused ones
        refused = [r for r in task.synthesis.requests if r.startswith("refuse_")]
        assert len(task.synthesis.requests) - len(refused) == task.axes.writes
        # a read is never repeated, and the first action identifies the user
        seen = [(a.name, msgspec.json.encode(a.arguments, order="sorted"))
                for a, k in zip(task.gold_actions, kinds, strict=True) if k is ToolKind.READ]
        assert len(seen) == len(set(seen))
        assert task.gold_actions[0].name in (
            "get_user_details", "find_user_id_by_email", "find_user_id_by_name_zip")


@pytest.mark.parametrize("name", DOMAINS)
def test_writes_span_two_to_six_and_refusals_are_included(name, batches):
    writes = Counter(task.axes.writes for task in batches[name])
    assert set(writes) == {0, 2, 3, 4, 5, 6}
    assert writes[0] < len(batches[name]) / 4  # refusal-only tasks are a small share


def test_writes_range_is_honoured(bases):
    tasks = generate_tasks(get_domain("retail"), bases["retail"], 40, seed=3, writes=(1, 2),
                           refusal_share=0.0)
    assert {t.axes.writes for t in tasks} == {1, 2}
    with pytest.raises(ValueError, match="writes"):
        generate_tasks(get_domain("retail"), bases["retail"], 1, seed=3, writes=(3, 2))


@pytest.mark.parametrize("name", DOMAINS)
def test_refusal_tasks_leave_the_state_unchanged(name, bases, batches):
    refusals = [t for t in batches[name] if t.axes.writes == 0]
    assert refusals
    for task in refusals:
        assert not _writes(task, name)
        assert task.synthesis.gold_db_hash == bases[name].db_hash()
        assert task.evaluation_criteria.nl_assertions
        assert all(r.startswith("refuse_") for r in task.synthesis.requests)
    for task in batches[name]:  # every refused request says what the agent must not do
        n_refused = sum(r.startswith("refuse_") for r in task.synthesis.requests)
        assert len(task.evaluation_criteria.nl_assertions or []) == n_refused


# -- determinism, ids, exclusion -------------------------------------------------------------


@pytest.mark.parametrize("name", DOMAINS)
def test_same_seed_same_bytes_and_prefix_stable(name, bases):
    base, domain = bases[name], get_domain(name)
    first = msgspec.json.encode(generate_tasks(domain, base, 30, seed=5))
    assert msgspec.json.encode(generate_tasks(domain, base, 30, seed=5)) == first
    assert msgspec.json.encode(generate_tasks(domain, base, 30, seed=6)) != first
    fresh = domain.generate_db(seed=0, scale=1.0)  # same content, new objects
    assert msgspec.json.encode(generate_tasks(domain, fresh, 30, seed=5)) == first
    assert generate_tasks(domain, base, 10, seed=5) == generate_tasks(domain, base, 30, seed=5)[:10]


@pytest.mark.parametrize("name", DOMAINS)
def test_ids_are_stable_and_gold_is_never_duplicated(name, batches):
    tasks = batches[name]
    assert [t.id for t in tasks] == [f"{name}-w-{i:06d}" for i in range(len(tasks))]
    box = get_domain(name).toolbox
    keys = [gold_key(t, box) for t in tasks]
    assert len(set(keys)) == len(keys)
    for task in tasks:
        assert [a.action_id for a in task.gold_actions] == [
            f"{task.id}_{i}" for i in range(len(task.gold_actions))]


@pytest.mark.parametrize("name", DOMAINS)
def test_exclusion_is_honoured(name, bases):
    base = bases[name]
    box = get_domain(name).toolbox
    earlier = generate_tasks(get_domain(name), base, 40, seed=21)
    excluded = earlier[:25]
    later = generate_tasks(get_domain(name), base, 40, seed=21, exclude=excluded)
    banned = {gold_key(t, box) for t in excluded}
    assert len(later) == 40
    assert not banned & {gold_key(t, box) for t in later}


@pytest.mark.parametrize("name", DOMAINS)
def test_tau2_test_tasks_can_be_excluded(name, bases):
    tasks_path = require(tau2_dir() / name / "tasks.json", "tau2-bench tasks")
    tau2 = load_tasks(tasks_path)
    box = get_domain(name).toolbox
    banned = {gold_key(t, box) for t in tau2}
    tasks = generate_tasks(get_domain(name), bases[name], 20, seed=1, exclude=tau2)
    assert not banned & {gold_key(t, box) for t in tasks}


def test_a_database_too_small_is_a_synthesis_error():
    base = get_domain("retail").generate_db(seed=0, scale=0.01)
    with pytest.raises(SynthesisError, match="too small"):
        generate_tasks(get_domain("retail"), base, 1, seed=0, writes=(30, 30), refusal_share=0.0)


def test_small_databases_still_yield_tasks():
    for name in DOMAINS:
        base = get_domain(name).generate_db(seed=4, scale=0.1)
        tasks = generate_tasks(get_domain(name), base, 20, seed=0, writes=(2, 3))
        for task in tasks:
            assert replay_gold(get_domain(name), base, task) == task.synthesis.gold_db_hash


# -- the file format -----------------------------------------------------------------------


@pytest.mark.parametrize("name", DOMAINS)
def test_tasks_round_trip_through_a_tau2_tasks_file(name, batches, tmp_path):
    tasks = batches[name][:50]
    path = tmp_path / "tasks.json"
    path.write_bytes(msgspec.json.encode(tasks))
    loaded = load_tasks(path)
    assert loaded == tasks
    assert msgspec.json.encode(loaded) == path.read_bytes()
    raw = msgspec.json.decode(path.read_bytes())
    for entry in raw:  # tau2-bench's fields, as its loader expects them
        criteria = entry["evaluation_criteria"]
        assert criteria["reward_basis"] == ["DB", "COMMUNICATE"]
        instructions = entry["user_scenario"]["instructions"]
        assert instructions["domain"] == name
        assert instructions["reason_for_call"] and instructions["known_info"]
        assert all(isinstance(c, str) for c in criteria["communicate_info"])


def test_distribution_table_lists_every_task(batches):
    table = format_distribution(batches["airline"])
    assert table.splitlines()[-1].split()[-1] == str(BATCH)


# -- what the user knows -------------------------------------------------------------------


@pytest.mark.parametrize("name", DOMAINS)
def test_scenario_names_what_the_customer_knows_and_no_internal_ids(name, batches):
    for task in batches[name]:
        ins = task.user_scenario.instructions
        text = f"{ins.reason_for_call}\n{ins.task_instructions}\n{ins.known_info}"
        assert not re.search(r"\b\d{10}\b", text), task.id  # product and item ids
        assert "gift_card_" not in text and "credit_card_" not in text
        for action in _writes(task, name):
            for key in ("order_id", "reservation_id"):
                if key in action.arguments:
                    assert action.arguments[key] in text, (task.id, key)
        for info in task.evaluation_criteria.communicate_info:
            float(info)  # amounts, as the tools write numbers


# -- the policy, checked independently -----------------------------------------------------


def _airline_policy(env, action) -> None:
    db, args = env.overlay, action.arguments
    if action.name == "book_reservation":
        assert 1 <= len(args["passengers"]) <= 5
        assert len(args["payment_methods"]) == 1
        user = db.get("users", args["user_id"])
        n = len(args["passengers"])
        free = FREE_BAGS[user.membership][args["cabin"]] * n
        assert args["nonfree_baggages"] == max(0, args["total_baggages"] - free)
        return
    if action.name == "send_certificate":
        assert args["amount"] % 100 == 0
        return
    res = db.get("reservations", args["reservation_id"])
    assert res.status != "cancelled"
    statuses = [db.get("flights", s.flight_number).dates[s.date] for s in res.flights]
    assert not any(isinstance(s, Landed | Flying) for s in statuses)
    user = db.get("users", res.user_id)
    if "payment_id" in args:
        assert not isinstance(user.payment_methods[args["payment_id"]], Certificate)
    if action.name == "cancel_reservation":
        assert (res.created_at >= "2024-05-14T15:00:00" or res.cabin == "business"
                or res.insurance == "yes" or any(isinstance(s, Cancelled) for s in statuses))
    elif action.name == "update_reservation_flights":
        assert all(isinstance(s, Available) for s in statuses)
        old = [(f.flight_number, f.date) for f in res.flights]
        new = [(f["flight_number"], f["date"]) for f in args["flights"]]
        if new != old:
            assert res.cabin != "basic_economy" and args["cabin"] == res.cabin
        routes = [(db.get("flights", n).origin, db.get("flights", n).destination) for n, _ in new]
        assert routes == [(f.origin, f.destination) for f in res.flights]
        assert [d for _, d in new] == sorted(d for _, d in new)
    elif action.name == "update_reservation_baggages":
        assert args["total_baggages"] > res.total_baggages
        free = FREE_BAGS[user.membership][res.cabin] * len(res.passengers)
        assert args["nonfree_baggages"] == max(0, args["total_baggages"] - free)
    elif action.name == "update_reservation_passengers":
        assert len(args["passengers"]) == len(res.passengers)
        assert all(isinstance(s, Available) for s in statuses)


def _retail_policy(env, action) -> None:
    db, args = env.overlay, action.arguments
    if action.name == "modify_user_address":
        return
    order = db.get("orders", args["order_id"])
    if action.name in ("exchange_delivered_order_items", "return_delivered_order_items"):
        assert order.status == "delivered"
    else:
        assert order.status == "pending"  # exactly: not 'pending (item modified)'
    if action.name == "cancel_pending_order":
        assert args["reason"] in CANCEL_REASONS
    if action.name in ("exchange_delivered_order_items", "modify_pending_order_items"):
        products = {i.item_id: i.product_id for i in order.items}
        for old, new in zip(args["item_ids"], args["new_item_ids"], strict=True):
            variant = db.get("products", products[old]).variants[new]
            assert variant.available and new != old
    if action.name == "return_delivered_order_items":
        method = db.get("users", order.user_id).payment_methods[args["payment_method_id"]]
        original = order.payment_history[0].payment_method_id
        assert isinstance(method, GiftCard) or args["payment_method_id"] == original


@pytest.mark.parametrize("name", DOMAINS)
def test_every_gold_write_is_allowed_by_the_policy_when_it_happens(name, bases, batches):
    domain = get_domain(name)
    check = _airline_policy if name == "airline" else _retail_policy
    for task in batches[name]:
        env = domain.environment(bases[name])
        for action in task.gold_actions:
            if domain.toolbox.kind(action.name) is ToolKind.WRITE:
                check(env, action)
            env.call(action.name, action.arguments)
