"""The airline tools, behaving exactly as tau2-bench's do (outputs, errors, DB hash).

Every tool takes the episode's ``Overlay`` first. Reads use ``db.get``; every mutation
goes through ``db.edit`` first, in the same order as tau2-bench mutates, so that a call
failing half way leaves the same partial changes tau2-bench would. The quirks copied on
purpose (no status checks on cancel, certificates removed whole, ...) are documented in
``../shared/conformance/README.md`` and commented where they happen.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable
from typing import Any, Literal

from writ_async.environment.overlay import Overlay
from writ_async.environment.tau2 import pyops
from writ_async.environment.tau2.calc import calculate as evaluate
from writ_async.environment.tau2.canonical import to_plain
from writ_async.environment.tau2.validation import (
    ANY,
    FLOAT,
    INT,
    STR,
    Field,
    Model,
    list_of,
    literal,
    model_kind,
    validate,
)
from writ_async.environment.tools import generic, read, write
from writ_async.errors import ToolError

from .data_model import (
    Airport,
    Available,
    Certificate,
    Flight,
    FlightInfo,
    FlightSummary,
    GiftCard,
    Passenger,
    Payment,
    Reservation,
    ReservationFlight,
    User,
)

# tau2-bench assigns these deterministically (see the conformance README).
NEW_RESERVATION_IDS = ("HATHAT", "HATHAU", "HATHAV")
NEW_CERTIFICATE_IDS = ("certificate_3221322", "certificate_3221323", "certificate_3221324")
BOOKING_TIME = "2024-05-15T15:00:00"

AIRPORTS: tuple[tuple[str, str], ...] = (
    ("SFO", "San Francisco"), ("JFK", "New York"), ("LAX", "Los Angeles"), ("ORD", "Chicago"),
    ("DFW", "Dallas"), ("DEN", "Denver"), ("SEA", "Seattle"), ("ATL", "Atlanta"),
    ("MIA", "Miami"), ("BOS", "Boston"), ("PHX", "Phoenix"), ("IAH", "Houston"),
    ("LAS", "Las Vegas"), ("MCO", "Orlando"), ("EWR", "Newark"), ("CLT", "Charlotte"),
    ("MSP", "Minneapolis"), ("DTW", "Detroit"), ("PHL", "Philadelphia"), ("LGA", "LaGuardia"),
)

# Validation models: what tau2-bench's pydantic constructors accept and coerce.
PASSENGER = Model("Passenger", (Field("first_name", STR), Field("last_name", STR),
                                Field("dob", STR)))
FLIGHT_INFO = Model("FlightInfo", (Field("flight_number", STR), Field("date", STR)))
PAYMENT = Model("Payment", (Field("payment_id", STR), Field("amount", INT)))
CERTIFICATE = Model("Certificate", (Field("id", STR), Field("amount", FLOAT)))
RESERVATION = Model("Reservation", (
    Field("reservation_id", STR), Field("user_id", STR), Field("origin", STR),
    Field("destination", STR), Field("flight_type", literal("round_trip", "one_way")),
    Field("cabin", literal("business", "economy", "basic_economy")),
    Field("flights", list_of(ANY)),
    Field("passengers", list_of(model_kind(PASSENGER))),
    Field("payment_history", list_of(model_kind(PAYMENT))),
    Field("created_at", STR), Field("total_baggages", INT), Field("nonfree_baggages", INT),
    Field("insurance", literal("yes", "no")),
))


# -- lookups ------------------------------------------------------------------------------


def _user(db: Overlay, user_id: Any) -> User:
    return db.fetch("users", user_id, f"User {user_id} not found")


def _reservation(db: Overlay, reservation_id: Any, *, edit: bool = False) -> Reservation:
    return db.fetch("reservations", reservation_id, f"Reservation {reservation_id} not found",
                    edit=edit)


def _flight(db: Overlay, flight_number: Any) -> Flight:
    return db.fetch("flights", flight_number, f"Flight {flight_number} not found")


def _flight_date(db: Overlay, flight_number: Any, date: Any) -> Any:
    flight = _flight(db, flight_number)
    if pyops.hashable(date) not in flight.dates:
        raise ToolError(f"Flight {flight_number} not found on date {date}")
    return flight.dates[date]


def _edit_seats(db: Overlay, flight_number: str, date: str) -> dict[str, int]:
    """The seat counts of one flight date, private to this overlay.

    Flights are path-copied (see ``copy_flight``): the flight and its ``dates`` map are
    private after ``edit``, the date's status record is copied here on first write.
    """
    flight = db.edit("flights", flight_number)
    status = flight.dates[date]
    base = db.base.tables["flights"].get(flight_number)
    if base is not None and base.dates.get(date) is status:
        status = Available(available_seats=dict(status.available_seats),
                           prices=dict(status.prices))
        flight.dates[date] = status
    return status.available_seats


def copy_flight(flight: Flight) -> Flight:
    """Copier for the flights table: a flight has ~30 dates, copy only the map."""
    return Flight(
        flight_number=flight.flight_number,
        origin=flight.origin,
        destination=flight.destination,
        scheduled_departure_time_est=flight.scheduled_departure_time_est,
        scheduled_arrival_time_est=flight.scheduled_arrival_time_est,
        dates=dict(flight.dates),
    )


def _models(values: Any, model: Model, cls: type) -> Any:
    """tau2 converts a list argument to models only if every element is an object."""
    items = pyops.iterate(values)
    if all(isinstance(v, dict) for v in items):
        return [cls(**validate(model, v)) for v in items]
    return values


def _search(
    db: Overlay, date: Any, origin: Any, destination: Any, leave_after: str | None = None
) -> list[FlightSummary]:
    # Candidates by origin through the base index when possible; the checks below are
    # tau2's, in its order, so a bad ``date`` only fails once an origin/destination
    # matched (``None`` matches everything).
    if origin is not None and isinstance(origin, Hashable):
        candidates = db.select("flights", "origin", origin)
    else:
        candidates = db.values("flights")
    found = []
    for flight in candidates:
        if origin is not None and flight.origin != origin:
            continue
        if destination is not None and flight.destination != destination:
            continue
        if pyops.hashable(date) not in flight.dates:
            continue
        status = flight.dates[date]
        if not isinstance(status, Available):
            continue
        if leave_after is not None and flight.scheduled_departure_time_est < leave_after:
            continue
        found.append(FlightSummary(
            flight_number=flight.flight_number,
            origin=flight.origin,
            destination=flight.destination,
            status="available",
            scheduled_departure_time_est=flight.scheduled_departure_time_est,
            scheduled_arrival_time_est=flight.scheduled_arrival_time_est,
            available_seats=dict(status.available_seats),
            prices=dict(status.prices),
        ))
    return found


def _payment_for_update(db: Overlay, user_id: str, payment_id: Any, amount: Any) -> Any:
    """Charge (or refund, if negative) ``amount`` for a change to a reservation."""
    user = _user(db, user_id)
    if pyops.hashable(payment_id) not in user.payment_methods:
        raise ToolError("Payment method not found")
    method = user.payment_methods[payment_id]
    if isinstance(method, Certificate):
        raise ToolError("Certificate cannot be used to update reservation")
    if isinstance(method, GiftCard):
        if pyops.lt(method.amount, amount):
            raise ToolError("Gift card balance is not enough")
        method = db.edit("users", user_id).payment_methods[payment_id]
        method.amount = pyops.isub(method.amount, amount)
    if amount == 0:  # tau2 records no payment for a change that costs nothing
        return None
    return Payment(**validate(PAYMENT, {"payment_id": payment_id, "amount": amount}))


# -- tools --------------------------------------------------------------------------------


@write
def book_reservation(
    db: Overlay,
    user_id: str,
    origin: str,
    destination: str,
    flight_type: Literal["round_trip", "one_way"],
    cabin: Literal["business", "economy", "basic_economy"],
    flights: list[FlightInfo | dict],
    passengers: list[Passenger | dict],
    payment_methods: list[Payment | dict],
    total_baggages: int,
    nonfree_baggages: int,
    insurance: Literal["yes", "no"],
) -> Reservation:
    """Create a new reservation for a user and charge it to their payment methods.

    Args:
        user_id: Id of the user who books, e.g. 'sara_doe_496'.
        origin: IATA code of the trip's origin, e.g. 'SFO'.
        destination: IATA code of the trip's destination, e.g. 'JFK'.
        flight_type: 'one_way' or 'round_trip'.
        cabin: Cabin class for every segment: 'basic_economy', 'economy' or 'business'.
        flights: Every flight segment to book, each with a flight number and a date.
        passengers: Every traveller, each with first name, last name and date of birth.
        payment_methods: Payments that together cover the exact total, each naming one of
            the user's payment methods and an amount.
        total_baggages: Number of checked bags in total.
        nonfree_baggages: Number of checked bags that must be paid for.
        insurance: Whether travel insurance is bought: 'yes' or 'no'.
    """
    flights = _models(flights, FLIGHT_INFO, FlightInfo)
    passengers = _models(passengers, PASSENGER, Passenger)
    payment_methods = _models(payment_methods, PAYMENT, Payment)
    user = _user(db, user_id)
    reservation_id = next(
        (r for r in NEW_RESERVATION_IDS if not db.contains("reservations", r)), None
    )
    if reservation_id is None:
        raise ToolError("Too many reservations")
    # tau2 validates the whole Reservation before looking at a single flight.
    fields = validate(RESERVATION, {
        "reservation_id": reservation_id, "user_id": user_id, "origin": origin,
        "destination": destination, "flight_type": flight_type, "cabin": cabin,
        "flights": [], "passengers": _plain(passengers),
        "payment_history": _plain(payment_methods), "created_at": BOOKING_TIME,
        "total_baggages": total_baggages, "nonfree_baggages": nonfree_baggages,
        "insurance": insurance,
    })
    fields["passengers"] = [Passenger(**p) for p in fields["passengers"]]
    fields["payment_history"] = [Payment(**p) for p in fields["payment_history"]]
    reservation = Reservation(**fields)
    n_passengers = len(passengers)

    total: Any = 0
    booked: list[tuple[str, str]] = []
    for info in pyops.iterate(flights):
        number = pyops.attr(info, "flight_number")
        flight = _flight(db, number)
        date = pyops.attr(info, "date")
        status = _flight_date(db, number, date)
        if not isinstance(status, Available):
            raise ToolError(f"Flight {number} not available on date {date}")
        if status.available_seats[cabin] < n_passengers:
            raise ToolError(f"Not enough seats on flight {number}")
        price = status.prices[cabin]
        reservation.flights.append(ReservationFlight(
            flight_number=number, origin=flight.origin, destination=flight.destination,
            date=date, price=price,
        ))
        booked.append((number, date))
        total += price * n_passengers
    if insurance == "yes":
        total += 30 * n_passengers
    # The raw argument, not the validated one, enters the price (as in tau2).
    total = pyops.iadd(total, pyops.mul(50, nonfree_baggages))

    for payment in payment_methods:
        method = user.payment_methods.get(payment.payment_id)
        if method is None:
            raise ToolError(f"Payment method {payment.payment_id} not found")
        if isinstance(method, GiftCard | Certificate) and method.amount < payment.amount:
            raise ToolError(f"Not enough balance in payment method {payment.payment_id}")
    paid = sum(p.amount for p in payment_methods)
    if pyops.ne(paid, total):
        raise ToolError(f"Payment amount does not add up, total price is {total}, but paid {paid}")

    user = db.edit("users", user_id)
    for payment in payment_methods:
        method = user.payment_methods.get(payment.payment_id)
        if isinstance(method, GiftCard):
            method.amount -= payment.amount
        elif isinstance(method, Certificate) or method is None:
            # A certificate is consumed whole, whatever is left on it. Listing it twice
            # fails on the second removal, after earlier deductions were made.
            if payment.payment_id not in user.payment_methods:
                raise ToolError(repr(payment.payment_id))
            del user.payment_methods[payment.payment_id]
    for number, date in booked:
        seats = _edit_seats(db, number, date)
        seats[cabin] -= n_passengers
    db.insert("reservations", reservation_id, reservation)
    user.reservations.append(reservation_id)
    return reservation


def _plain(values: Any) -> Any:
    if isinstance(values, list):
        return [_as_dict(v) for v in values]
    return values


def _as_dict(value: Any) -> Any:
    return to_plain(value) if isinstance(value, Passenger | Payment) else value


@generic
def calculate(db: Overlay, expression: str) -> str:
    """Evaluate an arithmetic expression and return the result rounded to 2 decimals.

    Args:
        expression: The expression, using digits, + - * /, parentheses, dots and spaces,
            e.g. '(350 - 122) * 2'.
    """
    return evaluate(expression)


@write
def cancel_reservation(db: Overlay, reservation_id: str) -> Reservation:
    """Cancel a whole reservation and refund every payment made for it.

    Args:
        reservation_id: The six-character reservation code, e.g. 'ZFA04Y'.
    """
    reservation = _reservation(db, reservation_id, edit=True)
    # No status check, seats stay taken, balances are not credited (tau2's behaviour):
    # every payment so far gets a negated entry, even on a second cancellation.
    refunds = [Payment(payment_id=p.payment_id, amount=-p.amount)
               for p in reservation.payment_history]
    reservation.payment_history.extend(refunds)
    reservation.status = "cancelled"
    return reservation


@read
def get_reservation_details(db: Overlay, reservation_id: str) -> Reservation:
    """Look up a reservation by its code.

    Args:
        reservation_id: The six-character reservation code, e.g. '8JX2WO'.
    """
    return _reservation(db, reservation_id)


@read
def get_user_details(db: Overlay, user_id: str) -> User:
    """Look up a user's profile: contact details, payment methods, saved passengers,
    membership tier and reservation codes.

    Args:
        user_id: The user's id, e.g. 'sara_doe_496'.
    """
    return _user(db, user_id)


@read
def list_all_airports(db: Overlay) -> list[Airport]:
    """List every airport the airline serves, with its IATA code and city."""
    return [Airport(iata=code, city=city) for code, city in AIRPORTS]


@read
def search_direct_flight(db: Overlay, origin: str, destination: str, date: str) -> list:
    """Find nonstop flights between two airports that can be booked on a date.

    Args:
        origin: IATA code of the departure airport, e.g. 'JFK'.
        destination: IATA code of the arrival airport, e.g. 'LAX'.
        date: Departure date, YYYY-MM-DD, e.g. '2024-01-01'.
    """
    return _search(db, date, origin, destination)


@read
def search_onestop_flight(db: Overlay, origin: str, destination: str, date: str) -> list:
    """Find two-segment connections between two airports that can be booked on a date.

    Args:
        origin: IATA code of the departure airport, e.g. 'JFK'.
        destination: IATA code of the final arrival airport, e.g. 'LAX'.
        date: Departure date of the first segment, YYYY-MM-DD, e.g. '2024-05-01'.
    """
    pairs = []
    for first in _search(db, date, origin, None):
        first.date = date
        # An overnight first leg ('+1') connects on the next day. tau2 builds that day by
        # hand: not zero-padded and never rolling into June.
        second_date = (
            f"2024-05-{int(date[-2:]) + 1}" if "+1" in first.scheduled_arrival_time_est else date
        )
        for second in _search(db, second_date, first.destination, destination,
                              leave_after=first.scheduled_arrival_time_est):
            second.date = second_date
            pairs.append([first, second])
    return pairs


@write
def send_certificate(db: Overlay, user_id: str, amount: int) -> str:
    """Give a user a travel certificate worth an amount, as compensation.

    Args:
        user_id: The user's id, e.g. 'sara_doe_496'.
        amount: Value of the certificate in dollars.
    """
    user = _user(db, user_id)
    for payment_id in NEW_CERTIFICATE_IDS:
        if payment_id not in user.payment_methods:
            stored = validate(CERTIFICATE, {"id": payment_id, "amount": amount})
            user = db.edit("users", user_id)
            user.payment_methods[payment_id] = Certificate(**stored)
            return f"Certificate {payment_id} added to user {user_id} with amount {amount}."
    raise ToolError("Too many certificates")


@generic
def transfer_to_human_agents(db: Overlay, summary: str) -> str:
    """Hand the conversation to a human agent, with a summary of the user's issue. Use
    only when the request cannot be handled within the policy and tools.

    Args:
        summary: What the user needs and what has been done so far.
    """
    return "Transfer successful"


@write
def update_reservation_baggages(
    db: Overlay, reservation_id: str, total_baggages: int, nonfree_baggages: int, payment_id: str
) -> Reservation:
    """Change the checked-bag counts of a reservation, charging any new paid bags.

    Args:
        reservation_id: The six-character reservation code, e.g. 'ZFA04Y'.
        total_baggages: New total number of checked bags.
        nonfree_baggages: New number of checked bags that must be paid for.
        payment_id: Id of the user's payment method to charge, e.g. 'credit_card_7815826'.
            Certificates cannot be used.
    """
    reservation = _reservation(db, reservation_id)
    _user(db, reservation.user_id)
    # No refund when bags are removed; 50 per additional paid bag.
    extra = pyops.py_max(0, pyops.sub(nonfree_baggages, reservation.nonfree_baggages))
    payment = _payment_for_update(db, reservation.user_id, payment_id, pyops.mul(50, extra))
    reservation = _reservation(db, reservation_id, edit=True)
    if payment is not None:
        reservation.payment_history.append(payment)
    reservation.total_baggages = total_baggages
    reservation.nonfree_baggages = nonfree_baggages
    return reservation


@write
def update_reservation_flights(
    db: Overlay,
    reservation_id: str,
    cabin: Literal["business", "economy", "basic_economy"],
    flights: list[FlightInfo | dict],
    payment_id: str,
) -> Reservation:
    """Replace the flights (and cabin) of a reservation, settling the price difference.

    Args:
        reservation_id: The six-character reservation code, e.g. 'ZFA04Y'.
        cabin: Cabin class for the whole reservation after the change.
        flights: The complete list of segments after the change, unchanged ones included,
            each with a flight number and a date.
        payment_id: Id of the user's payment method to charge or refund, e.g.
            'credit_card_7815826'. Certificates cannot be used.
    """
    flights = _models(flights, FLIGHT_INFO, FlightInfo)
    reservation = _reservation(db, reservation_id)
    _user(db, reservation.user_id)
    n_passengers = len(reservation.passengers)
    total: Any = 0
    new_flights: list[Any] = []
    for info in pyops.iterate(flights):
        number = pyops.attr(info, "flight_number")
        date = pyops.attr(info, "date")
        # A segment is kept at its old price only if number, date *and* cabin match.
        kept = next((f for f in reservation.flights
                     if f.flight_number == number and f.date == date
                     and cabin == reservation.cabin), None)
        if kept is not None:
            total += kept.price * n_passengers
            new_flights.append(kept)
            continue
        flight = _flight(db, number)
        status = _flight_date(db, number, date)
        if not isinstance(status, Available):
            raise ToolError(f"Flight {number} not available on date {date}")
        seats = status.available_seats
        if pyops.hashable(cabin) not in seats:
            raise ToolError(repr(cabin))  # tau2's KeyError text, e.g. 'first'
        if seats[cabin] < n_passengers:
            raise ToolError(f"Not enough seats on flight {number}")
        price = status.prices[cabin]
        new_flights.append(ReservationFlight(
            flight_number=number, origin=flight.origin, destination=flight.destination,
            date=date, price=price,
        ))
        total += price * n_passengers
    total -= sum(f.price for f in reservation.flights) * n_passengers
    payment = _payment_for_update(db, reservation.user_id, payment_id, total)
    reservation = _reservation(db, reservation_id, edit=True)
    if payment is not None:
        reservation.payment_history.append(payment)
    reservation.flights = new_flights
    reservation.cabin = cabin
    # Seats are not moved between flights: tau2 leaves inventory untouched here.
    return reservation


@write
def update_reservation_passengers(
    db: Overlay, reservation_id: str, passengers: list[Passenger | dict]
) -> Reservation:
    """Replace the passenger details of a reservation; the number must stay the same.

    Args:
        reservation_id: The six-character reservation code, e.g. 'ZFA04Y'.
        passengers: Every traveller after the change, in order, each with first name,
            last name and date of birth.
    """
    passengers = _models(passengers, PASSENGER, Passenger)
    reservation = _reservation(db, reservation_id)
    if pyops.length(passengers) != len(reservation.passengers):
        raise ToolError("Number of passengers does not match")
    reservation = _reservation(db, reservation_id, edit=True)
    reservation.passengers = copy.deepcopy(passengers)
    return reservation


@read
def get_flight_status(db: Overlay, flight_number: str, date: str) -> str:
    """The status of a flight on a date: available, on time, delayed, flying, landed or
    cancelled.

    Args:
        flight_number: The flight number, e.g. 'HAT001'.
        date: The date, YYYY-MM-DD, e.g. '2024-05-01'.
    """
    return _flight_date(db, flight_number, date).status


TOOLS = (
    book_reservation,
    calculate,
    cancel_reservation,
    get_reservation_details,
    get_user_details,
    list_all_airports,
    search_direct_flight,
    search_onestop_flight,
    send_certificate,
    transfer_to_human_agents,
    update_reservation_baggages,
    update_reservation_flights,
    update_reservation_passengers,
    get_flight_status,
)
