"""A seeded generator of retail databases shaped like tau2-bench's.

``generate(seed, scale)`` builds products with variants, users with addresses and payment
methods, and orders in every status the retail tools know, all from one
``random.Random(seed)``: the same seed and scale give byte-identical output. At scale 1.0
the sizes are tau2's (about 50 product types, 500 users, 1000 orders); users and orders
grow linearly with the scale, product types up to the size of the catalog.

Invariants (checked by the tests): every order's user exists and lists the order, every
order item is a real variant of its product at that variant's price (or, for orders whose
items were modified, of the new variant), every payment method an order mentions belongs
to its user, shipped orders carry fulfillments, and payments add up to the item prices.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

from domains.retail.catalog import (
    CARD_BRANDS,
    CITIES,
    FIRST_NAMES,
    LAST_NAMES,
    PRODUCT_TYPES,
    STREETS,
    ProductType,
)
from domains.retail.data_model import (
    CreditCard,
    Fulfillment,
    GiftCard,
    Order,
    OrderItem,
    OrderPayment,
    PaymentMethod,
    Paypal,
    Product,
    RetailDB,
    User,
    UserAddress,
    UserName,
    Variant,
)
from domains.retail.tools import CANCEL_REASONS

# Status mix: tau2's four stored statuses in its proportions, plus the states the write
# tools produce, so tasks can start from any of them.
STATUS_WEIGHTS: dict[str, int] = {
    "pending": 40,
    "delivered": 34,
    "processed": 10,
    "cancelled": 9,
    "pending (item modified)": 2,
    "exchange requested": 2,
    "return requested": 3,
}

# Which payment methods a user holds, with tau2-like frequencies.
WALLETS: tuple[tuple[tuple[str, ...], int], ...] = (
    (("gift_card",), 25), (("paypal",), 23), (("credit_card",), 19),
    (("gift_card", "paypal"), 9), (("credit_card", "gift_card"), 8),
    (("credit_card", "paypal"), 8), (("credit_card", "gift_card", "paypal"), 3),
    (("credit_card", "credit_card"), 2), (("credit_card", "credit_card", "paypal"), 1),
    (("credit_card", "credit_card", "gift_card", "paypal"), 1),
)


@dataclass
class _Ids:
    """Unique random digit strings, drawn from the generator's own RNG."""

    rng: random.Random
    used: set[str] = field(default_factory=set)

    def digits(self, n: int, prefix: str = "") -> str:
        """``prefix`` + ``n`` random digits (no leading zero, as in tau2), not returned before.

        When a prefix's space gets crowded (a very common name at a large scale), a digit
        is added rather than looping forever.
        """
        while True:
            for _ in range(32):
                value = (prefix + self.rng.choice("123456789")
                         + "".join(self.rng.choices("0123456789", k=n - 1)))
                if value not in self.used:
                    self.used.add(value)
                    return value
            n += 1


def generate(seed: int, scale: float = 1.0) -> RetailDB:
    """A retail database from ``seed``; ``scale`` 1.0 is tau2-bench's size."""
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    rng = random.Random(seed)
    ids = _Ids(rng)
    n_products = max(3, min(len(PRODUCT_TYPES), round(50 * scale)))
    products = _products(rng, ids, n_products)
    users = _users(rng, ids, max(1, round(500 * scale)))
    orders = _orders(rng, ids, products, users, max(1, round(1000 * scale)))
    return RetailDB(products=products, users=users, orders=orders)


# -- products ------------------------------------------------------------------------------


def _products(rng: random.Random, ids: _Ids, n: int) -> dict[str, Product]:
    kinds = rng.sample(PRODUCT_TYPES, n)
    out: dict[str, Product] = {}
    for kind in kinds:
        product_id = ids.digits(10)
        out[product_id] = Product(
            name=kind.name, product_id=product_id, variants=_variants(rng, ids, kind)
        )
    return out


def _variants(rng: random.Random, ids: _Ids, kind: ProductType) -> dict[str, Variant]:
    names = list(kind.options)
    combos = list(itertools.product(*(kind.options[name] for name in names)))
    chosen = rng.sample(combos, rng.randint(min(5, len(combos)), min(20, len(combos))))
    low, high = kind.price_range
    variants: dict[str, Variant] = {}
    for combo in chosen:
        item_id = ids.digits(10)
        variants[item_id] = Variant(
            item_id=item_id,
            options=dict(zip(names, combo, strict=True)),
            available=rng.random() < 0.64,
            price=round(rng.uniform(low, high), 2),
        )
    # At least one variant stays orderable, so every product can be exchanged into.
    if not any(v.available for v in variants.values()):
        rng.choice(list(variants.values())).available = True
    return variants


