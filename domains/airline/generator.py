"""A seeded synthetic airline database shaped like tau2-bench's ``db.json``.

The engine's embedded default when no ``db.json`` is given. ``generate(seed, scale)``
draws everything from one ``random.Random(seed)``, in a fixed order, and never iterates a
set, so the same ``(seed, scale)`` always encodes to the same bytes.

The world mirrors tau2-bench's: flights run every day from 2024-05-01 to 2024-05-30 and
"now" is 2024-05-15 15:00 EST (the tools' booking time). Earlier dates are landed or
cancelled, today's flights are landed, flying, on time or delayed according to the clock,
later dates are bookable. Times are EST throughout (as in tau2), so a flight's duration
is simply arrival minus departure and an arrival after midnight is written ``HH:MM:SS+1``.
Records are consistent with each other (see ``tests/test_airline_generator.py``): the
tools can search, book and modify against them without surprises.
"""

from __future__ import annotations

import math
import random
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import msgspec

from .data_model import (
    Address,
    AirlineDB,
    Available,
    Cancelled,
    Certificate,
    CreditCard,
    Delayed,
    Flight,
    FlightDate,
    Flying,
    GiftCard,
    Landed,
    Name,
    OnTime,
    Passenger,
    Payment,
    PaymentMethod,
    Reservation,
    ReservationFlight,
    User,
)

# Sizes of tau2-bench's airline db.json at scale 1.0, and the floors that keep a tiny
# scale a usable database (a few routes in both directions, a few users and trips).
BASE_FLIGHTS, BASE_USERS, BASE_RESERVATIONS = 300, 500, 2000
MIN_FLIGHTS, MIN_USERS, MIN_RESERVATIONS = 6, 5, 10

FIRST_DAY, LAST_DAY, TODAY = 1, 30, 15  # days of May 2024
NOW_MINUTE = 15 * 60  # 15:00 on TODAY, the tools' BOOKING_TIME
MAY = datetime(2024, 5, 1)
NOW = MAY + timedelta(days=TODAY - 1, minutes=NOW_MINUTE)
MIN_CONNECTION = 60  # minutes between legs of a one-stop trip
CABIN_ORDER = ("basic_economy", "economy", "business")  # tau2's key order

# Ids the tools hand out themselves (tools.NEW_RESERVATION_IDS / NEW_CERTIFICATE_IDS);
# generating them would make booking or send_certificate collide with seeded data.
TOOL_RESERVATION_IDS = ("HATHAT", "HATHAU", "HATHAV")
TOOL_CERTIFICATE_IDS = ("certificate_3221322", "certificate_3221323", "certificate_3221324")

# The airports of tools.AIRPORTS (the test checks the codes match), with coordinates for
# flight durations and a hub weight for how many routes and flights an airport gets.
# Kept here rather than imported so that the generator does not depend on the tools.
AirportInfo = tuple[str, float, float, float]  # code, latitude, longitude, hub weight
AIRPORT_INFO: tuple[AirportInfo, ...] = (
    ("SFO", 37.62, -122.38, 3.0), ("JFK", 40.64, -73.78, 3.5), ("LAX", 33.94, -118.41, 4.0),
    ("ORD", 41.97, -87.91, 5.0), ("DFW", 32.90, -97.04, 5.0), ("DEN", 39.86, -104.67, 4.0),
    ("SEA", 47.45, -122.31, 2.5), ("ATL", 33.64, -84.43, 5.0), ("MIA", 25.79, -80.29, 2.5),
    ("BOS", 42.36, -71.01, 2.5), ("PHX", 33.43, -112.01, 2.5), ("IAH", 29.98, -95.34, 3.0),
    ("LAS", 36.08, -115.15, 2.5), ("MCO", 28.43, -81.31, 2.0), ("EWR", 40.69, -74.17, 2.5),
    ("CLT", 35.21, -80.94, 3.0), ("MSP", 44.88, -93.22, 2.0), ("DTW", 42.21, -83.35, 2.0),
    ("PHL", 39.87, -75.24, 2.0), ("LGA", 40.78, -73.87, 2.0),
)
MIN_ROUTE_MILES = 120  # no shuttles between the New York airports or to Philadelphia

