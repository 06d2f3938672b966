"""The retail tools, behaving exactly as tau2-bench's ``RetailTools`` do.

Each tool is a plain function over the episode's ``Overlay``. Outputs, error texts, the
order in which checks run, and what is already written when a later check fails all
follow tau2-bench (as recorded in ``shared/conformance``); the comments name every place
where that behaviour is surprising, since "fixing" any of them breaks the DB hash that the
benchmark grades on.

Reads use ``db.get``/``db.items``; a record is obtained with ``db.edit`` right before it is
changed, so a call that fails before its first write leaves the overlay untouched.
"""

from __future__ import annotations

import json
from typing import Any

from domains.retail.data_model import (
    GiftCard,
    Order,
    OrderItem,
    OrderPayment,
    PaymentMethod,
    Product,
    User,
    UserAddress,
    Variant,
)
from writ_async.environment.overlay import Overlay
from writ_async.environment.tau2 import pyops
from writ_async.environment.tau2.validation import STR, Field, Model, validate
from writ_async.environment.tools import generic, read, write
from writ_async.errors import ToolError

CANCEL_REASONS = frozenset({"no longer needed", "ordered by mistake"})

# tau2 builds the new address as a pydantic model, so bad values fail as a validation
# error of ``UserAddress`` (fields listed in declaration order, which sets the count).
USER_ADDRESS = Model(
    "UserAddress",
    tuple(Field(name, STR) for name in ("address1", "address2", "city", "country", "state", "zip")),
)


# -- lookups -------------------------------------------------------------------------------


def _order(db: Overlay, order_id: Any) -> Order:
    return db.fetch("orders", order_id, "Order not found")


def _user(db: Overlay, user_id: Any) -> User:
    return db.fetch("users", user_id, "User not found")


def _product(db: Overlay, product_id: Any) -> Product:
    return db.fetch("products", product_id, "Product not found")


def _variant(db: Overlay, product_id: Any, item_id: Any) -> Variant:
    variants = _product(db, product_id).variants
    pyops.require_hashable(item_id)
    variant = variants.get(item_id)
    if variant is None:
        raise ToolError("Variant not found")
    return variant


def _payment_method(db: Overlay, user_id: Any, method_id: Any) -> PaymentMethod:
    methods = _user(db, user_id).payment_methods
    pyops.require_hashable(method_id)
    method = methods.get(method_id)
    if method is None:
        raise ToolError("Payment method not found")
    return method


def _first_item(order: Order, item_id: Any) -> OrderItem:
    """The first item of the order with this id (tau2 always takes the first match)."""
    for item in order.items:
        if item.item_id == item_id:
            return item
    raise ToolError(f"Item {item_id} not found")


def _adjust_gift_card(db: Overlay, user_id: str, method_id: str, delta: float) -> None:
    """Add ``delta`` to a gift card; tau2 rounds the balance to cents after every change."""
    card = _user_for_edit(db, user_id).payment_methods[method_id]
    assert isinstance(card, GiftCard)
    card.balance = round(card.balance + delta, 2)


def _user_for_edit(db: Overlay, user_id: str) -> User:
    return db.fetch("users", user_id, "User not found", edit=True)


def _order_for_edit(db: Overlay, order_id: str) -> Order:
    return db.fetch("orders", order_id, "Order not found", edit=True)


def _check_counts(order: Order, item_ids: Any, message: str) -> None:
    """Each requested id must occur in the order at least as often as in the request.

    ``message`` is formatted with the offending id. ``item_ids`` is whatever the model
    sent: a string is iterated per character and counted by substring, as Python does.
    """
    present = [item.item_id for item in order.items]
    for item_id in pyops.iterate(item_ids):
        if pyops.count(item_ids, item_id) > present.count(item_id):
            raise ToolError(message.format(item_id))


