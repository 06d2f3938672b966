"""The executable domains shipped with writ_async (tau2-bench compatible)."""

from __future__ import annotations

from importlib import import_module

from writ_async.domain import Domain
from writ_async.errors import UnknownDomainError

NAMES = ("airline", "retail")


def get_domain(name: str) -> Domain:
    """The domain called ``name``; each domain module exposes ``DOMAIN``."""
    if name not in NAMES:
        raise UnknownDomainError(name, list(NAMES))
    return import_module(f"domains.{name}").DOMAIN
