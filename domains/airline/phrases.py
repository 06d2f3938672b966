"""How the scripted agent talks about the airline tools: writes described as a person
would (flights with route, date and time, cabin, passengers, price, payment), their
outcomes read from the updated reservation, and short summaries of what reads showed.

Everything comes from the arguments and the tool results in the conversation; a value
that is not there is left out, never guessed.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from writ_async.participants.phrasebank import (
    DomainPhrases,
    Record,
    Seen,
    clause,
    clock,
    compose,
    count,
    day,
    extend,
    listing,
    money,
    number,
    person,
    words,
)

BAG_FEE = 50  # tau2-bench's airline policy: each non-free checked bag costs $50


def _flights_seen(seen: Seen) -> dict[tuple[str, str], dict[str, Any]]:
    """Flights shown by searches, by (flight number, date)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for r in seen.records:
        if r.error or not r.name.startswith("search_") or not isinstance(r.output, list):
            continue
        date = str(r.arguments.get("date", ""))
        legs: list[Any] = []
        for entry in r.output:
            legs.extend(entry if isinstance(entry, list) else [entry])
        for leg in legs:
            if isinstance(leg, Mapping) and "flight_number" in leg:
                found[(str(leg["flight_number"]), str(leg.get("date") or date))] = dict(leg)
    return found