def _price_difference(
    db: Overlay, order: Order, item_ids: Any, new_item_ids: Any, *, forbid_same: bool
) -> tuple[float, Variant | None]:
    """Sum of new minus old prices over the pairs, and the last new variant looked up.

    Starts from the int ``0``: with no pairs the difference stays an int, which is what
    tau2 stores (and hashes) in that case.
    """
    diff: float = 0
    variant: Variant | None = None
    for item_id, new_item_id in zip(item_ids, new_item_ids, strict=False):
        if forbid_same and item_id == new_item_id:
            raise ToolError("The new item id should be different from the old item id")
        item = _first_item(order, item_id)
        variant = _variant(db, item.product_id, new_item_id)
        if not variant.available:
            raise ToolError(f"New item {new_item_id} not found or available")
        diff += variant.price - item.price
    return diff, variant


def _address(**fields: Any) -> UserAddress:
    return UserAddress(**validate(USER_ADDRESS, fields))


# -- generic -------------------------------------------------------------------------------


@generic
def calculate(db: Overlay, expression: str) -> str:
    """Evaluate an arithmetic expression and return the result rounded to two decimals.

    Args:
        expression: The arithmetic to evaluate, e.g. '12.5 * 4 - 3'. Only digits, the
            operators + - * /, parentheses, dots and spaces are allowed.
    """
    from writ_async.environment.tau2.calc import (
        calculate as evaluate,  # shared with the airline domain
    )

    return evaluate(expression)


@generic
def transfer_to_human_agents(db: Overlay, summary: str) -> str:
    """Hand the customer over to a human agent, with a summary of their issue.

    Only for requests the available tools and the policy cannot resolve.

    Args:
        summary: A short summary of what the customer needs.
    """
    return "Transfer successful"


# -- reads ---------------------------------------------------------------------------------


@read
def find_user_id_by_email(db: Overlay, email: str) -> str:
    """Look up a customer's user id by email address (case-insensitive).

    Args:
        email: The customer's email address, e.g. 'jane.roe123@example.com'.
    """
    wanted: str | None = None
    for user_id, user in db.items("users"):
        # tau2 lowers the argument per user, so a non-string email fails only once there
        # is a first user; lowering it then, once, gives the same result faster.
        if wanted is None:
            wanted = pyops.lower(email)
        if user.email.lower() == wanted:
            return user_id
    raise ToolError("User not found")


@read
def find_user_id_by_name_zip(db: Overlay, first_name: str, last_name: str, zip: str) -> str:
    """Look up a customer's user id by first name, last name and zip code.

    Names match case-insensitively, the zip code exactly; the first matching customer wins.

    Args:
        first_name: The customer's first name, e.g. 'Jane'.
        last_name: The customer's last name, e.g. 'Roe'.
        zip: The zip code of the customer's default address, e.g. '02139'.
    """
    first: str | None = None
    last: str | None = None
    for user_id, user in db.items("users"):
        # Short-circuits like tau2's condition: last_name is only lowered when a first
        # name matched, so a bad last_name type fails only then. Each argument is
        # lowered once, at the first point tau2 would lower it.
        if first is None:
            first = pyops.lower(first_name)
        if user.name.first_name.lower() != first:
            continue
        if last is None:
            last = pyops.lower(last_name)
        if user.name.last_name.lower() == last and user.address.zip == zip:
            return user_id
    raise ToolError("User not found")


@read
def get_order_details(db: Overlay, order_id: str) -> Order:
    """Show an order: items, status, shipments, payments and any pending requests.

    Args:
        order_id: The order id, starting with '#', e.g. '#W1234567'.
    """
    return _order(db, order_id)


@read
def get_product_details(db: Overlay, product_id: str) -> Product:
    """Show a product type with all its variants, their options, prices and availability.

    Args:
        product_id: The product id, e.g. '4794339885'. Not the same thing as an item id.
    """
    return _product(db, product_id)


@read
def get_item_details(db: Overlay, item_id: str) -> Variant:
    """Show one variant item: its options, price and availability.

    Args:
        item_id: The item id, e.g. '1008292230'. Not the same thing as a product id.
    """
    for product in db.values("products"):
        pyops.require_hashable(item_id)  # checked per product, so only if one exists
        variant = product.variants.get(item_id)
        if variant is not None:
            return variant
    raise ToolError("Item not found")


