"""Airline task synthesizers: one customer's requests, simulated under tools and policy.

``write_intensive(base)`` prepares a synthesizer for ``writ_async.synthesis.driver``.
Each draft picks a user and carries out their requests one after another on the
episode's overlay; a request is offered only if ``policy.md`` allows it at that point
(cancellation rules, basic economy, free bag allowance, exact payment, ...), and a
refused request only if the policy forbids it. The gold of a request is the reads an
agent needs before deciding (the user's profile first, then the reservation, flight
searches, flight status), followed by the write with exact arguments.

Requests never depend on each other's order in a way an agent could get wrong: a
reservation cancelled or refused is used for nothing else, its cabin and its bags are not
both changed, one booking and one certificate at most (the tools hand out their ids in
sequence), and gift cards are only charged what they hold after every earlier charge.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, NamedTuple

from writ_async.environment.domain import Environment
from writ_async.environment.overlay import BaseDB, Overlay
from writ_async.synthesis.drafts import Call, Draft, Shape, Step, choose_step, execute
from writ_async.synthesis.wording import listing, long_date, pick

from .data_model import (
    CABINS,
    Available,
    Cancelled,
    CreditCard,
    Flying,
    GiftCard,
    Landed,
    Passenger,
    Reservation,
    User,
)
from .generator import FIRST_NAMES, FREE_BAGS, LAST_NAMES
from .tools import AIRPORTS, BOOKING_TIME, NEW_CERTIFICATE_IDS

GENERATOR = "airline.write_intensive/1"
TODAY = BOOKING_TIME[:10]  # "2024-05-15"
DAY_AGO = "2024-05-14" + BOOKING_TIME[10:]  # booked within 24 hours: created_at >= this
CITY = dict(AIRPORTS)
BAG_FEE, INSURANCE_FEE, CERTIFICATE_PER_PASSENGER = 50, 30, 100
CABIN_WORDS = {"basic_economy": "basic economy", "economy": "economy", "business": "business"}
BRANDS = {"visa": "Visa card", "mastercard": "Mastercard", "amex": "American Express card",
          "discover": "Discover card"}

# How often each request type is drawn (before repeats are damped).
VALID_WEIGHTS = {"cancel": 1.0, "bags": 1.0, "passengers": 0.8, "flights": 1.0,
                 "cabin": 0.7, "book": 0.8, "compensation": 0.6}
REFUSAL_WEIGHTS = {"refuse_cancel": 1.5, "refuse_change_basic": 1.0, "refuse_remove_bags": 0.7,
                   "refuse_add_passenger": 0.7, "refuse_add_insurance": 0.7,
                   "refuse_compensation": 0.8}

REASONS = {
    "change_of_plan": ("your plans have changed", "you changed your plans and no longer need "
                       "the trip", "something came up and you cannot make the trip"),
    "health": ("you are ill and your doctor told you not to travel", "a health problem "
               "keeps you from travelling", "you had surgery and cannot fly"),
    "weather": ("a severe storm is forecast at your destination and you do not want to "
                "risk it", "the weather forecast for your trip is dangerous"),
    "airline_cancelled": ("the airline cancelled one of its flights", "one of its flights "
                          "was cancelled by the airline"),
}
REASON_NOTES = {"change_of_plan": "change of plan", "health": "health",
                "weather": "weather", "airline_cancelled": "airline cancelled a flight"}


def write_intensive(base: BaseDB) -> AirlineWriteIntensive:
    return AirlineWriteIntensive(base)


class AirlineWriteIntensive:
    """Write-intensive airline tasks over one base database (lookups built once)."""

    generator = GENERATOR

    def __init__(self, base: BaseDB) -> None:
        # A rough upper bound on how many requests each user's reservations can carry
        # (several changes per upcoming trip, one per other trip, a booking), so that a
        # draft starts from a user who can plausibly make that many.
        reservations = base.tables["reservations"]
        room: list[tuple[str, int]] = []
        for uid, user in base.tables["users"].items():
            if not user.reservations:
                continue
            own = [reservations[r] for r in user.reservations if r in reservations]
            upcoming = sum(1 for r in own if r.status != "cancelled"
                           and min(f.date for f in r.flights) > TODAY)
            room.append((uid, 1 + 3 * upcoming + len(own)))
        self.room = room
        self.capacity: dict[int, tuple[str, ...]] = {}
        routes: dict[tuple[str, str], list[str]] = {}
        dates: set[str] = set()
        for number, flight in base.tables["flights"].items():
            routes.setdefault((flight.origin, flight.destination), []).append(number)
            dates.update(d for d, s in flight.dates.items() if d > TODAY
                         and isinstance(s, Available))
        self.routes = routes
        self.route_list = sorted(routes)
        self.future_dates = sorted(dates)

    def users_for(self, n: int) -> tuple[str, ...]:
        found = self.capacity.get(n)
        if found is None:
            found = self.capacity[n] = tuple(uid for uid, r in self.room if r >= n)
        return found

    def draft(self, env: Environment, rng: random.Random, shape: Shape) -> Draft | None:
        users = self.users_for(shape.writes + shape.refusals)
        if not users:
            return None
        return _Session(self, env, rng, rng.choice(users)).run(shape)


# -- facts about reservations -------------------------------------------------------------


class BagChange(NamedTuple):
    total: int
    nonfree: int
    charge: int
    payment_id: str
    payment_label: str
    words: str  # "one more checked bag" / "2 more checked bags"


def _segment_statuses(db: Overlay, res: Reservation) -> list[Any] | None:
    """The status of every segment's flight on its date (None if one is unknown)."""
    out = []
    for seg in res.flights:
        flight = db.get("flights", seg.flight_number)
        status = flight.dates.get(seg.date) if flight is not None else None
        if status is None:
            return None
        out.append(status)
    return out