# Departure hours: a full day bank from 05:00, a thin late evening, rare red-eyes.
HOUR_WEIGHTS = tuple(0.15 if h < 5 else 0.7 if h >= 22 else 1.0 for h in range(24))
# First travel day of a reservation: bookings cluster in the coming days, as in tau2
# (few trips early in the month).
TRAVEL_DAYS = tuple(range(FIRST_DAY, LAST_DAY + 1))
TRAVEL_DAY_WEIGHTS = tuple(3.0 if day >= TODAY else 1.0 for day in TRAVEL_DAYS)
ROUND_TRIP_SHARE = 0.6  # some fall back to one way (no return date left in May)

FIRST_NAMES = (
    "Aarav", "Amelia", "Anya", "Ava", "Carlos", "Chen", "Daiki", "Daniel", "Elena", "Emma",
    "Ethan", "Fatima", "Grace", "Hana", "Harper", "Ibrahim", "Isabel", "Ivan", "Jamal",
    "James", "Julia", "Kai", "Kenji", "Layla", "Leo", "Liam", "Lucas", "Maya", "Mateo",
    "Mei", "Mina", "Nadia", "Noah", "Nora", "Olga", "Omar", "Priya", "Rafael", "Ravi",
    "Rosa", "Samir", "Sara", "Sofia", "Tariq", "Thomas", "Uma", "Victor", "Wei", "Yara",
    "Yusuf", "Zoe", "Arjun", "Camila", "Diego", "Elif", "Hugo", "Ingrid", "Kofi", "Lena",
    "Marco", "Nina", "Oscar", "Pablo", "Quinn",
)
LAST_NAMES = (
    "Adams", "Ali", "Bauer", "Brown", "Castillo", "Chen", "Clark", "Cohen", "Costa", "Das",
    "Diaz", "Evans", "Fischer", "Garcia", "Gupta", "Haddad", "Hall", "Hansen", "Ito",
    "Jensen", "Kaur", "Khan", "Kim", "Kowalski", "Lee", "Lewis", "Lin", "Lopez", "Martin",
    "Mendes", "Moore", "Morales", "Nakamura", "Novak", "Okafor", "Olsen", "Park", "Patel",
    "Perez", "Petrov", "Quinn", "Ramos", "Reyes", "Rivera", "Romano", "Sato", "Schmidt",
    "Shah", "Silva", "Singh", "Suzuki", "Taylor", "Tran", "Turner", "Volkov", "Wagner",
    "Walker", "Wang", "Weber", "Wilson", "Wong", "Yamada", "Young", "Zhang",
)
STREETS = (
    "Main Street", "Oak Avenue", "Maple Drive", "Pine Lane", "Cedar Court", "Elm Street",
    "Birch Road", "Walnut Way", "Lakeshore Drive", "Hillside Avenue", "River Road",
    "Park Place", "Meadow Lane", "Sunrise Boulevard", "Willow Street", "Forest Drive",
    "Magnolia Avenue", "Spring Street", "Valley View Road", "Harbor Drive", "Aspen Court",
    "Chestnut Avenue", "Highland Road", "Orchard Lane",
)
# (city, state, first three digits of its ZIP codes)
CITIES: tuple[tuple[str, str, str], ...] = (
    ("Austin", "TX", "787"), ("Boston", "MA", "021"), ("Charlotte", "NC", "282"),
    ("Chicago", "IL", "606"), ("Columbus", "OH", "432"), ("Dallas", "TX", "752"),
    ("Denver", "CO", "802"), ("Detroit", "MI", "482"), ("Houston", "TX", "770"),
    ("Indianapolis", "IN", "462"), ("Jacksonville", "FL", "322"), ("Las Vegas", "NV", "891"),
    ("Los Angeles", "CA", "900"), ("Miami", "FL", "331"), ("Minneapolis", "MN", "554"),
    ("Nashville", "TN", "372"), ("New York", "NY", "100"), ("Orlando", "FL", "328"),
    ("Philadelphia", "PA", "191"), ("Phoenix", "AZ", "850"), ("Portland", "OR", "972"),
    ("Sacramento", "CA", "958"), ("San Antonio", "TX", "782"), ("San Diego", "CA", "921"),
    ("San Francisco", "CA", "941"), ("San Jose", "CA", "951"), ("Seattle", "WA", "981"),
    ("Tampa", "FL", "336"), ("Tucson", "AZ", "857"), ("Washington", "DC", "200"),
)
CARD_BRANDS, CARD_BRAND_WEIGHTS = ("visa", "mastercard", "amex", "discover"), (5, 4, 2, 1)
CERTIFICATE_AMOUNTS = (100.0, 150.0, 250.0, 500.0)
MEMBERSHIPS, MEMBERSHIP_WEIGHTS = ("regular", "silver", "gold"), (30, 36, 34)
PASSENGER_COUNTS, PASSENGER_WEIGHTS = (1, 2, 3, 4, 5), (46, 33, 15, 5, 1)
BAGS_PER_PASSENGER, BAG_WEIGHTS = (0, 1, 2, 3), (45, 35, 15, 5)
# Free checked bags per passenger by membership and cabin (tau2-bench's policy).
FREE_BAGS = {
    "regular": {"basic_economy": 0, "economy": 1, "business": 2},
    "silver": {"basic_economy": 1, "economy": 2, "business": 3},
    "gold": {"basic_economy": 2, "economy": 3, "business": 4},
}
ID_CHARS = string.ascii_uppercase + string.digits


