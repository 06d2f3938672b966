"""Airline read-heavy task synthesizers: one write, fixed only by comparing read evidence.

``read_heavy(base)`` prepares a synthesizer for ``writ_async.synthesis.driver``. Its
requests are of two families:

* **best itinerary**: "book the cheapest (earliest-arriving, shortest) one-way trip in
  <cabin> to <destination> from any of <origins>, on any of <dates>, direct only or with
  up to one stop, for N travellers". Every itinerary is enumerated through the domain's
  own ``search_direct_flight`` / ``search_onestop_flight`` for each origin and date (and
  the travellers through ``get_reservation_details`` when they are "the same as on my
  reservation X"); those with too few seats in the cabin drop out; the request is kept
  only if exactly one itinerary is best. Burden: the profile, that lookup, and one search
  per origin × date × kind, so the origins, dates and kinds are widened to reach it.
* **reservation by property**: "cancel / add bags to / correct a traveller on the
  reservation of mine that <flies to X starting on Y, has travel insurance, is booked for
  three, ...>", among every reservation in the user's profile, each opened with
  ``get_reservation_details``. The property must hold for exactly one of them (cancelled
  ones included). Burden: the profile and every reservation, so a user with the right
  number of reservations is chosen.

Mixed tasks interleave such requests with the write-intensive ones of ``tasks.py`` (same
session: a reservation used by one request is used by no other, one booking at most, gift
cards only charged what they still hold). Everything is decided on the overlay at the
point the request happens.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date as calendar
from typing import Any

from writ_async.environment.domain import Environment
from writ_async.environment.overlay import BaseDB
from writ_async.synthesis.drafts import Call, Draft, Step, choose_step, execute
from writ_async.synthesis.readheavy import (
    ReadHeavyStep,
    ReadLedger,
    ReadShape,
    date_words,
    either,
    mixed_steps,
    read_json,
    unique_best,
)
from writ_async.synthesis.wording import long_date, pick

from .data_model import CABINS, Available, Reservation
from .generator import AIRPORT_INFO, FREE_BAGS
from .tasks import (
    BAG_FEE,
    CABIN_WORDS,
    INSURANCE_FEE,
    REASON_NOTES,
    REASONS,
    TODAY,
    AirlineWriteIntensive,
    _money,
    _name,
    _place,
    _segment_statuses,
)
from .tasks import _Session as _WriteSession

GENERATOR = "airline.read_heavy/1"
CRITERIA = ("cheapest", "earliest_arrival", "shortest")
CRITERION_WEIGHTS = {"cheapest": 1.0, "earliest_arrival": 0.8, "shortest": 0.6}
MAX_ORIGINS, MAX_DATES = 4, 7
NEW_YORK = ("JFK", "EWR", "LGA")
PROPERTIES = ("start", "trip", "date", "insurance", "party", "cabin", "traveller")
# Read-heavy request families, and how often each is drawn where both fit.
FAMILY_WEIGHTS = {"best_itinerary": 1.0, "by_property": 1.0}
ACTION_WEIGHTS = {"cancel": 1.0, "bags": 0.8, "traveller": 0.5}
PER_OTHER_REQUEST = 1.3  # reads a write-intensive request adds, on average (mixed tasks)
SCAN_SLACK = 3  # a scan in a mixed task may exceed its share of the reads by this much


def read_heavy(base: BaseDB) -> AirlineReadHeavy:
    return AirlineReadHeavy(base)


# -- time arithmetic on search results -------------------------------------------------------


def _minutes(time: str) -> int:
    """'14:30:00' -> 870, '01:00:00+1' -> 1500 (minutes after the date's midnight)."""
    days = 0
    if "+" in time:
        time, plus = time.split("+", 1)
        days = int(plus)
    return (days * 24 + int(time[:2])) * 60 + int(time[3:5])


def _day(date: str) -> int:
    # tau2 writes a connection's next day by hand ('2024-05-9' style): parse leniently.
    year, month, day = (int(part) for part in date.split("-"))
    return calendar(year, month, day).toordinal()


def departs(leg: dict[str, Any]) -> int:
    return _day(leg["date"]) * 1440 + _minutes(leg["scheduled_departure_time_est"])


def arrives(leg: dict[str, Any]) -> int:
    return _day(leg["date"]) * 1440 + _minutes(leg["scheduled_arrival_time_est"])


Itinerary = tuple[dict[str, Any], ...]  # the legs, as the search tools return them


def criterion_key(criterion: str, cabin: str) -> Callable[[Itinerary], Any]:
    """What an itinerary is compared on (smaller is better)."""
    if criterion == "cheapest":
        return lambda legs: sum(leg["prices"][cabin] for leg in legs)
    if criterion == "earliest_arrival":
        return lambda legs: arrives(legs[-1])
    if criterion == "shortest":  # the same flight is as long every day: earliest first
        return lambda legs: (arrives(legs[-1]) - departs(legs[0]), departs(legs[0]))
    raise ValueError(f"unknown criterion {criterion!r}")


def _decompositions(reads: int, lookup: bool) -> list[tuple[int, int, int, int]]:
    """(origins, dates, kinds, lookup reads) whose searches plus lookup make ``reads``."""
    out = []
    for extra in ((0, 1) if lookup else (0,)):
        for kinds in (1, 2):
            for origins in range(1, MAX_ORIGINS + 1):
                searches = reads - extra
                if searches % (kinds * origins):
                    continue
                dates = searches // (kinds * origins)
                if 1 <= dates <= MAX_DATES:
                    out.append((origins, dates, kinds, extra))
    return out


# -- the synthesizer ------------------------------------------------------------------------


class AirlineReadHeavy:
    """Read-heavy and mixed airline tasks over one base database (lookups built once)."""

    generator = GENERATOR

    def __init__(self, base: BaseDB) -> None:
        self.wi = AirlineWriteIntensive(base)
        reservations = base.tables["reservations"]
        by_count: dict[int, list[str]] = {}
        bookers: list[str] = []
        for uid, user in base.tables["users"].items():
            if not user.payment_methods:
                continue
            rids = user.reservations
            if not all(r in reservations for r in rids):
                continue
            bookers.append(uid)
            if len(rids) >= 2 and any(reservations[r].status != "cancelled"
                                      and min(f.date for f in reservations[r].flights) > TODAY
                                      for r in rids):
                by_count.setdefault(len(rids), []).append(uid)
        self.by_count = by_count
        self.bookers = tuple(bookers)
        direct: dict[str, set[str]] = {}
        for origin, destination in self.wi.routes:
            direct.setdefault(destination, set()).add(origin)
        connected: dict[str, set[str]] = {d: set(o) for d, o in direct.items()}
        for origin, hub in self.wi.routes:
            for destination in {d for h, d in self.wi.routes if h == hub}:
                if destination != origin:
                    connected.setdefault(destination, set()).add(origin)
        self.direct = {d: tuple(sorted(o)) for d, o in direct.items()}
        self.connected = {d: tuple(sorted(o)) for d, o in connected.items()}
        self.destinations = tuple(sorted(self.connected))
        self.dates = tuple(d for d in self.wi.future_dates if d > TODAY)
        self.where = {code: (lat, lon) for code, lat, lon, _ in AIRPORT_INFO}

    def burdens(self, low: int, high: int) -> list[int]:
        found = {1 + n for n in self.by_count}
        for reads in range(1, high):
            if self.bookers and _decompositions(reads, lookup=True):
                found.add(1 + reads)
        return sorted(b for b in found if low <= b <= high)

    def draft(self, env: Environment, rng: random.Random, shape: ReadShape) -> Draft | None:
        if shape.writes == 1:
            return self.single(env, rng, shape.evidence)
        users = self.wi.users_for(shape.writes)
        if not users:
            return None
        return _Session(self, env, rng, rng.choice(users)).mixed(shape)

    def single(self, env: Environment, rng: random.Random, burden: int) -> Draft | None:
        reads = burden - 1  # the profile is always read first
        families = {}
        if self.by_count.get(reads):
            families["by_property"] = FAMILY_WEIGHTS["by_property"]
        if self.bookers and _decompositions(reads, lookup=True):
            families["best_itinerary"] = FAMILY_WEIGHTS["best_itinerary"]
        if not families:
            return None
        family = rng.choices(list(families), list(families.values()))[0]
        pool = self.by_count[reads] if family == "by_property" else self.bookers
        session = _Session(self, env, rng, rng.choice(pool))
        step = (session.book_best(reads) if family == "best_itinerary"
                else session.by_property(reads))
        if step is None:
            return None
        return session.finish_read_heavy([step])


class _Session(_WriteSession):
    """A write-intensive session that can also make read-heavy requests."""

    def __init__(self, synth: AirlineReadHeavy, env: Environment, rng: random.Random,
                 user_id: str) -> None:
        super().__init__(synth.wi, env, rng, user_id)
        self.rh = synth
        self.ledger = ReadLedger([self.profile_read()])
        self.codes_hidden = False
        self.scan_limit: int | None = None  # most new reads a scan may add (mixed tasks)

    def profile_read(self) -> Call:
        return ("get_user_details", {"user_id": self.user_id})

    def finish_read_heavy(self, steps: list[Step]) -> Draft:
        draft = self.finish(steps)
        if self.codes_hidden:
            draft.unknown_info = self.rng.choice((
                "You do not remember your reservation codes.",
                "You don't have the reservation code at hand.",
            ))
        return draft

    def mixed(self, shape: ReadShape) -> Draft | None:
        steps = mixed_steps(self.rng, shape, self.ledger, PER_OTHER_REQUEST, self.heavy,
                            self.valid)
        return None if steps is None else self.finish_read_heavy(steps)

    def heavy(self, budget: int) -> Step | None:
        self.scan_limit = budget + SCAN_SLACK
        return choose_step(self.rng, self.uses, FAMILY_WEIGHTS, {
            "best_itinerary": lambda: self.book_best(budget),
            "by_property": lambda: self.by_property(None),
        })

    # -- best itinerary -------------------------------------------------------------------

    def book_best(self, reads: int) -> Step | None:
        """Book the one itinerary that is best on a criterion; ``reads`` new reads."""
        if self.booked:
            return None
        rng = self.rng
        user = self.user
        allowance = FREE_BAGS.get(user.membership)
        if allowance is None:
            return None
        mine = [self.db.get("reservations", r) for r in user.reservations]
        lookups = [r for r in mine if r is not None and 1 <= len(r.passengers) <= 5]
        shapes = _decompositions(reads, lookup=bool(lookups))
        rng.shuffle(shapes)
        for n_origins, n_dates, kinds, extra in shapes[:6]:
            like = rng.choice(lookups) if extra else None
            found = self.itinerary(n_origins, n_dates, kinds, like, reads - n_origins *
                                   n_dates * kinds)
            if found is not None:
                return self.booking(allowance, *found)
        return None

    def itinerary(self, n_origins: int, n_dates: int, kinds: int, like: Reservation | None,
                  extra: int) -> tuple[Any, ...] | None:
        rng = self.rng
        lookup: list[Call] = []
        if like is not None:
            lookup = [self.res_read(like)]
            if self.ledger.new(lookup) != extra:
                return None  # read already (a mixed task): the burden would differ
        n = len(like.passengers) if like is not None else rng.choice((1, 1, 2, 2, 3, 4))
        cabin = rng.choice(CABINS)
        # Over several dates the first feasible day would settle the earliest arrival
        # without the later days' searches: that criterion is asked for one date only.
        criteria = CRITERIA if n_dates == 1 else CRITERIA[::2]
        criterion = rng.choices(criteria, [CRITERION_WEIGHTS[c] for c in criteria])[0]
        destination = rng.choice(self.rh.destinations)
        pool = [o for o in (self.rh.direct if kinds == 1 else self.rh.connected).get(
            destination, ()) if o != destination]
        if len(pool) < n_origins or len(self.rh.dates) < n_dates:
            return None
        nearby = [o for o in NEW_YORK if o in pool]
        new_york = (n_origins >= 2 and destination not in NEW_YORK
                    and len(nearby) >= n_origins and rng.random() < 0.5)
        origins = rng.sample(nearby, n_origins) if new_york else self.near(pool, n_origins)
        if rng.random() < 0.7:
            at = rng.randrange(len(self.rh.dates) - n_dates + 1)
            dates = list(self.rh.dates[at:at + n_dates])
        else:
            dates = sorted(rng.sample(self.rh.dates, n_dates))
        searches: list[Call] = []
        for origin in origins:
            for day in dates:
                args = {"origin": origin, "destination": destination, "date": day}
                searches.append(("search_direct_flight", args))
                if kinds == 2:
                    searches.append(("search_onestop_flight", dict(args)))
        if self.ledger.new(searches) != len(searches):
            return None  # a search done earlier in the task would not count again
        # Every candidate, as the agent sees it: the tools' own output.
        itineraries: list[Itinerary] = []
        for name, args in searches:
            found = read_json(self.env, (name, args))
            if name == "search_direct_flight":
                itineraries.extend((dict(leg, date=args["date"]),) for leg in found)
            else:
                itineraries.extend(tuple(pair) for pair in found)
        fits = [legs for legs in itineraries
                if all(leg["available_seats"].get(cabin, 0) >= n and cabin in leg["prices"]
                       for leg in legs)]
        if len(fits) < 2:
            return None  # a criterion over one option is no comparison
        best = unique_best(fits, criterion_key(criterion, cabin))
        if best is None:
            return None
        decision = {"kind": "book", "criterion": criterion, "origins": origins,
                    "destination": destination, "dates": dates, "max_stops": kinds - 1,
                    "cabin": cabin, "passengers": n, "candidates": len(itineraries),
                    "feasible": len(fits)}
        return (lookup + searches, best, decision, like, new_york)

    def near(self, pool: list[str], n: int) -> list[str]:
        """``n`` airports of ``pool`` around one of them (a customer's choice of airports
        is a region), in an order of the rng's."""
        where = self.rh.where
        lat, lon = where[self.rng.choice(pool)]
        ranked = sorted(pool, key=lambda o: ((where[o][0] - lat) ** 2
                                             + (where[o][1] - lon) ** 2, o))
        chosen = ranked[:n]
        self.rng.shuffle(chosen)
        return chosen

    def booking(self, allowance: dict[str, int], reads: list[Call], legs: Itinerary,
                decision: dict[str, Any], like: Reservation | None, new_york: bool
                ) -> Step | None:
        rng = self.rng
        cabin, n = decision["cabin"], decision["passengers"]
        if like is not None:
            people = [{"first_name": p.first_name, "last_name": p.last_name, "dob": p.dob}
                      for p in like.passengers]
            who = (f"the same traveller as on your reservation {like.reservation_id}"
                   if n == 1 else
                   f"the same {n} travellers as on your reservation {like.reservation_id}")
        else:
            people, who = self.party(self.user, n)
        bags = rng.choice(range(n + 1)) if rng.random() < 0.5 else 0
        nonfree = max(0, bags - allowance[cabin] * n)
        insurance = rng.choice(("yes", "no"))
        total = (sum(leg["prices"][cabin] for leg in legs) * n
                 + (INSURANCE_FEE * n if insurance == "yes" else 0) + BAG_FEE * nonfree)
        payer = self.payer(total)
        if payer is None:
            return None
        pid, label = payer
        origin, destination = legs[0]["origin"], decision["destination"]
        write = ("book_reservation", {
            "user_id": self.user_id, "origin": origin, "destination": destination,
            "flight_type": "one_way", "cabin": cabin,
            "flights": [{"flight_number": leg["flight_number"], "date": leg["date"]}
                        for leg in legs],
            "passengers": people, "payment_methods": [{"payment_id": pid, "amount": total}],
            "total_baggages": bags, "nonfree_baggages": nonfree, "insurance": insurance})
        origins = decision["origins"]
        if new_york and len(origins) == 3:
            where = "any of the three New York area airports (JFK, Newark EWR or LaGuardia LGA)"
        else:
            where = either([_place(o, rng) for o in origins])
        stops = (rng.choice(("only a nonstop flight will do", "you want a direct flight, "
                             "no connections")) if decision["max_stops"] == 0 else
                 rng.choice(("a direct flight or a connection with one stop are both fine",
                             "nonstop or with one stop, either is fine")))
        goal = self.goal_words(decision["criterion"], _place(destination, rng))
        ask = pick(rng, (
            "you want to book a one-way trip to {d} in {cabin} for {who}. You can leave "
            "from {where}, {dates}; {stops}. Of all the options, you want {goal}",
            "you need a one-way flight to {d}, {cabin} class, for {who}. You could fly out "
            "of {where}, {dates}, and {stops}. You want {goal}"),
            d=_place(destination, rng), cabin=CABIN_WORDS[cabin], who=who, where=where,
            dates=date_words(rng, decision["dates"]), stops=stops, goal=goal)
        ask += ". " + ("You want no checked bags" if bags == 0 else
                       f"You will check {bags} bag{'s' if bags > 1 else ''} in total")
        ask += (", and you want travel insurance. " if insurance == "yes"
                else ", and you do not want travel insurance. ")
        ask += self.pay_clause(label)
        lines = [
            pick(rng, (
                "You do not know flight numbers or schedules: let the agent search every "
                "airport and date you mentioned and compare. If offered a choice, ask for "
                "{goal} among all of them.",
                "You have no preference between the airports and dates you gave; what "
                "matters is {goal}. Do not pick an option yourself: ask the agent to find "
                "it."), goal=goal),
            pick(rng, ("Make sure the agent tells you the total price before you confirm.",
                       "Ask for the total price of the booking before you agree.")),
        ]
        execute(self.env, write)
        self.booked = True
        for rid in self.user.reservations:
            if rid not in self.db.base.tables["reservations"]:
                self.touch(rid, "*")
        stops_note = "direct" if decision["max_stops"] == 0 else "direct/1-stop"
        return ReadHeavyStep(
            kind=f"book_{decision['criterion']}", reads=reads, write=write, ask=ask,
            instructions=lines, communicate=[_money(total)],
            note=(f"book the {decision['criterion'].replace('_', ' ')} of "
                  f"{decision['feasible']}/{decision['candidates']} itineraries to "
                  f"{destination} ({len(origins)} origins x {len(decision['dates'])} dates, "
                  f"{stops_note}, {cabin} x{n}; {total})"),
            decisions=[decision])

    def goal_words(self, criterion: str, place: str) -> str:
        rng = self.rng
        if criterion == "cheapest":
            return rng.choice(("the cheapest one", "whichever is cheapest in total",
                               "the lowest total fare"))
        if criterion == "earliest_arrival":
            return pick(rng, ("the one that gets you to {p} the earliest",
                              "whichever lands in {p} first"), p=place)
        return rng.choice(("the one with the shortest total travel time, from first "
                           "take-off to final landing (the earliest departure among equally "
                           "short ones)",
                           "the fastest trip overall, counting any connection time, and if "
                           "several are just as fast, the one that leaves earliest"))

    # -- reservation by property -------------------------------------------------------------

    def by_property(self, reads: int | None) -> Step | None:
        """A request on the one reservation of the user's that has a property, found by
        opening every reservation in the profile (``reads`` of them new, if given)."""
        rng = self.rng
        profile = read_json(self.env, self.profile_read())
        calls = [("get_reservation_details", {"reservation_id": rid})
                 for rid in profile["reservations"]]
        new = self.ledger.new(calls)
        if len(calls) < 2 or (reads is not None and new != reads) or (
                self.scan_limit is not None and new > self.scan_limit):
            return None
        records = [read_json(self.env, call) for call in calls]  # every candidate
        mine = f"{self.user.name.first_name} {self.user.name.last_name}"
        options: list[tuple[str, int, str, Any]] = []
        for i, record in enumerate(records):
            res = self.db.get("reservations", record["reservation_id"])
            if res.reservation_id in self.touched or res.status == "cancelled":
                continue
            statuses = _segment_statuses(self.db, res)
            if not statuses or not all(isinstance(s, Available) for s in statuses):
                continue
            for prop in PROPERTIES:
                for value in _values(record, prop):
                    if (prop == "insurance" and value != "yes") or value == mine:
                        continue
                    if all(value not in _values(other, prop)
                           for j, other in enumerate(records) if j != i):
                        for action in self.actions_for(prop, res):
                            options.append((action, i, prop, value))
        if not options:
            return None
        weights = [ACTION_WEIGHTS[o[0]] for o in options]
        action, i, prop, value = rng.choices(options, weights)[0]
        res = self.db.get("reservations", records[i]["reservation_id"])
        desc = self.describe(prop, value, res)
        decision = {"kind": "reservation", "user_id": self.user_id, "property": prop,
                    "value": list(value) if isinstance(value, tuple) else value,
                    "candidates": len(records)}
        build = {"cancel": self.cancel_found, "bags": self.bags_found,
                 "traveller": self.traveller_found}[action]
        step = build(res, desc, value)
        if step is None:
            return None
        self.codes_hidden = True
        step.reads = calls
        step.decisions = [decision]
        step.instructions.append(rng.choice((
            "You do not know the reservation code: describe the trip as above and let the "
            "agent find it among your reservations.",
            "If asked for the reservation code, say you do not have it; the agent can look "
            "through your bookings.")))
        step.note += f" (found by {prop} among {len(records)} reservations)"
        return step

    def actions_for(self, prop: str, res: Reservation) -> list[str]:
        out = []
        statuses = _segment_statuses(self.db, res) or []
        if self.free(res, "*") and self.cancel_reasons(res, statuses):
            out.append("cancel")
        allowance = FREE_BAGS.get(self.user.membership, {})
        if res.cabin in allowance and res.nonfree_baggages == max(
                0, res.total_baggages - allowance[res.cabin] * len(res.passengers)):
            out.append("bags")
        if prop == "traveller":
            out.append("traveller")
        return out

    def describe(self, prop: str, value: Any, res: Reservation) -> str:
        rng = self.rng
        if prop == "start":
            return pick(rng, ("the reservation of yours that flies to {d}, starting on {t}",
                              "your trip to {d} that starts on {t}"),
                        d=_place(value[0], rng), t=long_date(value[1]))
        if prop == "trip":
            kind = "round trip" if res.flight_type == "round_trip" else "one-way trip"
            return pick(rng, ("your {k} from {o} to {d}", "the {k} you booked from {o} to {d}"),
                        k=kind, o=_place(value[0], rng), d=_place(value[1], rng))
        if prop == "date":
            return pick(rng, ("the trip of yours that starts on {t}",
                              "your reservation whose first flight is on {t}"),
                        t=long_date(value))
        if prop == "insurance":
            return rng.choice(("the one reservation of yours that has travel insurance",
                               "your booking with travel insurance (you only insured one)"))
        if prop == "party":
            return pick(rng, ("the reservation you made for {n} travellers",
                              "your booking for {n} people"), n=value)
        if prop == "cabin":
            return pick(rng, ("your {c} reservation (you have only one in {c})",
                              "the trip you booked in {c}"), c=CABIN_WORDS.get(value, value))
        return pick(rng, ("the reservation on which {p} travels",
                          "the booking that {p} is on"), p=value)

    def cancel_found(self, res: Reservation, desc: str, value: Any) -> Step | None:
        rng = self.rng
        statuses = _segment_statuses(self.db, res) or []
        reasons = self.cancel_reasons(res, statuses)
        if not reasons:
            return None
        reason = rng.choice(reasons)
        why = rng.choice(REASONS[reason])
        ask = pick(rng, ("you want to cancel {desc} because {why}",
                         "you need to cancel {desc}: {why}"), desc=desc, why=why)
        write = ("cancel_reservation", {"reservation_id": res.reservation_id})
        refund = sum(p.amount for p in res.payment_history)
        execute(self.env, write)
        self.touch(res.reservation_id, "*")
        communicate, lines = [], []
        if refund > 0 and rng.random() < 0.5:
            communicate = [_money(refund)]
            lines = [rng.choice(("Ask the agent how much will be refunded.",
                                 "You want to know the total refund."))]
        return ReadHeavyStep(kind="cancel_reservation_by_property", reads=[], write=write,
                             ask=ask, instructions=lines, communicate=communicate,
                             note=f"cancel {res.reservation_id} ({REASON_NOTES[reason]})")

    def bags_found(self, res: Reservation, desc: str, value: Any) -> Step | None:
        rng = self.rng
        allowance = FREE_BAGS[self.user.membership]
        free = allowance[res.cabin] * len(res.passengers)
        extra = rng.choice((1, 1, 2, 3))
        change = self.bag_change(res, free, extra)
        if change is None:
            return None
        total, nonfree, charge, pid, label, bags = change
        ask = pick(rng, ("you want to add {bags} to {desc}", "you need {bags} on {desc}"),
                   bags=bags, desc=desc)
        ask += ". " + self.pay_clause(label)
        write = ("update_reservation_baggages", {
            "reservation_id": res.reservation_id, "total_baggages": total,
            "nonfree_baggages": nonfree, "payment_id": pid})
        execute(self.env, write)
        self.touch(res.reservation_id, "*")
        communicate, lines = self.price_talk(charge, "the extra bags")
        return ReadHeavyStep(kind="update_baggages_by_property", reads=[], write=write,
                             ask=ask, instructions=lines, communicate=communicate,
                             note=f"bags of {res.reservation_id} {res.total_baggages}->{total}")

    def traveller_found(self, res: Reservation, desc: str, value: Any) -> Step | None:
        rng = self.rng
        names = [_name(p) for p in res.passengers]
        if names.count(value) != 1:
            return None
        i = names.index(value)
        old = res.passengers[i]
        dob = old.dob
        while dob == old.dob:
            dob = f"{rng.randint(1950, 2012)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        people = [{"first_name": p.first_name, "last_name": p.last_name, "dob": p.dob}
                  for p in res.passengers]
        people[i]["dob"] = dob
        ask = pick(rng, (
            "{p}'s date of birth was entered wrongly on the reservation {p} travels on; it "
            "should be {dob}",
            "on the booking that {p} is on, their date of birth is wrong and must be "
            "corrected to {dob}"), p=value, dob=dob)
        write = ("update_reservation_passengers",
                 {"reservation_id": res.reservation_id, "passengers": people})
        execute(self.env, write)
        self.touch(res.reservation_id, "*")
        return ReadHeavyStep(kind="update_passenger_by_property", reads=[], write=write,
                             ask=ask, note=f"correct birth date of {value} on "
                                           f"{res.reservation_id}")


def _values(record: dict[str, Any], prop: str) -> list[Any]:
    """The values a reservation (as ``get_reservation_details`` shows it) has for a
    property; a property holds for the one reservation that has the asked value."""
    if prop == "start":
        return [(record["destination"], record["flights"][0]["date"])]
    if prop == "trip":
        return [(record["origin"], record["destination"])]
    if prop == "date":
        return [record["flights"][0]["date"]]
    if prop == "insurance":
        return [record["insurance"]]
    if prop == "party":
        return [len(record["passengers"])]
    if prop == "cabin":
        return [record["cabin"]]
    if prop == "traveller":
        return [f"{p['first_name']} {p['last_name']}" for p in record["passengers"]]
    raise ValueError(f"unknown property {prop!r}")