def _money(amount: int | float) -> str:
    return str(amount)


def _clock(time: str, rng: random.Random) -> str:
    """'14:30:00' -> '14:30' or '2:30 PM'."""
    hour, minute = int(time[:2]), int(time[3:5])
    if rng.random() < 0.5:
        return f"{hour:02d}:{minute:02d}"
    suffix = "AM" if hour < 12 else "PM"
    return f"{(hour - 1) % 12 + 1}:{minute:02d} {suffix}"


def _place(code: str, rng: random.Random) -> str:
    city = CITY.get(code)
    if city is None:
        return code
    return rng.choice((f"{city} ({code})", code, f"{city} ({code})"))


def _name(p: Passenger) -> str:
    return f"{p.first_name} {p.last_name}"


def _passenger(p: Passenger) -> dict[str, str]:
    return {"first_name": p.first_name, "last_name": p.last_name, "dob": p.dob}


class _Session:
    """One draft: a user, the overlay, and what the requests so far have used up."""

    def __init__(self, synth: AirlineWriteIntensive, env: Environment, rng: random.Random,
                 user_id: str) -> None:
        self.synth = synth
        self.env = env
        self.db = env.overlay
        self.rng = rng
        self.user_id = user_id
        self.touched: dict[str, set[str]] = {}
        self.uses: dict[str, int] = {}
        self.charged: dict[str, float] = {}
        self.booked = False
        self.certified = False
        self.first_mention: set[str] = set()

    @property
    def user(self) -> User:
        return self.db.get("users", self.user_id)

    def reservations(self) -> list[Reservation]:
        out = []
        for rid in self.user.reservations:
            res = self.db.get("reservations", rid)
            if res is not None and res.status != "cancelled" and "*" not in self.touched.get(
                    rid, ()):
                out.append(res)
        return out

    def upcoming(self) -> list[tuple[Reservation, list[Available]]]:
        """Reservations whose every segment is still bookable (none flown or under way)."""
        out = []
        for res in self.reservations():
            statuses = _segment_statuses(self.db, res)
            if statuses and all(isinstance(s, Available) for s in statuses):
                out.append((res, statuses))
        return out

    def touch(self, rid: str, *what: str) -> None:
        self.touched.setdefault(rid, set()).update(what)

    def free(self, res: Reservation, *what: str) -> bool:
        return not (self.touched.get(res.reservation_id, set()) & set(what))

    def run(self, shape: Shape) -> Draft | None:
        n = shape.writes + shape.refusals
        refused_at = set(self.rng.sample(range(n), shape.refusals))
        steps = []
        for i in range(n):
            step = self.refusal() if i in refused_at else self.valid()
            if step is None:
                return None
            steps.append(step)
        return self.finish(steps)

    def finish(self, steps: list[Step]) -> Draft:
        rng = self.rng
        user = self.user
        name = f"{user.name.first_name} {user.name.last_name}"
        known = pick(rng, ("You are {name}.\nYour user id is {uid}.",
                           "Your name is {name} and your user id is {uid}.",
                           "You are {name} (user id: {uid}).",
                           "Your user id is {uid}. Your name is {name}."),
                     name=name, uid=self.user_id)
        opening = ""
        if len(steps) > 1 and rng.random() < 0.5:
            opening = rng.choice((
                "You are calling the airline with several requests about your travel.",
                "You have a few things to sort out with the airline today.",
                "You want to take care of several bookings in one call.",
            ))
        return Draft(known_info=known,
                     identity=[("get_user_details", {"user_id": self.user_id})],
                     steps=steps, opening=opening)

    def _choose(self, weights: dict[str, float],
                builders: dict[str, Callable[[], Step | None]]) -> Step | None:
        return choose_step(self.rng, self.uses, weights, builders)

    def valid(self) -> Step | None:
        return self._choose(VALID_WEIGHTS, {
            "cancel": self.cancel, "bags": self.bags, "passengers": self.passengers,
            "flights": self.flights, "cabin": self.cabin, "book": self.book,
            "compensation": self.compensation,
        })

    def refusal(self) -> Step | None:
        return self._choose(REFUSAL_WEIGHTS, {
            "refuse_cancel": self.refuse_cancel,
            "refuse_change_basic": self.refuse_change_basic,
            "refuse_remove_bags": self.refuse_remove_bags,
            "refuse_add_passenger": self.refuse_add_passenger,
            "refuse_add_insurance": self.refuse_add_insurance,
            "refuse_compensation": self.refuse_compensation,
        })

    # -- shared pieces ----------------------------------------------------------------------

    def trip(self, res: Reservation) -> str:
        rng = self.rng
        back = " and back" if res.flight_type == "round_trip" else ""
        return pick(rng, ("your trip from {o} to {d}{back} on {date}",
                          "the {o} to {d}{back} trip starting {date}",
                          "your {date} trip from {o} to {d}{back}"),
                    o=_place(res.origin, rng), d=_place(res.destination, rng), back=back,
                    date=long_date(res.flights[0].date))

    def ref(self, res: Reservation, short: bool = False) -> str:
        """The reservation as the user names it: its code, and the trip at first mention
        unless the request describes the flight itself (``short``)."""
        rid = res.reservation_id
        if short or rid in self.first_mention:
            self.first_mention.add(rid)
            return pick(self.rng, ("reservation {rid}", "booking {rid}"), rid=rid)
        self.first_mention.add(rid)
        return pick(self.rng, ("reservation {rid} ({trip})", "{trip} (reservation {rid})",
                               "booking {rid}, {trip}"), rid=rid, trip=self.trip(res))

    def res_read(self, res: Reservation) -> Call:
        return ("get_reservation_details", {"reservation_id": res.reservation_id})

    def payer(self, amount: int) -> tuple[str, str] | None:
        """A payment method of the user's for a charge (or refund) of ``amount``: a credit
        card, or the user's only gift card if it still covers every charge so far."""
        user = self.user
        cards = [m for m in user.payment_methods.values() if isinstance(m, CreditCard)]
        labels = [(BRANDS.get(c.brand, f"{c.brand} card"), c.last_four) for c in cards]
        options = []
        for card, label in zip(cards, labels, strict=True):
            if labels.count(label) == 1:
                options.append((card.id, f"your {label[0]} ending in {label[1]}"))
        gifts = [m for m in user.payment_methods.values() if isinstance(m, GiftCard)]
        if len(gifts) == 1:
            gift = gifts[0]
            left = gift.amount - self.charged.get(gift.id, 0.0)
            if left >= max(amount, 0) and (not options or self.rng.random() < 0.3):
                options = [(gift.id, "your gift card")]
        if not options:
            return None
        pid, label = self.rng.choice(options)
        if amount > 0 and pid.startswith("gift_card"):
            self.charged[pid] = self.charged.get(pid, 0.0) + amount
        return pid, label

    def pay_clause(self, label: str) -> str:
        return pick(self.rng, ("You want to pay with {m}.", "Use {m} for any payment.",
                               "Any charge should go on {m}."), m=label)

    def price_talk(self, amount: int, what: str) -> tuple[list[str], list[str]]:
        """communicate_info and an instruction for a charge (>0) or refund (<0)."""
        if amount == 0:
            return [], []
        if amount > 0:
            line = pick(self.rng, ("Before confirming, make sure the agent tells you how much "
                                   "{w} will cost.", "Ask how much {w} will cost before you "
                                   "agree."), w=what)
            return [_money(amount)], [line]
        line = pick(self.rng, ("Ask how much you will get back for {w}.",
                               "Make sure the agent tells you the refund for {w}."), w=what)
        return [_money(-amount)], [line]

    def flight_choice(self, origin: str, destination: str, date: str, cabin: str, n: int,
                      avoid: tuple[str, str] | None = None) -> tuple[str, Available, str] | None:
        """A direct flight with ``n`` seats in ``cabin`` and how the user singles it out
        among everything the search shows: its departure time, or earliest / cheapest."""
        options = []
        for number in self.synth.routes.get((origin, destination), ()):
            flight = self.db.get("flights", number)
            status = flight.dates.get(date)
            if isinstance(status, Available):
                options.append((flight, status))
        rng = self.rng
        fits = [(f, s) for f, s in options if s.available_seats.get(cabin, 0) >= n
                and (f.flight_number, date) != avoid and cabin in s.prices]
        rng.shuffle(fits)
        for flight, status in fits:
            dep = flight.scheduled_departure_time_est
            others = [(f, s) for f, s in options if f is not flight]
            phrases = []
            if all(f.scheduled_departure_time_est != dep for f, _ in others):
                phrases.append(pick(rng, ("the direct flight that leaves at {t}",
                                          "the nonstop departing at {t}",
                                          "the {t} direct flight"), t=_clock(dep, rng)))
            if others and all(f.scheduled_departure_time_est > dep for f, _ in others):
                phrases.append(rng.choice(("the earliest direct flight of the day",
                                           "the first nonstop of the day")))
            price = status.prices[cabin]
            if others and all(s.prices.get(cabin, price + 1) > price for _, s in others):
                phrases.append(pick(rng, ("the cheapest direct flight in {c}",
                                          "whichever direct flight is cheapest in {c}"),
                                    c=CABIN_WORDS.get(cabin, cabin)))
            if phrases:
                return flight.flight_number, status, rng.choice(phrases)
        return None

    def directions(self, res: Reservation) -> list[int]:
        """Indexes of segments that make up a whole direction on their own (direct legs)."""
        segs = res.flights
        if res.flight_type != "round_trip":
            return [0] if len(segs) == 1 else []
        turn = next((i for i, s in enumerate(segs) if s.destination == res.destination), None)
        if turn is None:
            return []
        out = []
        if turn == 0:
            out.append(0)
        if turn == len(segs) - 2:
            out.append(len(segs) - 1)
        return out

    # -- valid requests ---------------------------------------------------------------------

    def cancel_reasons(self, res: Reservation, statuses: list[object]) -> list[str]:
        if any(isinstance(s, Landed | Flying) for s in statuses):
            return []
        reasons = []
        if any(isinstance(s, Cancelled) for s in statuses):
            reasons.append("airline_cancelled")
        if res.created_at >= DAY_AGO or res.cabin == "business":
            reasons += ["change_of_plan", "health", "weather"]
        elif res.insurance == "yes":
            reasons += ["health", "weather"]
        return reasons

    def bag_change(self, res: Reservation, free: int, extra: int) -> BagChange | None:
        """Adding ``extra`` bags to ``res`` (``free`` bags are free); None when no payment
        method of the user can pay the fee."""
        total = res.total_baggages + extra
        nonfree = max(0, total - free)
        charge = BAG_FEE * (nonfree - res.nonfree_baggages)
        payer = self.payer(charge)
        if payer is None:
            return None
        bags = "one more checked bag" if extra == 1 else f"{extra} more checked bags"
        return BagChange(total, nonfree, charge, payer[0], payer[1], bags)

    def cancel(self) -> Step | None:
        rng = self.rng
        candidates = []
        for res in self.reservations():
            if res.reservation_id in self.touched:
                continue
            statuses = _segment_statuses(self.db, res)
            if statuses is None:
                continue
            reasons = self.cancel_reasons(res, statuses)
            if reasons:
                candidates.append((res, statuses, reasons))
        if not candidates:
            return None
        res, statuses, reasons = rng.choice(candidates)
        reason = rng.choice(reasons)
        reads = [self.res_read(res)]
        if reason == "airline_cancelled":
            seg = next(f for f, s in zip(res.flights, statuses, strict=True)
                       if isinstance(s, Cancelled))
            reads.append(("get_flight_status", {"flight_number": seg.flight_number,
                                                "date": seg.date}))
        refund = sum(p.amount for p in res.payment_history)
        ref = self.ref(res)
        why = rng.choice(REASONS[reason])
        ask = pick(rng, ("you want to cancel {ref} because {why}",
                         "you need to cancel {ref}: {why}",
                         "you would like {ref} cancelled, since {why}"), ref=ref, why=why)
        write = ("cancel_reservation", {"reservation_id": res.reservation_id})
        execute(self.env, write)
        self.touch(res.reservation_id, "*")
        communicate, lines = [], []
        if rng.random() < 0.5 and refund > 0:
            communicate = [_money(refund)]
            lines = [pick(rng, ("Ask the agent how much will be refunded for {rid}.",
                                "You want to know the total refund for {rid}."),
                          rid=res.reservation_id)]
        basis = ("booked within 24 hours" if res.created_at >= DAY_AGO else
                 "business" if res.cabin == "business" else
                 "insured" if reason in ("health", "weather") else "airline cancellation")
        return Step(kind="cancel_reservation", reads=reads, write=write, ask=ask,
                    instructions=lines, communicate=communicate,
                    note=f"cancel {res.reservation_id} ({basis}, {REASON_NOTES[reason]})")

    def bags(self) -> Step | None:
        rng = self.rng
        user = self.user
        allowance = FREE_BAGS.get(user.membership)
        if allowance is None:
            return None
        candidates = []
        for res, _ in self.upcoming():
            if not self.free(res, "bags", "cabin") or res.cabin not in allowance:
                continue
            free = allowance[res.cabin] * len(res.passengers)
            if res.nonfree_baggages == max(0, res.total_baggages - free):
                candidates.append((res, free))
        if not candidates:
            return None
        res, free = rng.choice(candidates)
        extra = rng.choice((1, 1, 2, 2, 3))
        change = self.bag_change(res, free, extra)
        if change is None:
            return None
        total, nonfree, charge, pid, label, bags = change
        ask = pick(rng, ("you want to add {bags} to {ref}",
                         "you are bringing {bags} on {ref} and want to add {it} to the booking",
                         "you need {bags} on {ref}"), bags=bags, ref=self.ref(res),
                   it="it" if extra == 1 else "them")
        ask += ". " + self.pay_clause(label)
        write = ("update_reservation_baggages", {
            "reservation_id": res.reservation_id, "total_baggages": total,
            "nonfree_baggages": nonfree, "payment_id": pid})
        execute(self.env, write)
        self.touch(res.reservation_id, "bags")
        communicate, lines = self.price_talk(charge, f"the bags on {res.reservation_id}")
        return Step(kind="update_reservation_baggages", reads=[self.res_read(res)],
                    write=write, ask=ask, instructions=lines, communicate=communicate,
                    note=f"bags of {res.reservation_id} {res.total_baggages}->{total} "
                         f"({nonfree} paid)")

    def new_person(self, taken: list[str]) -> Passenger:
        rng = self.rng
        while True:
            person = Passenger(first_name=rng.choice(FIRST_NAMES),
                               last_name=rng.choice(LAST_NAMES),
                               dob=f"{rng.randint(1950, 2012)}-{rng.randint(1, 12):02d}-"
                                   f"{rng.randint(1, 28):02d}")
            if _name(person) not in taken:
                return person

    def passengers(self) -> Step | None:
        rng = self.rng
        candidates = [res for res, _ in self.upcoming() if self.free(res, "passengers")]
        rng.shuffle(candidates)
        for res in candidates:
            names = [_name(p) for p in res.passengers]
            unique = [i for i, nm in enumerate(names) if names.count(nm) == 1]
            if unique:
                break
        else:
            return None
        i = rng.choice(unique)
        old = res.passengers[i]
        people = [_passenger(p) for p in res.passengers]
        ref = self.ref(res)
        if rng.random() < 0.65:
            new = self.new_person(names)
            people[i] = _passenger(new)
            ask = pick(rng, (
                "{old} can no longer travel on {ref}; you want {new} (date of birth {dob}) to "
                "take that seat instead",
                "you want to replace the passenger {old} on {ref} with {new}, born {dob}",
                "on {ref}, {new} (born {dob}) should fly instead of {old}"),
                old=_name(old), ref=ref, new=_name(new), dob=new.dob)
            note = f"replace passenger {i} of {res.reservation_id}"
        else:
            dob = old.dob
            while dob == old.dob:
                dob = f"{rng.randint(1950, 2012)}-{rng.randint(1, 12):02d}-" \
                      f"{rng.randint(1, 28):02d}"
            people[i] = {"first_name": old.first_name, "last_name": old.last_name, "dob": dob}
            ask = pick(rng, (
                "the date of birth of {old} on {ref} is wrong: it should be {dob}",
                "you noticed that {old}'s date of birth on {ref} was entered incorrectly and "
                "want it corrected to {dob}"), old=_name(old), ref=ref, dob=dob)
            note = f"correct birth date of passenger {i} of {res.reservation_id}"
        write = ("update_reservation_passengers",
                 {"reservation_id": res.reservation_id, "passengers": people})
        execute(self.env, write)
        self.touch(res.reservation_id, "passengers")
        return Step(kind="update_reservation_passengers", reads=[self.res_read(res)],
                    write=write, ask=ask, note=note)

    def flights(self) -> Step | None:
        rng = self.rng
        candidates = [(res, i) for res, _ in self.upcoming()
                      if res.cabin != "basic_economy" and self.free(res, "flights", "cabin")
                      for i in self.directions(res)]
        rng.shuffle(candidates)
        for res, i in candidates[:4]:
            found = self.move(res, i)
            if found is None:
                continue
            new_date, number, status, phrase = found
            n = len(res.passengers)
            seg = res.flights[i]
            diff = (status.prices[res.cabin] - seg.price) * n
            payer = self.payer(diff)
            if payer is None:
                continue
            pid, label = payer
            flights = [{"flight_number": f.flight_number, "date": f.date} for f in res.flights]
            flights[i] = {"flight_number": number, "date": new_date}
            ref = self.ref(res, short=True)
            ask = pick(rng, (
                "on {ref}, you want to move the {o} to {d} flight from {old} to {new}, taking "
                "{phrase}",
                "you need to fly from {o} to {d} on {new} instead of {old} on {ref}; you want "
                "{phrase}",
                "you want to change the {old} flight from {o} to {d} on {ref} to {phrase} on "
                "{new}, same cabin"),
                ref=ref, o=_place(seg.origin, rng), d=_place(seg.destination, rng),
                old=long_date(seg.date), new=long_date(new_date), phrase=phrase)
            ask += ". " + self.pay_clause(label)
            write = ("update_reservation_flights", {
                "reservation_id": res.reservation_id, "cabin": res.cabin,
                "flights": flights, "payment_id": pid})
            execute(self.env, write)
            self.touch(res.reservation_id, "flights")
            communicate, lines = self.price_talk(diff, f"the flight change on "
                                                          f"{res.reservation_id}")
            reads = [self.res_read(res), ("search_direct_flight", {
                "origin": seg.origin, "destination": seg.destination, "date": new_date})]
            return Step(kind="update_reservation_flights", reads=reads, write=write, ask=ask,
                        instructions=lines, communicate=communicate,
                        note=f"move {res.reservation_id} segment {i} to {number} on "
                             f"{new_date} ({diff:+d})")
        return None

    def move(self, res: Reservation, i: int) -> tuple[str, str, Available, str] | None:
        """Another date for direct segment ``i`` (keeping the trip's order) with a flight
        the user can single out."""
        segs = res.flights
        low = segs[i - 1].date if i > 0 else TODAY
        high = segs[i + 1].date if i + 1 < len(segs) else "9999"
        dates = [d for d in self.synth.future_dates if low < d < high and d != segs[i].date]
        self.rng.shuffle(dates)
        for date in dates[:4]:
            found = self.flight_choice(segs[i].origin, segs[i].destination, date, res.cabin,
                                       len(res.passengers))
            if found is not None:
                return date, *found
        return None

    def cabin(self) -> Step | None:
        rng = self.rng
        candidates = [(res, statuses) for res, statuses in self.upcoming()
                      if self.free(res, "flights", "cabin", "bags")]
        rng.shuffle(candidates)
        for res, statuses in candidates[:4]:
            n = len(res.passengers)
            cabins = [c for c in CABINS if c != res.cabin and all(
                s.available_seats.get(c, 0) >= n and c in s.prices for s in statuses)]
            if not cabins:
                continue
            # Upgrades are what customers mostly ask for.
            ups = [c for c in cabins if CABINS.index(c) < CABINS.index(res.cabin)]
            cabin = rng.choice(ups) if ups and rng.random() < 0.8 else rng.choice(cabins)
            diff = (sum(s.prices[cabin] for s in statuses) - sum(f.price for f in res.flights)) * n
            payer = self.payer(diff)
            if payer is None:
                continue
            pid, label = payer
            flights = [{"flight_number": f.flight_number, "date": f.date} for f in res.flights]
            word = CABIN_WORDS[cabin]
            up = CABINS.index(cabin) < CABINS.index(res.cabin)
            ask = pick(rng, (
                "you want to {verb} {ref} to {word} for every flight and every passenger",
                "you would like the whole of {ref} in {word} instead of {old}",
                "you want to switch {ref} to {word} class"),
                verb="upgrade" if up else "change", ref=self.ref(res), word=word,
                old=CABIN_WORDS.get(res.cabin, res.cabin))
            ask += ". " + self.pay_clause(label)
            write = ("update_reservation_flights", {
                "reservation_id": res.reservation_id, "cabin": cabin, "flights": flights,
                "payment_id": pid})
            execute(self.env, write)
            self.touch(res.reservation_id, "cabin")
            communicate, lines = self.price_talk(diff, f"the cabin change on "
                                                          f"{res.reservation_id}")
            reads = [self.res_read(res)]
            for f in res.flights:
                search = ("search_direct_flight", {"origin": f.origin,
                                                   "destination": f.destination,
                                                   "date": f.date})
                if search not in reads:
                    reads.append(search)
            return Step(kind="update_reservation_flights", reads=reads, write=write, ask=ask,
                        instructions=lines, communicate=communicate,
                        note=f"cabin of {res.reservation_id} {res.cabin}->{cabin} ({diff:+d})")
        return None

    def book(self) -> Step | None:
        if self.booked or not self.synth.route_list or len(self.synth.future_dates) < 2:
            return None
        rng = self.rng
        user = self.user
        allowance = FREE_BAGS.get(user.membership)
        if allowance is None:
            return None
        dates = self.synth.future_dates
        for _ in range(6):
            origin, destination = rng.choice(self.synth.route_list)
            round_trip = rng.random() < 0.4 and (destination, origin) in self.synth.routes
            n = rng.choice((1, 1, 1, 2, 2, 3))
            cabin = rng.choice(CABINS)
            at = rng.randrange(len(dates) - 1 if round_trip else len(dates))
            out = self.flight_choice(origin, destination, dates[at], cabin, n)
            if out is None:
                continue
            legs = [(dates[at], *out)]
            if round_trip:
                back_at = rng.randint(at + 1, min(len(dates) - 1, at + 7))
                back = self.flight_choice(destination, origin, dates[back_at], cabin, n)
                if back is None:
                    continue
                legs.append((dates[back_at], *back))
            break
        else:
            return None
        people, who = self.party(user, n)
        bags = rng.choice(range(n + 1)) if rng.random() < 0.6 else 0
        nonfree = max(0, bags - allowance[cabin] * n)
        insurance = rng.choice(("yes", "no"))
        total = (sum(status.prices[cabin] for _, _, status, _ in legs) * n
                 + (INSURANCE_FEE * n if insurance == "yes" else 0) + BAG_FEE * nonfree)
        payer = self.payer(total)
        if payer is None:
            return None
        pid, label = payer
        flights = [{"flight_number": number, "date": date} for date, number, _, _ in legs]
        write = ("book_reservation", {
            "user_id": self.user_id, "origin": origin, "destination": destination,
            "flight_type": "round_trip" if round_trip else "one_way", "cabin": cabin,
            "flights": flights, "passengers": people,
            "payment_methods": [{"payment_id": pid, "amount": total}],
            "total_baggages": bags, "nonfree_baggages": nonfree, "insurance": insurance})
        o, d = _place(origin, rng), _place(destination, rng)
        trip = (pick(rng, ("a round trip from {o} to {d}, leaving {d1} and coming back {d2}",
                           "a round trip {o} to {d}, out on {d1} and back on {d2}"),
                     o=o, d=d, d1=long_date(legs[0][0]), d2=long_date(legs[1][0]))
                if round_trip else
                pick(rng, ("a one-way flight from {o} to {d} on {d1}",
                           "a one-way trip {o} to {d} on {d1}"),
                     o=o, d=d, d1=long_date(legs[0][0])))
        ask = pick(rng, ("you want to book {trip}, in {cabin}, for {who}",
                         "you need {trip}, in {cabin}, for {who}"),
                   trip=trip, cabin=CABIN_WORDS[cabin], who=who)
        parts = [f"For the way out you want {legs[0][3]}"]
        if round_trip:
            parts.append(f"for the way back {legs[1][3]}")
        ask += ". " + "; ".join(parts) + ". "
        ask += ("You want no checked bags" if bags == 0 else
                f"You will check {bags} bag{'s' if bags > 1 else ''} in total")
        ask += (", and you want travel insurance. " if insurance == "yes"
                else ", and you do not want travel insurance. ")
        ask += self.pay_clause(label)
        execute(self.env, write)
        self.booked = True
        for rid in self.user.reservations:
            if rid not in self.db.base.tables["reservations"]:
                self.touch(rid, "*")  # the new booking: its code is not the user's to know
        line = pick(rng, ("Make sure the agent tells you the total price before you confirm.",
                          "Ask for the total price of the booking before you agree."))
        reads: list[Call] = [("search_direct_flight", {
            "origin": origin, "destination": destination, "date": legs[0][0]})]
        if round_trip:
            reads.append(("search_direct_flight", {
                "origin": destination, "destination": origin, "date": legs[1][0]}))
        kind = "round trip" if round_trip else "one way"
        return Step(kind="book_reservation", reads=reads, write=write, ask=ask,
                    instructions=[line], communicate=[_money(total)],
                    note=f"book {origin}-{destination} {kind} {cabin} x{n} ({total})")

    def party(self, user: User, n: int) -> tuple[list[dict[str, str]], str]:
        """``n`` travellers (the user, saved passengers, new people) and how the user
        names them."""
        rng = self.rng
        people: list[Passenger] = []
        words: list[str] = []
        if rng.random() < 0.75:
            people.append(Passenger(first_name=user.name.first_name,
                                    last_name=user.name.last_name, dob=user.dob))
            words.append("yourself")
        saved = list(user.saved_passengers)
        rng.shuffle(saved)
        taken = [_name(p) for p in people]
        while len(people) < n:
            if saved and rng.random() < 0.6:
                person = saved.pop()
                if _name(person) in taken:
                    continue
                words.append(f"{_name(person)} (saved in your profile)")
            else:
                person = self.new_person(taken)
                words.append(f"{_name(person)} (born {person.dob})")
            people.append(person)
            taken.append(_name(person))
        if words == ["yourself"]:
            return [_passenger(p) for p in people], "yourself only"
        return [_passenger(p) for p in people], listing(words)

    def compensation(self) -> Step | None:
        if self.certified:
            return None
        user = self.user
        slots = [c for c in NEW_CERTIFICATE_IDS if c not in user.payment_methods]
        if not slots:
            return None
        found = self.cancelled_flight(lambda res: user.membership in ("silver", "gold")
                                      or res.insurance == "yes" or res.cabin == "business")
        if found is None:
            return None
        res, seg = found
        rng = self.rng
        amount = CERTIFICATE_PER_PASSENGER * len(res.passengers)
        write = ("send_certificate", {"user_id": self.user_id, "amount": amount})
        ask = pick(rng, (
            "your flight {f} on {date}, on {ref}, was cancelled by the airline, and you want "
            "to be compensated for it",
            "you are upset that the airline cancelled flight {f} on {date}, booked under "
            "{ref}; you ask for compensation"),
            f=seg.flight_number, date=long_date(seg.date), ref=self.ref(res, short=True))
        execute(self.env, write)
        self.certified = True
        self.touch(res.reservation_id, "*")
        line = rng.choice(("Ask what compensation you will receive.",
                           "You want to know the amount of the compensation."))
        return Step(kind="send_certificate", reads=[self.res_read(res), (
            "get_flight_status", {"flight_number": seg.flight_number, "date": seg.date})],
            write=write, ask=ask, instructions=[line], communicate=[_money(amount)],
            note=f"certificate {amount} for cancelled {seg.flight_number} of "
                 f"{res.reservation_id}")

    def cancelled_flight(self, eligible: Callable[[Reservation], bool]
                         ) -> tuple[Reservation, Any] | None:
        candidates = []
        for res in self.reservations():
            if res.reservation_id in self.touched or not eligible(res):
                continue
            statuses = _segment_statuses(self.db, res)
            if statuses is None:
                continue
            for seg, status in zip(res.flights, statuses, strict=True):
                if isinstance(status, Cancelled):
                    candidates.append((res, seg))
                    break
        return self.rng.choice(candidates) if candidates else None

    # -- refusals ---------------------------------------------------------------------------

    def untouched_upcoming(self) -> list[tuple[Reservation, list[Available]]]:
        return [(res, st) for res, st in self.upcoming() if res.reservation_id not in self.touched]

    def refused(self, kind: str, res: Reservation, reads: list[Call], ask: str, if_refused: str,
                assertion: str, note: str) -> Step:
        self.touch(res.reservation_id, "*")
        return Step(kind=kind, reads=reads, write=None, ask=ask, instructions=[if_refused],
                    assertions=[assertion], note=note)

    def refuse_cancel(self) -> Step | None:
        rng = self.rng
        candidates = []
        for res in self.reservations():
            if res.reservation_id in self.touched:
                continue
            statuses = _segment_statuses(self.db, res)
            if statuses is None or any(isinstance(s, Cancelled) for s in statuses):
                continue
            flown = any(isinstance(s, Landed | Flying) for s in statuses)
            future = any(isinstance(s, Available) for s in statuses)
            if flown and future:
                candidates.append((res, "flown"))
            elif (not flown and res.created_at < DAY_AGO and res.cabin != "business"
                  and all(isinstance(s, Available) for s in statuses)):
                candidates.append((res, "rules"))
        if not candidates:
            return None
        res, why = rng.choice(candidates)
        ref = self.ref(res)
        reason = rng.choice(REASONS["change_of_plan"])
        ask = pick(rng, ("you want to cancel {ref} because {why}",
                         "you would like to cancel {ref}; {why}"), ref=ref, why=reason)
        if why == "flown":
            facts = "part of the trip has already been flown"
            note = f"refuse cancel {res.reservation_id} (partly flown)"
        else:
            cover = ("it has no travel insurance" if res.insurance == "no" else
                     "its insurance does not cover a change of plan")
            facts = (f"it was booked more than 24 hours ago, is in "
                     f"{CABIN_WORDS.get(res.cabin, res.cabin)}, {cover}, and the airline "
                     f"cancelled none of its flights")
            note = f"refuse cancel {res.reservation_id} ({res.cabin}, insurance {res.insurance})"
        if_refused = pick(rng, (
            "If the agent says {rid} cannot be cancelled, accept it and keep the reservation; "
            "do not ask for a transfer or for any other change to it.",
            "You only want a cancellation with a refund. If the agent refuses, keep "
            "{rid} as it is and move on."), rid=res.reservation_id)
        return self.refused("refuse_cancel_reservation", res, [self.res_read(res)], ask,
                            if_refused, f"Agent should not cancel reservation "
                            f"{res.reservation_id}: {facts}.", note)

    def refuse_change_basic(self) -> Step | None:
        rng = self.rng
        candidates = [(res, i) for res, _ in self.untouched_upcoming()
                      if res.cabin == "basic_economy" for i in self.directions(res)]
        rng.shuffle(candidates)
        for res, i in candidates[:4]:
            found = self.move(res, i)
            if found is None:
                continue
            new_date, _, _, phrase = found
            seg = res.flights[i]
            ask = pick(rng, (
                "you want to move the {o} to {d} flight of {ref} from {old} to {new}, on "
                "{phrase}",
                "you would like to fly from {o} to {d} on {new} instead of {old} on {ref}"),
                o=_place(seg.origin, rng), d=_place(seg.destination, rng),
                ref=self.ref(res, short=True),
                old=long_date(seg.date), new=long_date(new_date), phrase=phrase)
            if_refused = pick(rng, (
                "If the agent says the flights of {rid} cannot be changed, accept it; you do "
                "not want to upgrade the cabin or cancel, and you keep the booking as it is.",
                "Should the agent refuse the change for {rid}, do not look for workarounds "
                "(no upgrade, no cancellation): keep the reservation unchanged."),
                rid=res.reservation_id)
            return self.refused(
                "refuse_change_basic_economy", res, [self.res_read(res)], ask, if_refused,
                f"Agent should not change the flights of reservation {res.reservation_id}: "
                "it is basic economy, whose flights cannot be changed.",
                f"refuse date change of basic economy {res.reservation_id}")
        return None

    def refuse_remove_bags(self) -> Step | None:
        candidates = [res for res, _ in self.untouched_upcoming() if res.total_baggages >= 1]
        if not candidates:
            return None
        rng = self.rng
        res = rng.choice(candidates)
        ask = pick(rng, ("you want to remove a checked bag from {ref} and get its fee back",
                         "you are travelling lighter and want one checked bag taken off {ref}"),
                   ref=self.ref(res))
        if_refused = pick(rng, ("If the agent says bags cannot be removed, accept it.",
                                "Accept it if the agent tells you that is not possible."))
        return self.refused("refuse_remove_bags", res, [self.res_read(res)], ask, if_refused,
                            f"Agent should not remove checked bags from reservation "
                            f"{res.reservation_id}: bags can be added but not removed.",
                            f"refuse bag removal on {res.reservation_id}")

    def refuse_add_passenger(self) -> Step | None:
        candidates = [res for res, _ in self.untouched_upcoming() if len(res.passengers) < 5]
        if not candidates:
            return None
        rng = self.rng
        res = rng.choice(candidates)
        person = self.new_person([_name(p) for p in res.passengers])
        ask = pick(rng, ("you want to add {p} (born {dob}) as another passenger on {ref}",
                         "{p}, born {dob}, decided to join you, and you want them added to "
                         "{ref}"), p=_name(person), dob=person.dob, ref=self.ref(res))
        if_refused = pick(rng, (
            "If the agent says passengers cannot be added, accept it; do not book a new "
            "reservation for {p}.",
            "If that is not possible, leave it; you will sort out {p}'s travel another way."),
            p=_name(person))
        return self.refused("refuse_add_passenger", res, [self.res_read(res)], ask, if_refused,
                            f"Agent should not add a passenger to reservation "
                            f"{res.reservation_id}: the number of passengers cannot change.",
                            f"refuse adding a passenger to {res.reservation_id}")

    def refuse_add_insurance(self) -> Step | None:
        candidates = [res for res, _ in self.untouched_upcoming() if res.insurance == "no"]
        if not candidates:
            return None
        rng = self.rng
        res = rng.choice(candidates)
        ask = pick(rng, ("you want to add travel insurance to {ref}",
                         "you changed your mind about insurance and want it on {ref} now"),
                   ref=self.ref(res))
        if_refused = "If the agent says insurance cannot be added now, accept it."
        return self.refused("refuse_add_insurance", res, [self.res_read(res)], ask, if_refused,
                            f"Agent should not add travel insurance to reservation "
                            f"{res.reservation_id}: insurance cannot be added after booking.",
                            f"refuse insurance on {res.reservation_id}")

    def refuse_compensation(self) -> Step | None:
        if self.certified:
            return None
        user = self.user
        if user.membership != "regular":
            return None
        found = self.cancelled_flight(lambda res: res.insurance == "no"
                                      and res.cabin != "business")
        if found is None:
            return None
        res, seg = found
        rng = self.rng
        ask = pick(rng, (
            "your flight {f} on {date}, on {ref}, was cancelled by the airline, and you want "
            "compensation for it",
            "you want to be compensated because the airline cancelled flight {f} on {date} "
            "of {ref}"), f=seg.flight_number, date=long_date(seg.date),
            ref=self.ref(res, short=True))
        if_refused = "If the agent says you are not eligible for compensation, accept it."
        return self.refused(
            "refuse_compensation", res, [self.res_read(res)], ask, if_refused,
            f"Agent should not issue a certificate for the cancelled flight "
            f"{seg.flight_number}: the user is a regular member without travel insurance "
            f"flying {CABIN_WORDS.get(res.cabin, res.cabin)}, so not eligible.",
            f"refuse compensation for {res.reservation_id}")
