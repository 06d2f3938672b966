"""Every error type writ_async defines lives in errors.py, under one root; the pool
classifies errors by type."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import random
import re
from pathlib import Path

import pytest

import writ_async
from writ_async import errors
from writ_async.llm.pool import CircuitBreaker, Endpoint, ModelPool, _kind
from writ_async.llm.protocol import ChatRequest, Message
from writ_async.mock.config import FaultRates, MockConfig
from writ_async.mock.server import open_mock_server

PACKAGE = Path(writ_async.__file__).parent

# Private control flow of one module, never raised past it; each keeps the builtin base
# the code around it relies on, which is why it is not an errors.py type:
PRIVATE = {
    # raised inside a fake participant to capture its request, caught in the same module
    "writ_async.loadtest.recorded._Captured",
    # unwinds one load-test conversation when the run stops; caught by its task wrapper
    "writ_async.loadtest.run._Stopped",
}


def _modules() -> list[str]:
    # Every module imports without its optional extras (ray is imported where it is used).
    return [m.name for m in pkgutil.walk_packages([str(PACKAGE)], "writ_async.")]


def _defined_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for name in _modules():
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (inspect.isclass(value) and issubclass(value, BaseException)
                    and value.__module__ == name):
                found[f"{name}.{value.__qualname__}"] = value
    return found


def test_every_exception_class_is_defined_in_errors_py() -> None:
    found = _defined_exceptions()
    elsewhere = sorted(n for n, cls in found.items() if cls.__module__ != "writ_async.errors")
    assert elsewhere == sorted(PRIVATE)
    assert len([n for n in found if n.startswith("writ_async.errors.")]) >= 25


def test_one_root_and_every_public_error_under_it() -> None:
    public = [cls for name, cls in _defined_exceptions().items() if name not in PRIVATE]
    assert public
    assert [c.__name__ for c in public if not issubclass(c, errors.WritException)] == []
    roots = {c for c in public if c.__bases__ == (Exception,)}
    assert roots == {errors.WritException}


def test_moved_errors_keep_their_names_and_their_kinds() -> None:
    from writ_async.conversation.episode import ProtocolError
    from writ_async.loadtest.client import NotSent
    from writ_async.mock.scripted_policy import ScriptedRequestError
    from writ_async.participants.llm import ParticipantError
    from writ_async.synthesis.drafts import GoldActionError
    from writ_async.synthesis.driver import SynthesisError

    assert ProtocolError is errors.ProtocolError and issubclass(ProtocolError, RuntimeError)
    assert GoldActionError is errors.GoldActionError
    assert issubclass(GoldActionError, AssertionError)
    assert ScriptedRequestError is errors.ScriptedRequestError
    assert issubclass(ScriptedRequestError, ValueError)
    assert NotSent is errors.NotSent and ParticipantError is errors.ParticipantError
    # operator-facing: the CLI prints it as a message
    assert SynthesisError is errors.SynthesisError and issubclass(SynthesisError, errors.WritError)
    # bugs and engine-internal signals are not operator-facing: the CLI lets them crash
    for internal in (ProtocolError, GoldActionError, ScriptedRequestError, NotSent,
                     ParticipantError, errors.ToolError):
        assert not issubclass(internal, errors.WritError), internal


class _CutByFilter(errors.MalformedResponse):
    """A kind of malformed answer a caller might add: still malformed for the pool."""


def test_the_pool_classifies_a_failure_by_its_type() -> None:
    assert _kind(_CutByFilter("content_filter", "cut")) == "malformed"
    assert _kind(errors.MalformedResponse("length", "cut")) == "malformed"
    assert _kind(errors.ContextLengthExceeded("too long")) == "permanent"
    assert _kind(errors.RateLimited("slow down")) == "rate_limited"
    assert _kind(errors.CallTimeout("idle", 1.0)) == "transient"


def test_no_model_module_compares_class_names() -> None:
    offenders = [
        f"{path.name}:{number}"
        for path in sorted(PACKAGE.joinpath("models").glob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"__name__\s*[!=]=|\.__class__\.__name__", line)
    ]
    assert offenders == []


@pytest.mark.asyncio
async def test_a_malformed_answer_is_counted_as_malformed_by_the_pool() -> None:
    from writ_async.llm.client import EndpointClient, open_session
    from writ_async.llm.limits import ConcurrencyLimiter, RateLimiter
    from writ_async.llm.retry import RetryPolicy

    config = MockConfig(seed=3, faults=FaultRates(malformed_json=1.0))
    async with open_mock_server(config) as server, open_session(8) as session:
        ep = Endpoint(name="mock", client=EndpointClient("mock", server.url, session),
                      rate=RateLimiter(None, None), concurrency=ConcurrencyLimiter(4, maximum=8),
                      breaker=CircuitBreaker(threshold=3, cooldown=60.0))
        pool = ModelPool({"agent": [ep]}, retry=RetryPolicy(max_attempts=1),
                         rng=random.Random(0))
        with pytest.raises(errors.MalformedResponse):
            await pool.complete("agent", ChatRequest(
                model="m", messages=[Message(role="user", content="hi")]))
    stats = pool.statistics()[0]
    assert (stats.malformed, stats.transient, stats.failed) == (1, 0, 1)
