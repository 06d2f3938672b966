"""Retail read-heavy task synthesizers: one write, fixed only by comparing read evidence.

``read_heavy(base)`` prepares a synthesizer for ``writ_async.synthesis.driver``. Its
requests are of three families, each proved on the overlay through the domain's own read
tools (``get_user_details``, ``get_order_details``, ``get_product_details``, their JSON
output parsed):

* **order by item**: "return (or exchange) the <product, with some of its options> from
  whichever of my orders contains it". Every order in the profile is opened; the
  described item must occur in exactly one of them (whatever its status), once, and
  that order must be delivered. Burden: the lookup, the profile, every order (and the
  product, for an exchange).
* **variant by criterion**: "change the <product> in my pending order to the version
  with <options> that is in stock" or "... to the cheapest in-stock version with
  <options>", for one or several items; the order is named by its id or as "my pending
  order with the <product>" (then every order is opened). Among the product's variants
  (``get_product_details``) other than the current one, those matching the options and
  available are the candidates; exactly one must qualify (or be cheapest). Burden: the
  lookup, the order (or the profile and every order), one product per changed item, and
  the profile when the difference is paid with another method.
* **pending order by property**: "cancel my pending order that <contains the X, has N
  items, was paid with my PayPal, ships to <city>>", unique among every order whose
  status is pending (modified ones included). Burden: the lookup, the profile, every
  order.

A target burden is reached by choosing the user (how many orders they have) and the
number of items changed. Mixed tasks interleave these with the write-intensive requests
of ``tasks.py`` in one session (an order used by one request is used by no other).
"""

from __future__ import annotations

import random
from itertools import combinations
from typing import Any

from writ_async.environment.domain import Environment
from writ_async.environment.overlay import BaseDB
from writ_async.synthesis.drafts import Call, Draft, Step, choose_step, execute
from writ_async.synthesis.readheavy import (
    ReadHeavyStep,
    ReadLedger,
    ReadShape,
    mixed_steps,
    read_json,
    unique_best,
)
from writ_async.synthesis.wording import listing, pick

from .data_model import GiftCard
from .tasks import REASON_WORDS, RetailWriteIntensive, _money, _options, rng_pick_original
from .tasks import _Session as _WriteSession
from .tools import CANCEL_REASONS

GENERATOR = "retail.read_heavy/1"
MAX_ITEMS = 5  # items changed by one request, at most
FAMILY_WEIGHTS = {"order_by_item": 1.0, "variant": 1.0, "order_by_property": 0.7}
PROPERTIES = ("product", "items", "payment", "city")
PER_OTHER_REQUEST = 1.5  # reads a write-intensive request adds, on average (mixed tasks)
SCAN_SLACK = 3  # a scan in a mixed task may exceed its share of the reads by this much


def read_heavy(base: BaseDB) -> RetailReadHeavy:
    return RetailReadHeavy(base)


def matches(options: dict[str, str], wanted: dict[str, str]) -> bool:
    return all(options.get(k) == v for k, v in wanted.items())


def _pending(status: str) -> bool:
    return "pending" in status


