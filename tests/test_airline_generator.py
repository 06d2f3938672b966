"""The seeded airline database: deterministic, consistent, and usable by the tools."""

from __future__ import annotations

import hashlib
import math
import os
import re
import subprocess
import sys
from collections import Counter
from functools import cache
from itertools import pairwise
from pathlib import Path

import msgspec
import pytest

try:
    import domains.airline as airline
except ModuleNotFoundError as missing:
    # The package imports its tools, which need writ_async.environment.tau2.calc; nothing
    # here can run without the package, so say which module is missing instead of erroring.
    if missing.name != "writ_async.environment.tau2.calc":
        raise
    pytest.skip(f"domains.airline cannot be imported: missing module {missing.name}",
                allow_module_level=True)

from domains.airline.data_model import (
    CABINS,
    AirlineDB,
    Available,
    Certificate,
    CreditCard,
    GiftCard,
    Reservation,
)
from domains.airline.generator import generate
from domains.airline.tools import AIRPORTS

REPO = Path(__file__).resolve().parents[1]
NOW = "2024-05-15T15:00:00"
DATES = [f"2024-05-{day:02d}" for day in range(1, 31)]
SCALES = (0.01, 1.0, 3.0)


@cache
def db_at(scale: float, seed: int = 0) -> AirlineDB:
    """One generated DB per (scale, seed) for the whole module (tests only read it)."""
    return generate(seed, scale)


def encoded(db: AirlineDB) -> bytes:
    return msgspec.json.encode(db)


# -- determinism --------------------------------------------------------------------------


def test_same_seed_gives_the_same_bytes() -> None:
    assert encoded(generate(7, 0.3)) == encoded(generate(7, 0.3))


def test_different_seeds_differ() -> None:
    a, b = generate(7, 0.3), generate(8, 0.3)
    assert encoded(a) != encoded(b)
    assert list(a.users) != list(b.users)
    assert list(a.reservations) != list(b.reservations)


def test_bytes_do_not_depend_on_the_string_hash_seed() -> None:
    # Set iteration order varies with PYTHONHASHSEED; another process must agree.
    script = (
        "import hashlib, msgspec; from domains.airline.generator import generate; "
        "print(hashlib.sha256(msgspec.json.encode(generate(3, 0.1))).hexdigest())"
    )
    expected = hashlib.sha256(encoded(generate(3, 0.1))).hexdigest()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env,
                             capture_output=True, text=True, check=True)
        assert out.stdout.strip() == expected


def test_json_round_trip_is_equal() -> None:
    db = db_at(1.0)
    assert msgspec.json.decode(encoded(db), type=AirlineDB) == db


# -- scale --------------------------------------------------------------------------------


@pytest.mark.parametrize(("scale", "flights", "users", "reservations"), [
    (1.0, 300, 500, 2000),
    (3.0, 900, 1500, 6000),
])
def test_sizes_follow_the_scale(scale: float, flights: int, users: int,
                                reservations: int) -> None:
    db = db_at(scale)
    assert (len(db.flights), len(db.users), len(db.reservations)) == (
        flights, users, reservations)


def test_a_tiny_scale_is_still_a_small_usable_db() -> None:
    db = db_at(0.01)
    assert 3 <= len(db.flights) < 30
    assert 3 <= len(db.users) < 30
    assert 3 <= len(db.reservations) < 60
    assert any(user.reservations for user in db.users.values())


@pytest.mark.parametrize("scale", [0.0, -1.0, math.nan, math.inf])
def test_a_scale_that_is_not_a_positive_number_is_refused(scale: float) -> None:
    with pytest.raises(ValueError, match="scale"):
        generate(0, scale)


# -- invariants ---------------------------------------------------------------------------


@pytest.mark.parametrize("scale", SCALES)
def test_flights_are_consistent(scale: float) -> None:
    codes = {code for code, _ in AIRPORTS}
    for number, flight in db_at(scale).flights.items():
        assert number == flight.flight_number
        assert re.fullmatch(r"HAT\d{3,}", number)
        assert flight.origin in codes and flight.destination in codes
        assert flight.origin != flight.destination
        for time in (flight.scheduled_departure_time_est, flight.scheduled_arrival_time_est):
            assert re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d:00(\+1)?", time)
        assert "+1" not in flight.scheduled_departure_time_est
        assert list(flight.dates) == DATES
        for date, status in flight.dates.items():
            _check_status(date, status)


