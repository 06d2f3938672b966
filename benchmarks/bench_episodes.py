"""Resident memory of many live airline episodes, each holding a few writes.

Each episode is its own overlay over one shared base. Every episode books a
reservation (copying a user and a flight, inserting a reservation), adds bags and
changes passengers; all stay alive while memory is measured.

    python benchmarks/bench_episodes.py [--episodes 10000] [--source tau2|gen]
"""

from __future__ import annotations

import argparse
import gc
import random
import time

from _common import load_base, rss_mib, table

from domains import get_domain
from domains.airline.data_model import Available, CreditCard

GOAL_MIB = 200


def writes_for(base, rng: random.Random) -> list[tuple[str, dict]]:
    """A booking on a random bookable flight, then two changes to that reservation."""
    users = base.keys("users")
    flights = base.keys("flights")
    while True:
        user_id = rng.choice(users)
        user = base.tables["users"][user_id]
        cards = [m.id for m in user.payment_methods.values() if isinstance(m, CreditCard)]
        flight = base.tables["flights"][rng.choice(flights)]
        dates = [d for d, s in flight.dates.items()
                 if isinstance(s, Available) and s.available_seats["economy"] >= 1]
        if cards and dates:
            break
    date = rng.choice(dates)
    price = flight.dates[date].prices["economy"]
    passenger = {"first_name": "Ana", "last_name": "Park", "dob": "1990-01-01"}
    return [
        ("book_reservation", {
            "user_id": user_id, "origin": flight.origin, "destination": flight.destination,
            "flight_type": "one_way", "cabin": "economy",
            "flights": [{"flight_number": flight.flight_number, "date": date}],
            "passengers": [passenger], "payment_methods": [{"payment_id": cards[0],
                                                            "amount": price}],
            "total_baggages": 0, "nonfree_baggages": 0, "insurance": "no"}),
        ("update_reservation_baggages", {"reservation_id": "HATHAT", "total_baggages": 2,
                                         "nonfree_baggages": 1, "payment_id": cards[0]}),
        ("update_reservation_passengers", {"reservation_id": "HATHAT", "passengers": [
            {"first_name": "Ana", "last_name": "Parks", "dob": "1990-01-01"}]}),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10_000)
    parser.add_argument("--source", choices=["tau2", "gen"], default="tau2")
    args = parser.parse_args()
    dom = get_domain("airline")
    rng = random.Random(0)
    start_rss = rss_mib()
    base = load_base("airline", args.source)
    base.db_hash()
    programs = [writes_for(base, rng) for _ in range(args.episodes)]
    gc.collect()
    base_rss = rss_mib()
    start = time.perf_counter()
    live = []
    failed = 0
    for program in programs:
        env = dom.environment(base)
        for name, call_args in program:
            failed += env.call(name, call_args).error
        live.append(env)
    elapsed = time.perf_counter() - start
    gc.collect()
    added = rss_mib() - base_rss
    print(table(
        ["episodes", "writes each", "failed writes", "base DB + index MiB", "added MiB",
         "KiB / episode", "build s"],
        [[len(live), 3, failed, f"{base_rss - start_rss:.1f}", f"{added:.1f}",
          f"{added * 1024 / len(live):.1f}", f"{elapsed:.2f}"]],
    ))
    print(f"added memory is {added / GOAL_MIB:.2f}x the {GOAL_MIB} MiB budget "
          f"({'within' if added < GOAL_MIB else 'OVER'} budget)")
    print(f"distinct final DB hashes (sample of 50): "
          f"{len({e.db_hash() for e in live[:50]})}")


if __name__ == "__main__":
    main()