@read
def get_user_details(db: Overlay, user_id: str) -> User:
    """Show a customer's profile: name, address, email, payment methods and order ids.

    Args:
        user_id: The user id, e.g. 'jane_roe_1234'.
    """
    return _user(db, user_id)


@read
def list_all_product_types(db: Overlay) -> str:
    """List every product type in the store with its product id."""
    # A name occurring twice keeps its last product id, as a dict built in order does.
    by_name = {product.name: product.product_id for product in db.values("products")}
    return json.dumps(by_name, sort_keys=True)


# -- writes --------------------------------------------------------------------------------


@write
def cancel_pending_order(db: Overlay, order_id: str, reason: str) -> Order:
    """Cancel a pending order and refund every payment made for it.

    Gift-card payments are credited back at once; other methods are refunded by the
    bank in 5 to 7 business days. Ask the customer for an explicit confirmation first.

    Args:
        order_id: The order id, starting with '#', e.g. '#W1234567'.
        reason: Either 'no longer needed' or 'ordered by mistake'.
    """
    order = _order(db, order_id)
    # The status is checked before the reason: a wrong status wins over a wrong reason.
    if order.status != "pending":
        raise ToolError("Non-pending order cannot be cancelled")
    pyops.require_hashable(reason)  # membership test in a set
    if reason not in CANCEL_REASONS:
        raise ToolError("Invalid reason")
    refunds: list[OrderPayment] = []
    # Every history entry is refunded, whatever its type, and gift cards are credited
    # inside the loop: a failing lookup for a later entry keeps the earlier credits.
    for payment in order.payment_history:
        refunds.append(OrderPayment(
            transaction_type="refund",
            amount=float(payment.amount),
            payment_method_id=payment.payment_method_id,
        ))
        method = _payment_method(db, order.user_id, payment.payment_method_id)
        if isinstance(method, GiftCard):
            _adjust_gift_card(db, order.user_id, payment.payment_method_id, payment.amount)
    order = _order_for_edit(db, order_id)
    order.status = "cancelled"
    order.cancel_reason = reason
    order.payment_history.extend(refunds)
    return order


@write
def exchange_delivered_order_items(
    db: Overlay, order_id: str, item_ids: list[str], new_item_ids: list[str],
    payment_method_id: str,
) -> Order:
    """Request an exchange of delivered items for other variants of the same products.

    The order becomes 'exchange requested' and the customer receives return instructions
    by email; the price difference is settled with the given payment method. Collect all
    items to exchange first: an order can be exchanged only once.

    Args:
        order_id: The order id, starting with '#', e.g. '#W1234567'.
        item_ids: Item ids in the order to exchange; repeat an id to exchange several
            units of it.
        new_item_ids: The replacement item ids, one per entry of item_ids and in the same
            positions, each an available variant of the same product.
        payment_method_id: The customer's payment method that pays or receives the
            price difference, e.g. 'gift_card_1234567' or 'paypal_1234567'.
    """
    order = _order(db, order_id)
    if order.status != "delivered":
        raise ToolError("Non-delivered order cannot be exchanged")
    _check_counts(order, item_ids, "Number of {} not found.")
    if pyops.length(item_ids) != pyops.length(new_item_ids):
        raise ToolError("The number of items to be exchanged should match.")
    # Unlike modify_pending_order_items, exchanging an item for itself is accepted.
    diff, _ = _price_difference(db, order, item_ids, new_item_ids, forbid_same=False)
    diff = round(diff, 2)
    method = _payment_method(db, order.user_id, payment_method_id)
    if isinstance(method, GiftCard) and method.balance < diff:
        raise ToolError("Insufficient gift card balance to pay for the price difference")
    # Only recorded: no payment entry and no balance change until the exchange happens.
    order = _order_for_edit(db, order_id)
    order.status = "exchange requested"
    order.exchange_items = pyops.sorted_ids(item_ids)
    order.exchange_new_items = pyops.sorted_ids(new_item_ids)
    order.exchange_payment_method_id = payment_method_id
    order.exchange_price_difference = diff
    return order