@dataclass(slots=True)
class _Leg:
    """One scheduled flight as the generator plans with it (minutes after midnight EST)."""

    number: str
    origin: str
    destination: str
    departure: int
    arrival: int  # may exceed 24 * 60 for an overnight arrival
    base_fare: int  # basic economy fare around which every date's prices are drawn
    dates: dict[str, FlightDate] = field(default_factory=dict)

    def to_flight(self) -> Flight:
        return Flight(
            flight_number=self.number,
            origin=self.origin,
            destination=self.destination,
            scheduled_departure_time_est=_clock(self.departure),
            scheduled_arrival_time_est=_clock(self.arrival),
            dates=self.dates,
        )


def generate(seed: int = 0, scale: float = 1.0) -> AirlineDB:
    """A consistent airline database about ``scale`` times the size of tau2-bench's."""
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    rng = random.Random(seed)
    n_flights = max(MIN_FLIGHTS, round(BASE_FLIGHTS * scale))
    n_users = max(MIN_USERS, round(BASE_USERS * scale))
    n_reservations = max(MIN_RESERVATIONS, round(BASE_RESERVATIONS * scale))

    legs = _make_flights(rng, n_flights)
    users = _make_users(rng, n_users)
    reservations = _make_reservations(rng, n_reservations, legs, users)
    return AirlineDB(
        flights={leg.number: leg.to_flight() for leg in legs},
        users={user.user_id: user for user in users},
        reservations=reservations,
    )


# -- flights ------------------------------------------------------------------------------


