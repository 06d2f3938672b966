"""The retail domain: tool quirks in isolation, the generator, and seeded walks.

Conformance against tau2-bench's recorded outputs lives in test_conformance.py; these
tests pin the behaviours one by one on a small hand-built store, so a regression names
the quirk it broke.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from collections import Counter
from typing import Any

import msgspec
import pytest
from conftest import REPO, require, tau2_dir
from hypothesis import given, settings
from hypothesis import strategies as st

from domains.retail import DOMAIN
from domains.retail.data_model import GiftCard, Order, RetailDB
from domains.retail.generator import generate
from domains.retail.walk import sample_call
from writ_async.environment.overlay import BaseDB, Overlay
from writ_async.environment.tau2.canonical import to_plain
from writ_async.environment.tools import ToolResult

# -- a small store -------------------------------------------------------------------------

ADDRESS = {
    "address1": "1 Main St", "address2": "", "city": "Austin", "country": "USA",
    "state": "TX", "zip": "78701",
}


def _item(product: str, name: str, item_id: str, price: float, size: str) -> dict[str, Any]:
    return {"name": name, "product_id": product, "item_id": item_id, "price": price,
            "options": {"size": size}}


def _order(order_id: str, user: str, status: str, items: list[dict], method: str,
           amount: float) -> dict[str, Any]:
    return {
        "order_id": order_id, "user_id": user, "address": ADDRESS, "items": items,
        "status": status, "fulfillments": [],
        "payment_history": [
            {"transaction_type": "payment", "amount": amount, "payment_method_id": method}
        ],
    }


SHIRT_S = _item("100", "Shirt", "1001", 10.1, "S")
SHIRT_M = _item("100", "Shirt", "1002", 20.2, "M")
MUG = _item("200", "Mug", "2001", 5.0, "one")

STORE: dict[str, Any] = {
    "products": {
        "100": {"name": "Shirt", "product_id": "100", "variants": {
            "1001": {"item_id": "1001", "options": {"size": "S"}, "available": True,
                     "price": 10.1},
            "1002": {"item_id": "1002", "options": {"size": "M"}, "available": True,
                     "price": 20.2},
            "1003": {"item_id": "1003", "options": {"size": "L"}, "available": True,
                     "price": 29.3},
            "1004": {"item_id": "1004", "options": {"size": "XL"}, "available": False,
                     "price": 31.0},
        }},
        "200": {"name": "Mug", "product_id": "200", "variants": {
            "2001": {"item_id": "2001", "options": {"size": "one"}, "available": True,
                     "price": 5.0},
            "2002": {"item_id": "2002", "options": {"size": "two"}, "available": True,
                     "price": 7.5},
        }},
    },
    "users": {
        "ann_lee_1234": {
            "user_id": "ann_lee_1234", "name": {"first_name": "Ann", "last_name": "Lee"},
            "address": ADDRESS, "email": "Ann.Lee@example.com",
            "payment_methods": {
                "gift_card_1": {"source": "gift_card", "id": "gift_card_1", "balance": 50.0},
                "credit_card_1": {"source": "credit_card", "id": "credit_card_1",
                                  "brand": "visa", "last_four": "4242"},
                "gift_card_2": {"source": "gift_card", "id": "gift_card_2", "balance": 1.0},
            },
            "orders": ["#W1", "#W2", "#W3", "#W4"],
        },
        "ann_lee_9999": {
            "user_id": "ann_lee_9999", "name": {"first_name": "ann", "last_name": "LEE"},
            "address": ADDRESS, "email": "other@example.com",
            "payment_methods": {"paypal_1": {"source": "paypal", "id": "paypal_1"}},
            "orders": ["#W5"],
        },
    },
    "orders": {
        "#W1": _order("#W1", "ann_lee_1234", "pending", [SHIRT_S, SHIRT_S, MUG],
                      "gift_card_1", 25.2),
        "#W2": _order("#W2", "ann_lee_1234", "delivered", [SHIRT_M, MUG], "credit_card_1",
                      25.2),
        "#W3": _order("#W3", "ann_lee_1234", "processed", [MUG], "credit_card_1", 5.0),
        "#W4": _order("#W4", "ann_lee_1234", "pending", [SHIRT_M], "credit_card_1", 20.2),
        "#W5": _order("#W5", "ann_lee_9999", "pending", [MUG], "paypal_1", 5.0),
    },
}


def store_base(data: dict[str, Any] = STORE) -> BaseDB:
    return DOMAIN.tables_of(msgspec.convert(data, RetailDB))


@pytest.fixture
def db() -> Overlay:
    return store_base().overlay()


def call(db: Overlay, name: str, **arguments: Any) -> ToolResult:
    return DOMAIN.toolbox.call(db, name, arguments)


def ok(db: Overlay, name: str, **arguments: Any) -> Any:
    result = call(db, name, **arguments)
    assert not result.error, result.output
    return json.loads(result.output) if result.output.startswith("{") else result.output


def err(db: Overlay, name: str, **arguments: Any) -> str:
    result = call(db, name, **arguments)
    assert result.error, result.output
    return result.output


def order(db: Overlay, order_id: str) -> Order:
    return db.get("orders", order_id)


def balance(db: Overlay, method: str, user: str = "ann_lee_1234") -> float:
    card = db.get("users", user).payment_methods[method]
    assert isinstance(card, GiftCard)
    return card.balance


def tau2_hash(db: Overlay) -> str:
    """The hash formula written out over a materialised copy of the DB."""
    tables = {t: {k: to_plain(r) for k, r in db.items(t)} for t in db.base.tables}
    text = json.dumps(tables, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# -- lookups -------------------------------------------------------------------------------


def test_find_user_by_email_is_case_insensitive(db: Overlay) -> None:
    assert ok(db, "find_user_id_by_email", email="ann.LEE@EXAMPLE.com") == "ann_lee_1234"
    assert err(db, "find_user_id_by_email", email="nobody@example.com") == (
        "Error: User not found"
    )


def test_find_user_by_name_zip_first_match_and_exact_zip(db: Overlay) -> None:
    # Both users match the names case-insensitively; the first in DB order wins.
    got = ok(db, "find_user_id_by_name_zip", first_name="ANN", last_name="lee", zip="78701")
    assert got == "ann_lee_1234"
    assert err(db, "find_user_id_by_name_zip", first_name="Ann", last_name="Lee",
               zip="78701 ") == "Error: User not found"


def test_ids_are_plain_dict_keys(db: Overlay) -> None:
    assert err(db, "get_order_details", order_id="W1") == "Error: Order not found"
    assert err(db, "get_order_details", order_id=1) == "Error: Order not found"
    assert err(db, "get_order_details", order_id=["#W1"]) == "Error: unhashable type: 'list'"
    assert err(db, "get_user_details", user_id=None) == "Error: User not found"
    assert err(db, "get_item_details", item_id={"a": 1}) == "Error: unhashable type: 'dict'"
    assert err(db, "get_product_details", product_id="1001") == "Error: Product not found"


def test_item_details_and_product_types(db: Overlay) -> None:
    assert ok(db, "get_item_details", item_id="2002") == {
        "item_id": "2002", "options": {"size": "two"}, "available": True, "price": 7.5}
    assert err(db, "get_item_details", item_id="100") == "Error: Item not found"
    # A JSON string returned raw, keys sorted.
    result = call(db, "list_all_product_types")
    assert result.output == '{"Mug": "200", "Shirt": "100"}'


def test_order_output_lists_every_optional_field_as_null(db: Overlay) -> None:
    text = call(db, "get_order_details", order_id="#W3").output
    assert text.endswith(
        '"cancel_reason": null, "exchange_items": null, "exchange_new_items": null, '
        '"exchange_payment_method_id": null, "exchange_price_difference": null, '
        '"return_items": null, "return_payment_method_id": null}'
    )
    assert list(json.loads(text))[:7] == [
        "order_id", "user_id", "address", "items", "status", "fulfillments",
        "payment_history",
    ]


def test_payment_methods_put_source_first(db: Overlay) -> None:
    user = ok(db, "get_user_details", user_id="ann_lee_1234")
    assert list(user["payment_methods"]["credit_card_1"]) == [
        "source", "id", "brand", "last_four"]
    assert list(user["payment_methods"]["gift_card_1"]) == ["source", "id", "balance"]


def test_binding_errors_name_the_toolkit_class(db: Overlay) -> None:
    assert err(db, "get_user_details") == (
        "Error: RetailTools.get_user_details() missing 1 required positional argument: "
        "'user_id'"
    )
    assert err(db, "list_all_product_types", category="x") == (
        "Error: RetailTools.list_all_product_types() got an unexpected keyword argument "
        "'category'"
    )
    assert err(db, "think", thought="x") == "Error: Tool 'think' not found."


# -- cancel --------------------------------------------------------------------------------


def test_cancel_checks_status_before_reason(db: Overlay) -> None:
    assert err(db, "cancel_pending_order", order_id="#W3", reason="bored") == (
        "Error: Non-pending order cannot be cancelled"
    )
    assert err(db, "cancel_pending_order", order_id="#W1", reason="bored") == (
        "Error: Invalid reason"
    )
    # The reason is tested for membership in a set.
    assert err(db, "cancel_pending_order", order_id="#W1", reason=["x"]) == (
        "Error: unhashable type: 'list'"
    )


def test_cancel_refunds_gift_card_at_once(db: Overlay) -> None:
    out = ok(db, "cancel_pending_order", order_id="#W1", reason="ordered by mistake")
    assert out["status"] == "cancelled"
    assert out["cancel_reason"] == "ordered by mistake"
    assert out["payment_history"][-1] == {
        "transaction_type": "refund", "amount": 25.2, "payment_method_id": "gift_card_1"}
    assert balance(db, "gift_card_1") == 75.2


def test_cancel_after_payment_change_refunds_every_entry(db: Overlay) -> None:
    # History becomes [payment gift_card_1, payment credit_card_1, refund gift_card_1];
    # cancelling refunds all three, so gift_card_1 is credited three times in total.
    ok(db, "modify_pending_order_payment", order_id="#W1", payment_method_id="credit_card_1")
    assert balance(db, "gift_card_1") == 75.2
    out = ok(db, "cancel_pending_order", order_id="#W1", reason="no longer needed")
    assert [p["transaction_type"] for p in out["payment_history"]] == [
        "payment", "payment", "refund", "refund", "refund", "refund"]
    assert balance(db, "gift_card_1") == 125.6


def test_cancel_keeps_earlier_gift_card_credits_when_a_later_lookup_fails() -> None:
    data = json.loads(json.dumps(STORE))
    data["orders"]["#W1"]["payment_history"].append(
        {"transaction_type": "payment", "amount": 3.0, "payment_method_id": "gift_card_9"})
    db = store_base(data).overlay()
    assert err(db, "cancel_pending_order", order_id="#W1", reason="no longer needed") == (
        "Error: Payment method not found"
    )
    assert balance(db, "gift_card_1") == 75.2  # credited before the failing entry
    assert order(db, "#W1").status == "pending"


# -- modify pending order ------------------------------------------------------------------


def test_modify_items_gives_every_item_the_last_variant(db: Overlay) -> None:
    out = ok(db, "modify_pending_order_items", order_id="#W1", item_ids=["1001", "2001"],
             new_item_ids=["1003", "2002"], payment_method_id="gift_card_1")
    shirt, mug = out["items"][0], out["items"][2]
    assert (shirt["item_id"], mug["item_id"]) == ("1003", "2002")
    # Both take the price and options of the last new variant (the mug's).
    assert shirt["price"] == mug["price"] == 7.5
    assert shirt["options"] == mug["options"] == {"size": "two"}
    assert out["items"][1]["item_id"] == "1001"  # the duplicate not listed is untouched
    assert out["status"] == "pending (item modified)"
    diff = (29.3 - 10.1) + (7.5 - 5.0)
    assert out["payment_history"][-1] == {
        "transaction_type": "payment", "amount": abs(diff), "payment_method_id": "gift_card_1"}
    assert balance(db, "gift_card_1") == round(50.0 - diff, 2)


def test_modify_items_amount_is_not_rounded(db: Overlay) -> None:
    out = ok(db, "modify_pending_order_items", order_id="#W1", item_ids=["1001"],
             new_item_ids=["1003"], payment_method_id="credit_card_1")
    assert out["payment_history"][-1]["amount"] == 29.3 - 10.1 == 19.200000000000003


def test_modify_items_refund_and_zero_difference(db: Overlay) -> None:
    out = ok(db, "modify_pending_order_items", order_id="#W4", item_ids=["1002"],
             new_item_ids=["1001"], payment_method_id="gift_card_1")
    assert out["payment_history"][-1]["transaction_type"] == "refund"
    assert balance(db, "gift_card_1") == 60.1  # the refund is credited
    text = call(db, "modify_pending_order_items", order_id="#W5", item_ids=[],
                new_item_ids=[], payment_method_id="paypal_1").output
    # No pairs: a 0.0 refund (the amount passes through a float field).
    assert '{"transaction_type": "refund", "amount": 0.0, "payment_method_id": "paypal_1"}' in (
        text)


def test_modify_items_only_once_and_only_from_pending(db: Overlay) -> None:
    ok(db, "modify_pending_order_items", order_id="#W4", item_ids=["1002"],
       new_item_ids=["1001"], payment_method_id="credit_card_1")
    again = {"order_id": "#W4", "item_ids": ["1001"], "new_item_ids": ["1002"],
             "payment_method_id": "credit_card_1"}
    assert err(db, "modify_pending_order_items", **again) == (
        "Error: Non-pending order cannot be modified"
    )
    assert err(db, "cancel_pending_order", order_id="#W4", reason="no longer needed") == (
        "Error: Non-pending order cannot be cancelled"
    )
    # Address and payment changes accept any status containing "pending".
    ok(db, "modify_pending_order_address", order_id="#W4", **{**ADDRESS, "city": "Waco"})


def test_modify_items_check_order(db: Overlay) -> None:
    base = {"order_id": "#W1", "payment_method_id": "credit_card_1"}
    assert err(db, "modify_pending_order_items", item_ids=["1001", "1001", "1001"],
               new_item_ids=["1002"] * 3, **base) == "Error: 1001 not found"
    assert err(db, "modify_pending_order_items", item_ids=["1001"], new_item_ids=[],
               **base) == "Error: The number of items to be exchanged should match"
    assert err(db, "modify_pending_order_items", item_ids=["1001"], new_item_ids=["1001"],
               **base) == "Error: The new item id should be different from the old item id"
    assert err(db, "modify_pending_order_items", item_ids=["1001"], new_item_ids=["2002"],
               **base) == "Error: Variant not found"
    assert err(db, "modify_pending_order_items", item_ids=["1001"], new_item_ids=["1004"],
               **base) == "Error: New item 1004 not found or available"
    assert err(db, "modify_pending_order_items", item_ids=["1001"], new_item_ids=["1003"],
               order_id="#W1", payment_method_id="gift_card_2") == (
        "Error: Insufficient gift card balance to pay for the new item"
    )
    assert err(db, "modify_pending_order_items", item_ids=["1001"], new_item_ids=["1003"],
               order_id="#W1", payment_method_id="paypal_1") == (
        "Error: Payment method not found"
    )
    assert db.db_hash() == db.base.db_hash()  # nothing written by a refused call


def test_python_errors_for_wrongly_typed_lists(db: Overlay) -> None:
    base = {"order_id": "#W1", "payment_method_id": "credit_card_1"}
    assert err(db, "modify_pending_order_items", item_ids=None, new_item_ids=[], **base) == (
        "Error: 'NoneType' object is not iterable"
    )
    assert err(db, "modify_pending_order_items", item_ids=[], new_item_ids=7, **base) == (
        "Error: object of type 'int' has no len()"
    )
    assert err(db, "modify_pending_order_items", item_ids={"1001": 1}, new_item_ids=[],
               **base) == "Error: 'dict' object has no attribute 'count'"
    # A string is iterated per character and counted by substring.
    assert err(db, "modify_pending_order_items", item_ids="1001", new_item_ids=[], **base) == (
        "Error: 1 not found"
    )
    assert err(db, "modify_pending_order_items", item_ids=["1001"], new_item_ids=[["1003"]],
               **base) == "Error: unhashable type: 'list'"
    assert err(db, "find_user_id_by_email", email=5) == (
        "Error: 'int' object has no attribute 'lower'"
    )


def test_modify_payment_swaps_and_adjusts_both_gift_cards(db: Overlay) -> None:
    assert err(db, "modify_pending_order_payment", order_id="#W1",
               payment_method_id="gift_card_1") == (
        "Error: The new payment method should be different from the current one"
    )
    assert err(db, "modify_pending_order_payment", order_id="#W4",
               payment_method_id="gift_card_2") == (
        "Error: Insufficient gift card balance to pay for the order"
    )
    out = ok(db, "modify_pending_order_payment", order_id="#W4",
             payment_method_id="gift_card_1")
    assert out["status"] == "pending"
    assert out["payment_history"][1:] == [
        {"transaction_type": "payment", "amount": 20.2, "payment_method_id": "gift_card_1"},
        {"transaction_type": "refund", "amount": 20.2, "payment_method_id": "credit_card_1"},
    ]
    assert balance(db, "gift_card_1") == 29.8
    assert err(db, "modify_pending_order_payment", order_id="#W4",
               payment_method_id="credit_card_1") == (
        "Error: There should be exactly one payment for a pending order"
    )


def test_address_validation_counts_errors(db: Overlay) -> None:
    first = err(db, "modify_user_address", user_id="ann_lee_1234",
                **{**ADDRESS, "zip": 78701}).split("\n")[0]
    assert first == "Error: 1 validation error for UserAddress"
    first = err(db, "modify_pending_order_address", order_id="#W1",
                **{**ADDRESS, "zip": 78701, "address2": None}).split("\n")[0]
    assert first == "Error: 2 validation errors for UserAddress"
    # Status and existence are checked before the address is built.
    assert err(db, "modify_pending_order_address", order_id="#W2",
               **{**ADDRESS, "zip": 1}) == "Error: Non-pending order cannot be modified"
    assert err(db, "modify_user_address", user_id="nobody", **{**ADDRESS, "zip": 1}) == (
        "Error: User not found"
    )
    out = ok(db, "modify_user_address", user_id="ann_lee_1234", **{**ADDRESS, "zip": "00001"})
    assert out["address"]["zip"] == "00001"
    assert list(out["address"]) == ["address1", "address2", "city", "country", "state", "zip"]


# -- delivered orders ----------------------------------------------------------------------


def test_exchange_accepts_same_item_and_sorts(db: Overlay) -> None:
    out = ok(db, "exchange_delivered_order_items", order_id="#W2",
             item_ids=["2001", "1002"], new_item_ids=["2001", "1003"],
             payment_method_id="gift_card_1")
    assert out["status"] == "exchange requested"
    assert out["exchange_items"] == ["1002", "2001"]
    assert out["exchange_new_items"] == ["1003", "2001"]
    # Rounded to cents; the gift card is only checked, never charged here.
    assert out["exchange_price_difference"] == round(29.3 - 20.2, 2) == 9.1
    assert balance(db, "gift_card_1") == 50.0
    assert len(out["payment_history"]) == 1
    assert err(db, "exchange_delivered_order_items", order_id="#W2", item_ids=[],
               new_item_ids=[], payment_method_id="gift_card_1") == (
        "Error: Non-delivered order cannot be exchanged"
    )


def test_exchange_gift_card_must_cover_the_difference(db: Overlay) -> None:
    assert err(db, "exchange_delivered_order_items", order_id="#W2", item_ids=["1002"],
               new_item_ids=["1003"], payment_method_id="gift_card_2") == (
        "Error: Insufficient gift card balance to pay for the price difference"
    )


def test_exchange_messages_differ_from_modify(db: Overlay) -> None:
    base = {"order_id": "#W2", "payment_method_id": "credit_card_1"}
    assert err(db, "exchange_delivered_order_items", item_ids=["1001"], new_item_ids=["1002"],
               **base) == "Error: Number of 1001 not found."
    assert err(db, "exchange_delivered_order_items", item_ids=["1002"], new_item_ids=[],
               **base) == "Error: The number of items to be exchanged should match."
    assert err(db, "exchange_delivered_order_items", item_ids=["1002"], new_item_ids=["1003"],
               order_id="#W1", payment_method_id="credit_card_1") == (
        "Error: Non-delivered order cannot be exchanged"
    )


def test_exchange_of_nothing_stores_an_int_difference(db: Overlay) -> None:
    # With no pairs the difference is round(0, 2) == 0, an int, stored unvalidated.
    out = call(db, "exchange_delivered_order_items", order_id="#W2", item_ids=[],
               new_item_ids=[], payment_method_id="credit_card_1").output
    assert '"exchange_price_difference": 0,' in out
    assert order(db, "#W2").exchange_price_difference == 0
    assert db.db_hash() == tau2_hash(db)


def test_return_rules(db: Overlay) -> None:
    assert err(db, "return_delivered_order_items", order_id="#W2", item_ids=["2001"],
               payment_method_id="paypal_1") == "Error: Payment method not found"
    data = json.loads(json.dumps(STORE))
    data["users"]["ann_lee_1234"]["payment_methods"]["paypal_7"] = {
        "source": "paypal", "id": "paypal_7"}
    other = store_base(data).overlay()
    assert err(other, "return_delivered_order_items", order_id="#W2", item_ids=["2001"],
               payment_method_id="paypal_7") == (
        "Error: Payment method should be the original payment method"
    )
    # The method is checked before the items.
    assert err(db, "return_delivered_order_items", order_id="#W2", item_ids=["9"],
               payment_method_id="gift_card_2") == "Error: Some item not found"
    # Any gift card of the user is accepted; the list is stored sorted.
    out = ok(db, "return_delivered_order_items", order_id="#W2", item_ids=["2001", "1002"],
             payment_method_id="gift_card_2")
    assert out["status"] == "return requested"
    assert out["return_items"] == ["1002", "2001"]
    assert out["return_payment_method_id"] == "gift_card_2"


def test_return_of_nothing_is_accepted(db: Overlay) -> None:
    out = ok(db, "return_delivered_order_items", order_id="#W2", item_ids=[],
             payment_method_id="credit_card_1")
    assert out["return_items"] == []
    assert err(db, "return_delivered_order_items", order_id="#W2", item_ids=[],
               payment_method_id="credit_card_1") == (
        "Error: Non-delivered order cannot be returned"
    )


def test_writes_keep_the_tau2_hash_and_the_base(db: Overlay) -> None:
    ok(db, "modify_pending_order_payment", order_id="#W4", payment_method_id="gift_card_1")
    ok(db, "exchange_delivered_order_items", order_id="#W2", item_ids=["1002"],
       new_item_ids=["1003"], payment_method_id="credit_card_1")
    ok(db, "cancel_pending_order", order_id="#W1", reason="no longer needed")
    assert db.db_hash() == tau2_hash(db)
    assert db.base.verify_unchanged()


def test_calculate_delegates_to_the_shared_calculator(db: Overlay) -> None:
    pytest.importorskip("writ_async.environment.tau2.calc")
    assert ok(db, "calculate", expression="1 + 2.5") == "3.5"
    assert err(db, "calculate", expression="2 ** x") == (
        "Error: Invalid characters in expression"
    )


# -- schemas and domain --------------------------------------------------------------------


def test_schemas_match_tau2_tool_names_and_parameters() -> None:
    path = require(tau2_dir() / "retail" / "tools.json", "tau2-bench retail tools.json")
    want = json.loads(path.read_text())
    got = DOMAIN.toolbox.schemas()
    assert [t["function"]["name"] for t in got] == [t["function"]["name"] for t in want]

    def shape(tool: dict[str, Any]) -> Any:
        params = tool["function"]["parameters"]
        props = {
            k: (v["type"], v.get("items"), v["title"]) for k, v in params["properties"].items()
        }
        return list(params["properties"]), props, params.get("required")

    for mine, theirs in zip(got, want, strict=True):
        assert shape(mine) == shape(theirs), mine["function"]["name"]


def test_domain_record() -> None:
    assert DOMAIN.name == "retail"
    assert DOMAIN.toolbox.owner == "RetailTools"
    assert "transfer_to_human_agents" in DOMAIN.policy_text
    kinds = Counter(str(DOMAIN.toolbox.kind(n)) for n in DOMAIN.toolbox.names())
    assert kinds == {"read": 7, "write": 7, "generic": 2}


# -- generator -----------------------------------------------------------------------------


def test_generator_is_deterministic() -> None:
    a = msgspec.json.encode(generate(7, 0.3))
    assert a == msgspec.json.encode(generate(7, 0.3))
    assert a != msgspec.json.encode(generate(8, 0.3))


def test_generator_bytes_do_not_depend_on_the_string_hash_seed() -> None:
    # Set iteration order varies with PYTHONHASHSEED; another process must agree.
    script = (
        "import hashlib, msgspec; from domains.retail.generator import generate; "
        "print(hashlib.sha256(msgspec.json.encode(generate(3, 0.1))).hexdigest())"
    )
    expected = hashlib.sha256(msgspec.json.encode(generate(3, 0.1))).hexdigest()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env,
                             capture_output=True, text=True, check=True)
        assert out.stdout.strip() == expected


def test_generator_round_trips_through_json() -> None:
    db = generate(3, 0.5)
    data = msgspec.json.encode(db)
    again = msgspec.json.decode(data, type=RetailDB)
    assert msgspec.json.encode(again) == data
    # Float fields stay floats through the round trip (they hash differently from ints).
    cards = [m for u in again.users.values() for m in u.payment_methods.values()
             if isinstance(m, GiftCard)]
    assert cards and all(isinstance(c.balance, float) for c in cards)


@pytest.mark.parametrize("scale", [0.02, 0.3, 1.0, 2.5])
def test_generator_invariants(scale: float) -> None:
    db = generate(11, scale)
    assert len(db.users) == max(1, round(500 * scale))
    assert len(db.orders) == max(1, round(1000 * scale))
    check_invariants(db)


def test_generator_covers_every_status_at_full_scale() -> None:
    db = generate(0, 1.0)
    assert len(db.products) == 50
    statuses = Counter(o.status for o in db.orders.values())
    assert set(statuses) == {
        "pending", "processed", "delivered", "cancelled", "pending (item modified)",
        "exchange requested", "return requested",
    }


def check_invariants(db: RetailDB) -> None:
    item_ids = [v for p in db.products.values() for v in p.variants]
    assert len(set(item_ids) | set(db.products)) == len(item_ids) + len(db.products)
    listed = Counter(o for u in db.users.values() for o in u.orders)
    assert listed == Counter(list(db.orders))  # every order listed once, by its own user
    for user_id, user in db.users.items():
        assert user.user_id == user_id and user.payment_methods
        assert all(method_id == m.id for method_id, m in user.payment_methods.items())
        assert all(db.orders[o].user_id == user_id for o in user.orders)
    for order_id, order in db.orders.items():
        check_order(db, order_id, order)


def check_order(db: RetailDB, order_id: str, order: Order) -> None:
    assert order.order_id == order_id
    assert order_id.startswith("#W") and len(order_id) == 9 and order_id[2:].isdigit()
    methods = db.users[order.user_id].payment_methods
    assert all(p.payment_method_id in methods for p in order.payment_history)
    for item in order.items:
        variant = db.products[item.product_id].variants[item.item_id]
        assert (item.price, item.options, item.name) == (
            variant.price, variant.options, db.products[item.product_id].name)
    shipped = [i for f in order.fulfillments for i in f.item_ids]
    if order.status in ("processed", "delivered", "exchange requested", "return requested"):
        assert sorted(shipped) == sorted(i.item_id for i in order.items)
    if order.status in ("pending", "pending (item modified)"):
        assert not order.fulfillments
    paid = sum(p.amount if p.transaction_type == "payment" else -p.amount
               for p in order.payment_history)
    if order.status == "cancelled":
        assert abs(paid) < 1e-9
    else:
        assert abs(paid - sum(i.price for i in order.items)) < 1e-6
    if order.status == "exchange requested":
        assert order.exchange_items and order.exchange_new_items
        assert order.exchange_payment_method_id in methods
    if order.status == "return requested":
        assert order.return_items == sorted(order.return_items or [])
        assert order.return_payment_method_id in methods


def test_generated_db_works_with_the_tools() -> None:
    base = DOMAIN.generate_db(seed=5, scale=0.2)
    db = base.overlay()
    order_id, order_rec = next(
        (k, o) for k, o in db.items("orders") if o.status == "delivered")
    out = ok(db, "get_order_details", order_id=order_id)
    assert out["order_id"] == order_id
    user = ok(db, "find_user_id_by_email", email=db.get("users", order_rec.user_id).email)
    assert user == order_rec.user_id


# -- walks ---------------------------------------------------------------------------------


def walk(base: BaseDB, seed: int, steps: int) -> list[tuple[str, dict, ToolResult, str]]:
    rng = random.Random(seed)
    env = DOMAIN.environment(base)
    trace = []
    for _ in range(steps):
        name, arguments = DOMAIN.sample_call(env.overlay, rng)
        result = env.call(name, arguments)
        assert isinstance(result, ToolResult)
        trace.append((name, arguments, result, env.db_hash()))
    return trace


def test_walks_on_a_generated_db_only_produce_tool_results() -> None:
    base = DOMAIN.generate_db(seed=1, scale=0.3)
    results = [r for seed in range(30) for _, _, r, _ in walk(base, seed, 60)]
    errors = sum(r.error for r in results)
    assert 0.1 < errors / len(results) < 0.45
    assert base.verify_unchanged()


def test_walks_exercise_every_tool_successfully() -> None:
    base = DOMAIN.generate_db(seed=2, scale=0.5)
    succeeded = {name for seed in range(20) for name, _, r, _ in walk(base, seed, 80)
                 if not r.error}
    assert succeeded >= set(DOMAIN.toolbox.names()) - {"calculate"}


def test_walks_are_deterministic() -> None:
    base = DOMAIN.generate_db(seed=4, scale=0.2)
    one = [(n, a, r.output, h) for n, a, r, h in walk(base, 9, 50)]
    two = [(n, a, r.output, h) for n, a, r, h in walk(base, 9, 50)]
    assert one == two
    assert sample_call(base.overlay(), random.Random(3)) == sample_call(
        base.overlay(), random.Random(3))


def test_walks_on_the_tau2_db() -> None:
    path = require(tau2_dir() / "retail" / "db.json", "tau2-bench retail db.json")
    base = DOMAIN.load_db(path)
    for seed in range(5):
        walk(base, seed, 40)
    assert base.verify_unchanged()


# -- untrusted arguments -------------------------------------------------------------------

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False),
    st.sampled_from(["", "#W1", "#W2", "#W4", "1001", "1002", "1003", "2001", "2002",
                     "gift_card_1", "credit_card_1", "ann_lee_1234", "no longer needed"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=2),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(set(DOMAIN.toolbox.names()) - {"calculate"})),
       data=st.data())
def test_any_json_arguments_give_a_tool_result(name: str, data: st.DataObject) -> None:
    params = DOMAIN.toolbox.tools[name].params
    arguments = {p: data.draw(_values, label=p) for p in params}
    db = store_base().overlay()
    result = DOMAIN.toolbox.call(db, name, arguments)
    assert isinstance(result, ToolResult)
    assert db.db_hash() == tau2_hash(db)
