"""Plausible airline tool calls drawn from an episode's live state.

Used by seeded walks (``writ walk``), benchmarks and load generation: most calls are
valid reads and writes built from real users, reservations and bookable flights (so
writes mostly succeed and the state evolves), and a share are the mistakes models make
(unknown ids, wrong formats, missing or extra arguments).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from writ_async.environment.overlay import Overlay

from .data_model import CABINS, Available, CreditCard, GiftCard, Reservation, User
from .tools import AIRPORTS

Call = tuple[str, dict[str, Any]]

FIRST = ("Ana", "Bo", "Chen", "Dara", "Eli", "Femi", "Goro", "Hana", "Ivo", "Jia")
LAST = ("Park", "Silva", "Okafor", "Novak", "Reyes", "Sato", "Berg", "Khan")


def _user(db: Overlay, rng: random.Random) -> tuple[str, User]:
    user_id = rng.choice(db.base.keys("users"))
    return user_id, db.get("users", user_id)


def _reservation(db: Overlay, rng: random.Random) -> Reservation | None:
    for _ in range(5):
        _, user = _user(db, rng)
        if user.reservations:
            return db.get("reservations", rng.choice(user.reservations))
    return None


def _bookable(db: Overlay, rng: random.Random, seats: int) -> tuple[str, str, Any] | None:
    """A (flight number, date, status) that can take ``seats`` more passengers."""
    for _ in range(20):
        number = rng.choice(db.base.keys("flights"))
        flight = db.get("flights", number)
        dates = [d for d, s in flight.dates.items() if isinstance(s, Available)]
        if dates:
            date = rng.choice(dates)
            status = flight.dates[date]
            if min(status.available_seats.values()) >= seats:
                return number, date, status
    return None


def _card(user: User) -> str | None:
    cards = [m.id for m in user.payment_methods.values() if isinstance(m, CreditCard)]
    return cards[0] if cards else None


def _passengers(rng: random.Random, n: int) -> list[dict[str, str]]:
    return [{"first_name": rng.choice(FIRST), "last_name": rng.choice(LAST),
             "dob": f"19{rng.randint(40, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"}
            for _ in range(n)]


def _get_user(db: Overlay, rng: random.Random) -> Call:
    return "get_user_details", {"user_id": _user(db, rng)[0]}


def _get_reservation(db: Overlay, rng: random.Random) -> Call:
    reservation = _reservation(db, rng)
    rid = reservation.reservation_id if reservation else "ZZZZZZ"
    return "get_reservation_details", {"reservation_id": rid}


def _search(db: Overlay, rng: random.Random) -> Call:
    flight = db.get("flights", rng.choice(db.base.keys("flights")))
    date = f"2024-05-{rng.randint(1, 30):02d}"
    if rng.random() < 0.7:
        return "search_direct_flight", {"origin": flight.origin,
                                        "destination": flight.destination, "date": date}
    destination = rng.choice(AIRPORTS)[0]
    return "search_onestop_flight", {"origin": flight.origin, "destination": destination,
                                     "date": date}


def _status(db: Overlay, rng: random.Random) -> Call:
    number = rng.choice(db.base.keys("flights"))
    return "get_flight_status", {"flight_number": number,
                                 "date": f"2024-05-{rng.randint(1, 30):02d}"}


def _book(db: Overlay, rng: random.Random) -> Call:
    user_id, user = _user(db, rng)
    n = rng.randint(1, 3)
    found = _bookable(db, rng, n)
    card = _card(user)
    if found is None or card is None:
        return _get_user(db, rng)
    number, date, status = found
    flight = db.get("flights", number)
    cabin = rng.choice(CABINS)
    insurance = rng.choice(("yes", "no"))
    bags = rng.randint(0, 2)
    total = status.prices[cabin] * n + (30 * n if insurance == "yes" else 0) + 50 * bags
    return "book_reservation", {
        "user_id": user_id, "origin": flight.origin, "destination": flight.destination,
        "flight_type": "one_way", "cabin": cabin,
        "flights": [{"flight_number": number, "date": date}],
        "passengers": _passengers(rng, n),
        "payment_methods": [{"payment_id": card, "amount": total}],
        "total_baggages": bags + rng.randint(0, 2), "nonfree_baggages": bags,
        "insurance": insurance,
    }


def _payment_id(db: Overlay, reservation: Reservation, rng: random.Random) -> str:
    user = db.get("users", reservation.user_id)
    methods = [m.id for m in user.payment_methods.values()
               if isinstance(m, CreditCard | GiftCard)]
    return rng.choice(methods) if methods else "credit_card_0000000"


def _change(db: Overlay, rng: random.Random) -> Call:
    reservation = _reservation(db, rng)
    if reservation is None:
        return _get_user(db, rng)
    rid = reservation.reservation_id
    pick = rng.random()
    if pick < 0.3:
        return "cancel_reservation", {"reservation_id": rid}
    if pick < 0.55:
        bags = reservation.nonfree_baggages + rng.randint(0, 2)
        return "update_reservation_baggages", {
            "reservation_id": rid, "total_baggages": bags + 1, "nonfree_baggages": bags,
            "payment_id": _payment_id(db, reservation, rng)}
    if pick < 0.8:
        flights = [{"flight_number": f.flight_number, "date": f.date}
                   for f in reservation.flights]
        return "update_reservation_flights", {
            "reservation_id": rid, "cabin": rng.choice(CABINS), "flights": flights,
            "payment_id": _payment_id(db, reservation, rng)}
    return "update_reservation_passengers", {
        "reservation_id": rid, "passengers": _passengers(rng, len(reservation.passengers))}


def _certificate(db: Overlay, rng: random.Random) -> Call:
    return "send_certificate", {"user_id": _user(db, rng)[0],
                                "amount": rng.choice((50, 100, 150, 200))}


def _generic(db: Overlay, rng: random.Random) -> Call:
    if rng.random() < 0.3:
        return "list_all_airports", {}
    if rng.random() < 0.8:
        a, b = rng.randint(1, 999), rng.randint(1, 99)
        return "calculate", {"expression": f"({a} - {b}) * {rng.randint(1, 4)}"}
    return "transfer_to_human_agents", {"summary": "The user asks for something outside policy."}


def _mistake(db: Overlay, rng: random.Random) -> Call:
    pick = rng.randrange(5)
    if pick == 0:
        return "get_user_details", {"user_id": _user(db, rng)[0].upper()}
    if pick == 1:
        return "get_reservation_details", {"reservation_id": "#" + "".join(
            rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(6))}
    if pick == 2:
        return "get_flight_status", {"flight_number": "HAT001", "date": "05/20/2024"}
    if pick == 3:
        return "cancel_reservation", {}
    return "lookup_user", {"id": "x"}


_CHOICES: tuple[tuple[float, Callable[[Overlay, random.Random], Call]], ...] = (
    (0.18, _get_user), (0.15, _get_reservation), (0.17, _search), (0.07, _status),
    (0.10, _book), (0.12, _change), (0.03, _certificate), (0.05, _generic), (0.13, _mistake),
)
_WEIGHTS = [w for w, _ in _CHOICES]
_MAKERS = [m for _, m in _CHOICES]


def sample_call(db: Overlay, rng: random.Random) -> Call:
    """One plausible tool call for the current state, deterministic given ``rng``."""
    make = rng.choices(_MAKERS, weights=_WEIGHTS)[0]
    return make(db, rng)