def _miles(a: AirportInfo, b: AirportInfo) -> float:
    """Great-circle distance between two airports in statute miles."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a[1], a[2], b[1], b[2]))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * 3958.8 * math.asin(math.sqrt(h))


def _pick_routes(rng: random.Random, n_routes: int) -> list[tuple[int, int]]:
    """Airport pairs (indexes into AIRPORT_INFO, ``i < j``), weighted towards hubs.

    When there are enough routes, every airport first gets one (the tools list all
    twenty airports, so each should be served); the rest go to busy pairs.
    """
    pairs = [
        (i, j)
        for i in range(len(AIRPORT_INFO))
        for j in range(i + 1, len(AIRPORT_INFO))
        if _miles(AIRPORT_INFO[i], AIRPORT_INFO[j]) >= MIN_ROUTE_MILES
    ]
    # Efraimidis-Spirakis keys: sampling without replacement proportional to weight.
    keyed = sorted(
        ((rng.random() ** (1.0 / (AIRPORT_INFO[i][3] * AIRPORT_INFO[j][3])), i, j)
         for i, j in pairs),
        reverse=True,
    )
    ranked = [(i, j) for _, i, j in keyed]
    chosen: list[tuple[int, int]] = []
    if n_routes >= len(AIRPORT_INFO):
        served = [False] * len(AIRPORT_INFO)
        for i, j in ranked:  # each airport's best-ranked pair, in rank order
            if not (served[i] and served[j]):
                chosen.append((i, j))
                served[i] = served[j] = True
    picked = set(chosen)
    chosen += [p for p in ranked if p not in picked][:max(0, n_routes - len(chosen))]
    return chosen


def _directed_routes(rng: random.Random, n_flights: int) -> list[tuple[int, int]]:
    """One (origin, destination) per flight to create.

    Every chosen route is flown both ways (so any trip has a way home) and busier
    airports get more frequencies; tau2 averages ~2.8 flights per direction.
    """
    n_routes = min(n_flights // 2, max(3, round(n_flights / 5.6)))
    routes = _pick_routes(rng, n_routes)
    planned = routes + [(j, i) for i, j in routes]
    directed = planned[:]
    cum: list[float] = []
    total = 0.0
    for i, j in directed:
        total += AIRPORT_INFO[i][3] * AIRPORT_INFO[j][3]
        cum.append(total)
    planned += rng.choices(directed, cum_weights=cum, k=n_flights - len(planned))
    rng.shuffle(planned)  # flight numbers then say nothing about the route
    return planned


def _clock(minutes: int) -> str:
    """Scheduled time of day, with tau2's ``+1`` suffix for the next day."""
    day, minute = divmod(minutes, 24 * 60)
    text = f"{minute // 60:02d}:{minute % 60:02d}:00"
    return text + "+1" if day else text


def _date_key(day: int) -> str:
    return f"2024-05-{day:02d}"


def _stamp(day: int, minutes: int) -> str:
    """An EST timestamp ``minutes`` after midnight of May ``day`` (may roll over)."""
    return (MAY + timedelta(days=day - 1, minutes=minutes)).isoformat()


def _make_flights(rng: random.Random, n_flights: int) -> list[_Leg]:
    legs = []
    for index, (i, j) in enumerate(_directed_routes(rng, n_flights), start=1):
        origin, destination = AIRPORT_INFO[i], AIRPORT_INFO[j]
        miles = _miles(origin, destination)
        # Block time: taxi and climb plus cruise, longer westbound against the jet
        # stream, on a half-hour grid as airline timetables (and tau2) have it.
        cruise = miles / 480 * 60 * (1.1 if destination[2] < origin[2] else 1.0)
        duration = max(60, round((35 + cruise) / 30) * 30)
        departure = rng.choices(range(24), weights=HOUR_WEIGHTS)[0] * 60
        if rng.random() < 0.2:
            departure += 30
        leg = _Leg(
            number=f"HAT{index:03d}",
            origin=origin[0],
            destination=destination[0],
            departure=departure,
            arrival=departure + duration,
            base_fare=round(45 + miles * 0.02 + rng.uniform(-8, 8)),
        )
        for day in TRAVEL_DAYS:
            leg.dates[_date_key(day)] = _flight_date(rng, leg, day)
        legs.append(leg)
    return legs


def _fares(rng: random.Random, base_fare: int) -> dict[str, int]:
    """Prices per cabin around a flight's base fare, strictly rising with the cabin."""
    basic = max(30, round(base_fare * rng.uniform(0.85, 1.2)))
    economy = basic + max(10, round(basic * rng.uniform(0.5, 1.3)))
    business = economy + max(40, round(economy * rng.uniform(0.7, 2.0)))
    return {"basic_economy": basic, "economy": economy, "business": business}


