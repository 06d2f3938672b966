"""Retail task synthesizers: one customer's requests, simulated under tools and policy.

``write_intensive(base)`` prepares a synthesizer for ``writ_async.synthesis.driver``.
Each draft picks a customer, identifies them the way the policy demands (email, or name
and zip when that finds them), and carries out their requests one after another on the
episode's overlay: cancel a pending order with an accepted reason; change a pending
order's address, payment method or items (items last, once); return or exchange items of
a delivered order (once); change the default address. Refusals are requests the policy
forbids at that point: cancelling or changing an order that is no longer exactly
pending, returning an undelivered order, exchanging into an unavailable variant,
refunding to a method that is neither the original one nor a gift card.

Requests never depend on each other's order in a way an agent could get wrong: an order
cancelled, returned, exchanged or refused is used for nothing else, items are changed
last on an order, a gift card is only charged what it holds after every earlier charge,
and "ship it to my profile address" is never combined with a change of that address.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from writ_async.environment.domain import Environment
from writ_async.environment.overlay import BaseDB
from writ_async.synthesis.drafts import Call, Draft, Shape, Step, choose_step, execute
from writ_async.synthesis.wording import listing, pick

from .catalog import CITIES, STREETS
from .data_model import (
    CreditCard,
    GiftCard,
    Order,
    OrderItem,
    Paypal,
    User,
    UserAddress,
    Variant,
)
from .tools import CANCEL_REASONS

GENERATOR = "retail.write_intensive/1"
BRANDS = {"visa": "Visa card", "mastercard": "Mastercard", "amex": "American Express card",
          "discover": "Discover card"}

VALID_WEIGHTS = {"cancel": 1.0, "address": 0.8, "payment": 0.6, "items": 1.0,
                 "exchange": 1.0, "return": 1.0, "user_address": 0.5}
REFUSAL_WEIGHTS = {"refuse_cancel": 1.2, "refuse_return": 1.0, "refuse_modify": 0.8,
                   "refuse_exchange_unavailable": 1.0, "refuse_refund_method": 0.7}

REASON_WORDS = {
    "no longer needed": ("you no longer need it", "you don't need the items anymore",
                         "your plans changed and you have no use for it now"),
    "ordered by mistake": ("you ordered it by mistake", "you placed it by accident",
                           "it was ordered by mistake"),
}


def write_intensive(base: BaseDB) -> RetailWriteIntensive:
    return RetailWriteIntensive(base)


class RetailWriteIntensive:
    """Write-intensive retail tasks over one base database."""

    generator = GENERATOR

    def __init__(self, base: BaseDB) -> None:
        # A rough upper bound on how many requests each customer's orders can carry, so
        # that a draft starts from a customer who can plausibly make that many.
        orders, products = base.tables["orders"], base.tables["products"]

        def swappable(order: Order) -> bool:
            return any(v.available and v.item_id != item.item_id
                       for item in order.items if item.product_id in products
                       for v in products[item.product_id].variants.values())

        self.capacity: dict[int, tuple[str, ...]] = {}
        room: list[tuple[str, int]] = []
        for uid, user in base.tables["users"].items():
            own = [orders[o] for o in user.orders if o in orders]
            if not own:
                continue
            n = 1  # the default address
            for order in own:
                if order.status == "pending":
                    n += 1 + swappable(order) + (len(user.payment_methods) > 1)
                elif order.status == "delivered":
                    n += 1
            room.append((uid, n))
        self.room = room

    def users_for(self, n: int) -> tuple[str, ...]:
        found = self.capacity.get(n)
        if found is None:
            found = self.capacity[n] = tuple(uid for uid, r in self.room if r >= n)
        return found

    def draft(self, env: Environment, rng: random.Random, shape: Shape) -> Draft | None:
        users = self.users_for(shape.writes + shape.refusals)
        if not users:
            return None
        return _Session(env, rng, rng.choice(users)).run(shape)


def _money(amount: float) -> str:
    """An amount as the ``calculate`` tool would give it (rounded to cents)."""
    return str(round(amount, 2))


def _options(options: dict[str, str]) -> str:
    return ", ".join(f"{name} {value}" for name, value in options.items())


def _address_args(address: UserAddress) -> dict[str, str]:
    return {"address1": address.address1, "address2": address.address2,
            "city": address.city, "state": address.state, "country": address.country,
            "zip": address.zip}


def _address_words(a: dict[str, str]) -> str:
    second = f", {a['address2']}" if a["address2"] else ""
    return f"{a['address1']}{second}, {a['city']}, {a['state']} {a['zip']}, {a['country']}"


class _Session:
    """One draft: a customer, the overlay, and what the requests so far have used up."""

    def __init__(self, env: Environment, rng: random.Random, user_id: str) -> None:
        self.env = env
        self.db = env.overlay
        self.rng = rng
        self.user_id = user_id
        self.touched: dict[str, set[str]] = {}
        self.uses: dict[str, int] = {}
        self.charged: dict[str, float] = {}
        self.user_address_changed = False
        self.profile_address_used = False

    @property
    def user(self) -> User:
        return self.db.get("users", self.user_id)

    def orders(self, *statuses: str, free_of: tuple[str, ...] = ("*",)) -> list[Order]:
        out = []
        for oid in self.user.orders:
            order = self.db.get("orders", oid)
            if (order is not None and order.status in statuses
                    and not self.touched.get(oid, set()) & {"*", *free_of}):
                out.append(order)
        return out

    def touch(self, oid: str, *what: str) -> None:
        self.touched.setdefault(oid, set()).update(what)

    def run(self, shape: Shape) -> Draft | None:
        identity, known, unknown = self.identify()  # before any change to the address
        n = shape.writes + shape.refusals
        refused_at = set(self.rng.sample(range(n), shape.refusals))
        steps = []
        for i in range(n):
            step = self.refusal() if i in refused_at else self.valid()
            if step is None:
                return None
            steps.append(step)
        opening = ""
        if len(steps) > 1 and self.rng.random() < 0.5:
            opening = self.rng.choice((
                "You are contacting the store about several of your orders.",
                "You have a handful of things to fix with your orders today.",
                "You want to sort out a few order issues in one conversation.",
            ))
        return Draft(known_info=known, unknown_info=unknown, identity=[identity], steps=steps,
                     opening=opening)

    def identify(self) -> tuple[Call, str, str | None]:
        """How the agent finds the customer (the read), and what the customer knows."""
        rng = self.rng
        user = self.user
        first, last = user.name.first_name, user.name.last_name
        name = f"{first} {last}"
        by_zip = ("find_user_id_by_name_zip",
                  {"first_name": first, "last_name": last, "zip": user.address.zip})
        zip_works = self.env.call(*by_zip).output == self.user_id
        if zip_works and rng.random() < 0.6:
            identity = by_zip
            known = pick(rng, ("You are {name} and your zip code is {zip}.",
                               "Your name is {name}; you live in zip code {zip}.",
                               "You are {name}, zip code {zip}."),
                         name=name, zip=user.address.zip)
            unknown = rng.choice(("You do not remember your email address.",
                                  "You can't recall which email you signed up with.", None))
        else:
            identity = ("find_user_id_by_email", {"email": user.email})
            known = pick(rng, ("You are {name} and your email is {email}.",
                               "Your name is {name}. Your email address is {email}.",
                               "You are {name} ({email})."), name=name, email=user.email)
            unknown = None
        return identity, known, unknown

    def _choose(self, weights: dict[str, float],
                builders: dict[str, Callable[[], Step | None]]) -> Step | None:
        return choose_step(self.rng, self.uses, weights, builders)

    def valid(self) -> Step | None:
        return self._choose(VALID_WEIGHTS, {
            "cancel": self.cancel, "address": self.order_address, "payment": self.payment,
            "items": self.items, "exchange": self.exchange, "return": self.return_items,
            "user_address": self.user_address,
        })

    def refusal(self) -> Step | None:
        return self._choose(REFUSAL_WEIGHTS, {
            "refuse_cancel": self.refuse_cancel, "refuse_return": self.refuse_return,
            "refuse_modify": self.refuse_modify,
            "refuse_exchange_unavailable": self.refuse_exchange_unavailable,
            "refuse_refund_method": self.refuse_refund_method,
        })

    # -- shared pieces ----------------------------------------------------------------------

    def order_read(self, order: Order) -> Call:
        return ("get_order_details", {"order_id": order.order_id})

    def user_read(self) -> Call:
        return ("get_user_details", {"user_id": self.user_id})

    def method_label(self, method_id: str) -> str | None:
        """How the customer names one of their payment methods, if unambiguously."""
        methods = list(self.user.payment_methods.values())
        method = self.user.payment_methods.get(method_id)
        if isinstance(method, Paypal):
            same = [m for m in methods if isinstance(m, Paypal)]
            return "your PayPal account" if len(same) == 1 else None
        if isinstance(method, GiftCard):
            same = [m for m in methods if isinstance(m, GiftCard)]
            return "your gift card" if len(same) == 1 else None
        if isinstance(method, CreditCard):
            same = [m for m in methods if isinstance(m, CreditCard)
                    and (m.brand, m.last_four) == (method.brand, method.last_four)]
            brand = BRANDS.get(method.brand, f"{method.brand} card")
            return f"your {brand} ending in {method.last_four}" if len(same) == 1 else None
        return None

    def can_pay(self, method_id: str, amount: float) -> bool:
        """Whether the method can pay ``amount`` after every earlier charge of the task."""
        method = self.user.payment_methods.get(method_id)
        if not isinstance(method, GiftCard) or amount <= 0:
            return method is not None
        return method.balance - self.charged.get(method_id, 0.0) >= amount

    def charge(self, method_id: str, amount: float) -> None:
        if amount > 0:
            self.charged[method_id] = self.charged.get(method_id, 0.0) + amount

    def difference_payer(self, order: Order, diff: float) -> tuple[str, str, bool] | None:
        """Who pays or receives a price difference: (method id, words, needs the profile)."""
        original = order.payment_history[0].payment_method_id if order.payment_history else None
        options: list[tuple[str, str, bool]] = []
        for method_id in self.user.payment_methods:
            label = self.method_label(method_id)
            if label is None or not self.can_pay(method_id, diff):
                continue
            if method_id == original:
                options.append((method_id, rng_pick_original(self.rng, label), False))
            else:
                options.append((method_id, label, True))
        if not options:
            return None
        found = self.rng.choice(options)
        self.charge(found[0], diff)
        return found

    def new_address(self) -> dict[str, str]:
        rng = self.rng
        city, state, zip3 = rng.choice(CITIES)
        roll = rng.random()
        second = (f"Apt {rng.randint(1, 40)}{rng.choice('ABCD')}" if roll < 0.4
                  else f"Suite {rng.randint(100, 999)}" if roll < 0.6 else "")
        return {"address1": f"{rng.randint(10, 9999)} {rng.choice(STREETS)}",
                "address2": second, "city": city, "state": state, "country": "USA",
                "zip": f"{zip3}{rng.randint(0, 99):02d}"}

    def swappable(self, order: Order, available: bool = True
                  ) -> list[tuple[OrderItem, list[Variant]]]:
        """Items of the order (one per product in it) with the variants they could become:
        other variants of the same product, available or (for refusals) unavailable, each
        identified by its options."""
        products = [item.product_id for item in order.items]
        out = []
        for item in order.items:
            if products.count(item.product_id) != 1:
                continue
            product = self.db.get("products", item.product_id)
            if product is None:
                continue
            variants = list(product.variants.values())
            targets = [v for v in variants if v.item_id != item.item_id
                       and v.available == available and v.options != item.options
                       and sum(w.options == v.options for w in variants) == 1
                       and set(v.options) == set(item.options)]
            if targets:
                out.append((item, targets))
        return out

    def item_words(self, item: OrderItem, with_options: bool) -> str:
        if with_options and item.options:
            return f"the {item.name} ({_options(item.options)})"
        return f"the {item.name}"

    def change_words(self, pairs: list[tuple[OrderItem, Variant]]) -> str:
        """'the Hoodie (color black, size M) for the one with color olive and ...': the
        item as the customer sees it, and only the options that change."""
        rng = self.rng
        template = rng.choice(("{item} for the one with {new}", "{item} to {new}",
                               "{item} so that it has {new}"))
        detailed = rng.random() < 0.5
        parts = []
        for item, target in pairs:
            changed = {k: v for k, v in target.options.items() if item.options.get(k) != v}
            parts.append(template.format(item=self.item_words(item, detailed),
                                         new=_options(changed)))
        return "; ".join(parts) if len(parts) > 2 else listing(parts)

    # -- valid requests ---------------------------------------------------------------------

    def cancel(self) -> Step | None:
        candidates = [o for o in self.orders("pending") if o.order_id not in self.touched]
        if not candidates:
            return None
        rng = self.rng
        order = rng.choice(candidates)
        reason = rng.choice(sorted(CANCEL_REASONS))
        write = ("cancel_pending_order", {"order_id": order.order_id, "reason": reason})
        ask = pick(rng, ("you want to cancel order {oid} because {why}",
                         "you would like order {oid} cancelled: {why}",
                         "order {oid} should be cancelled, since {why}"),
                   oid=order.order_id, why=rng.choice(REASON_WORDS[reason]))
        history = order.payment_history
        communicate, lines = [], []
        if len(history) == 1 and rng.random() < 0.5:
            communicate = [str(history[0].amount)]
            lines = [pick(rng, ("Ask how much you will be refunded for {oid}.",
                                "You want to know the refund amount for {oid}."),
                          oid=order.order_id)]
        execute(self.env, write)
        self.touch(order.order_id, "*")
        return Step(kind="cancel_pending_order", reads=[self.order_read(order)], write=write,
                    ask=ask, instructions=lines, communicate=communicate,
                    note=f"cancel {order.order_id} ({reason})")

    def order_address(self) -> Step | None:
        candidates = self.orders("pending", free_of=("address", "items"))
        if not candidates:
            return None
        rng = self.rng
        order = rng.choice(candidates)
        reads = [self.order_read(order)]
        profile = _address_args(self.user.address)
        if (not self.user_address_changed and profile != _address_args(order.address)
                and rng.random() < 0.4):
            address = profile
            self.profile_address_used = True
            reads.append(self.user_read())
            where = rng.choice(("the default address on your profile",
                                "your address on file", "the address saved in your account"))
        else:
            address = self.new_address()
            where = _address_words(address)
        ask = pick(rng, ("you want order {oid} shipped to {where} instead",
                         "you need to change the shipping address of order {oid} to {where}",
                         "order {oid} should go to {where}"), oid=order.order_id, where=where)
        write = ("modify_pending_order_address", {"order_id": order.order_id, **address})
        execute(self.env, write)
        self.touch(order.order_id, "address")
        return Step(kind="modify_pending_order_address", reads=reads, write=write, ask=ask,
                    note=f"ship {order.order_id} elsewhere")

    def payment(self) -> Step | None:
        rng = self.rng
        candidates = []
        for order in self.orders("pending", free_of=("payment", "items")):
            history = order.payment_history
            if len(history) != 1 or history[0].transaction_type != "payment":
                continue
            targets = [m for m in self.user.payment_methods
                       if m != history[0].payment_method_id and self.method_label(m)
                       and self.can_pay(m, history[0].amount)]
            if targets:
                candidates.append((order, targets))
        if not candidates:
            return None
        order, targets = rng.choice(candidates)
        method_id = rng.choice(targets)
        self.charge(method_id, order.payment_history[0].amount)
        ask = pick(rng, ("you want to pay for order {oid} with {m} instead",
                         "you would like order {oid} charged to {m} rather than the current "
                         "method", "you want to switch the payment of order {oid} to {m}"),
                   oid=order.order_id, m=self.method_label(method_id))
        write = ("modify_pending_order_payment",
                 {"order_id": order.order_id, "payment_method_id": method_id})
        execute(self.env, write)
        self.touch(order.order_id, "payment")
        return Step(kind="modify_pending_order_payment",
                    reads=[self.order_read(order), self.user_read()], write=write, ask=ask,
                    note=f"pay {order.order_id} with {method_id}")

    def swap(self, order: Order) -> tuple[list[tuple[OrderItem, Variant]], float] | None:
        options = self.swappable(order)
        if not options:
            return None
        rng = self.rng
        k = min(len(options), rng.choice((1, 1, 2, 2, 3)))
        pairs = [(item, rng.choice(targets)) for item, targets in rng.sample(options, k)]
        diff = sum(v.price - item.price for item, v in pairs)
        return pairs, diff

    def items(self) -> Step | None:
        return self.change_items(pending=True)

    def exchange(self) -> Step | None:
        return self.change_items(pending=False)

    def change_items(self, pending: bool) -> Step | None:
        """Items of a pending order changed, or of a delivered order exchanged."""
        rng = self.rng
        if pending:
            candidates = self.orders("pending", free_of=("items",))
        else:
            candidates = [o for o in self.orders("delivered") if o.order_id not in self.touched]
        rng.shuffle(candidates)
        for order in candidates[:3]:
            found = self.swap(order)
            if found is None:
                continue
            pairs, diff = found
            payer = self.difference_payer(order, diff)
            if payer is None:
                continue
            method_id, label, needs_profile = payer
            break
        else:
            return None
        oid = order.order_id
        changes = self.change_words(pairs)
        if pending:
            ask = pick(rng, ("for your pending order {oid}, you want to change {c}",
                             "before order {oid} ships, you want to swap {c}",
                             "you want to modify order {oid}: change {c}"), oid=oid, c=changes)
            kind, tool = "modify_pending_order_items", "modify_pending_order_items"
        else:
            ask = pick(rng, ("you received order {oid} and want to exchange {c}",
                             "from your delivered order {oid}, you want to exchange {c}",
                             "you would like to exchange {c} from order {oid}"),
                       oid=oid, c=changes)
            kind, tool = "exchange_delivered_order_items", "exchange_delivered_order_items"
        ask += ". " + pick(rng, ("Any price difference should go through {m}.",
                                 "Use {m} for the price difference.",
                                 "You want {m} used for any difference in price."), m=label)
        write = (tool, {"order_id": oid, "item_ids": [item.item_id for item, _ in pairs],
                        "new_item_ids": [v.item_id for _, v in pairs],
                        "payment_method_id": method_id})
        reads = [self.order_read(order)]
        for item, _ in pairs:
            read = ("get_product_details", {"product_id": item.product_id})
            if read not in reads:
                reads.append(read)
        if needs_profile:
            reads.append(self.user_read())
        communicate, lines = [], []
        if round(diff, 2) != 0 and rng.random() < 0.6:
            communicate = [_money(abs(diff))]
            lines = [pick(rng, ("Ask the agent for the price difference of the change to "
                                "{oid}.", "You want to know how much the change to {oid} "
                                "costs or refunds you."), oid=oid)]
        lines.append(pick(rng, ("This is everything you want to change on {oid}.",
                                "When asked, confirm these are all the items to change on "
                                "{oid}."), oid=oid))
        execute(self.env, write)
        self.touch(oid, "items" if pending else "*")
        return Step(kind=kind, reads=reads, write=write, ask=ask, instructions=lines,
                    communicate=communicate,
                    note=f"{'modify' if pending else 'exchange'} {len(pairs)} items of {oid} "
                         f"({diff:+.2f})")

    def return_items(self) -> Step | None:
        rng = self.rng
        candidates = [o for o in self.orders("delivered") if o.order_id not in self.touched
                      and o.payment_history]
        if not candidates:
            return None
        order = rng.choice(candidates)
        products = [item.product_id for item in order.items]
        single = [item for item in order.items if products.count(item.product_id) == 1]
        if single and rng.random() < 0.75:
            chosen = rng.sample(single, rng.randint(1, len(single)))
            what = listing([self.item_words(item, False) for item in chosen])
            if len(chosen) == len(order.items):
                what = rng.choice((what, "everything"))
        else:
            chosen = list(order.items)
            what = rng.choice(("everything", "all the items"))
        original = order.payment_history[0].payment_method_id
        gifts = [m for m, method in self.user.payment_methods.items()
                 if isinstance(method, GiftCard) and m != original and self.method_label(m)]
        reads = [self.order_read(order)]
        if gifts and rng.random() < 0.35:
            method_id = gifts[0]
            to = "your gift card"
            reads.append(self.user_read())
        elif original in self.user.payment_methods:
            method_id = original
            to = rng.choice(("the original payment method", "the card or account you paid "
                             "with", "wherever you paid from"))
        else:
            return None
        ask = pick(rng, ("you want to return {what} from order {oid}, with the refund to {to}",
                         "order {oid} arrived, and you would like to return {what}; refund "
                         "it to {to}",
                         "you are sending back {what} from order {oid} and want the money "
                         "on {to}"), what=what, oid=order.order_id, to=to)
        refund = sum(item.price for item in chosen)
        communicate, lines = [], []
        if rng.random() < 0.6:
            communicate = [_money(refund)]
            lines = [pick(rng, ("Ask how much you will get back for the return from {oid}.",
                                "You want to know the total refund for the items from "
                                "{oid}."), oid=order.order_id)]
        write = ("return_delivered_order_items",
                 {"order_id": order.order_id, "item_ids": [i.item_id for i in chosen],
                  "payment_method_id": method_id})
        execute(self.env, write)
        self.touch(order.order_id, "*")
        return Step(kind="return_delivered_order_items", reads=reads, write=write, ask=ask,
                    instructions=lines, communicate=communicate,
                    note=f"return {len(chosen)} items of {order.order_id} to {method_id}")

    def user_address(self) -> Step | None:
        if self.user_address_changed or self.profile_address_used:
            return None
        rng = self.rng
        address = self.new_address()
        ask = pick(rng, ("you moved, and want the default address on your account changed "
                         "to {a}", "you want your profile address updated to {a}",
                         "your new home address is {a}, and you want it saved as your "
                         "default address"), a=_address_words(address))
        lines = [rng.choice(("This is only about your profile; existing orders stay as they "
                             "are unless you say otherwise.",
                             "Your existing orders do not need the new address."))]
        write = ("modify_user_address", {"user_id": self.user_id, **address})
        execute(self.env, write)
        self.user_address_changed = True
        return Step(kind="modify_user_address", reads=[], write=write, ask=ask,
                    instructions=lines, note="change default address")

    # -- refusals ---------------------------------------------------------------------------

    def refused(self, kind: str, order: Order, reads: list[Call], ask: str, if_refused: str,
                assertion: str, note: str) -> Step:
        self.touch(order.order_id, "*")
        return Step(kind=kind, reads=reads, write=None, ask=ask, instructions=[if_refused],
                    assertions=[assertion], note=note)

    def refuse_cancel(self) -> Step | None:
        # Orders already changed in this task ("pending (item modified)") count too.
        candidates = self.orders("processed", "delivered", "pending (item modified)",
                                 free_of=())
        if not candidates:
            return None
        rng = self.rng
        order = rng.choice(candidates)
        reason = rng.choice(sorted(CANCEL_REASONS))
        ask = pick(rng, ("you want to cancel order {oid} because {why}",
                         "you would like order {oid} cancelled, as {why}"),
                   oid=order.order_id, why=rng.choice(REASON_WORDS[reason]))
        if_refused = pick(rng, ("If the agent says order {oid} can no longer be cancelled, "
                                "accept it and do not ask for a return or anything else "
                                "instead.", "Should cancelling {oid} be impossible, leave "
                                "the order as it is."), oid=order.order_id)
        return self.refused("refuse_cancel_order", order, [self.order_read(order)], ask,
                            if_refused, f"Agent should not cancel order {order.order_id}: its "
                            f"status is '{order.status}', and only pending orders can be "
                            "cancelled.", f"refuse cancel {order.order_id} ({order.status})")

    def refuse_return(self) -> Step | None:
        candidates = [o for o in self.orders("pending", "processed")
                      if o.order_id not in self.touched]
        if not candidates:
            return None
        rng = self.rng
        order = rng.choice(candidates)
        item = rng.choice(order.items)
        ask = pick(rng, ("you want to return {item} from order {oid}",
                         "you would like to send back {item} from order {oid} for a refund"),
                   item=self.item_words(item, False), oid=order.order_id)
        if_refused = pick(rng, ("If the agent says the order cannot be returned yet, accept "
                                "it; do not cancel or change the order instead.",
                                "If a return is not possible, keep the order as it is."))
        return self.refused("refuse_return_order", order, [self.order_read(order)], ask,
                            if_refused, f"Agent should not return items of order "
                            f"{order.order_id}: its status is '{order.status}', and only "
                            "delivered orders can be returned.",
                            f"refuse return from {order.order_id} ({order.status})")

    def refuse_modify(self) -> Step | None:
        candidates = [o for o in self.orders("processed", "delivered")
                      if o.order_id not in self.touched]
        if not candidates:
            return None
        rng = self.rng
        order = rng.choice(candidates)
        address = self.new_address()
        ask = pick(rng, ("you want order {oid} shipped to {a} instead",
                         "you need to change the shipping address of order {oid} to {a}"),
                   oid=order.order_id, a=_address_words(address))
        if_refused = ("If the agent says the address of that order can no longer be changed, "
                      "accept it.")
        return self.refused("refuse_modify_order", order, [self.order_read(order)], ask,
                            if_refused, f"Agent should not change the address of order "
                            f"{order.order_id}: its status is '{order.status}', and only "
                            "pending orders can be modified.",
                            f"refuse address change of {order.order_id} ({order.status})")

    def refuse_exchange_unavailable(self) -> Step | None:
        rng = self.rng
        candidates = [(o, item, targets) for o in self.orders("delivered")
                      if o.order_id not in self.touched
                      for item, targets in self.swappable(o, available=False)]
        if not candidates:
            return None
        order, item, targets = rng.choice(candidates)
        target = rng.choice(targets)
        ask = pick(rng, ("you received order {oid} and want to exchange {c}",
                         "you would like to exchange {c} from order {oid}"),
                   oid=order.order_id, c=self.change_words([(item, target)]))
        if_refused = pick(rng, (
            "If that exact variant is not available, keep your item; you do not want any "
            "other option.", "You only want that specific variant: if it cannot be had, "
            "leave the order as it is."))
        return self.refused(
            "refuse_exchange_unavailable", order,
            [self.order_read(order), ("get_product_details", {"product_id": item.product_id})],
            ask, if_refused,
            f"Agent should not exchange the {item.name} of order {order.order_id}: the "
            f"requested variant ({_options(target.options)}) is not available.",
            f"refuse exchange into unavailable {target.item_id}")

    def refuse_refund_method(self) -> Step | None:
        rng = self.rng
        candidates = []
        for order in self.orders("delivered"):
            if order.order_id in self.touched or not order.payment_history:
                continue
            original = order.payment_history[0].payment_method_id
            others = [m for m, method in self.user.payment_methods.items()
                      if m != original and not isinstance(method, GiftCard)
                      and self.method_label(m)]
            if others:
                candidates.append((order, others))
        if not candidates:
            return None
        order, others = rng.choice(candidates)
        method_id = rng.choice(others)
        item = rng.choice(order.items)
        label = self.method_label(method_id)
        ask = pick(rng, ("you want to return {item} from order {oid}, but only if the refund "
                         "goes to {m}",
                         "you would like to send back {item} from order {oid} and have the "
                         "money put on {m}"), item=self.item_words(item, False),
                   oid=order.order_id, m=label)
        if_refused = pick(rng, (
            "You want the refund on {m} and nowhere else; if that is not possible, keep the "
            "item.", "If the refund cannot go to {m}, you would rather not return anything."),
            m=label)
        return self.refused(
            "refuse_refund_method", order, [self.order_read(order), self.user_read()], ask,
            if_refused,
            f"Agent should not return items of order {order.order_id} with the refund to "
            f"{method_id}: refunds go to the original payment method or a gift card.",
            f"refuse refund of {order.order_id} to {method_id}")


def rng_pick_original(rng: random.Random, label: str) -> str:
    return rng.choice(("the payment method you used for the order", label,
                       "the same method you paid with"))