# -- users ---------------------------------------------------------------------------------


def _address(rng: random.Random) -> UserAddress:
    city, state, zip3 = rng.choice(CITIES)
    return UserAddress(
        address1=f"{rng.randint(100, 9999)} {rng.choice(STREETS)}",
        address2=rng.choice(("Suite", "Apt", "Unit")) + f" {rng.randint(1, 999)}"
        if rng.random() < 0.8 else "",
        city=city,
        country="USA",
        state=state,
        zip=zip3 + f"{rng.randint(0, 99):02d}",
    )


def _users(rng: random.Random, ids: _Ids, n: int) -> dict[str, User]:
    wallets = [w for w, _ in WALLETS]
    weights = [k for _, k in WALLETS]
    users: dict[str, User] = {}
    for _ in range(n):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        user_id = ids.digits(4, f"{first.lower()}_{last.lower()}_")
        email = ids.digits(4, f"{first.lower()}.{last.lower()}") + "@example.com"
        wallet = rng.choices(wallets, weights)[0]
        users[user_id] = User(
            user_id=user_id,
            name=UserName(first_name=first, last_name=last),
            address=_address(rng),
            email=email,
            payment_methods=_payment_methods(rng, ids, wallet),
            orders=[],
        )
    return users


def _payment_methods(
    rng: random.Random, ids: _Ids, wallet: tuple[str, ...]
) -> dict[str, PaymentMethod]:
    methods: list[PaymentMethod] = []
    for source in wallet:
        method_id = ids.digits(7, f"{source}_")
        if source == "credit_card":
            methods.append(CreditCard(
                id=method_id, brand=rng.choice(CARD_BRANDS),
                last_four="".join(rng.choices("0123456789", k=4)),
            ))
        elif source == "paypal":
            methods.append(Paypal(id=method_id))
        else:
            # Whole-dollar balances, as in tau2's data; floats, since the field is.
            methods.append(GiftCard(id=method_id, balance=float(rng.randint(0, 100))))
    rng.shuffle(methods)
    return {m.id: m for m in methods}


# -- orders --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Catalog:
    """Products flattened for drawing order items."""

    products: list[Product]
    available: dict[str, list[Variant]]

    @classmethod
    def of(cls, products: dict[str, Product]) -> _Catalog:
        return cls(
            products=list(products.values()),
            available={
                p.product_id: [v for v in p.variants.values() if v.available]
                for p in products.values()
            },
        )

    def item(self, rng: random.Random) -> OrderItem:
        product = rng.choice(self.products)
        variant = rng.choice(list(product.variants.values()))
        return _item_of(product, variant)

    def alternative(self, rng: random.Random, item: OrderItem) -> Variant | None:
        """An available variant of the item's product other than the item itself."""
        options = [v for v in self.available[item.product_id] if v.item_id != item.item_id]
        return rng.choice(options) if options else None


def _item_of(product: Product, variant: Variant) -> OrderItem:
    return OrderItem(
        name=product.name, product_id=product.product_id, item_id=variant.item_id,
        price=variant.price, options=dict(variant.options),
    )


FREQUENT_BUYER_SHARE = 0.03
FREQUENT_BUYER_WEIGHT = 9.0


def _orders(
    rng: random.Random, ids: _Ids, products: dict[str, Product], users: dict[str, User],
    n: int,
) -> dict[str, Order]:
    catalog = _Catalog.of(products)
    user_list = list(users.values())
    # About one user in eight has never ordered, as in tau2's data.
    buyers = [u for u in user_list if rng.random() >= 0.12] or user_list[:1]
    # A few frequent buyers hold many orders (up to ~20): the customers whose order is
    # found only by opening each of them (read-heavy tasks with a large evidence burden).
    appetite = [FREQUENT_BUYER_WEIGHT if rng.random() < FREQUENT_BUYER_SHARE else 1.0
                for _ in buyers]
    statuses = list(STATUS_WEIGHTS)
    weights = list(STATUS_WEIGHTS.values())
    orders: dict[str, Order] = {}
    for _ in range(n):
        user = rng.choices(buyers, appetite)[0]
        order_id = ids.digits(7, "#W")
        status = rng.choices(statuses, weights)[0]
        orders[order_id] = _order(rng, ids, catalog, user, order_id, status)
        user.orders.append(order_id)
    return orders


