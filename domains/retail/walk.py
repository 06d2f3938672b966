"""Plausible retail tool calls drawn from an episode's live state (walks, benchmarks).

``sample_call(db, rng)`` looks at the overlay as it is now and proposes one call: mostly
reads and writes an agent following the policy could make (real users, orders in the
right status, other available variants of the same product, the user's own payment
methods), and about 15% deliberately wrong calls (unknown ids, wrong status, bad reason,
missing or extra arguments, wrong argument types, tools that do not exist). Calls are
not guaranteed to succeed: a gift card may be short, an order may already have been
modified by an earlier call of the same walk. Only ``rng`` supplies randomness, so the
same seed over the same state gives the same call.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from typing import Any

from domains.retail.data_model import GiftCard, Order, User
from domains.retail.tools import CANCEL_REASONS
from writ_async.environment.overlay import BaseDB, Overlay

Call = tuple[str, dict[str, Any]]
Builder = Callable[[Overlay, random.Random], Call | None]

INVALID_SHARE = 0.15
_ORDER_TRIES = 24  # random orders inspected when looking for one in a given status


@functools.lru_cache(maxsize=8)
def _keys(base: BaseDB, table: str) -> tuple[str, ...]:
    # Retail tools never add or remove records, so the base's keys are the live keys.
    return tuple(base.tables[table])


def _any(db: Overlay, rng: random.Random, table: str) -> Any:
    key = rng.choice(_keys(db.base, table))
    return db.get(table, key)


def _order_where(db: Overlay, rng: random.Random, fits: Callable[[Order], bool]) -> Order | None:
    for _ in range(_ORDER_TRIES):
        order = _any(db, rng, "orders")
        if fits(order):
            return order
    return None


def _user_of(db: Overlay, order: Order) -> User:
    return db.get("users", order.user_id)


def _new_address(rng: random.Random) -> dict[str, str]:
    streets = ("Oak Hollow Road", "Bayview Court", "Mill Street", "Crescent Avenue")
    places = (("Denver", "CO", "802"), ("Austin", "TX", "787"), ("Columbus", "OH", "432"))
    city, state, zip3 = rng.choice(places)
    return {
        "address1": f"{rng.randint(10, 9999)} {rng.choice(streets)}",
        "address2": rng.choice(("", f"Apt {rng.randint(1, 400)}", f"Suite {rng.randint(1, 900)}")),
        "city": city,
        "state": state,
        "country": "USA",
        "zip": zip3 + f"{rng.randint(0, 99):02d}",
    }


def _alternative(db: Overlay, rng: random.Random, product_id: str, item_id: str) -> str | None:
    product = db.get("products", product_id)
    options = [
        v.item_id for v in product.variants.values() if v.available and v.item_id != item_id
    ]
    return rng.choice(options) if options else None


def _swaps(db: Overlay, rng: random.Random, order: Order) -> tuple[list[str], list[str]]:
    """Up to two (old, new) item pairs of the same product, as parallel lists."""
    old: list[str] = []
    new: list[str] = []
    for item in rng.sample(order.items, min(len(order.items), rng.randint(1, 2))):
        other = _alternative(db, rng, item.product_id, item.item_id)
        if other is not None:
            old.append(item.item_id)
            new.append(other)
    return old, new


def _method_for(rng: random.Random, user: User, amount: float) -> str:
    """A method of the user, preferring ones that can cover ``amount``."""
    fitting = [
        m.id for m in user.payment_methods.values()
        if not isinstance(m, GiftCard) or m.balance >= amount
    ]
    return rng.choice(fitting or list(user.payment_methods))


# -- reads ---------------------------------------------------------------------------------


def _find_by_email(db: Overlay, rng: random.Random) -> Call:
    user: User = _any(db, rng, "users")
    email = user.email.upper() if rng.random() < 0.2 else user.email
    return "find_user_id_by_email", {"email": email}


def _find_by_name_zip(db: Overlay, rng: random.Random) -> Call:
    user: User = _any(db, rng, "users")
    first, last = user.name.first_name, user.name.last_name
    if rng.random() < 0.2:
        first, last = first.lower(), last.lower()
    return "find_user_id_by_name_zip", {
        "first_name": first, "last_name": last, "zip": user.address.zip,
    }


def _user_details(db: Overlay, rng: random.Random) -> Call:
    return "get_user_details", {"user_id": _any(db, rng, "users").user_id}


def _order_details(db: Overlay, rng: random.Random) -> Call:
    return "get_order_details", {"order_id": _any(db, rng, "orders").order_id}


def _product_details(db: Overlay, rng: random.Random) -> Call:
    return "get_product_details", {"product_id": _any(db, rng, "products").product_id}


def _item_details(db: Overlay, rng: random.Random) -> Call:
    product = _any(db, rng, "products")
    return "get_item_details", {"item_id": rng.choice(list(product.variants))}


def _product_types(db: Overlay, rng: random.Random) -> Call:
    return "list_all_product_types", {}


def _calculate(db: Overlay, rng: random.Random) -> Call:
    order: Order = _any(db, rng, "orders")
    prices = [f"{item.price}" for item in order.items]
    if len(prices) == 1:
        prices.append(f"{rng.randint(1, 5)}")
        return "calculate", {"expression": " * ".join(prices)}
    return "calculate", {"expression": " + ".join(prices)}


def _transfer(db: Overlay, rng: random.Random) -> Call:
    summary = rng.choice((
        "Customer wants a refund for an order that was never delivered.",
        "Customer asks to change the email address on the account.",
        "Customer wants to combine two pending orders into one shipment.",
    ))
    return "transfer_to_human_agents", {"summary": summary}


# -- writes --------------------------------------------------------------------------------


def _cancel(db: Overlay, rng: random.Random) -> Call | None:
    order = _order_where(db, rng, lambda o: o.status == "pending")
    if order is None:
        return None
    reason = rng.choice(sorted(CANCEL_REASONS))
    return "cancel_pending_order", {"order_id": order.order_id, "reason": reason}


def _modify_order_address(db: Overlay, rng: random.Random) -> Call | None:
    order = _order_where(db, rng, lambda o: "pending" in o.status)
    if order is None:
        return None
    return "modify_pending_order_address", {"order_id": order.order_id, **_new_address(rng)}


def _modify_items(db: Overlay, rng: random.Random) -> Call | None:
    order = _order_where(db, rng, lambda o: o.status == "pending")
    if order is None:
        return None
    old, new = _swaps(db, rng, order)
    if not old:
        return None
    return "modify_pending_order_items", {
        "order_id": order.order_id, "item_ids": old, "new_item_ids": new,
        "payment_method_id": _method_for(rng, _user_of(db, order), 0.0),
    }


def _modify_payment(db: Overlay, rng: random.Random) -> Call | None:
    order = _order_where(
        db, rng, lambda o: "pending" in o.status and len(o.payment_history) == 1
        and len(_user_of(db, o).payment_methods) > 1,
    )
    if order is None:
        return None
    current = order.payment_history[0]
    user = _user_of(db, order)
    others = [m for m in user.payment_methods.values() if m.id != current.payment_method_id]
    covering = [
        m for m in others if not isinstance(m, GiftCard) or m.balance >= current.amount
    ]
    # Mostly a method that can pay; sometimes a gift card that falls short.
    pool = covering if covering and rng.random() < 0.85 else others
    if not pool:
        return None
    return "modify_pending_order_payment", {
        "order_id": order.order_id, "payment_method_id": rng.choice(pool).id,
    }


def _modify_user_address(db: Overlay, rng: random.Random) -> Call:
    user: User = _any(db, rng, "users")
    return "modify_user_address", {"user_id": user.user_id, **_new_address(rng)}


def _exchange(db: Overlay, rng: random.Random) -> Call | None:
    order = _order_where(db, rng, lambda o: o.status == "delivered")
    if order is None:
        return None
    old, new = _swaps(db, rng, order)
    if not old:
        return None
    return "exchange_delivered_order_items", {
        "order_id": order.order_id, "item_ids": old, "new_item_ids": new,
        "payment_method_id": _method_for(rng, _user_of(db, order), 0.0),
    }


def _return(db: Overlay, rng: random.Random) -> Call | None:
    order = _order_where(db, rng, lambda o: o.status == "delivered")
    if order is None:
        return None
    items = rng.sample(order.items, rng.randint(1, len(order.items)))
    user = _user_of(db, order)
    gift_cards = [m.id for m in user.payment_methods.values() if isinstance(m, GiftCard)]
    method = order.payment_history[0].payment_method_id
    if gift_cards and rng.random() < 0.3:
        method = rng.choice(gift_cards)
    return "return_delivered_order_items", {
        "order_id": order.order_id, "item_ids": [i.item_id for i in items],
        "payment_method_id": method,
    }


# Relative frequencies of the valid calls: reads dominate, as in real conversations.
VALID: tuple[tuple[Builder, int], ...] = (
    (_find_by_email, 6), (_find_by_name_zip, 3), (_user_details, 8), (_order_details, 12),
    (_product_details, 5), (_item_details, 4), (_product_types, 1), (_calculate, 3),
    (_transfer, 1), (_cancel, 6), (_modify_order_address, 4), (_modify_items, 6),
    (_modify_payment, 4), (_modify_user_address, 3), (_exchange, 6), (_return, 5),
)


# -- invalid calls -------------------------------------------------------------------------


def _unknown_order(db: Overlay, rng: random.Random) -> Call:
    order_id = "#W" + "".join(rng.choices("0123456789", k=7))
    if rng.random() < 0.3:
        order_id = _any(db, rng, "orders").order_id.lstrip("#")  # forgot the '#'
    tool = rng.choice(("get_order_details", "cancel_pending_order"))
    args: dict[str, Any] = {"order_id": order_id}
    if tool == "cancel_pending_order":
        args["reason"] = "no longer needed"
    return tool, args


def _wrong_status(db: Overlay, rng: random.Random) -> Call:
    order: Order = _any(db, rng, "orders")
    item_ids = [order.items[0].item_id]
    method = order.payment_history[0].payment_method_id
    return rng.choice((
        ("cancel_pending_order", {"order_id": order.order_id, "reason": "ordered by mistake"}),
        ("return_delivered_order_items",
         {"order_id": order.order_id, "item_ids": item_ids, "payment_method_id": method}),
        ("modify_pending_order_items", {
            "order_id": order.order_id, "item_ids": item_ids, "new_item_ids": item_ids,
            "payment_method_id": method}),
    ))


def _bad_reason(db: Overlay, rng: random.Random) -> Call:
    order: Order = _any(db, rng, "orders")
    reason = rng.choice(("changed my mind", "found a better price", ["no longer needed"]))
    return "cancel_pending_order", {"order_id": order.order_id, "reason": reason}


def _bad_types(db: Overlay, rng: random.Random) -> Call:
    order: Order = _any(db, rng, "orders")
    user = _user_of(db, order)
    return rng.choice((
        ("get_order_details", {"order_id": [order.order_id]}),
        ("get_user_details", {"user_id": None}),
        ("find_user_id_by_email", {"email": 12345}),
        ("modify_user_address", {**_new_address(rng), "user_id": user.user_id, "zip": 80202}),
        ("return_delivered_order_items", {
            "order_id": order.order_id, "item_ids": order.items[0].item_id,
            "payment_method_id": order.payment_history[0].payment_method_id}),
        ("exchange_delivered_order_items", {
            "order_id": order.order_id, "item_ids": None, "new_item_ids": [],
            "payment_method_id": order.payment_history[0].payment_method_id}),
    ))


def _bad_arguments(db: Overlay, rng: random.Random) -> Call:
    name, args = _order_details(db, rng)
    if rng.random() < 0.5:
        return name, {**args, "confirm": True}
    return "get_user_details", {}


def _unknown_payment(db: Overlay, rng: random.Random) -> Call:
    order: Order = _any(db, rng, "orders")
    return "modify_pending_order_payment", {
        "order_id": order.order_id, "payment_method_id": "credit_card_0000000",
    }


def _unknown_tool(db: Overlay, rng: random.Random) -> Call:
    name = rng.choice(("think", "cancel_order", "lookup_user"))
    return name, {"order_id": _any(db, rng, "orders").order_id}


INVALID: tuple[Builder, ...] = (
    _unknown_order, _wrong_status, _bad_reason, _bad_types, _bad_arguments,
    _unknown_payment, _unknown_tool,
)


def sample_call(db: Overlay, rng: random.Random) -> Call:
    """One plausible tool call (name, arguments) for the episode's current state."""
    if not all(_keys(db.base, table) for table in ("products", "users", "orders")):
        return "list_all_product_types", {}  # an empty table leaves nothing to refer to
    if rng.random() < INVALID_SHARE:
        call = rng.choice(INVALID)(db, rng)
        assert call is not None
        return call
    builders = [b for b, _ in VALID]
    weights = [w for _, w in VALID]
    call = rng.choices(builders, weights)[0](db, rng)
    # No order in the needed status was found: look one up instead.
    return call if call is not None else _order_details(db, rng)