def _flight_date(rng: random.Random, leg: _Leg, day: int) -> FlightDate:
    """The status of one flight on one day, relative to now (May 15, 15:00)."""
    if day > TODAY:
        seats = {cabin: rng.randint(0, 20) for cabin in CABIN_ORDER}
        return Available(available_seats=seats, prices=_fares(rng, leg.base_fare))
    if rng.random() < (0.09 if day < TODAY else 0.03):
        return Cancelled()
    delayed = rng.random() < 0.15
    # Early departures are rare and small, and never back into the previous day.
    slip = rng.randint(30, 180) if delayed else rng.randint(-min(20, leg.departure), 25)
    departure = leg.departure + slip
    arrival = departure + (leg.arrival - leg.departure) + rng.randint(-25, 15)
    if day < TODAY or arrival <= NOW_MINUTE:
        return Landed(actual_departure_time_est=_stamp(day, departure),
                      actual_arrival_time_est=_stamp(day, arrival))
    if departure <= NOW_MINUTE:
        return Flying(actual_departure_time_est=_stamp(day, departure),
                      estimated_arrival_time_est=_stamp(day, arrival))
    if delayed:
        return Delayed(estimated_departure_time_est=_stamp(day, departure),
                       estimated_arrival_time_est=_stamp(day, arrival))
    return OnTime(estimated_departure_time_est=_stamp(day, leg.departure),
                  estimated_arrival_time_est=_stamp(day, leg.arrival))


# -- users --------------------------------------------------------------------------------


def _fresh_id(rng: random.Random, taken: set[str], prefix: str, digits: int) -> str:
    """``prefix`` plus a random number of ``digits`` digits not yet in ``taken``.

    Sets here only answer membership; nothing iterates them, so order never leaks.
    """
    while True:
        candidate = f"{prefix}{rng.randint(10 ** (digits - 1), 10 ** digits - 1)}"
        if candidate not in taken:
            taken.add(candidate)
            return candidate


def _date(rng: random.Random, first_year: int, last_year: int) -> str:
    start = datetime(first_year, 1, 1)
    span = (datetime(last_year, 12, 31) - start).days
    return (start + timedelta(days=rng.randint(0, span))).date().isoformat()


def _person(rng: random.Random) -> Passenger:
    return Passenger(first_name=rng.choice(FIRST_NAMES), last_name=rng.choice(LAST_NAMES),
                     dob=_date(rng, 1940, 2015))


def _address(rng: random.Random) -> Address:
    city, state, zip_prefix = rng.choice(CITIES)
    roll = rng.random()
    address2 = (f"Suite {rng.randint(100, 999)}" if roll < 0.35
                else f"Apt {rng.randint(1, 40)}{rng.choice('ABCD')}" if roll < 0.6 else None)
    return Address(address1=f"{rng.randint(1, 9999)} {rng.choice(STREETS)}",
                   address2=address2, city=city, country="USA", state=state,
                   zip=f"{zip_prefix}{rng.randint(0, 99):02d}")


def _payment_methods(rng: random.Random, taken: set[str]) -> dict[str, PaymentMethod]:
    """1-4 methods, always at least one credit or gift card to pay the rest with."""
    count = rng.choices((1, 2, 3, 4), weights=(30, 35, 25, 10))[0]
    kinds = [rng.choice(("credit_card", "gift_card"))]
    kinds += rng.choices(("credit_card", "gift_card", "certificate"), weights=(3, 3, 4),
                         k=count - 1)
    methods: dict[str, PaymentMethod] = {}
    for kind in kinds:
        pid = _fresh_id(rng, taken, f"{kind}_", 7)
        if kind == "credit_card":
            methods[pid] = CreditCard(
                id=pid, brand=rng.choices(CARD_BRANDS, weights=CARD_BRAND_WEIGHTS)[0],
                last_four=f"{rng.randint(0, 9999):04d}")
        elif kind == "gift_card":
            methods[pid] = GiftCard(id=pid, amount=float(rng.randint(0, 300)))
        else:
            methods[pid] = Certificate(id=pid, amount=rng.choice(CERTIFICATE_AMOUNTS))
    # tau2's profiles list methods in no particular order; don't always lead with a card.
    order = list(methods)
    rng.shuffle(order)
    return {pid: methods[pid] for pid in order}