def _check_status(date: str, status: object) -> None:
    kind = status.status  # type: ignore[attr-defined]
    if date < "2024-05-15":
        assert kind in ("landed", "cancelled")
    elif date == "2024-05-15":
        assert kind in ("landed", "flying", "on time", "delayed", "cancelled")
    else:
        assert isinstance(status, Available)
        assert list(status.available_seats) == list(status.prices)
        assert set(status.prices) == set(CABINS)
        assert all(isinstance(n, int) and n >= 0 for n in status.available_seats.values())
        prices = status.prices
        assert 0 < prices["basic_economy"] < prices["economy"] < prices["business"]
    for stamp_field in ("actual_departure_time_est", "actual_arrival_time_est",
                        "estimated_departure_time_est", "estimated_arrival_time_est"):
        stamp = getattr(status, stamp_field, None)
        if stamp is not None:
            assert re.fullmatch(r"2024-05-\d\dT\d\d:\d\d:00", stamp)
    if kind == "landed":
        assert status.actual_arrival_time_est <= NOW  # type: ignore[attr-defined]


@pytest.mark.parametrize("scale", SCALES)
def test_users_are_consistent(scale: float) -> None:
    db = db_at(scale)
    listed = Counter()
    for user_id, user in db.users.items():
        assert user_id == user.user_id
        first, last = user.name.first_name.lower(), user.name.last_name.lower()
        assert re.fullmatch(rf"{first}_{last}_\d{{4}}", user_id)
        assert re.fullmatch(rf"{first}\.{last}\d{{4}}@example\.com", user.email)
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", user.dob)
        assert user.address.country == "USA" and re.fullmatch(r"\d{5}", user.address.zip)
        assert user.membership in ("regular", "silver", "gold")
        assert any(isinstance(m, CreditCard | GiftCard) for m in user.payment_methods.values())
        for payment_id, method in user.payment_methods.items():
            assert payment_id == method.id
            assert re.fullmatch(rf"{method.source}_\d{{7}}", payment_id)
            if isinstance(method, GiftCard | Certificate):
                assert isinstance(method.amount, float) and method.amount >= 0
        for rid in user.reservations:
            assert db.reservations[rid].user_id == user_id
            listed[rid] += 1
    assert listed == Counter(list(db.reservations)), "each reservation listed once, by its owner"


@pytest.mark.parametrize("scale", SCALES)
def test_reservations_are_consistent(scale: float) -> None:
    db = db_at(scale)
    for rid, reservation in db.reservations.items():
        assert rid == reservation.reservation_id
        assert re.fullmatch(r"[A-Z0-9]{6}", rid)
        assert rid not in ("HATHAT", "HATHAU", "HATHAV")  # the tools' new ids
        assert rid in db.users[reservation.user_id].reservations
        assert reservation.cabin in CABINS
        assert reservation.insurance in ("yes", "no")
        assert reservation.status is None
        assert 1 <= len(reservation.passengers) <= 5
        assert 0 <= reservation.nonfree_baggages <= reservation.total_baggages
        assert re.fullmatch(r"2024-0[45]-\d\dT\d\d:\d\d:\d\d", reservation.created_at)
        assert reservation.created_at < NOW
        assert reservation.created_at < reservation.flights[0].date
        _check_segments(db, reservation)
        _check_route(reservation)
        _check_payments(db, reservation)


def _check_segments(db: AirlineDB, reservation: Reservation) -> None:
    for segment in reservation.flights:
        flight = db.flights[segment.flight_number]
        assert (segment.origin, segment.destination) == (flight.origin, flight.destination)
        status = flight.dates[segment.date]
        assert isinstance(segment.price, int) and segment.price > 0
        if isinstance(status, Available):
            assert segment.price == status.prices[reservation.cabin]
    dates = [segment.date for segment in reservation.flights]
    assert dates == sorted(dates)


def _check_route(reservation: Reservation) -> None:
    segments = reservation.flights
    for before, after in pairwise(segments):
        assert before.destination == after.origin, "legs must chain"
    assert segments[0].origin == reservation.origin
    assert reservation.origin != reservation.destination
    if reservation.flight_type == "one_way":
        assert 1 <= len(segments) <= 2
        assert segments[-1].destination == reservation.destination
    else:
        assert reservation.flight_type == "round_trip"
        assert 2 <= len(segments) <= 4
        assert segments[-1].destination == reservation.origin
        assert reservation.destination in [s.destination for s in segments[:-1]]


def _check_payments(db: AirlineDB, reservation: Reservation) -> None:
    n = len(reservation.passengers)
    total = (sum(s.price for s in reservation.flights) * n
             + (30 * n if reservation.insurance == "yes" else 0)
             + 50 * reservation.nonfree_baggages)
    payments = reservation.payment_history
    assert payments
    assert all(isinstance(p.amount, int) and p.amount > 0 for p in payments)
    assert sum(p.amount for p in payments) == total
    methods = db.users[reservation.user_id].payment_methods
    assert all(p.payment_id in methods for p in payments)
    certificates = [p for p in payments if isinstance(methods[p.payment_id], Certificate)]
    assert len(certificates) <= 1  # tau2's policy: at most one certificate per booking


