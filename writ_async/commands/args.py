"""What several commands parse alike (positive numbers, probabilities, --domain and the
database flags, episode ids) and the helpers they share: the checked config, the base
database, running a coroutine on uvloop.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from domains import names as domain_names
from writ_async.config import Config, check_domains, default_config, load_config
from writ_async.environment.domain import Domain
from writ_async.environment.overlay import BaseDB


def positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        # `inf` (or 1e400) passes `> 0` but no size or count can be infinite
        if not value > 0 or (isinstance(value, float) and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be a positive finite number: {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def probability(text: str) -> float:
    """A probability flag: a finite number from 0 to 1, or argparse's usage error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:  # NaN fails both comparisons, so it is refused too
        raise argparse.ArgumentTypeError(f"must be a probability from 0 to 1: {text!r}")
    return value


probability.__name__ = "probability"  # argparse names the type in its messages


# How `show` and `replay` name an episode: records.episode_id, results.json's `id`.
EPISODE_HELP = ("an episode id, TASK:TRIAL, or TASK@BEHAVIOURS:TRIAL when the run gives "
                "its users behaviours (e.g. airline-w-000000:0, "
                "airline-w-000000@one_fact_when_asked+out_of_order:1); a run's ids are "
                "the simulations' `id` fields in RUN/results.json")


def add_domain_arg(parser: argparse.ArgumentParser, required: bool = True,
                    note: str = "") -> None:
    # Not argparse choices: a misspelt name gets the one-line `writ: error:` naming the
    # known domains (UnknownDomainError), or, where a config file also names a domain,
    # an error naming --domain (simulate_config).
    parser.add_argument("--domain", required=required, metavar="NAME",
                        help=" or ".join(domain_names()) + note)


def add_database_args(parser: argparse.ArgumentParser, with_db: bool = True,
                       domain_required: bool = True) -> None:
    if domain_required:
        add_domain_arg(parser)
    else:
        add_domain_arg(parser, required=False, note=" (default: [run] domain of --config)")
    if with_db:
        parser.add_argument("--db", metavar="PATH", help="a tau2-bench db.json (default: generate)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument(
        "--scale", type=positive(float), default=1.0,
        help="generated size, 1.0 = tau2-bench's (default 1.0); refused up front when the "
             "database would not fit in the available memory"
    )


def checked_config(path: str | None) -> Config:
    """The config file (or the defaults), checked against the registered domains."""
    if path:
        return load_config(path, domains=domain_names())
    return check_domains(default_config(), "<defaults>", domain_names())


def open_database(domain: Domain, db: str | None, seed: int, scale: float) -> BaseDB:
    """The domain's base database: loaded from ``db``, or generated once the scale is
    known to fit in memory."""
    if db is None:
        from writ_async.environment.capacity import check_scale

        check_scale(domain, scale, "<command line>", "--scale")
    return domain.base(db, seed, scale)


def run_async(coro: Any) -> Any:
    """Run on uvloop where it is installed, else on the default asyncio loop."""
    try:
        import uvloop
    except ImportError:  # uvloop is not built for this platform
        import asyncio

        return asyncio.run(coro)
    return uvloop.run(coro)