class RetailReadHeavy:
    """Read-heavy and mixed retail tasks over one base database."""

    generator = GENERATOR

    def __init__(self, base: BaseDB) -> None:
        self.wi = RetailWriteIntensive(base)
        orders = base.tables["orders"]
        # plans[burden] -> (family, user id, items to change, scan) that fit it exactly
        plans: dict[int, list[tuple[str, str, int, bool]]] = {}

        def add(burden: int, plan: tuple[str, str, int, bool]) -> None:
            plans.setdefault(burden, []).append(plan)

        for uid, user in base.tables["users"].items():
            if not user.orders or not all(o in orders for o in user.orders):
                continue
            own = [orders[o] for o in user.orders]
            n = len(own)
            if n >= 2 and any(o.status == "delivered" for o in own):
                add(2 + n, ("order_by_item", uid, 0, True))
                add(3 + n, ("order_by_item", uid, 1, True))
            if n >= 2 and any(o.status == "pending" for o in own):
                add(2 + n, ("order_by_property", uid, 0, True))
            most = max((len({i.product_id for i in o.items}) for o in own
                        if o.status == "pending"), default=0)
            for p in range(1, min(most, MAX_ITEMS) + 1):
                add(2 + p, ("variant", uid, p, False))
                add(3 + p, ("variant", uid, p, False))  # paid with another method
                if n >= 2:
                    add(2 + n + p, ("variant", uid, p, True))
        self.plans = plans

    def burdens(self, low: int, high: int) -> list[int]:
        return sorted(b for b in self.plans if low <= b <= high)

    def draft(self, env: Environment, rng: random.Random, shape: ReadShape) -> Draft | None:
        if shape.writes == 1:
            plans = self.plans.get(shape.evidence)
            if not plans:
                return None
            families = sorted({plan[0] for plan in plans})
            family = rng.choices(families, [FAMILY_WEIGHTS[f] for f in families])[0]
            _, uid, p, scan = rng.choice([plan for plan in plans if plan[0] == family])
            session = _Session(env, rng, uid)
            reads = shape.evidence - 1  # the lookup comes first
            if family == "order_by_item":
                step = session.order_by_item(reads, exchange=p == 1)
            elif family == "order_by_property":
                step = session.order_by_property(reads)
            else:
                step = session.variant(reads, p, scan)
            if step is None:
                return None
            return session.finish([step])
        users = self.wi.users_for(shape.writes)
        if not users:
            return None
        return _Session(env, rng, rng.choice(users)).mixed(shape)


