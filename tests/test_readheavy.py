"""Read-heavy and mixed task synthesis (WRIT stage 1, the evidence axis) on the default DBs.

Uniqueness is re-checked here by brute force straight from the database records at the
point of each decided write (the gold replayed up to it), with this file's own reading
of each criterion: nothing of the synthesizers' code is used for it.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import msgspec
import pytest

from domains import get_domain
from domains.airline.data_model import Available, Cancelled, Flying, Landed
from domains.airline.generator import FREE_BAGS
from domains.retail.data_model import GiftCard
from writ_async.conversation.task import Action, Task, load_tasks
from writ_async.environment.overlay import Overlay
from writ_async.environment.tools import ToolKind
from writ_async.grading import grade as grading
from writ_async.grading.evidence import default_evidence_plan
from writ_async.participants.scripted.inprocess import run_scripted_episode
from writ_async.participants.scripted.mistakes import MistakeConfig, MistakeKind
from writ_async.synthesis.driver import (
    DEFAULT_MIX,
    WRITE_INTENSIVE,
    assign_types,
    generate_tasks,
    gold_key,
    replay_gold,
)
from writ_async.synthesis.readheavy import MIXED, READ_HEAVY

DOMAINS = ("airline", "retail")
BATCH = 360
MIX = {WRITE_INTENSIVE: 0.1, READ_HEAVY: 0.6, MIXED: 0.3}
SEARCHES = ("search_direct_flight", "search_onestop_flight")


@pytest.fixture(scope="module")
def bases():
    return {name: get_domain(name).generate_db(seed=0, scale=1.0) for name in DOMAINS}


@pytest.fixture(scope="module")
def batches(bases):
    return {name: generate_tasks(get_domain(name), bases[name], BATCH, seed=17, mix=MIX)
            for name in DOMAINS}


def _heavy(tasks: list[Task]) -> list[Task]:
    return [t for t in tasks if t.trajectory_type in (READ_HEAVY, MIXED)]


def _kinds(name: str, task: Task) -> list[ToolKind | None]:
    box = get_domain(name).toolbox
    return [box.kind(a.name) for a in task.gold_actions]


# -- gold and axes --------------------------------------------------------------------------


@pytest.mark.parametrize("name", DOMAINS)
def test_gold_replays_without_error_to_the_recorded_hash(name, bases, batches):
    domain = get_domain(name)
    tasks = _heavy(batches[name])
    assert tasks
    for task in tasks:
        env = domain.environment(bases[name])
        for action in task.gold_actions:
            result = env.call(action.name, action.arguments)
            assert not result.error, (task.id, action.name, result.output)
        assert env.db_hash() == task.synthesis.gold_db_hash != task.synthesis.base_db_hash
        assert replay_gold(domain, bases[name], task) == task.synthesis.gold_db_hash


@pytest.mark.parametrize("name", DOMAINS)
def test_burden_is_the_read_plan_and_the_gold_reads(name, batches):
    for task in _heavy(batches[name]):
        kinds = _kinds(name, task)
        reads = [a.action_id for a, k in zip(task.gold_actions, kinds, strict=True)
                 if k is ToolKind.READ]
        assert None not in kinds and ToolKind.GENERIC not in kinds
        assert task.axes.evidence == len(task.synthesis.read_plan) == len(reads), task.id
        assert task.synthesis.read_plan == reads
        assert 3 <= task.axes.evidence <= 20
        assert task.axes.writes == kinds.count(ToolKind.WRITE)
        calls = [(a.name, msgspec.json.encode(a.arguments, order="sorted"))
                 for a in task.gold_actions if a.action_id in reads]
        assert len(calls) == len(set(calls))  # no read twice
        if task.trajectory_type == READ_HEAVY:
            # the read plan, then the one write
            assert kinds == [ToolKind.READ] * (len(kinds) - 1) + [ToolKind.WRITE], task.id
            assert task.id.startswith(f"{name}-r-")
        else:
            assert 2 <= task.axes.writes <= 6 and task.id.startswith(f"{name}-m-")
        decided = {d["write"] for d in task.description["decisions"]}
        writes = {a.action_id for a, k in zip(task.gold_actions, kinds, strict=True)
                  if k is ToolKind.WRITE}
        assert decided <= writes and decided
        if task.trajectory_type == READ_HEAVY:
            assert decided == writes


def test_airline_burdens_span_3_to_20(batches):
    burdens = Counter(t.axes.evidence for t in batches["airline"]
                      if t.trajectory_type == READ_HEAVY)
    assert set(burdens) == set(range(3, 21))


def test_retail_burdens_span_every_burden_its_database_allows(bases, batches):
    from domains.retail.readheavy import read_heavy

    allowed = read_heavy(bases["retail"]).burdens(3, 20)
    burdens = {t.axes.evidence for t in batches["retail"] if t.trajectory_type == READ_HEAVY}
    # The default retail DB has a few frequent buyers with up to ~20 orders.
    assert burdens == set(allowed) == set(range(3, 21))
    mixed = {t.axes.evidence for t in batches["retail"] if t.trajectory_type == MIXED}
    assert min(mixed) <= 5 and max(mixed) >= 14


@pytest.mark.parametrize("name", DOMAINS)
def test_the_mix_is_kept_and_every_type_occurs(name, batches):
    tasks = batches[name]
    assert [t.trajectory_type for t in tasks] == assign_types(
        {k: v for k, v in MIX.items()}, BATCH)
    counts = Counter(t.trajectory_type for t in tasks)
    assert counts == {WRITE_INTENSIVE: 36, READ_HEAVY: 216, MIXED: 108}
    letters = {WRITE_INTENSIVE: "w", READ_HEAVY: "r", MIXED: "m"}
    for i, task in enumerate(tasks):
        assert task.id == f"{name}-{letters[task.trajectory_type]}-{i:06d}"
    mixed = [t for t in tasks if t.trajectory_type == MIXED]
    assert {t.axes.writes for t in mixed} >= {2, 3, 4}
    assert any(len(t.description["decisions"]) > 1 for t in tasks
               if t.trajectory_type == MIXED)


def test_assign_types_keeps_every_prefix_close_to_the_shares():
    shares = {WRITE_INTENSIVE: 0.5, READ_HEAVY: 0.35, MIXED: 0.15}
    kinds = assign_types(shares, 1000)
    for n in (1, 7, 50, 333, 1000):
        counts = Counter(kinds[:n])
        for kind, share in shares.items():
            assert abs(counts[kind] - share * n) <= 1


def test_bad_mixes_are_refused(bases):
    with pytest.raises(ValueError, match="unknown trajectory types"):
        generate_tasks(get_domain("retail"), bases["retail"], 1, seed=0, mix={"read_hevy": 1.0})
    with pytest.raises(ValueError, match="positive total"):
        generate_tasks(get_domain("retail"), bases["retail"], 1, seed=0, mix={READ_HEAVY: 0.0})
    with pytest.raises(ValueError, match="evidence"):
        generate_tasks(get_domain("retail"), bases["retail"], 1, seed=0, mix=DEFAULT_MIX,
                       evidence=(5, 4))


def test_an_evidence_range_the_database_cannot_reach_is_a_synthesis_error(bases):
    from writ_async.synthesis.driver import SynthesisError

    with pytest.raises(SynthesisError, match="read-heavy"):
        generate_tasks(get_domain("retail"), bases["retail"], 1, seed=0, mix={READ_HEAVY: 1},
                       evidence=(40, 50))


def test_narrow_evidence_ranges_are_honoured(bases):
    tasks = generate_tasks(get_domain("airline"), bases["airline"], 30, seed=2,
                           mix={READ_HEAVY: 2, MIXED: 1}, evidence=(6, 8))
    assert {t.axes.evidence for t in tasks} <= {6, 7, 8}
    assert {t.axes.evidence for t in tasks if t.trajectory_type == READ_HEAVY} == {6, 7, 8}


# -- uniqueness, by brute force over the records ---------------------------------------------


def _state_before(name: str, base, task: Task, write_id: str) -> tuple[Overlay, Action]:
    """The overlay just before the decided write (gold replayed up to it), and the write."""
    env = get_domain(name).environment(base)
    for action in task.gold_actions:
        if action.action_id == write_id:
            return env.overlay, action
        env.call(action.name, action.arguments)
    raise AssertionError(f"{task.id}: no gold action {write_id}")


def _clock(date: str, time: str) -> datetime:
    year, month, day = (int(p) for p in date.split("-"))
    days = int(time.split("+")[1]) if "+" in time else 0
    hour, minute = int(time[:2]), int(time[3:5])
    return datetime(year, month, day, hour, minute) + timedelta(days=days)


def _itineraries(db: Overlay, origin: str, destination: str, date: str, stops: int
                 ) -> list[tuple[tuple[Any, str], ...]]:
    """Every bookable itinerary as (flight, date) legs, from the flights table."""
    flights = list(db.values("flights"))

    def bookable(flight: Any, day: str) -> bool:
        return isinstance(flight.dates.get(day), Available)

    out: list[tuple[tuple[Any, str], ...]] = [
        ((f, date),) for f in flights
        if f.origin == origin and f.destination == destination and bookable(f, date)]
    if stops:
        for first in flights:
            if first.origin != origin or not bookable(first, date):
                continue
            arrival = first.scheduled_arrival_time_est
            # tau2's search: the connection leaves that day, or the next for an overnight
            # first leg (its date written by hand), no earlier than the first leg lands.
            day = f"2024-05-{int(date[-2:]) + 1}" if "+1" in arrival else date
            for second in flights:
                if (second.origin == first.destination and second.destination == destination
                        and bookable(second, day)
                        and second.scheduled_departure_time_est >= arrival):
                    out.append(((first, date), (second, day)))
    return out


def _itinerary_value(criterion: str, cabin: str, legs) -> Any:
    start = _clock(legs[0][1], legs[0][0].scheduled_departure_time_est)
    end = _clock(legs[-1][1], legs[-1][0].scheduled_arrival_time_est)
    if criterion == "cheapest":
        return sum(f.dates[d].prices[cabin] for f, d in legs)
    if criterion == "earliest_arrival":
        return end
    assert criterion == "shortest"
    return (end - start, start)  # the earliest departure among equally short trips


def _check_book(db: Overlay, decision: dict[str, Any], write: Action, task: Task) -> None:
    cabin, n = decision["cabin"], decision["passengers"]
    candidates = []
    for origin in decision["origins"]:
        for date in decision["dates"]:
            candidates += _itineraries(db, origin, decision["destination"], date,
                                       decision["max_stops"])
    fits = [legs for legs in candidates
            if all(f.dates[d].available_seats[cabin] >= n for f, d in legs)]
    # the same candidate space as the synthesizer saw through the search tools
    assert (len(candidates), len(fits)) == (decision["candidates"], decision["feasible"])
    values = [_itinerary_value(decision["criterion"], cabin, legs) for legs in fits]
    best = min(values)
    assert values.count(best) == 1, (task.id, "tie")
    chosen = fits[values.index(best)]
    args = write.arguments
    assert [(f.flight_number, d) for f, d in chosen] == [
        (f["flight_number"], f["date"]) for f in args["flights"]], task.id
    assert args["origin"] == chosen[0][0].origin and args["cabin"] == cabin
    assert len(args["passengers"]) == n and args["flight_type"] == "one_way"
    # the plan searches exactly every origin x date (x connection kind)
    searched = {(a.name, a.arguments["origin"], a.arguments["date"])
                for a in task.gold_actions if a.name in SEARCHES
                and a.arguments["destination"] == decision["destination"]}
    kinds = SEARCHES[:decision["max_stops"] + 1]
    assert searched >= {(k, o, d) for k in kinds for o in decision["origins"]
                        for d in decision["dates"]}


def _reservation_value(res: Any, prop: str) -> list[Any]:
    if prop == "start":
        return [[res.destination, res.flights[0].date]]
    if prop == "trip":
        return [[res.origin, res.destination]]
    if prop == "date":
        return [res.flights[0].date]
    if prop == "insurance":
        return [res.insurance]
    if prop == "party":
        return [len(res.passengers)]
    if prop == "cabin":
        return [res.cabin]
    assert prop == "traveller"
    return [f"{p.first_name} {p.last_name}" for p in res.passengers]


def _check_reservation(db: Overlay, decision: dict[str, Any], write: Action,
                       task: Task) -> None:
    user = db.get("users", decision["user_id"])
    matching = [rid for rid in user.reservations
                if decision["value"] in _reservation_value(db.get("reservations", rid),
                                                           decision["property"])]
    assert matching == [write.arguments["reservation_id"]], task.id
    assert len(user.reservations) == decision["candidates"]
    # every reservation of the profile is opened before the write
    opened = {a.arguments["reservation_id"] for a in task.gold_actions
              if a.name == "get_reservation_details"}
    assert set(user.reservations) <= opened


def _item_matches(item: Any, product: str, options: dict[str, str]) -> bool:
    return item.name == product and all(item.options.get(k) == v for k, v in options.items())


def _check_order_item(db: Overlay, decision: dict[str, Any], write: Action,
                      task: Task) -> None:
    user = db.get("users", decision["user_id"])
    orders = [db.get("orders", oid) for oid in user.orders]
    holding = [o for o in orders if any(_item_matches(i, decision["product"],
                                                      decision["options"]) for i in o.items)]
    assert [o.order_id for o in holding] == [write.arguments["order_id"]], task.id
    order = holding[0]
    assert order.status == "delivered"
    units = [i.item_id for i in order.items
             if _item_matches(i, decision["product"], decision["options"])]
    assert units == write.arguments["item_ids"], task.id
    opened = {a.arguments["order_id"] for a in task.gold_actions
              if a.name == "get_order_details"}
    assert set(user.orders) <= opened


def _check_variant(db: Overlay, decision: dict[str, Any], write: Action, task: Task) -> None:
    product = db.get("products", decision["product_id"])
    wanted = decision["options"]
    stocked = [v for v in product.variants.values()
               if v.available and v.item_id != decision["current"]
               and all(v.options.get(k) == val for k, val in wanted.items())]
    if decision["pick"] == "in_stock":
        assert len(stocked) == 1, task.id
        chosen = stocked[0]
    else:
        assert decision["pick"] == "cheapest"
        cheapest = min(v.price for v in stocked)
        best = [v for v in stocked if v.price == cheapest]
        assert len(best) == 1, (task.id, "tie")
        chosen = best[0]
    at = write.arguments["item_ids"].index(decision["current"])
    assert write.arguments["new_item_ids"][at] == chosen.item_id, task.id
    assert any(a.name == "get_product_details"
               and a.arguments["product_id"] == product.product_id
               for a in task.gold_actions)


def _order_value(db: Overlay, order: Any, prop: str) -> list[Any]:
    if prop == "product":
        return [i.name for i in order.items]
    if prop == "items":
        return [len(order.items)]
    if prop == "payment":
        return [order.payment_history[0].payment_method_id] if order.payment_history else []
    assert prop == "city"
    return [order.address.city]


def _check_pending_order(db: Overlay, decision: dict[str, Any], write: Action,
                         task: Task) -> None:
    user = db.get("users", decision["user_id"])
    orders = [db.get("orders", oid) for oid in user.orders]
    matching = [o.order_id for o in orders if "pending" in o.status
                and decision["value"] in _order_value(db, o, decision["property"])]
    assert matching == [write.arguments["order_id"]], task.id
    assert db.get("orders", matching[0]).status == "pending"


CHECKS = {"book": _check_book, "reservation": _check_reservation,
          "order_item": _check_order_item, "variant": _check_variant,
          "pending_order": _check_pending_order}


@pytest.mark.parametrize("name", DOMAINS)
def test_every_decision_is_unique_under_brute_force(name, bases, batches):
    checked = Counter()
    for task in _heavy(batches[name]):
        for decision in task.description["decisions"]:
            db, write = _state_before(name, bases[name], task, decision["write"])
            CHECKS[decision["kind"]](db, decision, write, task)
            checked[decision["kind"]] += 1
    expected = ({"book", "reservation"} if name == "airline"
                else {"order_item", "variant", "pending_order"})
    assert set(checked) == expected
    if name == "airline":
        criteria = Counter(d["criterion"] for t in _heavy(batches[name])
                           for d in t.description["decisions"] if d["kind"] == "book")
        assert set(criteria) == {"cheapest", "earliest_arrival", "shortest"}


# -- the policy and what the user knows ------------------------------------------------------


def _airline_policy(db: Overlay, action: Action) -> None:
    args = action.arguments
    if action.name == "book_reservation":
        user = db.get("users", args["user_id"])
        n = len(args["passengers"])
        assert 1 <= n <= 5 and len(args["payment_methods"]) == 1
        free = FREE_BAGS[user.membership][args["cabin"]] * n
        assert args["nonfree_baggages"] == max(0, args["total_baggages"] - free)
        return
    if action.name == "send_certificate":
        return
    res = db.get("reservations", args["reservation_id"])
    assert res.status != "cancelled"
    statuses = [db.get("flights", s.flight_number).dates[s.date] for s in res.flights]
    assert not any(isinstance(s, Landed | Flying) for s in statuses)
    if action.name == "cancel_reservation":
        assert (res.created_at >= "2024-05-14T15:00:00" or res.cabin == "business"
                or res.insurance == "yes" or any(isinstance(s, Cancelled) for s in statuses))
    elif action.name == "update_reservation_baggages":
        user = db.get("users", res.user_id)
        assert args["total_baggages"] > res.total_baggages
        free = FREE_BAGS[user.membership][res.cabin] * len(res.passengers)
        assert args["nonfree_baggages"] == max(0, args["total_baggages"] - free)
    elif action.name == "update_reservation_passengers":
        assert len(args["passengers"]) == len(res.passengers)


def _retail_policy(db: Overlay, action: Action) -> None:
    args = action.arguments
    if action.name == "modify_user_address":
        return
    order = db.get("orders", args["order_id"])
    if action.name in ("exchange_delivered_order_items", "return_delivered_order_items"):
        assert order.status == "delivered"
    else:
        assert order.status == "pending"
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
    for task in _heavy(batches[name]):
        env = domain.environment(bases[name])
        for action in task.gold_actions:
            if domain.toolbox.kind(action.name) is ToolKind.WRITE:
                check(env.overlay, action)
            env.call(action.name, action.arguments)


@pytest.mark.parametrize("name", DOMAINS)
def test_the_user_names_no_internal_ids_nor_the_codes_they_must_find(name, batches):
    for task in _heavy(batches[name]):
        ins = task.user_scenario.instructions
        text = f"{ins.reason_for_call}\n{ins.task_instructions}\n{ins.known_info}"
        assert not re.search(r"\b\d{10}\b", text), task.id
        assert "gift_card_" not in text and "credit_card_" not in text
        writes = {a.action_id: a for a in task.gold_actions}
        for decision in task.description["decisions"]:
            args = writes[decision["write"]].arguments
            if decision["kind"] == "reservation":
                assert args["reservation_id"] not in text, task.id
                assert ins.unknown_info
            if decision["kind"] in ("order_item", "pending_order"):
                assert args["order_id"] not in text, task.id
        for info in task.evaluation_criteria.communicate_info:
            float(info)


# -- determinism and exclusion ----------------------------------------------------------------


@pytest.mark.parametrize("name", DOMAINS)
def test_same_seed_same_bytes_and_prefix_stable(name, bases):
    base, domain = bases[name], get_domain(name)
    first = msgspec.json.encode(generate_tasks(domain, base, 40, seed=5, mix=DEFAULT_MIX))
    assert msgspec.json.encode(generate_tasks(domain, base, 40, seed=5, mix=DEFAULT_MIX)) == first
    assert msgspec.json.encode(generate_tasks(domain, base, 40, seed=6, mix=DEFAULT_MIX)) != first
    fresh = domain.generate_db(seed=0, scale=1.0)
    assert msgspec.json.encode(generate_tasks(domain, fresh, 40, seed=5, mix=DEFAULT_MIX)) == first
    assert (generate_tasks(domain, base, 15, seed=5, mix=DEFAULT_MIX)
            == generate_tasks(domain, base, 40, seed=5, mix=DEFAULT_MIX)[:15])


def test_write_intensive_tasks_are_the_same_with_or_without_a_mix(bases):
    base = bases["retail"]
    alone = generate_tasks(get_domain("retail"), base, 10, seed=9)
    mixed = generate_tasks(get_domain("retail"), base, 10, seed=9, mix={WRITE_INTENSIVE: 1.0})
    assert msgspec.json.encode(alone) == msgspec.json.encode(mixed)


@pytest.mark.parametrize("name", DOMAINS)
def test_exclusion_is_honoured_and_gold_is_never_duplicated(name, bases, batches):
    box = get_domain(name).toolbox
    keys = [gold_key(t, box) for t in batches[name]]
    assert len(set(keys)) == len(keys)
    earlier = generate_tasks(get_domain(name), bases[name], 40, seed=23, mix={READ_HEAVY: 1})
    later = generate_tasks(get_domain(name), bases[name], 40, seed=23, mix={READ_HEAVY: 1},
                           exclude=earlier[:30])
    assert not {gold_key(t, box) for t in earlier[:30]} & {gold_key(t, box) for t in later}


@pytest.mark.parametrize("name", DOMAINS)
def test_tasks_round_trip_through_a_tau2_tasks_file(name, batches, tmp_path):
    tasks = _heavy(batches[name])[:60]
    path = tmp_path / "tasks.json"
    path.write_bytes(msgspec.json.encode(tasks))
    assert load_tasks(path) == tasks
    for entry in msgspec.json.decode(path.read_bytes()):
        assert entry["trajectory_type"] in (READ_HEAVY, MIXED)
        assert entry["evaluation_criteria"]["reward_basis"] == ["DB", "COMMUNICATE"]
        assert entry["user_scenario"]["instructions"]["reason_for_call"]


# -- with the scripted agent and the grader ---------------------------------------------------


def _sample(tasks: list[Task], k: int) -> list[Task]:
    heavy = _heavy(tasks)
    step = max(1, len(heavy) // k)
    return heavy[::step][:k]


@pytest.mark.parametrize("name", DOMAINS)
def test_the_scripted_agent_reaches_the_gold_and_passes_the_evidence_check(name, bases,
                                                                          batches):
    domain = get_domain(name)
    for task in _sample(batches[name], 25):
        episode, final, agent = run_scripted_episode(domain, bases[name], task, seed=3)
        assert agent.mistake is None
        assert final == task.synthesis.gold_db_hash, task.id
        info = grading.grade(task, episode.messages, episode.termination.value, final,
                             task.synthesis.gold_db_hash, domain.toolbox)
        assert info.reward == 1.0, (task.id, info.note)
        assert info.evidence_ok, (task.id, [c for c in info.evidence_checks if not c.passed])
        plan = default_evidence_plan(task, domain.toolbox)
        for write, reads in plan.items():  # every read of the plan before a write counts
            assert {r.action_id for r in reads} == {
                i for i in task.synthesis.read_plan
                if int(i.rsplit("_", 1)[1]) < write}


@pytest.mark.parametrize("name", DOMAINS)
def test_skipping_a_read_of_the_plan_fails_the_evidence_check(name, bases, batches):
    domain = get_domain(name)
    failed = 0
    for task in _sample(batches[name], 15):
        episode, final, agent = run_scripted_episode(
            domain, bases[name], task, seed=4,
            mistakes=MistakeConfig(forced=MistakeKind.SKIPPED_READ))
        if agent.mistake is None:
            continue
        skipped = task.gold_actions[agent.mistake.action]
        assert skipped.action_id in task.synthesis.read_plan
        info = grading.grade(task, episode.messages, episode.termination.value, final,
                             task.synthesis.gold_db_hash, domain.toolbox)
        assert not info.evidence_ok, task.id
        failed += 1
    assert failed >= 10