@write
def modify_pending_order_address(
    db: Overlay, order_id: str, address1: str, address2: str, city: str, state: str,
    country: str, zip: str,
) -> Order:
    """Change the shipping address of a pending order.

    Args:
        order_id: The order id, starting with '#', e.g. '#W1234567'.
        address1: Street address, e.g. '42 Elm Street'.
        address2: Apartment or suite, e.g. 'Suite 5', or '' if none.
        city: City, e.g. 'Springfield'.
        state: State code, e.g. 'IL'.
        country: Country, e.g. 'USA'.
        zip: Zip code, e.g. '62701'.
    """
    order = _order(db, order_id)
    # Any status containing 'pending' qualifies, 'pending (item modified)' included.
    if "pending" not in order.status:
        raise ToolError("Non-pending order cannot be modified")
    address = _address(
        address1=address1, address2=address2, city=city, state=state, country=country,
        zip=zip,
    )
    order = _order_for_edit(db, order_id)
    order.address = address
    return order


@write
def modify_pending_order_items(
    db: Overlay, order_id: str, item_ids: list[str], new_item_ids: list[str],
    payment_method_id: str,
) -> Order:
    """Swap items of a pending order for other variants of the same products.

    Settles the price difference with the given payment method and sets the order to
    'pending (item modified)', after which it can be neither cancelled nor modified
    again: gather every item to change before calling.

    Args:
        order_id: The order id, starting with '#', e.g. '#W1234567'.
        item_ids: Item ids in the order to change; repeat an id to change several units.
        new_item_ids: The replacement item ids, one per entry of item_ids and in the same
            positions, each a different, available variant of the same product.
        payment_method_id: The customer's payment method that pays or receives the
            price difference, e.g. 'gift_card_1234567' or 'credit_card_1234567'.
    """
    order = _order(db, order_id)
    # Exactly 'pending' here, unlike the address and payment tools.
    if order.status != "pending":
        raise ToolError("Non-pending order cannot be modified")
    _check_counts(order, item_ids, "{} not found")
    if pyops.length(item_ids) != pyops.length(new_item_ids):
        raise ToolError("The number of items to be exchanged should match")
    diff, last_variant = _price_difference(db, order, item_ids, new_item_ids, forbid_same=True)
    method = _payment_method(db, order.user_id, payment_method_id)
    # Compared against the unrounded difference.
    if isinstance(method, GiftCard) and method.balance < diff:
        raise ToolError("Insufficient gift card balance to pay for the new item")
    order = _order_for_edit(db, order_id)
    # The amount is abs(diff) unrounded (e.g. 19.19999999999999); a zero difference is
    # recorded as a 0.0 refund.
    order.payment_history.append(OrderPayment(
        transaction_type="payment" if diff > 0 else "refund",
        amount=float(abs(diff)),
        payment_method_id=payment_method_id,
    ))
    if isinstance(method, GiftCard):
        _adjust_gift_card(db, order.user_id, payment_method_id, -diff)
    for item_id, new_item_id in zip(item_ids, new_item_ids, strict=False):
        # Searched again after earlier swaps, so an id swapped in above can be picked up.
        item = _first_item(order, item_id)
        item.item_id = new_item_id
        # Every swapped item takes the price and options of the *last* new variant.
        assert last_variant is not None
        item.price = last_variant.price
        item.options = dict(last_variant.options)
    order.status = "pending (item modified)"
    return order