class _Session(_WriteSession):
    """A write-intensive session that can also make read-heavy requests."""

    def __init__(self, env: Environment, rng: random.Random, user_id: str) -> None:
        super().__init__(env, rng, user_id)
        self.identity, self.known, self.unknown = self.identify()
        self.ledger = ReadLedger([self.identity])
        self.ids_hidden = False
        self.scan_limit: int | None = None  # most new reads a scan may add (mixed tasks)

    def finish(self, steps: list[Step]) -> Draft:
        opening = ""
        if len(steps) > 1 and self.rng.random() < 0.5:
            opening = self.rng.choice((
                "You are contacting the store about several of your orders.",
                "You have a handful of things to fix with your orders today.",
            ))
        unknown = self.unknown
        if self.ids_hidden:
            hidden = self.rng.choice(("You do not remember your order numbers.",
                                      "You don't have the order ids at hand."))
            unknown = f"{unknown} {hidden}" if unknown else hidden
        return Draft(known_info=self.known, unknown_info=unknown, identity=[self.identity],
                     steps=steps, opening=opening)

    def mixed(self, shape: ReadShape) -> Draft | None:
        steps = mixed_steps(self.rng, shape, self.ledger, PER_OTHER_REQUEST, self.heavy,
                            self.valid)
        return None if steps is None else self.finish(steps)

    def heavy(self, budget: int) -> Step | None:
        self.scan_limit = budget + SCAN_SLACK
        p = max(1, min(MAX_ITEMS, budget - 1))
        return choose_step(self.rng, self.uses, FAMILY_WEIGHTS, {
            "order_by_item": lambda: self.order_by_item(None, exchange=self.rng.random() < 0.4),
            "variant": lambda: self.variant(None, p, scan=self.rng.random() < 0.5),
            "order_by_property": lambda: self.order_by_property(None),
        })

    # -- reading ---------------------------------------------------------------------------

    def scan(self, reads: int | None, extra: int = 0) -> tuple[list[Call], list[Any]] | None:
        """The profile and every order in it, read through the tools: the calls and each
        order as the agent sees it. None if the reads would not number ``reads`` (minus
        ``extra`` reads the request adds)."""
        profile_read = self.user_read()
        profile = read_json(self.env, profile_read)
        calls = [profile_read] + [("get_order_details", {"order_id": oid})
                                  for oid in profile["orders"]]
        new = self.ledger.new(calls) + extra
        if len(calls) < 3 or (reads is not None and new != reads) or (
                self.scan_limit is not None and new > self.scan_limit):
            return None
        return calls, [read_json(self.env, call) for call in calls[1:]]

    def hide_ids(self, step: Step, *, scan: bool) -> Step:
        if scan:
            self.ids_hidden = True
            step.instructions.append(self.rng.choice((
                "You do not know the order number: describe the order as above and let the "
                "agent look through your orders.",
                "If asked for the order id, say you do not have it; the agent can find the "
                "order from your account.")))
        return step

    # -- variants by criterion ----------------------------------------------------------------

    def pick_variant(self, item: dict[str, Any], product: dict[str, Any]
                     ) -> tuple[dict[str, Any], str, str] | None:
        """A new variant for ``item`` named by options and a criterion: (decision, new item
        id, words). The current item never matches the options."""
        rng = self.rng
        variants = list(product["variants"].values())
        current = item["item_id"]
        keys = sorted(item["options"])
        others = [v for v in variants if v["item_id"] != current and v["available"]
                  and set(v["options"]) == set(keys)]
        rng.shuffle(others)
        for target in others[:4]:
            differ = [k for k in keys if target["options"][k] != item["options"][k]]
            if not differ:
                continue
            subsets = [set(c) for size in range(1, len(keys) + 1)
                       for c in combinations(keys, size) if set(c) & set(differ)]
            for subset in subsets[:6]:
                wanted = {k: target["options"][k] for k in keys if k in subset}
                fits = [v for v in variants if v["item_id"] != current
                        and matches(v["options"], wanted)]
                stocked = [v for v in fits if v["available"]]
                if not stocked:
                    continue
                if len(stocked) == 1:
                    criterion, best = "in_stock", stocked[0]
                else:
                    criterion = "cheapest"
                    best = unique_best(stocked, lambda v: v["price"])
                    if best is None:
                        continue
                decision = {"kind": "variant", "product_id": product["product_id"],
                            "current": current, "options": wanted, "pick": criterion,
                            "candidates": len(variants)}
                what = _options(wanted)
                words = (pick(rng, ("the version with {o} that is in stock",
                                    "whichever version with {o} is currently in stock"),
                              o=what) if criterion == "in_stock" else
                         pick(rng, ("the cheapest in-stock version with {o}",
                                    "whichever in-stock version with {o} costs the least"),
                              o=what))
                return decision, best["item_id"], words
        return None

    def pay_for(self, order: dict[str, Any], diff: float, profile: bool | None
                ) -> tuple[str, str, bool] | None:
        """Who pays or receives a price difference: (method id, words, needs the profile),
        restricted to methods that do (or do not) need the profile when ``profile`` says."""
        history = order["payment_history"]
        # "the method you paid with" only while the order has had a single payment
        original = history[0]["payment_method_id"] if len(history) == 1 else None
        options: list[tuple[str, str, bool]] = []
        for method_id in self.user.payment_methods:
            label = self.method_label(method_id)
            if label is None or not self.can_pay(method_id, diff):
                continue
            needs = method_id != original
            if profile is not None and needs != profile:
                continue
            words = rng_pick_original(self.rng, label) if not needs else label
            options.append((method_id, words, needs))
        if not options:
            return None
        found = self.rng.choice(options)
        self.charge(found[0], diff)
        return found

    def variant(self, reads: int | None, p: int, scan: bool) -> Step | None:
        """Change ``p`` items of a pending order, each to the variant a criterion names."""
        rng = self.rng
        calls: list[Call] = []
        if scan:
            found = self.scan(None)
            if found is None:
                return None
            calls, records = found
            pending = [r for r in records if _pending(r["status"])]
            names = [[i["name"] for i in r["items"]] for r in pending]
            targets = [r for r in pending if r["status"] == "pending"
                       and r["order_id"] not in self.touched]
        else:
            targets = [read_json(self.env, self.order_read(o))
                       for o in self.orders("pending", free_of=("items",))]
        rng.shuffle(targets)
        for record in targets[:3]:
            products = [i["product_id"] for i in record["items"]]
            single = [i for i in record["items"] if products.count(i["product_id"]) == 1]
            if len(single) < p:
                continue
            label = None
            if scan:
                unique = [i["name"] for i in record["items"]
                          if sum(i["name"] in n for n in names) == 1]
                if not unique:
                    continue
                label = rng.choice(unique)
            chosen = rng.sample(single, p)
            product_reads = [("get_product_details", {"product_id": i["product_id"]})
                             for i in chosen]
            base_reads = calls if scan else [self.order_read_id(record["order_id"])]
            have = self.ledger.new(base_reads + product_reads)
            profile: bool | None = None  # whether the payer needs the profile read
            if reads is not None and scan:
                if have != reads:
                    continue
            elif reads is not None:
                if have not in (reads, reads - 1):
                    continue
                profile = have == reads - 1
            picks = []
            for item, read in zip(chosen, product_reads, strict=True):
                got = self.pick_variant(item, read_json(self.env, read))
                if got is None:
                    break
                picks.append((item, *got))
            else:
                step = self.variant_step(record, picks, base_reads + product_reads, profile,
                                         label)
                if step is not None:
                    return self.hide_ids(step, scan=scan)
        return None

    def order_read_id(self, order_id: str) -> Call:
        return ("get_order_details", {"order_id": order_id})

    def variant_step(self, record: dict[str, Any], picks: list[tuple[Any, ...]],
                     reads: list[Call], profile: bool | None, label: str | None
                     ) -> Step | None:
        rng = self.rng
        oid = record["order_id"]
        variants = {d["current"]: new for _, d, new, _ in picks}
        products = {d["product_id"]: d for _, d, _, _ in picks}
        diff = 0.0
        for item, decision, new, _ in picks:
            product = self.db.get("products", decision["product_id"])
            diff += product.variants[new].price - item["price"]
        payer = self.pay_for(record, diff, profile)
        if payer is None:
            return None
        method_id, label_words, needs_profile = payer
        if needs_profile and not any(r[0] == "get_user_details" for r in reads):
            reads = [*reads, self.user_read()]
        changes = [f"the {item['name']} to {words}" for item, _, _, words in picks]
        where = (f"your pending order with the {label}" if label is not None
                 else f"your pending order {oid}")
        ask = pick(rng, ("in {w}, you want to change {c}",
                         "for {w}, you would like to swap {c}",
                         "before {w} ships, you want {c} instead"), w=where,
                   c=listing(changes) if len(changes) < 3 else "; ".join(changes))
        ask += ". " + pick(rng, ("Any price difference should go through {m}.",
                                 "Use {m} for the price difference."), m=label_words)
        write = ("modify_pending_order_items", {
            "order_id": oid, "item_ids": [item["item_id"] for item, *_ in picks],
            "new_item_ids": [variants[item["item_id"]] for item, *_ in picks],
            "payment_method_id": method_id})
        communicate, lines = [], []
        if round(diff, 2) != 0 and rng.random() < 0.5:
            communicate = [_money(abs(diff))]
            lines = ["Ask the agent for the price difference of the change."]
        lines.append(rng.choice((
            "You do not know which versions are in stock or what they cost: let the agent "
            "check the product and tell you.",
            "If the agent offers several versions, insist on the one you described.")))
        execute(self.env, write)
        self.touch(oid, "*")
        decisions = [d for _, d, _, _ in picks]
        if label is not None:
            decisions.insert(0, {"kind": "pending_order", "user_id": self.user_id,
                                 "property": "product", "value": label})
        return ReadHeavyStep(kind="modify_items_by_criterion", reads=reads, write=write,
                             ask=ask, instructions=lines, communicate=communicate,
                             note=f"modify {len(picks)} items of {oid} to variants chosen "
                                  f"among {sum(d['candidates'] for d in products.values())} "
                                  f"({diff:+.2f})", decisions=decisions)

    # -- order by item ----------------------------------------------------------------------

    def order_by_item(self, reads: int | None, exchange: bool) -> Step | None:
        rng = self.rng
        found = self.scan(reads, extra=int(exchange))
        if found is None:
            return None
        calls, records = found
        targets = [r for r in records if r["status"] == "delivered" and r["payment_history"]
                   and r["order_id"] not in self.touched]
        rng.shuffle(targets)
        for record in targets[:3]:
            items = list(record["items"])
            rng.shuffle(items)
            for item in items[:3]:
                wanted = self.describe_item(item, record, records)
                if wanted is None:
                    continue
                step = (self.exchange_found(record, item, wanted, calls) if exchange
                        else self.return_found(record, item, wanted, calls))
                if step is not None:
                    return self.hide_ids(step, scan=True)
        return None

    def describe_item(self, item: dict[str, Any], record: dict[str, Any],
                      records: list[Any]) -> dict[str, str] | None:
        """The fewest options (plus, sometimes, one more) that single ``item`` out: it is
        the only matching unit of its order, and no other order has a matching item."""
        keys = sorted(item["options"])
        for size in range(len(keys) + 1):
            subsets = list(combinations(keys, size))
            self.rng.shuffle(subsets)
            for subset in subsets:
                wanted = {k: item["options"][k] for k in keys if k in subset}

                def hits(order: dict[str, Any], wanted: dict[str, str] = wanted) -> int:
                    return sum(i["name"] == item["name"] and matches(i["options"], wanted)
                               for i in order["items"])

                if hits(record) == 1 and all(hits(o) == 0 for o in records if o is not record):
                    extra = [k for k in keys if k not in wanted]
                    if extra and self.rng.random() < 0.3:
                        k = self.rng.choice(extra)
                        wanted = {j: item["options"][j] for j in keys if j in wanted or j == k}
                    return wanted
        return None

    def item_phrase(self, item: dict[str, Any], wanted: dict[str, str]) -> str:
        if not wanted:
            return f"the {item['name']}"
        return f"the {item['name']} ({_options(wanted)})"

    def item_decision(self, item: dict[str, Any], wanted: dict[str, str]) -> dict[str, Any]:
        return {"kind": "order_item", "user_id": self.user_id, "product": item["name"],
                "options": wanted}

    def return_found(self, record: dict[str, Any], item: dict[str, Any],
                     wanted: dict[str, str], calls: list[Call]) -> Step | None:
        rng = self.rng
        original = record["payment_history"][0]["payment_method_id"]
        gifts = [m for m, method in self.user.payment_methods.items()
                 if isinstance(method, GiftCard) and m != original and self.method_label(m)]
        if gifts and rng.random() < 0.35:
            method_id, to = gifts[0], "your gift card"
        elif original in self.user.payment_methods:
            method_id = original
            to = rng.choice(("the original payment method", "the card or account you paid "
                             "with"))
        else:
            return None
        what = self.item_phrase(item, wanted)
        ask = pick(rng, (
            "you want to return {what} from whichever of your delivered orders it came in, "
            "with the refund to {to}",
            "you received {what} in one of your orders and want to send it back; refund it "
            "to {to}"), what=what, to=to)
        write = ("return_delivered_order_items", {
            "order_id": record["order_id"], "item_ids": [item["item_id"]],
            "payment_method_id": method_id})
        communicate, lines = [], []
        if rng.random() < 0.5:
            communicate = [_money(item["price"])]
            lines = ["Ask how much you will get back."]
        execute(self.env, write)
        self.touch(record["order_id"], "*")
        return ReadHeavyStep(kind="return_item_by_order_search", reads=calls, write=write,
                             ask=ask, instructions=lines, communicate=communicate,
                             note=f"return {item['item_id']} from {record['order_id']}, found "
                                  f"among {len(calls) - 1} orders",
                             decisions=[self.item_decision(item, wanted)])

    def exchange_found(self, record: dict[str, Any], item: dict[str, Any],
                       wanted: dict[str, str], calls: list[Call]) -> Step | None:
        rng = self.rng
        if [i["item_id"] for i in record["items"]].count(item["item_id"]) != 1:
            return None
        read = ("get_product_details", {"product_id": item["product_id"]})
        if self.ledger.new([read]) != 1:
            return None
        got = self.pick_variant(item, read_json(self.env, read))
        if got is None:
            return None
        decision, new, words = got
        diff = self.db.get("products", item["product_id"]).variants[new].price - item["price"]
        payer = self.pay_for(record, diff, None)
        if payer is None:
            return None
        method_id, label, _ = payer
        what = self.item_phrase(item, wanted)
        ask = pick(rng, (
            "you want to exchange {what}, from whichever of your delivered orders it came "
            "in, for {w}",
            "you received {what} in one of your orders and would like to exchange it for "
            "{w}"), what=what, w=words)
        ask += ". " + pick(rng, ("Any price difference should go through {m}.",
                                 "Use {m} for the price difference."), m=label)
        write = ("exchange_delivered_order_items", {
            "order_id": record["order_id"], "item_ids": [item["item_id"]],
            "new_item_ids": [new], "payment_method_id": method_id})
        lines = [rng.choice(("You do not know which versions are in stock: let the agent "
                             "check and find the one you described.",
                             "Do not choose another version than the one you described."))]
        execute(self.env, write)
        self.touch(record["order_id"], "*")
        return ReadHeavyStep(kind="exchange_item_by_order_search", reads=[*calls, read],
                             write=write, ask=ask, instructions=lines,
                             note=f"exchange {item['item_id']}->{new} in {record['order_id']}"
                                  f", found among {len(calls) - 1} orders",
                             decisions=[self.item_decision(item, wanted), decision])

    # -- pending order by property ------------------------------------------------------------

    def order_by_property(self, reads: int | None) -> Step | None:
        rng = self.rng
        found = self.scan(reads)
        if found is None:
            return None
        calls, records = found
        pending = [r for r in records if _pending(r["status"])]
        options = []
        for record in pending:
            if record["status"] != "pending" or record["order_id"] in self.touched:
                continue
            for prop in PROPERTIES:
                for value in self.order_values(record, prop):
                    if value is not None and all(value not in self.order_values(o, prop)
                           for o in pending if o is not record):
                        options.append((record, prop, value))
        if not options:
            return None
        record, prop, value = rng.choice(options)
        reason = rng.choice(sorted(CANCEL_REASONS))
        desc = self.order_words(prop, value)
        ask = pick(rng, ("you want to cancel {d} because {why}",
                         "you would like {d} cancelled: {why}"),
                   d=desc, why=rng.choice(REASON_WORDS[reason]))
        write = ("cancel_pending_order", {"order_id": record["order_id"], "reason": reason})
        history = record["payment_history"]
        communicate, lines = [], []
        if len(history) == 1 and rng.random() < 0.5:
            communicate = [str(history[0]["amount"])]
            lines = ["Ask how much you will be refunded."]
        execute(self.env, write)
        self.touch(record["order_id"], "*")
        step = ReadHeavyStep(
            kind="cancel_order_by_property", reads=calls, write=write, ask=ask,
            instructions=lines, communicate=communicate,
            note=f"cancel {record['order_id']} found by {prop} among {len(records)} orders",
            decisions=[{"kind": "pending_order", "user_id": self.user_id, "property": prop,
                        "value": value}])
        return self.hide_ids(step, scan=True)

    def order_values(self, record: dict[str, Any], prop: str) -> list[Any]:
        if prop == "product":
            return [i["name"] for i in record["items"]]
        if prop == "items":
            return [len(record["items"])]
        if prop == "payment":
            history = record["payment_history"]
            method = history[0]["payment_method_id"] if history else None
            return [method] if method and self.method_label(method) else [None]
        if prop == "city":
            return [record["address"]["city"]]
        raise ValueError(f"unknown property {prop!r}")

    def order_words(self, prop: str, value: Any) -> str:
        rng = self.rng
        if prop == "product":
            return pick(rng, ("your pending order with the {v}",
                              "the pending order in which you ordered the {v}"), v=value)
        if prop == "items":
            return pick(rng, ("your pending order of {v} items",
                              "the pending order that has {v} items in it"), v=value)
        if prop == "payment":
            return pick(rng, ("the pending order you paid with {m}",
                              "your pending order paid for with {m}"),
                        m=self.method_label(value))
        return pick(rng, ("your pending order that ships to {v}",
                          "the pending order going to your address in {v}"), v=value)