def _make_users(rng: random.Random, n_users: int) -> list[User]:
    user_ids: set[str] = set()
    payment_ids = set(TOOL_CERTIFICATE_IDS)
    users = []
    for _ in range(n_users):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        user_id = _fresh_id(rng, user_ids, f"{first.lower()}_{last.lower()}_", 4)
        n_saved = rng.choices((0, 1, 2, 3), weights=(10, 55, 30, 5))[0]
        users.append(User(
            user_id=user_id,
            name=Name(first_name=first, last_name=last),
            address=_address(rng),
            email=f"{first.lower()}.{last.lower()}{rng.randint(1000, 9999)}@example.com",
            dob=_date(rng, 1950, 2002),
            payment_methods=_payment_methods(rng, payment_ids),
            saved_passengers=[_person(rng) for _ in range(n_saved)],
            membership=rng.choices(MEMBERSHIPS, weights=MEMBERSHIP_WEIGHTS)[0],
            reservations=[],
        ))
    return users


# -- reservations -------------------------------------------------------------------------


Itinerary = list[tuple[_Leg, int]]  # legs with the day each is flown


class _Network:
    """Flight look-ups for planning trips, in generation order (deterministic)."""

    def __init__(self, legs: list[_Leg]) -> None:
        self.legs = legs
        self.from_airport: dict[str, list[_Leg]] = {}
        self.route: dict[tuple[str, str], list[_Leg]] = {}
        for leg in legs:
            self.from_airport.setdefault(leg.origin, []).append(leg)
            self.route.setdefault((leg.origin, leg.destination), []).append(leg)

    def connect(self, rng: random.Random, first: _Leg, day: int, to: str | None,
                avoid: str) -> tuple[_Leg, int] | None:
        """A second leg after ``first`` (flown on ``day``) with time to connect.

        ``to`` fixes the final destination; otherwise any airport but ``avoid``.
        """
        next_day = day + first.arrival // 1440
        if next_day > LAST_DAY:
            return None
        ready = first.arrival % 1440 + MIN_CONNECTION
        pool = (self.route.get((first.destination, to), []) if to is not None
                else self.from_airport[first.destination])
        fits = [leg for leg in pool if leg.departure >= ready and leg.destination != avoid]
        return (rng.choice(fits), next_day) if fits else None

    def one_stop(self, rng: random.Random, origin: str, destination: str,
                 day: int) -> Itinerary | None:
        """A sampled two-leg itinerary between two airports, if a few tries find one."""
        for _ in range(6):
            first = rng.choice(self.from_airport[origin])
            if first.destination == destination:
                continue
            second = self.connect(rng, first, day, destination, origin)
            if second is not None:
                return [(first, day), second]
        return None

    def home(self, rng: random.Random, origin: str, destination: str, day: int,
             prefer_stop: bool) -> Itinerary | None:
        """The way back from ``origin`` to ``destination``: direct or with one stop."""
        direct = self.route.get((origin, destination))
        if prefer_stop:
            found = self.one_stop(rng, origin, destination, day)
            if found is not None:
                return found
        if direct:
            return [(rng.choice(direct), day)]
        return self.one_stop(rng, origin, destination, day)


def _itinerary(rng: random.Random, net: _Network) -> tuple[str, Itinerary, Itinerary]:
    """A flight type, its outbound legs and its return legs (empty for one way)."""
    round_trip = rng.random() < ROUND_TRIP_SHARE
    day = rng.choices(TRAVEL_DAYS, weights=TRAVEL_DAY_WEIGHTS)[0]
    first = rng.choice(net.legs)
    legs = [(first, day)]
    if rng.random() < 0.5:
        second = net.connect(rng, first, day, None, first.origin)
        if second is not None:
            legs.append(second)
    back_day = legs[-1][1] + rng.randint(1, 7)
    if not round_trip or back_day > LAST_DAY:
        return "one_way", legs, []
    back = net.home(rng, legs[-1][0].destination, first.origin, back_day, len(legs) > 1)
    if back is None:
        return "one_way", legs, []
    return "round_trip", legs, back


def _segment(rng: random.Random, leg: _Leg, day: int, cabin: str) -> ReservationFlight:
    date = _date_key(day)
    status = leg.dates[date]
    # Bookable dates charge today's fare (what booking would charge); a flown or
    # cancelled date keeps a fare drawn around the flight's usual price.
    fares = status.prices if isinstance(status, Available) else _fares(rng, leg.base_fare)
    return ReservationFlight(flight_number=leg.number, origin=leg.origin,
                             destination=leg.destination, date=date, price=fares[cabin])