@write
def modify_pending_order_payment(db: Overlay, order_id: str, payment_method_id: str) -> Order:
    """Pay a pending order with a different payment method.

    The new method is charged the order total and the old one refunded (gift cards at
    once, other methods in 5 to 7 business days).

    Args:
        order_id: The order id, starting with '#', e.g. '#W1234567'.
        payment_method_id: The customer's payment method to pay with instead, e.g.
            'gift_card_1234567' or 'credit_card_1234567'.
    """
    order = _order(db, order_id)
    if "pending" not in order.status:
        raise ToolError("Non-pending order cannot be modified")
    method = _payment_method(db, order.user_id, payment_method_id)
    history = order.payment_history
    if len(history) != 1 or history[0].transaction_type != "payment":
        raise ToolError("There should be exactly one payment for a pending order")
    original = history[0]
    if original.payment_method_id == payment_method_id:
        raise ToolError("The new payment method should be different from the current one")
    amount = original.amount
    if isinstance(method, GiftCard) and method.balance < amount:
        raise ToolError("Insufficient gift card balance to pay for the order")
    order = _order_for_edit(db, order_id)
    # The status stays 'pending' with history [old payment, new payment, old refund],
    # which cancel_pending_order later refunds entry by entry.
    order.payment_history.extend([
        OrderPayment(
            transaction_type="payment", amount=amount, payment_method_id=payment_method_id
        ),
        OrderPayment(
            transaction_type="refund", amount=amount,
            payment_method_id=original.payment_method_id,
        ),
    ])
    if isinstance(method, GiftCard):
        _adjust_gift_card(db, order.user_id, payment_method_id, -amount)
    old_method = _payment_method(db, order.user_id, original.payment_method_id)
    if isinstance(old_method, GiftCard):
        _adjust_gift_card(db, order.user_id, original.payment_method_id, amount)
    return order


@write
def modify_user_address(
    db: Overlay, user_id: str, address1: str, address2: str, city: str, state: str,
    country: str, zip: str,
) -> User:
    """Change a customer's default address (existing orders keep theirs).

    Args:
        user_id: The user id, e.g. 'jane_roe_1234'.
        address1: Street address, e.g. '42 Elm Street'.
        address2: Apartment or suite, e.g. 'Suite 5', or '' if none.
        city: City, e.g. 'Springfield'.
        state: State code, e.g. 'IL'.
        country: Country, e.g. 'USA'.
        zip: Zip code, e.g. '62701'.
    """
    _user(db, user_id)
    address = _address(
        address1=address1, address2=address2, city=city, state=state, country=country,
        zip=zip,
    )
    user = _user_for_edit(db, user_id)
    user.address = address
    return user


@write
def return_delivered_order_items(
    db: Overlay, order_id: str, item_ids: list[str], payment_method_id: str
) -> Order:
    """Request a return of delivered items, refunded to the given payment method.

    The order becomes 'return requested' and the customer receives return instructions
    by email. The refund goes to the original payment method or to a gift card.

    Args:
        order_id: The order id, starting with '#', e.g. '#W1234567'.
        item_ids: Item ids in the order to return; repeat an id to return several units.
        payment_method_id: Where the refund goes: the order's original payment method or
            one of the customer's gift cards, e.g. 'gift_card_1234567'.
    """
    order = _order(db, order_id)
    if order.status != "delivered":
        raise ToolError("Non-delivered order cannot be returned")
    method = _payment_method(db, order.user_id, payment_method_id)
    # Any gift card of the user passes, not only the one originally paid with.
    if not isinstance(method, GiftCard) and payment_method_id != _original_method(order):
        raise ToolError("Payment method should be the original payment method")
    # An empty item list passes this check and is recorded as a return of nothing.
    _check_counts(order, item_ids, "Some item not found")
    order = _order_for_edit(db, order_id)
    order.status = "return requested"
    order.return_items = pyops.sorted_ids(item_ids)
    order.return_payment_method_id = payment_method_id
    return order


def _original_method(order: Order) -> str:
    if not order.payment_history:
        raise ToolError("list index out of range")
    return order.payment_history[0].payment_method_id


TOOLS = (
    calculate,
    cancel_pending_order,
    exchange_delivered_order_items,
    find_user_id_by_name_zip,
    find_user_id_by_email,
    get_order_details,
    get_product_details,
    get_item_details,
    get_user_details,
    list_all_product_types,
    modify_pending_order_address,
    modify_pending_order_items,
    modify_pending_order_payment,
    modify_user_address,
    return_delivered_order_items,
    transfer_to_human_agents,
)
