"""How the scripted agent talks about the retail tools: writes described as a person
would (items by name and options, the order, the refund or charge and its method, the
address), their outcomes read from the updated order, and short summaries of reads.

Everything comes from the arguments and the tool results in the conversation; a value
that is not there is left out, never guessed.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from writ_async.participants.phrasebank import (
    DomainPhrases,
    Record,
    Seen,
    clause,
    compose,
    count,
    extend,
    listing,
    money,
)


def _ref(oid: Any) -> tuple[str, ...]:
    """Ways to name an order (choices avoid the ones already said)."""
    return (f"order {oid}", f"your order {oid}", f"{oid}", f"the {oid} order",
            f"order number {oid}")


# Options that qualify (waterproof, dimmable) rather than name a part (visor, mop).
_QUALITY_ENDINGS = ("able", "ized", "proof")


def _option(key: str, value: Any) -> str:
    """One option as a person says it: its value, or for a yes/no option what it means
    ("with visor", "not waterproof"), since a bare "yes" says nothing."""
    if value not in ("yes", "no"):
        return str(value)
    quality = key.endswith(_QUALITY_ENDINGS)
    if value == "yes":
        return key if quality else f"with {key}"
    return f"not {key}" if quality else f"no {key}"


def _options(options: Any) -> str:
    if not isinstance(options, Mapping):
        return ""
    return ", ".join(_option(str(k), v) for k, v in options.items())


def _items(order: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    items = order.get("items") if order else None
    return {str(i.get("item_id")): dict(i) for i in items or [] if isinstance(i, Mapping)}


def _variants(seen: Seen) -> dict[str, dict[str, Any]]:
    """Every product variant the reads showed, by item id (with its product's name)."""
    found: dict[str, dict[str, Any]] = {}
    for r in seen.records:
        out = r.output
        if r.error or not isinstance(out, Mapping):
            continue
        if isinstance(out.get("variants"), Mapping):
            for item_id, v in out["variants"].items():
                if isinstance(v, Mapping):
                    found[str(item_id)] = {**v, "name": out.get("name")}
        elif r.name == "get_item_details" and "item_id" in out:
            found[str(out["item_id"])] = dict(out)
    return found


def _item(item: Mapping[str, Any] | None, fallback: str = "item") -> str:
    """'the Water Bottle (1000ml, glass, blue)'."""
    if not item:
        return fallback
    options = _options(item.get("options"))
    name = item.get("name") or fallback
    return f"the {name} ({options})" if options else f"the {name}"


def _address(args: Mapping[str, Any]) -> str:
    parts = [args.get("address1"), args.get("address2"), args.get("city")]
    text = ", ".join(str(p) for p in parts if p)
    tail = " ".join(str(p) for p in (args.get("state"), args.get("zip")) if p)
    return ", ".join(p for p in (text, tail, str(args.get("country") or "")) if p)


def _total(entries: Any, kind: str | None = None) -> float:
    return sum(p.get("amount", 0) for p in entries or []
               if isinstance(p, Mapping) and (kind is None or p.get("transaction_type") == kind))


def _swap(args: Mapping[str, Any], order: Mapping[str, Any] | None,
          seen: Seen) -> tuple[str, float | None]:
    """'the T-Shirt (blue, M) for the purple, XL one' for each pair, and the price
    difference when every price is known."""
    old, new = args.get("item_ids"), args.get("new_item_ids")
    if not isinstance(old, list) or not isinstance(new, list):
        return "", None
    items, variants = _items(order), _variants(seen)
    parts, diff = [], 0.0
    for a, b in zip(old, new, strict=False):
        before, after = items.get(str(a)), variants.get(str(b))
        target = _options(after.get("options")) if after else str(b)
        parts.append(f"{_item(before, 'item ' + str(a))} for the {target} version")
        if before and after and isinstance(before.get("price"), int | float) \
                and isinstance(after.get("price"), int | float):
            diff += after["price"] - before["price"]
        else:
            diff = float("nan")
    return listing(parts), (None if diff != diff else round(diff, 2))


class RetailPhrases(DomainPhrases):
    def describe(self, name: str, args: Mapping[str, Any], seen: Seen,
                 rng: random.Random) -> str | None:
        oid = args.get("order_id")
        order = seen.get(oid)
        pay = self.payment(args.get("payment_method_id"), seen, rng)
        if name == "cancel_pending_order":
            items = [_item(i) for i in _items(order).values()]
            text = clause(rng, ("cancel order", "cancel your order", "call off order"),
                          str(oid))
            if items:
                text = extend(text, rng, (", with", "— that's", ", which holds"),
                              listing(items))
            text = extend(text, rng, (", because it was", ", as it was", ", reason:"),
                          str(args.get("reason")))
            history = order.get("payment_history") if order else None
            if history and isinstance(history[0], Mapping):
                text = extend(text, rng, (", refunding", ", with a refund of"),
                              money(_total(history)),
                              ("to", "back to"),
                              self.payment(history[0].get("payment_method_id"), seen, rng))
            return text
        if name == "modify_pending_order_address":
            return clause(rng, ("change the shipping address of order", "ship order",
                                "update the delivery address for order"), str(oid),
                          ("to", "so it goes to"), _address(args))
        if name == "modify_user_address":
            return clause(rng, ("update the default address on your account to",
                                "change your account address to",
                                "set your profile address to"), _address(args))
        if name == "modify_pending_order_payment":
            return rng.choice((f"switch the payment for order {oid} over to {pay}",
                               f"pay for order {oid} with {pay} instead",
                               f"move the charge for order {oid} to {pay}"))
        if name in ("modify_pending_order_items", "exchange_delivered_order_items"):
            swap, diff = _swap(args, order, seen)
            # each verb takes "X for Y" ("replace X for Y" does not)
            verb = (("swap", "switch") if name == "modify_pending_order_items"
                    else ("exchange", "swap", "trade"))
            text = clause(rng, verb, swap, ("in order", "on order", "from order"), str(oid))
            if diff is not None and diff > 0:
                text = extend(text, rng, (", charging the difference of", ", for an extra"),
                              money(diff), ("to", "on"), pay)
            elif diff is not None and diff < 0:
                text = extend(text, rng, (", refunding the difference of",
                                          ", with a refund of"),
                              money(-diff), ("to", "going back to"), pay)
            else:
                text = extend(text, rng, (", settling any price difference with",
                                          ", using for any difference"), pay)
            return text
        if name == "return_delivered_order_items":
            ids = args.get("item_ids") if isinstance(args.get("item_ids"), list) else []
            items = _items(order)
            chosen = [items.get(str(i)) for i in ids]
            text = clause(rng, ("return", "send back", "set up a return for"),
                          listing([_item(i, "item " + str(k)) for i, k in zip(chosen, ids,
                                                                              strict=False)]),
                          ("from order", "in order", "on order"), str(oid))
            prices = [i.get("price") for i in chosen if i]
            if prices and len(prices) == len(ids) and all(isinstance(p, int | float)
                                                          for p in prices):
                text = extend(text, rng, (", with a refund of", ", refunding"),
                              money(round(sum(prices), 2)), ("to", "back to"), pay)
            else:
                text = extend(text, rng, (", with the refund going to", ", refunding to"), pay)
            return text
        return None

    def outcome(self, record: Record, seen: Seen, rng: random.Random) -> str | None:
        out, args, name = record.output, record.arguments, record.name
        if not isinstance(out, Mapping):
            return None
        oid = out.get("order_id")
        pay = self.payment(args.get("payment_method_id"), seen, rng)
        if name == "cancel_pending_order":
            refunds = [p for p in out.get("payment_history", [])
                       if isinstance(p, Mapping) and p.get("transaction_type") == "refund"]
            text = clause(rng, _ref(oid),
                          ("is cancelled", "has been cancelled", "is now cancelled"))
            if refunds:
                back = self.payment(refunds[-1].get("payment_method_id"), seen, rng)
                text = extend(text, rng, (", and", "; you'll get"), money(_total(refunds)),
                              ("back to", "refunded to", "returned to"), back)
            return text
        if name == "modify_pending_order_address":
            address = out.get("address") if isinstance(out.get("address"), Mapping) else {}
            return clause(rng, _ref(oid),
                          ("will now ship to", "now goes to", "is set to ship to"),
                          _address(address))
        if name == "modify_user_address":
            address = out.get("address") if isinstance(out.get("address"), Mapping) else {}
            return clause(rng, ("your default address is now", "the address on your account "
                                "is now", "your profile now lists"), _address(address))
        if name == "modify_pending_order_payment":
            return clause(rng, _ref(oid),
                          ("is now paid with", "is now charged to", "now uses"), pay)
        if name == "modify_pending_order_items":
            last = next((p for p in reversed(out.get("payment_history", []))
                         if isinstance(p, Mapping)), None)
            text = clause(rng, _ref(oid),
                          ("is updated with the new items", "now has the new items",
                           "has the items changed"))
            if last and last.get("amount"):
                verb = ("was charged to", "went on") if last.get("transaction_type") == \
                    "payment" else ("is refunded to", "goes back to")
                text = extend(text, rng, (", and", ";"), money(last["amount"]), verb, pay)
            return text
        if name == "exchange_delivered_order_items":
            diff = out.get("exchange_price_difference")
            text = clause(rng, ("the exchange on order", "an exchange for order"), str(oid),
                          ("is requested", "is set up", "is in place"),
                          ("— you'll get an email with the return instructions",
                           "and the return instructions are on their way by email", ""))
            if isinstance(diff, int | float) and diff:
                verb = ("to be charged to", "due on") if diff > 0 else ("to be refunded to",
                                                                        "coming back to")
                text = extend(text, rng, (", with", "; there is"), money(abs(diff)), verb, pay)
            return text
        if name == "return_delivered_order_items":
            ids = [str(i) for i in out.get("return_items", []) or []]
            items = _items(out)
            refund = round(sum(items[i].get("price", 0) for i in ids if i in items), 2)
            text = clause(rng, ("the return for order", "your return on order"), str(oid),
                          ("is requested", "is set up", "is booked"),
                          ("— the return instructions will come by email",
                           "and you'll get the instructions by email", ""))
            if refund:
                text = extend(text, rng, (", with", "; you'll get"), money(refund),
                              ("going back to", "refunded to"), pay)
            return text
        return None

    def summary(self, record: Record, seen: Seen, rng: random.Random,
                about: Mapping[str, Any] | None = None) -> str | None:
        out, name = record.output, record.name
        if record.error:
            return None
        if name.startswith("find_user_id") and out is None and record.text:
            return compose(rng, ("I found your account", "That matches the account",
                                 "Your account comes up as", "I've located your account",
                                 "Your details match the account", "Thanks, that's the account",
                                 "The account on file is"),
                           f"({record.text})." if rng.random() < 0.5 else record.text + ".")
        if name == "get_user_details" and isinstance(out, Mapping):
            first = seen.first_name(out)
            orders = out.get("orders") if isinstance(out.get("orders"), list) else []
            text = compose(rng, ("I have your account up", "I've pulled up your account",
                                 "Your profile is open here"), f", {first}" if first else "")
            if orders and rng.random() < 0.6:
                text = extend(text, rng, (", with", "— I see"),
                              count(len(orders), "order"), ("on file", "on it", ""))
            return text + "."
        if name == "get_order_details" and isinstance(out, Mapping):
            items = [_item(i) for i in _items(out).values()]
            text = compose(rng, ("Order", "Your order"), str(out.get("order_id")),
                           ("is", "shows as"), str(out.get("status")))
            if items:
                text = extend(text, rng, ("and holds", "with", "— it has"), listing(items))
            return text + "."
        if name == "get_product_details" and isinstance(out, Mapping):
            variants = out.get("variants") if isinstance(out.get("variants"), Mapping) else {}
            stock = sum(1 for v in variants.values()
                        if isinstance(v, Mapping) and v.get("available"))
            return compose(rng, ("The", "Our"), str(out.get("name")),
                           ("comes in", "has", "is offered in"),
                           count(len(variants), "version"),
                           ("of which", "and"), f"{count(stock, 'is', 'are')}",
                           ("in stock.", "available right now."))
        if name == "get_item_details" and isinstance(out, Mapping):
            options = _options(out.get("options"))
            state = "in stock" if out.get("available") else "out of stock"
            return compose(rng, ("That item", "Item"), f"({options})" if options else "",
                           ("is", "is currently"), state,
                           ("at", "priced at"), money(out.get("price")) + ".")
        return None

    def amounts(self, record: Record, seen: Seen) -> list[tuple[float, str]]:
        out, name = record.output, record.name
        if not isinstance(out, Mapping):
            return []
        oid = out.get("order_id")
        if name == "cancel_pending_order":
            return [(-_total(out.get("payment_history"), "refund"),
                     f"the refund for cancelling order {oid}|what you get back for order "
                     f"{oid}|the amount refunded on {oid}")]
        if name == "modify_pending_order_items":
            last = next((p for p in reversed(out.get("payment_history", []))
                         if isinstance(p, Mapping)), None)
            if last and isinstance(last.get("amount"), int | float):
                sign = 1 if last.get("transaction_type") == "payment" else -1
                return [(sign * last["amount"], f"the price difference for order {oid}|the "
                                                f"difference in price on {oid}")]
        if name == "exchange_delivered_order_items":
            diff = out.get("exchange_price_difference")
            if isinstance(diff, int | float):
                return [(diff, f"the price difference for the exchange on order {oid}|the "
                               f"difference in price for the exchange|what the exchange "
                               f"comes to")]
        if name == "return_delivered_order_items":
            items = _items(out)
            ids = [str(i) for i in out.get("return_items", []) or []]
            refund = sum(items[i].get("price", 0) for i in ids if i in items)
            return [(-refund, f"the refund for the return on order {oid}|what you get back "
                              f"for the return|the amount refunded for the returned items")]
        return []


PHRASES = RetailPhrases()


# -- what the scripted user says (user behaviours) --------------------------------------

# Requests tau2-bench's retail policy forbids whatever the user's records are (one user
# per conversation, exchanges keep the product type), each with the reason the agent gives.
FORBIDDEN_REQUESTS: dict[str, str] = {
    "Could you look up my neighbour's orders for me? She asked me to check on them.":
        "I can only help the account holder with their own orders",
    "When I exchange something, can I swap it for a completely different kind of "
    "product, like a shirt for a pair of shoes?":
        "an item can only be exchanged for another variant of the same product",
}

VAGUE_OPENERS = ("Hi, I need some help with my orders.",
                 "Hello, I have a question about some things I bought.",
                 "Hi, it's about my account and a purchase.")

# The lookups whose arguments identify the user, with what the agent asks for to make
# them (tau2's retail policy: email, or name and zip; get_user_details takes the id).
IDENTITY_LOOKUPS: dict[str, str | None] = {
    "find_user_id_by_email": "the email address on your account",
    "find_user_id_by_name_zip": "your first and last name and your zip code",
    "get_user_details": None,
}
