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
            text += f" at {clock(departs, rng)}"
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
    """'your round trip from ATL to LAX (May 25 and May 29) in economy for Chen Clark'."""
    kind = "one-way trip" if res.get("flight_type") == "one_way" else "round trip"
    dates = dict.fromkeys(f.get("date") for f in res.get("flights", [])
                          if isinstance(f, Mapping))
    text = f"{kind} from {res.get('origin')} to {res.get('destination')}"
    if dates:
        text += f" ({listing([day(d, rng) for d in dates])})"
    if res.get("cabin"):
        text += f" in {words(res['cabin'])}"
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


def _option(entry: Any, cabin: Any, rng: random.Random) -> str:
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
    if departs and lands and rng.random() < 0.5:
        text += rng.choice((f", {clock(departs, rng)} to {clock(lands, rng)}",
                            f" leaving {clock(departs, rng)} and landing {clock(lands, rng)}",
                            f" ({clock(departs, rng)}–{clock(lands, rng)})"))
    elif departs:
        text += rng.choice((f" at {clock(departs, rng)}", f" departing {clock(departs, rng)}",
                            f", out at {clock(departs, rng)}"))
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
            text = clause(rng, ("book a", "reserve a", "set up a new"),
                           f"{kind} from {args.get('origin')} to {args.get('destination')}"
                           f" in {words(cabin)}:")
            text += " " + _legs(args.get("flights"), seen, cabin, rng,
                                route=(args.get("origin"), args.get("destination")))
            names = _names(args.get("passengers"))
            if names:
                text = extend(text, rng, (", for", ", with passengers", ", travelling:"), names)
            bags, paid = args.get("total_baggages"), args.get("nonfree_baggages")
            if isinstance(bags, int) and bags:
                text += f", with {count(bags, 'checked bag')}"
                if isinstance(paid, int) and paid:
                    text += f" ({paid} paid at {money(BAG_FEE)} each)"
            if args.get("insurance") == "yes":
                text = extend(text, rng, (", plus travel insurance", ", with travel insurance"))
            elif args.get("insurance") == "no":
                text = extend(text, rng, (", without insurance", ", no travel insurance", ""))
            pay = _payments(args.get("payment_methods"), self, seen, rng)
            if pay:
                text = extend(text, rng, (", paying", ", charging", ", paid with"), pay)
            return text
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
            text = clause(rng, ("update reservation", "change the bags on reservation",
                                 "set the checked bags on reservation"), str(rid),
                           ("to", "to a total of"), count(int(bags or 0), "checked bag"))
            text += f" ({paid} of them paid)" if isinstance(paid, int) else ""
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
                           f"in {words(cabin)}")
            text = extend(text, rng, (", settling any fare difference with",
                                  ", with any price difference going to",
                                  ", using for any difference"),
                            self.payment(args.get("payment_id"), seen, rng))
            return text
        if name == "update_reservation_passengers":
            passengers = args.get("passengers")
            details = []
            for p in passengers if isinstance(passengers, list) else []:
                if isinstance(p, Mapping):
                    born = f" (born {p['dob']})" if p.get("dob") else ""
                    details.append(person(p) + born)
            return clause(rng, ("update the passengers on reservation",
                                 "change the passenger details on reservation",
                                 "set the travellers on reservation"), str(rid),
                           ("to", "so they read:"), listing(details))
        return None

    def outcome(self, record: Record, seen: Seen, rng: random.Random) -> str | None:
        out, args, name = record.output, record.arguments, record.name
        if not isinstance(out, Mapping) or "reservation_id" not in out:
            return None
        rid = out["reservation_id"]
        if name == "book_reservation":
            flights = [f for f in out.get("flights", []) if isinstance(f, Mapping)]
            numbers = listing([str(f.get("flight_number")) for f in flights])
            dates = listing([day(d, rng) for d in dict.fromkeys(f.get("date") for f in flights)])
            paid = sum(p.get("amount", 0) for p in out.get("payment_history", [])
                       if isinstance(p, Mapping))
            pay = listing([self.payment(p.get("payment_id"), seen, rng)
                           for p in out.get("payment_history", []) if isinstance(p, Mapping)])
            # (Not "confirmation code": a message saying "confirm" reads as asking for one.)
            opening = (clause(rng, ("your booking reference is", "the new reservation code is"),
                              f"{rid}:") if rng.random() < 0.2 else clause(
                rng, ("reservation", "your new reservation", "booking"), str(rid),
                ("is booked:", "is all set:", "is in place:", "—", "covers")))
            return clause(rng, opening,
                           f"{numbers} on {dates}", ("with", "and", "for"), money(paid),
                           ("charged to", "paid with", "put on", "taken from"),
                           pay or "your payment method")
        if name == "cancel_reservation":
            refund = -sum(p.get("amount", 0) for p in _new_payments(record, seen)
                          if isinstance(p.get("amount"), int | float) and p["amount"] < 0)
            text = clause(rng, _ref(rid),
                           ("is cancelled", "has been cancelled", "is now cancelled"))
            if refund:
                text = extend(text, rng, (", and", "; you'll get"), money(refund),
                                ("back to the original payment method",
                                 "refunded the way you paid",
                                 "returned to your original payment method"))
            return text
        if name == "update_reservation_baggages":
            new = sum(p.get("amount", 0) for p in _new_payments(record, seen)
                      if p.get("payment_id") == args.get("payment_id"))
            text = clause(rng, _ref(rid),
                           ("now has", "is updated to", "now shows"),
                           count(int(out.get("total_baggages") or 0), "checked bag"),
                           f"({out.get('nonfree_baggages')} paid)")
            if new:
                text = extend(text, rng, (", and", ";"), money(new),
                                ("was charged to", "went on", "was paid with"),
                                self.payment(args.get("payment_id"), seen, rng))
            return text
        if name == "update_reservation_flights":
            flights = [f for f in out.get("flights", []) if isinstance(f, Mapping)]
            legs = listing([f"{f.get('flight_number')} on {day(f.get('date'), rng)}"
                            for f in flights])
            text = clause(rng, _ref(rid),
                           ("now has", "is moved to", "is now on"), legs,
                           f"in {words(out.get('cabin'))}")
            moved = sum(p.get("amount", 0) for p in _new_payments(record, seen)
                        if p.get("payment_id") == args.get("payment_id"))
            pay = self.payment(args.get("payment_id"), seen, rng)
            if moved > 0:
                text = extend(text, rng, (", and the fare difference of", "; the difference of"),
                                money(moved), ("was charged to", "went on"), pay)
            elif moved < 0:
                text = extend(text, rng, (", and", "; you'll get"), money(-moved),
                                ("is refunded to", "back on"), pay)
            else:
                text = extend(text, rng, (", at no extra cost", ", with no price difference",
                                      ""))
            return text
        if name == "update_reservation_passengers":
            names = _names(out.get("passengers"))
            if rng.random() < 0.5:
                return clause(rng, ("the passengers on reservation", "the travellers on"),
                              str(rid), ("are now", "now read"), names)
            return clause(rng, _ref(rid),
                          ("now lists", "now has", "is updated to"), names)
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
            options = [_option(entry, cabin, rng) for entry in out[:rng.choice((1, 2, 3))]]
            options = [o for o in options if o]
            text = compose(rng, ("I see", "The search shows", "There are", "I have",
                                 "I found", "The schedule lists"),
                           count(len(out), rng.choice(kind)), route, when)
            if options:
                lead = (":" if len(options) == len(out) else
                        ("; the first is" if len(options) == 1 else "; the first ones are",
                         ", including", ", starting with", "— among them"))
                text = extend(text, rng, lead, listing(options))
            return text + "."
        if name == "get_reservation_details" and isinstance(out, Mapping):
            text = compose(rng, ("Reservation", "Booking", "Your booking"),
                           str(out.get("reservation_id")),
                           ("is a", "is your", "shows a", "holds a"), _trip(out, rng))
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
                           (":", "—", ", among them"), listing(items))
            if more:
                text = extend(text, rng, (", and", ", plus"),
                              (count(more, "more", "more"), count(more, "other")))
            return text + "."
        searches = [r for r in records if not r.error and isinstance(r.output, list)]
        if name.startswith("search_") and len(searches) >= 3:
            kind = (("direct", "nonstop") if name == "search_direct_flight" else
                    ("one-stop", "connecting"))
            choice = rng.choice(kind)
            items = []
            for r in searches[:4]:
                a, found = r.arguments, len(r.output)
                where = f"{a.get('origin')} to {a.get('destination')}"
                when = day(a.get("date"), rng)
                items.append(rng.choice((
                    f"{found or 'none'} from {where} on {when}",
                    f"{where} on {when} ({found or 'none'})",
                    f"{when}, {where}: {count(found, 'flight')}")))
            text = compose(rng, ("I compared", "I ran", "I went through", "To compare, I ran"),
                           count(len(searches), f"{choice} search", f"{choice} searches"),
                           (":", "—", "; they found"), listing(items))
            if len(searches) > len(items):
                text = extend(text, rng, (", and", ", plus"),
                              count(len(searches) - len(items), "more", "more"))
            return text + "."
        return None

    def amounts(self, record: Record, seen: Seen) -> list[tuple[float, str]]:
        out, name = record.output, record.name
        if not isinstance(out, Mapping) or "reservation_id" not in out:
            return []
        rid = out["reservation_id"]
        new = _new_payments(record, seen)
        if name == "book_reservation":
            total = sum(p.get("amount", 0) for p in out.get("payment_history", [])
                        if isinstance(p, Mapping))
            return [(total, f"the total for the new reservation {rid}|the price of the new "
                            f"booking|what the new trip costs|the fare for booking {rid}")]
        if name == "cancel_reservation":
            refund = sum(p.get("amount", 0) for p in new
                         if isinstance(p.get("amount"), int | float) and p["amount"] < 0)
            return [(refund, f"the refund for cancelling {rid}|what you get back for {rid}|"
                             f"the amount refunded on {rid}")]
        if name == "update_reservation_baggages":
            return [(sum(p.get("amount", 0) for p in new), f"the fee for the bags on {rid}|"
                     f"the baggage charge on {rid}|what the extra bags on {rid} cost")]
        if name == "update_reservation_flights":
            moved = sum(p.get("amount", 0) for p in new)
            if moved < 0:
                return [(moved, f"the refund for the change on {rid}|what you get back for "
                                f"changing {rid}")]
            return [(moved, f"the price difference for the change on {rid}|the fare "
                            f"difference on {rid}|the extra cost of changing {rid}")]
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