def _order(
    rng: random.Random, ids: _Ids, catalog: _Catalog, user: User, order_id: str, status: str
) -> Order:
    items = [catalog.item(rng) for _ in range(rng.randint(1, 5))]
    method_id = rng.choice(list(user.payment_methods))
    total = round(sum(item.price for item in items), 2)
    order = Order(
        order_id=order_id,
        user_id=user.user_id,
        # Most orders ship to the default address; the rest to an older one.
        address=_copy_address(user.address) if rng.random() < 0.8 else _address(rng),
        items=items,
        status=status,
        fulfillments=[],
        payment_history=[OrderPayment(
            transaction_type="payment", amount=total, payment_method_id=method_id
        )],
    )
    if status in ("processed", "delivered", "exchange requested", "return requested"):
        order.fulfillments = _fulfillments(rng, ids, items)
    if status == "cancelled":
        _cancel(rng, ids, order)
    elif status == "pending (item modified)" and not _modify_items(rng, catalog, order):
        order.status = "pending"  # no item had another available variant
    elif status == "exchange requested" and not _request_exchange(rng, catalog, user, order):
        order.status = "delivered"
    elif status == "return requested":
        _request_return(rng, user, order)
    return order


def _copy_address(address: UserAddress) -> UserAddress:
    return UserAddress(
        address1=address.address1, address2=address.address2, city=address.city,
        country=address.country, state=address.state, zip=address.zip,
    )


def _fulfillments(rng: random.Random, ids: _Ids, items: list[OrderItem]) -> list[Fulfillment]:
    item_ids = [item.item_id for item in items]
    # Larger orders sometimes ship in two parcels.
    if len(item_ids) >= 3 and rng.random() < 0.15:
        cut = rng.randint(1, len(item_ids) - 1)
        parts = [item_ids[:cut], item_ids[cut:]]
    else:
        parts = [item_ids]
    return [Fulfillment(tracking_id=[ids.digits(12)], item_ids=part) for part in parts]


def _cancel(rng: random.Random, ids: _Ids, order: Order) -> None:
    paid = order.payment_history[0]
    order.payment_history.append(OrderPayment(
        transaction_type="refund", amount=paid.amount, payment_method_id=paid.payment_method_id
    ))
    if rng.random() < 0.5:
        # As in tau2's stored data: cancelled after shipping, no reason on record.
        order.fulfillments = _fulfillments(rng, ids, order.items)
    else:
        # As cancel_pending_order leaves it: never shipped, reason recorded.
        order.cancel_reason = rng.choice(sorted(CANCEL_REASONS))


def _modify_items(rng: random.Random, catalog: _Catalog, order: Order) -> bool:
    """Swap one or two items for other variants, recording the price difference."""
    diff = 0.0
    changed = False
    for item in rng.sample(order.items, min(len(order.items), rng.randint(1, 2))):
        new = catalog.alternative(rng, item)
        if new is None:
            continue
        diff += new.price - item.price
        item.item_id, item.price, item.options = new.item_id, new.price, dict(new.options)
        changed = True
    if not changed:
        return False
    order.payment_history.append(OrderPayment(
        transaction_type="payment" if diff > 0 else "refund",
        amount=abs(diff),
        payment_method_id=order.payment_history[0].payment_method_id,
    ))
    return True


def _request_exchange(rng: random.Random, catalog: _Catalog, user: User, order: Order) -> bool:
    pairs: list[tuple[str, str]] = []
    diff = 0.0
    for item in rng.sample(order.items, min(len(order.items), rng.randint(1, 2))):
        new = catalog.alternative(rng, item)
        if new is not None:
            pairs.append((item.item_id, new.item_id))
            diff += new.price - item.price
    if not pairs:
        return False
    order.exchange_items = sorted(old for old, _ in pairs)
    order.exchange_new_items = sorted(new for _, new in pairs)
    order.exchange_payment_method_id = rng.choice(list(user.payment_methods))
    order.exchange_price_difference = round(diff, 2)
    return True


def _request_return(rng: random.Random, user: User, order: Order) -> None:
    count = rng.randint(1, len(order.items))
    order.return_items = sorted(item.item_id for item in rng.sample(order.items, count))
    gift_cards = [m.id for m in user.payment_methods.values() if isinstance(m, GiftCard)]
    original = order.payment_history[0].payment_method_id
    order.return_payment_method_id = (
        rng.choice(gift_cards) if gift_cards and rng.random() < 0.3 else original
    )