def _amount(value: Any) -> float | None:
    """A write's amount argument as a number (a model may send "150"); None if it is not
    one (True is not 1 dollar)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _ref(rid: Any) -> tuple[str, ...]:
    """Ways to name a reservation (choices avoid the ones already said)."""
    return (f"reservation {rid}", f"booking {rid}", f"your booking {rid}", f"trip {rid}",
            f"{rid}", f"the {rid} booking")


def _names(passengers: Any) -> str:
    if not isinstance(passengers, list):
        return ""
    return listing([person(p) for p in passengers])


def _legs(flights: Any, seen: Seen, cabin: Any, rng: random.Random,
          priced: bool = True, route: tuple[Any, Any] | None = None) -> str:
    """'HAT040 from PHX to DTW on May 28 at 05:00 ($108)' for each flight."""
    if not isinstance(flights, list):
        return ""
    known = _flights_seen(seen)
    parts = []
    for f in flights:
        if not isinstance(f, Mapping):
            continue
        number, date = str(f.get("flight_number", "")), str(f.get("date", ""))
        leg = known.get((number, date), {})
        origin, destination = f.get("origin") or leg.get("origin"), \
            f.get("destination") or leg.get("destination")
        text = number
        if origin and destination and (origin, destination) != route:
            text += rng.choice((f" from {origin} to {destination}", f" ({origin}–{destination})",
                                f" {origin} to {destination}"))
        text += f" on {day(date, rng)}"
        departs = leg.get("scheduled_departure_time_est")
        if departs:
            text += f" at {clock(departs, rng, twelve=seen.twelve_hour)}"
        price = f.get("price")
        if price is None and isinstance(leg.get("prices"), Mapping):
            price = leg["prices"].get(cabin)
        if priced and isinstance(price, int | float) and rng.random() < 0.5:
            text += f" ({money(price)} per person)" if rng.random() < 0.5 else \
                f" at {money(price)} a seat"
        parts.append(text)
    return listing(parts)


def _payments(payments: Any, phrases: DomainPhrases, seen: Seen, rng: random.Random) -> str:
    if not isinstance(payments, list):
        return ""
    parts = []
    for p in payments:
        if isinstance(p, Mapping):
            amount = p.get("amount")
            what = phrases.payment(p.get("payment_id"), seen, rng)
            parts.append(f"{money(amount)} on {what}" if amount is not None else what)
    return listing(parts)


def _new_payments(record: Record, seen: Seen) -> list[dict[str, Any]]:
    """The payment entries a write added to its reservation."""
    out = record.output
    if not isinstance(out, Mapping) or not isinstance(out.get("payment_history"), list):
        return []
    history = [p for p in out["payment_history"] if isinstance(p, Mapping)]
    before = seen.before(str(out.get("reservation_id")), record)
    if before is not None and isinstance(before.get("payment_history"), list):
        return [dict(p) for p in history[len(before["payment_history"]):]]
    return [dict(history[-1])] if history else []


def _trip(res: Mapping[str, Any], rng: random.Random) -> str:
    """'round trip from ATL to LAX (May 25 and May 29) in economy for Chen Clark', or
    'return trip between ATL and LAX, out May 25 and back May 29, ...'."""
    one_way = res.get("flight_type") == "one_way"
    kind = rng.choice(("one-way trip", "one-way booking") if one_way else
                      ("round trip", "return trip"))
    o, d = res.get("origin"), res.get("destination")
    text = rng.choice((f"{kind} from {o} to {d}", f"{kind} between {o} and {d}",
                       f"{kind} {o} to {d}"))
    dates = list(dict.fromkeys(f.get("date") for f in res.get("flights", [])
                               if isinstance(f, Mapping)))
    if not one_way and len(dates) == 2:
        out, back = day(dates[0], rng), day(dates[1], rng)
        text += rng.choice((f" ({out} and {back})", f", out {out} and back {back}",
                            f", leaving {out} and returning {back}"))
    elif dates:
        when = listing([day(x, rng) for x in dates])
        text += rng.choice((f" ({when})", f" on {when}"))
    if res.get("cabin"):
        text += f" in {_cabin(res['cabin'], rng)}"
    names = _names(res.get("passengers"))
    if names and rng.random() < 0.7:
        text += f" for {names}"
    return text


def _brief(res: Mapping[str, Any], rng: random.Random) -> str:
    """A reservation in a few words: '8JHTM6 (LGA to DFW, May 12)'."""
    rid, origin, destination = (res.get("reservation_id"), res.get("origin"),
                                res.get("destination"))
    flights = [f for f in res.get("flights", []) if isinstance(f, Mapping)]
    when = day(flights[0].get("date"), rng) if flights else ""
    style = rng.randrange(3)
    if style == 0:
        return f"{rid} ({origin} to {destination}" + (f", {when})" if when else ")")
    if style == 1:
        return f"{rid}, {origin}–{destination}" + (f" on {when}" if when else "")
    return f"{rid} from {origin} to {destination}"


def _bags(total: Any, paid: Any, rng: random.Random) -> str:
    """Checked bags as a person says them: 'three checked bags, one of them paid'."""
    if not isinstance(total, int) or isinstance(total, bool):
        return ""
    bags = count(total, "checked bag")
    if not total or not isinstance(paid, int):
        return bags
    free = total - paid
    if paid == 0:
        tail = rng.choice(("at no charge", "within the free allowance", "free of charge")
                          if total == 1 else ("all free", "none of them paid",
                                              "all within the free allowance"))
    elif free <= 0:
        tail = rng.choice(("paid",) if total == 1 else
                          ("both paid",) if total == 2 else ("all paid", "all of them paid"))
    else:
        tail = rng.choice((f"{number(paid)} paid and {number(free)} free",
                           f"{number(free)} free and {number(paid)} paid",
                           f"{number(paid)} of them paid"))
    return rng.choice((f"{bags}, {tail}", f"{bags} ({tail})"))


def day_full(date: Any) -> str:
    """A date of birth as a person writes it: '1993-07-23' -> 'July 23, 1993'."""
    text = str(date)
    year = text[:4]
    return f"{day(text)}, {year}" if day(text) != text else text


def _born(p: Mapping[str, Any], rng: random.Random) -> str:
    if not p.get("dob"):
        return person(p)
    return person(p) + rng.choice((f" (born {day_full(p['dob'])})",
                                   f" (date of birth {day_full(p['dob'])})"))


def _swaps(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]
           ) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """The passengers a write changes, place by place: (before, after)."""
    return [(a, b) for a, b in zip(old, new, strict=False) if dict(a) != dict(b)]


def _told(amount: float, seen: Seen) -> bool:
    """Whether the confirmation already stated this amount."""
    return bool(amount) and money(abs(amount)) in seen.told


def _paid_total(out: Mapping[str, Any]) -> float:
    return sum(p.get("amount", 0) for p in out.get("payment_history", [])
               if isinstance(p, Mapping) and isinstance(p.get("amount"), int | float))


def _cabin(cabin: Any, rng: random.Random) -> str:
    name = words(cabin)
    return rng.choice((name, f"{name} class")) if name in ("business", "economy") else name


def _fare(entry: Any, cabin: Any) -> float | None:
    """A search result's fare in ``cabin`` (both legs of a connection), None when it has no
    seat left in that cabin or shows no price."""
    legs = [leg for leg in (entry if isinstance(entry, list) else [entry])
            if isinstance(leg, Mapping)]
    total = 0.0
    for leg in legs:
        prices, seats = leg.get("prices"), leg.get("available_seats")
        price = prices.get(cabin) if isinstance(prices, Mapping) else None
        if not isinstance(price, int | float) or (
                isinstance(seats, Mapping) and not seats.get(cabin)):
            return None
        total += price
    return total if legs else None


def _departs(entry: Any) -> str:
    first = entry[0] if isinstance(entry, list) and entry else entry
    value = first.get("scheduled_departure_time_est") if isinstance(first, Mapping) else None
    return str(value) if value else ""


def _numbers(entry: Any) -> str:
    legs = entry if isinstance(entry, list) else [entry]
    return " and ".join(str(leg.get("flight_number")) for leg in legs
                        if isinstance(leg, Mapping))


def _per_day(counts: Sequence[int], rng: random.Random) -> str:
    """How many flights the searched days had: 'one flight a day', 'one to three a day'."""
    low, high = min(counts), max(counts)
    if high == 0:
        return rng.choice(("no flights on any of those days", "nothing on any of them"))
    if low == high:
        return rng.choice((f"{count(high, 'flight')} a day", f"{count(high, 'flight')} each day"))
    if low == 0:
        return rng.choice((f"up to {count(high, 'flight')} a day",
                           f"at most {count(high, 'flight')} a day"))
    return rng.choice((f"{number(low)} to {count(high, 'flight')} a day",
                       f"between {number(low)} and {number(high)} flights a day"))


def _dates(dates: Sequence[Any], rng: random.Random) -> str:
    if len(dates) == 1:
        return f"on {day(dates[0], rng)}"
    if len(dates) == 2:
        return f"on {day(dates[0], rng)} and {day(dates[1], rng)}"
    return rng.choice((f"from {day(dates[0], rng)} to {day(dates[-1], rng)}",
                       f"across {day(dates[0], rng)} to {day(dates[-1], rng)}",
                       f"over the {count(len(dates), 'day')} from {day(dates[0], rng)}"))


def _route_compared(route: tuple[Any, Any], searches: Sequence[Record], cabin: Any,
                    rng: random.Random) -> str:
    """What searches of one route showed: flights a day over the dates, and the cheapest
    fare in the write's cabin (seats left) or the earliest departure."""
    dates = [r.arguments.get("date") for r in searches]
    counts = [len(r.output) for r in searches]
    if not any(counts):
        return clause(rng, f"{route[0]} to {route[1]}", ("has no flights", "shows nothing",
                                                          "had nothing"), _dates(dates, rng))
    many = (_per_day(counts, rng) if len(dates) > 1 else
            count(counts[0], "flight"))
    text = clause(rng, f"{route[0]} to {route[1]}", ("has", "had", "shows"), many,
                  _dates(dates, rng))
    fares = [(fare, r.arguments.get("date"), entry) for r in searches for entry in r.output
             if cabin and (fare := _fare(entry, cabin)) is not None]
    if fares:
        fare, date, entry = min(fares, key=lambda f: f[0])
        c, f, n = _cabin(cabin, rng), money(fare), _numbers(entry)
        d = f" on {day(date, rng)}" if len(dates) > 1 else ""
        text += rng.choice((f" (cheapest in {c}: {f}, {n}{d})",
                            f", the lowest {c} fare being {f} for {n}{d}",
                            f" — the cheapest in {c} is {n}{d} at {f}",
                            f", and its best {c} fare is {f} ({n}{d})"))
    return text


