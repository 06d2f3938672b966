"""Copy-on-write overlays: isolation, exact hashes, and deltas (property tests)."""

from __future__ import annotations

import hashlib
import json

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from writ_async.environment.overlay import BaseDB, Overlay
from writ_async.environment.tau2.canonical import to_plain
from writ_async.errors import ToolError


class Item(msgspec.Struct, kw_only=True):
    value: int | float
    tags: list[str]
    note: str | None = None


KEYS = ["a", "b", "c", "d", "e"]
NEW_KEYS = ["aa", "bb", "zz", "0"]


def make_base(n: int = 4) -> BaseDB:
    items = {k: Item(value=i, tags=[k]) for i, k in enumerate(KEYS[:n])}
    other = {"x": Item(value=1.5, tags=[])}
    return BaseDB({"items": items, "other": other, "empty": {}},
                  {"items": Item, "other": Item, "empty": Item})


def naive_hash(base: BaseDB, overlay: Overlay) -> str:
    full = {t: {k: to_plain(v) for k, v in overlay.items(t)} for t in base.tables}
    return hashlib.sha256(json.dumps(full, sort_keys=True).encode()).hexdigest()


# An operation: (table, key, kind, payload)
values = st.one_of(st.integers(-5, 5), st.sampled_from([0.0, 1.0, 2.5, -1.5]))
ops = st.lists(
    st.tuples(
        st.sampled_from(["items", "other", "empty"]),
        st.sampled_from(KEYS + NEW_KEYS + ["x"]),
        st.sampled_from(["set", "tag", "insert", "note", "noop_edit"]),
        values,
    ),
    max_size=12,
)


def apply(overlay: Overlay, program: list) -> None:
    for table, key, kind, value in program:
        if kind == "insert":
            overlay.insert(table, key, Item(value=value, tags=["new"]))
            continue
        record = overlay.edit(table, key)
        if record is None:
            continue
        if kind == "set":
            record.value = value
        elif kind == "tag":
            record.tags.append(str(value))
        elif kind == "note":
            record.note = str(value)


@settings(max_examples=200, deadline=None)
@given(ops, ops)
def test_overlays_never_leak(first: list, second: list) -> None:
    base = make_base()
    before = base.db_hash()
    a, b = base.overlay(), base.overlay()
    apply(a, first)
    snapshot_b = naive_hash(base, b)
    apply(b, second)
    # a's changes are invisible to b and to the base, and vice versa.
    fresh = base.overlay()
    apply(fresh, second)
    assert naive_hash(base, b) == naive_hash(base, fresh)
    assert base.verify_unchanged()
    assert base.db_hash() == before
    assert snapshot_b == naive_hash(base, base.overlay())


@settings(max_examples=200, deadline=None)
@given(ops)
def test_spliced_hash_equals_full_materialisation(program: list) -> None:
    base = make_base()
    overlay = base.overlay()
    apply(overlay, program)
    assert overlay.db_hash() == naive_hash(base, overlay)


@settings(max_examples=300, deadline=None)
@given(ops, ops)
def test_delta_hash_equality_matches_full_hash_equality(first: list, second: list) -> None:
    base = make_base()
    a, b = base.overlay(), base.overlay()
    apply(a, first)
    apply(b, second)
    assert (a.delta_hash() == b.delta_hash()) == (a.db_hash() == b.db_hash())


@settings(max_examples=100, deadline=None)
@given(ops)
def test_delta_round_trips(program: list) -> None:
    base = make_base()
    a = base.overlay()
    apply(a, program)
    b = base.overlay()
    b.load_delta(a.encode_delta())
    assert b.db_hash() == a.db_hash()
    assert b.delta_hash() == a.delta_hash()
    assert list(b.items("items")) == list(a.items("items"))


def test_edit_back_to_base_value_leaves_empty_delta() -> None:
    base = make_base()
    overlay = base.overlay()
    overlay.edit("items", "a").value = 99
    assert overlay.delta() != {}
    overlay.edit("items", "a").value = 0
    assert overlay.delta() == {}
    assert overlay.db_hash() == base.db_hash()


def test_int_and_float_hash_differently() -> None:
    base = make_base()
    as_int, as_float = base.overlay(), base.overlay()
    as_int.edit("items", "b").value = 7
    as_float.edit("items", "b").value = 7.0
    assert as_int.db_hash() != as_float.db_hash()
    assert as_int.delta_hash() != as_float.delta_hash()


def test_new_records_iterate_after_base_in_insertion_order() -> None:
    base = make_base()
    overlay = base.overlay()
    overlay.insert("items", "zz", Item(value=1, tags=[]))
    overlay.insert("items", "0", Item(value=2, tags=[]))
    overlay.edit("items", "b").value = 5
    assert [k for k, _ in overlay.items("items")] == ["a", "b", "c", "d", "zz", "0"]
    assert overlay.get("items", "b").value == 5
    assert overlay.size("items") == 6


def test_reset_forgets_changes() -> None:
    base = make_base()
    overlay = base.overlay()
    overlay.edit("items", "a").value = 3
    overlay.reset()
    assert overlay.get("items", "a").value == 0
    assert overlay.db_hash() == base.db_hash()


def test_unhashable_ids_fail_like_python() -> None:
    overlay = make_base().overlay()
    try:
        overlay.get("items", ["a"])
    except ToolError as exc:
        assert str(exc) == "unhashable type: 'list'"
    else:
        raise AssertionError("expected a ToolError")


@settings(max_examples=200, deadline=None)
@given(ops, st.sampled_from([0, 1, 2, 2.5, 7]))
def test_select_equals_a_scan(program: list, wanted: float) -> None:
    base = make_base()
    overlay = base.overlay()
    apply(overlay, program)
    for table in ("items", "other", "empty"):
        scanned = [r for r in overlay.values(table) if r.value == wanted]
        assert overlay.select(table, "value", wanted) == scanned
