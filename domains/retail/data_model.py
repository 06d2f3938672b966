"""The retail database as msgspec Structs.

Field order is the order tau2-bench dumps its records in (visible in tool outputs), and
every optional field of an order is present as ``None`` because tau2's DB hash includes
it. Payment methods are a union tagged by ``source``; msgspec writes the tag first, which
is where tau2 puts it. Structs are not validated on assignment: tools store what tau2
would store, including an ``int`` where a float field would normally hold a float.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec


class Record(msgspec.Struct, kw_only=True):
    """Base of every stored record (plain mutable Structs)."""


# -- products ------------------------------------------------------------------------------


class Variant(Record):
    """One purchasable variant of a product.

    Args:
        item_id: The variant's item id (10 digits).
        options: Option name to value, e.g. {"color": "blue", "size": "M"}.
        available: Whether the variant can be ordered now.
        price: Unit price in dollars.
    """

    item_id: str
    options: dict[str, str]
    available: bool
    price: float


class Product(Record):
    """A product type and its variants.

    Args:
        name: Product type name, e.g. "T-Shirt".
        product_id: The product id (10 digits, unrelated to item ids).
        variants: Variants keyed by item id.
    """

    name: str
    product_id: str
    variants: dict[str, Variant]


# -- users ---------------------------------------------------------------------------------


class UserName(Record):
    """A customer's name.

    Args:
        first_name: Given name.
        last_name: Family name.
    """

    first_name: str
    last_name: str


class UserAddress(Record):
    """A postal address (users' default address and orders' shipping address).

    Args:
        address1: First address line.
        address2: Second address line, possibly empty.
        city: City.
        country: Country.
        state: State code.
        zip: Zip code (a string, leading zeros matter).
    """

    address1: str
    address2: str
    city: str
    country: str
    state: str
    zip: str


class CreditCard(Record, tag_field="source", tag="credit_card"):
    """A credit card on file.

    Args:
        id: Payment method id, e.g. "credit_card_1234567".
        brand: Card brand, e.g. "visa".
        last_four: Last four digits of the card number.
    """

    source: ClassVar[str] = "credit_card"
    id: str
    brand: str
    last_four: str


class Paypal(Record, tag_field="source", tag="paypal"):
    """A linked PayPal account.

    Args:
        id: Payment method id, e.g. "paypal_1234567".
    """

    source: ClassVar[str] = "paypal"
    id: str


class GiftCard(Record, tag_field="source", tag="gift_card"):
    """A store gift card.

    Args:
        id: Payment method id, e.g. "gift_card_1234567".
        balance: Remaining balance in dollars, rounded to cents after every change.
    """

    source: ClassVar[str] = "gift_card"
    id: str
    balance: float


PaymentMethod = CreditCard | Paypal | GiftCard


class User(Record):
    """A customer.

    Args:
        user_id: The user id, e.g. "sara_doe_4960".
        name: First and last name.
        address: Default address.
        email: Email address.
        payment_methods: Payment methods keyed by their id.
        orders: The user's order ids, oldest first.
    """

    user_id: str
    name: UserName
    address: UserAddress
    email: str
    payment_methods: dict[str, PaymentMethod]
    orders: list[str]


# -- orders --------------------------------------------------------------------------------


class OrderItem(Record):
    """One unit of a variant in an order.

    Args:
        name: Product type name.
        product_id: The product the variant belongs to.
        item_id: The variant's item id.
        price: Unit price paid.
        options: The variant's options.
    """

    name: str
    product_id: str
    item_id: str
    price: float
    options: dict[str, str]


class Fulfillment(Record):
    """A shipment of some of an order's items.

    Args:
        tracking_id: Carrier tracking ids.
        item_ids: Item ids in this shipment.
    """

    tracking_id: list[str]
    item_ids: list[str]


class OrderPayment(Record):
    """One money movement of an order.

    Args:
        transaction_type: "payment" or "refund".
        amount: Amount in dollars (not rounded by the tools that compute it).
        payment_method_id: The user's payment method it went to or came from.
    """

    transaction_type: str
    amount: float
    payment_method_id: str


class Order(Record):
    """An order and what has been requested on it.

    The fields after ``payment_history`` are set by the write tools (cancel, exchange,
    return) and are ``None`` otherwise; they are always part of the hash.

    Args:
        order_id: The order id, '#W' and 7 digits.
        user_id: The ordering user.
        address: Shipping address.
        items: Ordered items, one entry per unit.
        status: pending, processed, delivered, cancelled, pending (item modified),
            exchange requested or return requested.
        fulfillments: Shipments (empty while pending).
        payment_history: Payments and refunds in order.
        cancel_reason: Why the order was cancelled.
        exchange_items: Old item ids of a requested exchange, sorted.
        exchange_new_items: New item ids of a requested exchange, sorted.
        exchange_payment_method_id: Method paying or receiving the exchange difference.
        exchange_price_difference: New minus old price of the exchange, to cents.
        return_items: Item ids of a requested return, sorted.
        return_payment_method_id: Method receiving the return refund.
    """

    order_id: str
    user_id: str
    address: UserAddress
    items: list[OrderItem]
    status: str
    fulfillments: list[Fulfillment]
    payment_history: list[OrderPayment]
    cancel_reason: str | None = None
    exchange_items: list[str] | None = None
    exchange_new_items: list[str] | None = None
    exchange_payment_method_id: str | None = None
    exchange_price_difference: float | None = None
    return_items: list[str] | None = None
    return_payment_method_id: str | None = None


class RetailDB(Record):
    """The three tables of tau2-bench's retail ``db.json``, in its key order."""

    products: dict[str, Product]
    users: dict[str, User]
    orders: dict[str, Order]