def tidy_join(text: str, parts: Sequence[str]) -> str:
    """``text`` followed by ``parts`` separated by semicolons (each a clause)."""
    return text + " " + "; ".join(parts)


def _option(entry: Any, cabin: Any, seen: Seen, rng: random.Random) -> str:
    """One search result as a person reads it out: 'HAT118 at 17:30, landing 20:45 ($234
    in economy)'; a connection names both flights and where it changes."""
    legs = [leg for leg in (entry if isinstance(entry, list) else [entry])
            if isinstance(leg, Mapping)]
    if not legs:
        return ""
    first, last = legs[0], legs[-1]
    numbers = " and ".join(str(leg.get("flight_number")) for leg in legs)
    if len(legs) > 1:
        numbers += rng.choice((f" via {first.get('destination')}",
                               f" (changing at {first.get('destination')})"))
    departs, lands = (first.get("scheduled_departure_time_est"),
                      last.get("scheduled_arrival_time_est"))
    text = numbers
    twelve = seen.twelve_hour
    if departs and lands and rng.random() < 0.5:
        out, back = clock(departs, rng, twelve=twelve), clock(lands, rng, twelve=twelve)
        text += rng.choice((f", {out} to {back}", f" leaving {out} and landing {back}",
                            f" ({out}–{back})"))
    elif departs:
        out = clock(departs, rng, twelve=twelve)
        text += rng.choice((f" at {out}", f" departing {out}", f", out at {out}"))
    prices = [leg.get("prices", {}).get(cabin) for leg in legs
              if isinstance(leg.get("prices"), Mapping)]
    if cabin and prices and all(isinstance(p, int | float) for p in prices):
        fare = money(sum(prices))
        text += rng.choice((f" for {fare}", f" ({fare} in {words(cabin)})",
                            f", {fare} a seat", f" at {fare}"))
    return text