def test_records_share_no_mutable_parts() -> None:
    # Tools edit one record at a time; two records holding the same object would
    # leak an edit from one into the other.
    db = db_at(0.1)
    seen: set[int] = set()
    parts: list[object] = []
    for user in db.users.values():
        parts += [user.name, user.address, user.reservations, *user.saved_passengers,
                  *user.payment_methods.values()]
    for reservation in db.reservations.values():
        parts += [*reservation.passengers, *reservation.flights, *reservation.payment_history]
    for flight in db.flights.values():
        for status in flight.dates.values():
            parts.append(status)
            if isinstance(status, Available):
                parts += [status.prices, status.available_seats]
    for part in parts:
        assert id(part) not in seen
        seen.add(id(part))


def test_a_full_size_db_looks_like_tau2() -> None:
    db = db_at(1.0)
    flights, users, reservations = (db.flights.values(), db.users.values(),
                                    db.reservations.values())
    assert {f.origin for f in flights} == {code for code, _ in AIRPORTS}
    assert 60 <= len({(f.origin, f.destination) for f in flights}) <= 200
    overnight = [f for f in flights if f.scheduled_arrival_time_est.endswith("+1")]
    assert 5 <= len(overnight) <= 100
    today = Counter(f.dates["2024-05-15"].status for f in flights)
    assert {"landed", "flying", "on time", "delayed"} <= set(today)
    assert any(s.status == "cancelled" for f in flights for s in f.dates.values())
    assert Counter(u.membership for u in users).keys() == {"regular", "silver", "gold"}
    held = Counter(len(u.reservations) for u in users)
    assert held[0] > 0 and max(held) >= 10
    assert {1, 2, 3, 4} <= {len(r.passengers) for r in reservations}
    assert Counter(r.flight_type for r in reservations).keys() == {"one_way", "round_trip"}
    assert {1, 2, 4} <= {len(r.flights) for r in reservations}
    assert Counter(r.cabin for r in reservations).keys() == set(CABINS)
    assert any(r.nonfree_baggages for r in reservations)
    sources = Counter(
        db.users[r.user_id].payment_methods[p.payment_id].source
        for r in reservations for p in r.payment_history
    )
    assert sources.keys() == {"credit_card", "gift_card", "certificate"}
    assert any(u.address.address2 is None for u in users)
    assert any(u.address.address2 is not None for u in users)


# -- with the tools -----------------------------------------------------------------------


def test_the_tools_search_and_book_on_a_generated_db() -> None:
    db = db_at(1.0)
    base = airline.DOMAIN.tables_of(db)
    toolbox = airline.DOMAIN.toolbox
    overlay = base.overlay()
    date = "2024-05-20"

    routes = sorted({(f.origin, f.destination) for f in db.flights.values()})
    found = {}
    for origin, destination in routes:
        result = toolbox.call(overlay, "search_direct_flight",
                              {"origin": origin, "destination": destination, "date": date})
        assert not result.error
        found[origin, destination] = msgspec.json.decode(result.output)
    assert len(routes) >= 60
    assert all(found.values()), "every route is flown every day"

    connections = [
        toolbox.call(overlay, "search_onestop_flight",
                     {"origin": origin, "destination": destination, "date": date})
        for origin, destination in routes[:40]
    ]
    assert sum(bool(msgspec.json.decode(c.output)) for c in connections) >= 10

    user = next(u for u in db.users.values()
                if any(isinstance(m, CreditCard) for m in u.payment_methods.values()))
    card = next(m.id for m in user.payment_methods.values() if isinstance(m, CreditCard))
    flight = next(f for hits in found.values() for f in hits
                  if f["available_seats"]["economy"] >= 2)
    price = flight["prices"]["economy"]
    booked = toolbox.call(overlay, "book_reservation", {
        "user_id": user.user_id, "origin": flight["origin"],
        "destination": flight["destination"], "flight_type": "one_way", "cabin": "economy",
        "flights": [{"flight_number": flight["flight_number"], "date": date}],
        "passengers": [{"first_name": user.name.first_name,
                        "last_name": user.name.last_name, "dob": user.dob},
                       {"first_name": "Kai", "last_name": "Reyes", "dob": "2001-02-03"}],
        "payment_methods": [{"payment_id": card, "amount": 2 * price + 60}],
        "total_baggages": 0, "nonfree_baggages": 0, "insurance": "yes",
    })
    assert not booked.error, booked.output
    new_id = msgspec.json.decode(booked.output)["reservation_id"]
    assert new_id in overlay.get("users", user.user_id).reservations
    seats = overlay.get("flights", flight["flight_number"]).dates[date].available_seats
    assert seats["economy"] == flight["available_seats"]["economy"] - 2
    assert base.verify_unchanged()
