"""The executable domains shipped with writ_async (tau2-bench compatible), and the registry.

A domain is a package whose ``DOMAIN`` is its ``writ_async.environment.domain.Domain`` (tools,
generator, policy, task synthesizers, phrases, ...). Adding one is a new folder and one
line in ``REGISTRY``. Only the commands look a domain up by name: the engine is given the
``Domain`` itself and never imports this package.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from writ_async.environment.domain import Domain
from writ_async.errors import UnknownDomainError


def _package(module: str) -> Callable[[], Domain]:
    # Imported on first use, so a command loads only the domain it runs on.
    return lambda: import_module(module).DOMAIN


REGISTRY: dict[str, Callable[[], Domain]] = {
    "airline": _package("domains.airline"),
    "retail": _package("domains.retail"),
}


def names() -> tuple[str, ...]:
    """The registered domains' names, in registry order."""
    return tuple(REGISTRY)


def get_domain(name: str) -> Domain:
    """The registered domain called ``name``; any other name is an UnknownDomainError."""
    load = REGISTRY.get(name)
    if load is None:
        raise UnknownDomainError(name, list(REGISTRY))
    return load()