class AirlinePhrases(DomainPhrases):
    def describe(self, name: str, args: Mapping[str, Any], seen: Seen,
                 rng: random.Random) -> str | None:
        rid = args.get("reservation_id")
        res = seen.get(rid) or {}
        if name == "book_reservation":
            cabin = args.get("cabin")
            kind = "round trip" if args.get("flight_type") == "round_trip" else "one-way trip"
            route = (args.get("origin"), args.get("destination"))
            legs = _legs(args.get("flights"), seen, cabin, rng, route=route)
            names = _names(args.get("passengers"))
            if names and rng.random() < 0.4:
                # Who flies first, as an agent reading the booking back would.
                text = clause(rng, ("book", "reserve seats for", "put"), names,
                              ("on a", "on the"), f"{kind} from {route[0]} to {route[1]}",
                              ("in", "—"), f"{_cabin(cabin, rng)}:", legs)
            else:
                text = clause(rng, ("book a", "reserve a", "set up a new"),
                              f"{kind} from {route[0]} to {route[1]} in {_cabin(cabin, rng)}:")
                text += " " + legs
                if names:
                    text = extend(text, rng, (", for", ", with passengers", ", travelling:"),
                                  names)
            bags, paid = args.get("total_baggages"), args.get("nonfree_baggages")
            if isinstance(bags, int) and bags:
                text += f", with {_bags(bags, paid, rng)}"
                if isinstance(paid, int) and paid:
                    text += rng.choice((f" at {money(BAG_FEE)} each",
                                        f" ({money(BAG_FEE)} a bag)"))
            if args.get("insurance") == "yes":
                text = extend(text, rng, (", plus travel insurance", ", with travel insurance"))
            elif args.get("insurance") == "no":
                text = extend(text, rng, (", without insurance", ", no travel insurance", ""))
            pay = _payments(args.get("payment_methods"), self, seen, rng)
            if pay:
                text = extend(text, rng, (", paying", ", charging", ", paid with"), pay)
            return text
        if name == "send_certificate":
            amount = _amount(args.get("amount"))
            what = (clause(rng, ("a travel certificate worth", "a certificate for",
                                 "a certificate of"), money(amount))
                    if amount is not None else "a travel certificate")
            user = args.get("user_id")
            return clause(rng, ("send", "issue", "add"), what,
                          ("to your account", "to your profile",
                           *((f"to the account {user}",) if user else ())))
        if name == "cancel_reservation":
            trip = _trip(res, rng) if res else ""
            text = clause(rng, ("cancel reservation", "cancel your reservation",
                                 "cancel booking"), str(rid))
            if trip:
                text = extend(text, rng, (", your", " — the", ", which is your"), trip)
            paid = [p for p in res.get("payment_history", []) if isinstance(p, Mapping)]
            if paid and rng.random() < 0.6:
                text = extend(text, rng, (", refunding the", ", with the refund of"),
                                f"{money(sum(p.get('amount', 0) for p in paid))}",
                                ("to the original payment method",
                                 "going back to how you paid"))
            return text
        if name == "update_reservation_baggages":
            bags, paid = args.get("total_baggages"), args.get("nonfree_baggages")
            before_total = res.get("total_baggages")
            added = (int(bags) - before_total if isinstance(bags, int)
                     and isinstance(before_total, int) else 0)
            if added > 0 and before_total == 0:
                text = clause(rng, "add", _bags(bags, paid, rng),
                              ("to reservation", "to booking", "to"), str(rid))
            elif added > 0 and rng.random() < 0.5:
                text = clause(rng, ("add", "put"), count(added, "more checked bag",
                                                         "more checked bags"),
                              ("on reservation", "on booking", "on"), str(rid),
                              ("for a total of", ", making it", ", so it has"),
                              _bags(bags, paid, rng))
            else:
                text = clause(rng, ("update reservation", "change the bags on reservation",
                                    "set the checked bags on reservation"), str(rid),
                              ("to", "to a total of"), _bags(bags, paid, rng))
            before = res.get("nonfree_baggages")
            if isinstance(before, int) and isinstance(paid, int) and paid > before:
                text = extend(text, rng, (", which costs", ", for an extra", ", at a cost of"),
                                money((paid - before) * BAG_FEE),
                                ("on", "charged to", "paid with"),
                                self.payment(args.get("payment_id"), seen, rng))
            return text
        if name == "update_reservation_flights":
            cabin = args.get("cabin")
            text = clause(rng, ("change reservation", "move reservation",
                                 "switch reservation"), str(rid),
                           ("to", "over to"), _legs(args.get("flights"), seen, cabin, rng),
                           f"in {_cabin(cabin, rng)}")
            text = extend(text, rng, (", settling any fare difference with",
                                  ", with any price difference going to",
                                  ", using for any difference"),
                            self.payment(args.get("payment_id"), seen, rng))
            return text
        if name == "update_reservation_passengers":
            passengers = [p for p in args.get("passengers") or [] if isinstance(p, Mapping)]
            old = [p for p in res.get("passengers") or [] if isinstance(p, Mapping)]
            swaps = _swaps(old, passengers)
            if old and len(old) == len(passengers) and swaps:
                changes = [rng.choice((f"replace {person(a)} with {_born(b, rng)}",
                                       f"put {_born(b, rng)} in place of {person(a)}"))
                           if person(a) != person(b) else
                           f"correct {person(b)}'s date of birth to {day_full(b.get('dob'))}"
                           for a, b in swaps]
                text = clause(rng, listing(changes), ("on reservation", "on booking", "on"),
                              str(rid))
                kept = [person(p) for p in passengers if p not in [b for _, b in swaps]]
                if kept and rng.random() < 0.5:
                    text = extend(text, rng, (", keeping", ", leaving"), listing(kept),
                                  ("as they are", "unchanged", "on it"))
                return text
            details = listing([_born(p, rng) for p in passengers])
            return clause(rng, ("update the passengers on reservation",
                                 "change the passenger details on reservation",
                                 "set the travellers on reservation"), str(rid),
                           ("to", "so they read:"), details)
        return None

    def outcome(self, record: Record, seen: Seen, rng: random.Random) -> str | None:
        """What the write did that its confirmation did not already say: the new code, the
        money that actually moved (where to, with its sign), who replaced whom."""
        out, args, name = record.output, record.arguments, record.name
        if name == "send_certificate" and not record.error:
            return clause(rng, ("the certificate is on your account",
                                "the certificate has been added to your profile",
                                "your certificate is issued",
                                "the certificate went through"))
        if not isinstance(out, Mapping) or "reservation_id" not in out:
            return None
        rid = out["reservation_id"]
        new = _new_payments(record, seen)
        if name == "book_reservation":
            paid = _paid_total(out)
            pay = listing([self.payment(p.get("payment_id"), seen, rng)
                           for p in out.get("payment_history", []) if isinstance(p, Mapping)])
            # (Not "confirmation code": a message saying "confirm" reads as asking for one.)
            text = clause(rng, (f"you're booked, and the reservation number is {rid}",
                                f"the booking is made: reservation {rid}",
                                f"{rid} is your new reservation",
                                f"your new booking is under {rid}",
                                f"the reservation went through as {rid}",
                                f"your booking reference is {rid}"))
            if _told(paid, seen):
                return extend(text, rng, (f"; {pay} has been charged",
                                          f", and the payment on {pay} went through",
                                          f"— the charge is on {pay}", ""))
            return extend(text, rng, (", and", ";"), money(paid),
                          ("was charged to", "went on", "was taken from"), pay or "your payment")
        if name == "cancel_reservation":
            refunds = [p for p in new if isinstance(p.get("amount"), int | float)
                       and p["amount"] < 0]
            refund = -sum(p["amount"] for p in refunds)
            to = listing(list(dict.fromkeys(self.payment(p.get("payment_id"), seen, rng)
                                            for p in refunds)))
            text = clause(rng, _ref(rid),
                           ("is cancelled", "has been cancelled", "is now cancelled",
                            "is off the books", "shows as cancelled"))
            if not refund:
                return extend(text, rng, (", with nothing to refund", "; there was no refund due",
                                          ""))
            if _told(refund, seen):
                return extend(text, rng, ("; the refund is on its way to",
                                          ", and the refund goes back to",
                                          "; you'll see the refund on"), to)
            return extend(text, rng, (", and", "; you'll get"), money(refund),
                          ("back on", "refunded to", "returned to"), to)
        if name == "update_reservation_baggages":
            charged = sum(p.get("amount", 0) for p in new
                          if p.get("payment_id") == args.get("payment_id"))
            text = clause(rng, _ref(rid), ("is updated", "has its bags updated",
                                           "now has the new bag count",
                                           "has the bags changed"))
            pay = self.payment(args.get("payment_id"), seen, rng)
            if not charged:
                return extend(text, rng, (", at no charge", ", with nothing to pay",
                                          "— no fee was due"))
            if _told(charged, seen):
                text = extend(text, rng, ("and the charge went through on",
                                          "; the bag fee is on", "— the fee was taken from"),
                              pay)
            else:
                text = extend(text, rng, (", and", ";"), money(charged),
                              ("was charged to", "went on", "was paid with"), pay)
            if rng.random() < 0.5:
                text = extend(text, rng, (", bringing what you've paid for it to",
                                          "; all told, the booking has now cost"),
                              money(_paid_total(out)))
            return text
        if name == "update_reservation_flights":
            moved = sum(p.get("amount", 0) for p in new
                        if p.get("payment_id") == args.get("payment_id"))
            pay = self.payment(args.get("payment_id"), seen, rng)
            text = clause(rng, _ref(rid), ("is on the new flights", "is moved",
                                           "is switched over", "now has the new flights",
                                           "is rebooked"))
            if moved > 0:
                return extend(text, rng, ("; the new flights cost", ", and the change came to",
                                          "; you paid"), money(moved),
                              ("more, charged to", "more, which went on",
                               "more, taken from"), pay)
            if moved < 0:
                # lead and tail drawn together: "saved you $87 less" is not English
                lead, tail = rng.choice(((("; the new flights are", ", and it came out"),
                                          ("cheaper, refunded to", "less, going back to",
                                           "cheaper, back on")),
                                         (("; the change saved you",),
                                          (", refunded to", ", going back to",
                                           ", back on"))))
                return extend(text, rng, lead, money(-moved), tail, pay)
            return extend(text, rng, (", at the same fare", ", with no price difference",
                                      "; the fare did not change"))
        if name == "update_reservation_passengers":
            before = seen.before(str(rid), record) or {}
            swaps = _swaps([p for p in before.get("passengers") or [] if isinstance(p, Mapping)],
                           [p for p in out.get("passengers") or [] if isinstance(p, Mapping)])
            renamed = [(a, b) for a, b in swaps if person(a) != person(b)]
            if renamed:
                said = listing([rng.choice((f"{person(b)} replaces {person(a)}",
                                            f"{person(b)} is in for {person(a)}",
                                            f"{person(b)} now travels instead of {person(a)}"))
                                for a, b in renamed])
                return clause(rng, said, ("on", "on booking", "on reservation"), str(rid))
            if swaps:
                who = listing([person(b) for _, b in swaps])
                return clause(rng, (f"{who}'s date of birth is corrected on",
                                    f"the record for {who} is fixed on"), _ref(rid))
            return clause(rng, ("the passenger list on", "the travellers on"), str(rid),
                          ("is updated", "are saved"))
        return None

    def summary(self, record: Record, seen: Seen, rng: random.Random,
                about: Mapping[str, Any] | None = None) -> str | None:
        out, args, name = record.output, record.arguments, record.name
        if record.error:
            return None
        if name in ("search_direct_flight", "search_onestop_flight") and isinstance(out, list):
            route = f"from {args.get('origin')} to {args.get('destination')}"
            when = f"on {day(args.get('date'), rng)}"
            direct = name == "search_direct_flight"
            kind = ("direct flight", "nonstop flight") if direct else ("one-stop option",
                                                                       "connection")
            if not out:
                return compose(rng, ("There are no", "The search shows no",
                                     "Our schedule has no", "I found no"),
                               f"{rng.choice(kind)}s", route, when + ".")
            cabin = (about or {}).get("cabin")
            text = compose(rng, ("I see", "The search shows",
                                 "There are" if len(out) > 1 else "There is", "I have",
                                 "I found", "The schedule lists"),
                           count(len(out), rng.choice(kind)), route, when)
            if len(out) <= 2 or rng.random() < 0.3:
                options = [o for o in (_option(entry, cabin, seen, rng) for entry in out[:2])
                           if o]
                lead = (":" if len(options) == len(out) else
                        ("; the first is", ", including", ", starting with", "— among them"))
                return extend(text, rng, lead, listing(options)) + "."
            # More than two: what a person compares, not every option read out.
            facts = []
            fares = [(fare, entry) for entry in out
                     if cabin and (fare := _fare(entry, cabin)) is not None]
            if fares:
                fare, entry = min(fares, key=lambda f: f[0])
                facts.append(rng.choice((
                    f"the cheapest in {_cabin(cabin, rng)} is {_numbers(entry)} at {money(fare)}",
                    f"{_numbers(entry)} has the lowest {_cabin(cabin, rng)} fare, {money(fare)}",
                    f"the best {_cabin(cabin, rng)} price is {money(fare)} on {_numbers(entry)}")))
            timed = [(t, entry) for entry in out if (t := _departs(entry))]
            if timed:
                t, entry = min(timed, key=lambda x: x[0])
                facts.append(rng.choice((
                    f"the earliest leaves at {clock(t, rng, twelve=seen.twelve_hour)} "
                    f"({_numbers(entry)})",
                    f"{_numbers(entry)} is the first out, at "
                    f"{clock(t, rng, twelve=seen.twelve_hour)}",
                    f"the first departure is {clock(t, rng, twelve=seen.twelve_hour)}")))
            if not facts:
                return text + "."
            return extend(text, rng, (";", "—", ":"), "; ".join(facts)) + "."
        if name == "get_reservation_details" and isinstance(out, Mapping):
            text = compose(rng, ("Reservation", "Booking", "Your booking"),
                           str(out.get("reservation_id")),
                           ("is a", "is the", "shows a", "holds a"), _trip(out, rng))
            flights = [f for f in out.get("flights", []) if isinstance(f, Mapping)]
            numbers = listing([str(f.get("flight_number")) for f in flights])
            if numbers and rng.random() < 0.6:
                text = extend(text, rng, (", on", ", flying", "— flights", ", booked on"),
                              numbers)
            bags = out.get("total_baggages")
            if isinstance(bags, int) and rng.random() < 0.4:
                text = extend(text, rng, (", with", "; it has", "and carries"),
                              count(bags, "checked bag"))
            if out.get("insurance") in ("yes", "no") and rng.random() < 0.3:
                text = extend(text, rng, ("and", ",", ";"),
                              ("travel insurance" if out["insurance"] == "yes" else
                               rng.choice(("no insurance", "no travel insurance"))))
            return text + "."
        if name == "get_user_details" and isinstance(out, Mapping):
            first = seen.first_name(out)
            tier = out.get("membership")
            text = compose(rng, ("I have your profile up", "I've pulled up your profile",
                                 "Your profile is open here", "I can see your account"),
                           f", {first}" if first else "")
            if tier and rng.random() < 0.5:
                text += f" ({words(tier)} member)"
            return text + "."
        if name == "get_flight_status" and out is None and record.text:
            return compose(rng, ("Flight", "The flight"), str(args.get("flight_number")),
                           f"on {day(args.get('date'), rng)}", ("is", "shows as"),
                           words(record.text) + ".")
        return None

    def survey(self, records: Sequence[Record], seen: Seen, rng: random.Random,
               about: Mapping[str, Any] | None = None) -> str | None:
        outputs = [r.output for r in records if not r.error and isinstance(r.output, Mapping)]
        name = records[0].name if records else ""
        if name == "get_reservation_details" and len(outputs) >= 3:
            shown = outputs[:rng.choice((3, 4, 5))]
            items = [_brief(res, rng) for res in shown]
            more = len(outputs) - len(shown)
            text = compose(rng, ("I went through", "I checked", "I looked at", "I've gone over",
                                 "I reviewed"),
                           (f"your {len(outputs)} reservations",
                            f"all {len(outputs)} bookings on your profile",
                            f"the {len(outputs)} trips on your account"),
                           # "among them" only where some are left out
                           (":", "—", ", among them") if more else (":", "—"),
                           listing(items))
            if more:
                text = extend(text, rng, (", and", ", plus"),
                              (count(more, "more", "more"), count(more, "other")))
            return text + "."
        searches = [r for r in records if not r.error and isinstance(r.output, list)]
        if name.startswith("search_") and len(searches) >= 3:
            kind = (("direct", "nonstop") if name == "search_direct_flight" else
                    ("one-stop", "connecting"))
            choice = rng.choice(kind)
            routes: dict[tuple[Any, Any], list[Record]] = {}
            for r in searches:
                key = (r.arguments.get("origin"), r.arguments.get("destination"))
                routes.setdefault(key, []).append(r)
            cabin = (about or {}).get("cabin")
            told = [_route_compared(route, group, cabin, rng)
                    for route, group in routes.items()]
            text = compose(rng, ("I compared", "I ran", "I went through", "To compare, I ran",
                                 "I searched with"),
                           count(len(searches), f"{choice} search", f"{choice} searches"),
                           (":", "—", "; in short,"))
            return tidy_join(text, told) + "."
        return None

    def amounts(self, record: Record, seen: Seen) -> list[tuple[float, str]]:
        out, name = record.output, record.name
        amount = _amount(record.arguments.get("amount"))
        if name == "send_certificate" and amount is not None:
            return [(amount, "the certificate|the certificate's value|the certificate I "
                             "sent you|the travel certificate on your account")]
        if not isinstance(out, Mapping) or "reservation_id" not in out:
            return []
        rid = out["reservation_id"]
        new = _new_payments(record, seen)
        if name == "book_reservation":
            total = sum(p.get("amount", 0) for p in out.get("payment_history", [])
                        if isinstance(p, Mapping))
            return [(total, f"the total for the new reservation {rid}|the price of the new "
                            f"booking|what the new trip costs|the fare for booking {rid}|"
                            f"what you paid for {rid}|the cost of the new reservation|"
                            f"the new booking's total")]
        if name == "cancel_reservation":
            refund = sum(p.get("amount", 0) for p in new
                         if isinstance(p.get("amount"), int | float) and p["amount"] < 0)
            return [(refund, f"the refund for cancelling {rid}|what you get back for {rid}|"
                             f"the amount refunded on {rid}|your refund on {rid}|"
                             f"the money back from {rid}")]
        if name == "update_reservation_baggages":
            return [(sum(p.get("amount", 0) for p in new), f"the fee for the bags on {rid}|"
                     f"the baggage charge on {rid}|what the extra bags on {rid} cost|"
                     f"the bag fee on {rid}|what you paid for the bags on {rid}")]
        if name == "update_reservation_flights":
            moved = sum(p.get("amount", 0) for p in new)
            if moved < 0:
                return [(moved, f"the refund for the change on {rid}|what you get back for "
                                f"changing {rid}|the saving on the new flights for {rid}|"
                                f"what comes back to you from changing {rid}")]
            return [(moved, f"the price difference for the change on {rid}|the fare "
                            f"difference on {rid}|the extra cost of changing {rid}|"
                            f"what the new flights on {rid} cost on top|"
                            f"the difference you paid for {rid}")]
        return []


PHRASES = AirlinePhrases()


# -- what the scripted user says (user behaviours) --------------------------------------

# Requests tau2-bench's airline policy forbids whatever the user's records are (no
# insurance after booking, bags can be added but not removed, the number of passengers
# never changes), each with the reason the agent gives when it refuses.
FORBIDDEN_REQUESTS: dict[str, str] = {
    "Could you add travel insurance to one of the reservations I already booked?":
        "travel insurance can only be bought together with the booking, not added later",
    "Could you remove one of the checked bags from one of my reservations?":
        "checked bags can be added to a reservation but never taken off",
    "Could you add one more passenger to a reservation I already have?":
        "the number of passengers on a reservation is fixed once it is booked",
}

VAGUE_OPENERS = ("Hi, I need some help with my travel plans.",
                 "Hello, I have a few things to sort out with my bookings.",
                 "Hi there, it's about my flights.")

# The lookup whose arguments identify the user: the user id itself.
IDENTITY_LOOKUPS: dict[str, str | None] = {"get_user_details": None}
