"""The airline database as msgspec Structs.

Field order is the order tau2-bench dumps its records in (visible in tool outputs), and
every Optional field is present with ``None`` because tau2's DB hash includes it.
Tagged unions put the tag (``status`` / ``source``) first, as tau2's models do.
Structs are not validated on assignment: tools store what tau2 would store, including
values of an unexpected type that a model passed through unchecked.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import msgspec

Cabin = Literal["business", "economy", "basic_economy"]
CABINS: tuple[str, ...] = ("business", "economy", "basic_economy")


class Record(msgspec.Struct, kw_only=True):
    """Base of every stored record (plain mutable Structs)."""


# -- flights ------------------------------------------------------------------------------


class Available(Record, tag_field="status", tag="available"):
    status: ClassVar[str] = "available"
    available_seats: dict[str, int]
    prices: dict[str, int]


class OnTime(Record, tag_field="status", tag="on time"):
    status: ClassVar[str] = "on time"
    estimated_departure_time_est: str
    estimated_arrival_time_est: str


class Delayed(Record, tag_field="status", tag="delayed"):
    status: ClassVar[str] = "delayed"
    estimated_departure_time_est: str
    estimated_arrival_time_est: str


class Flying(Record, tag_field="status", tag="flying"):
    status: ClassVar[str] = "flying"
    actual_departure_time_est: str
    estimated_arrival_time_est: str


class Landed(Record, tag_field="status", tag="landed"):
    status: ClassVar[str] = "landed"
    actual_departure_time_est: str
    actual_arrival_time_est: str


class Cancelled(Record, tag_field="status", tag="cancelled"):
    status: ClassVar[str] = "cancelled"


FlightDate = Available | OnTime | Delayed | Flying | Landed | Cancelled


class Flight(Record):
    flight_number: str
    origin: str
    destination: str
    scheduled_departure_time_est: str
    scheduled_arrival_time_est: str
    dates: dict[str, FlightDate]


class FlightSummary(Record, kw_only=True):
    """A bookable flight on one date, as the search tools return it."""

    flight_number: str
    origin: str
    destination: str
    status: str
    scheduled_departure_time_est: str
    scheduled_arrival_time_est: str
    date: str | None = None
    available_seats: dict[str, int]
    prices: dict[str, int]


class Airport(Record):
    iata: str
    city: str


# -- users ---------------------------------------------------------------------------------


class Name(Record):
    first_name: str
    last_name: str


class Address(Record, kw_only=True):
    address1: str
    address2: str | None = None
    city: str
    country: str
    state: str
    zip: str


class CreditCard(Record, tag_field="source", tag="credit_card"):
    source: ClassVar[str] = "credit_card"
    id: str
    brand: str
    last_four: str


class GiftCard(Record, tag_field="source", tag="gift_card"):
    source: ClassVar[str] = "gift_card"
    id: str
    amount: float


class Certificate(Record, tag_field="source", tag="certificate"):
    source: ClassVar[str] = "certificate"
    id: str
    amount: float


PaymentMethod = CreditCard | GiftCard | Certificate


class Passenger(Record):
    """A traveller on a reservation.

    Args:
        first_name: Given name as on the passenger's ID.
        last_name: Family name as on the passenger's ID.
        dob: Date of birth, YYYY-MM-DD.
    """

    first_name: str
    last_name: str
    dob: str


class User(Record):
    user_id: str
    name: Name
    address: Address
    email: str
    dob: str
    payment_methods: dict[str, PaymentMethod]
    saved_passengers: list[Passenger]
    membership: str
    reservations: list[str]


# -- reservations --------------------------------------------------------------------------


class FlightInfo(Record):
    """One flight segment to book.

    Args:
        flight_number: The flight number, e.g. 'HAT001'.
        date: The departure date, YYYY-MM-DD, e.g. '2024-05-01'.
    """

    flight_number: str
    date: str


class Payment(Record):
    """An amount charged to (or, if negative, refunded to) one payment method.

    Args:
        payment_id: The id of one of the user's payment methods.
        amount: Whole dollars to charge to that method.
    """

    payment_id: str
    amount: int


class ReservationFlight(Record):
    flight_number: str
    origin: str
    destination: str
    date: str
    price: int


class Reservation(Record):
    reservation_id: str
    user_id: str
    origin: str
    destination: str
    flight_type: str
    cabin: str
    flights: list[ReservationFlight]
    passengers: list[Passenger]
    payment_history: list[Payment]
    created_at: str
    total_baggages: int
    nonfree_baggages: int
    insurance: str
    status: str | None = None


class AirlineDB(msgspec.Struct, kw_only=True):
    """The whole database, in tau2-bench's ``db.json`` layout."""

    flights: dict[str, Flight]
    users: dict[str, User]
    reservations: dict[str, Reservation]