def _passengers(rng: random.Random, user: User) -> list[Passenger]:
    count = rng.choices(PASSENGER_COUNTS, weights=PASSENGER_WEIGHTS)[0]
    people: list[Passenger] = []
    if rng.random() < 0.8:  # most people book a trip they take themselves
        people.append(Passenger(first_name=user.name.first_name,
                                last_name=user.name.last_name, dob=user.dob))
    saved = user.saved_passengers[:]
    rng.shuffle(saved)
    while len(people) < count:
        # A copy, never the user's own record: tools edit records independently.
        people.append(msgspec.structs.replace(saved.pop()) if saved and rng.random() < 0.7
                      else _person(rng))
    return people


def _payments(rng: random.Random, user: User, total: int) -> list[Payment]:
    """Split ``total`` over the user's methods within tau2's rules: at most one
    certificate (applied first), the rest on one credit card or gift card."""
    methods = list(user.payment_methods.values())
    certificates = [m for m in methods if isinstance(m, Certificate)]
    payers = [m for m in methods if isinstance(m, CreditCard | GiftCard)]
    payments = []
    rest = total
    if certificates and rng.random() < 0.3:
        certificate = rng.choice(certificates)
        used = min(total, int(certificate.amount))
        payments.append(Payment(payment_id=certificate.id, amount=used))
        rest -= used
    if rest > 0:
        payments.append(Payment(payment_id=rng.choice(payers).id, amount=rest))
    return payments


def _created_at(rng: random.Random, first_day: int) -> str:
    """Booked up to three weeks before departure, and never after now."""
    departure = MAY + timedelta(days=first_day - 1)
    latest = min(departure, NOW)
    return (latest - timedelta(seconds=rng.randint(600, 21 * 86400))).isoformat()


def _reservation_id(rng: random.Random, taken: set[str]) -> str:
    while True:
        rid = "".join(rng.choices(ID_CHARS, k=6))
        if rid not in taken:
            taken.add(rid)
            return rid


def _make_reservations(rng: random.Random, n_reservations: int, legs: list[_Leg],
                       users: list[User]) -> dict[str, Reservation]:
    net = _Network(legs)
    # Trip frequency per user: one in twenty never books, the rest gamma-distributed so a few
    # frequent flyers hold many reservations.
    weights = [0.0 if rng.random() < 0.05 else rng.gammavariate(3.0, 1.0) for _ in users]
    if not any(weights):  # a handful of users could all draw "never"
        weights[0] = 1.0
    owners = rng.choices(users, weights=weights, k=n_reservations)
    taken = set(TOOL_RESERVATION_IDS)
    reservations = {}
    for user in owners:
        reservation = _reservation(rng, net, user, _reservation_id(rng, taken))
        reservations[reservation.reservation_id] = reservation
        user.reservations.append(reservation.reservation_id)
    return reservations


def _reservation(rng: random.Random, net: _Network, user: User, rid: str) -> Reservation:
    flight_type, outbound, back = _itinerary(rng, net)
    cabin = rng.choice(CABIN_ORDER)
    segments = [_segment(rng, leg, day, cabin) for leg, day in outbound + back]
    passengers = _passengers(rng, user)
    n = len(passengers)
    bags = sum(rng.choices(BAGS_PER_PASSENGER, weights=BAG_WEIGHTS, k=n))
    nonfree = max(0, bags - FREE_BAGS[user.membership][cabin] * n)
    insurance = rng.choice(("yes", "no"))
    total = (sum(s.price for s in segments) * n + (30 * n if insurance == "yes" else 0)
             + 50 * nonfree)
    return Reservation(
        reservation_id=rid,
        user_id=user.user_id,
        origin=segments[0].origin,
        destination=outbound[-1][0].destination,
        flight_type=flight_type,
        cabin=cabin,
        flights=segments,
        passengers=passengers,
        payment_history=_payments(rng, user, total),
        created_at=_created_at(rng, outbound[0][1]),
        total_baggages=bags,
        nonfree_baggages=nonfree,
        insurance=insurance,
    )
