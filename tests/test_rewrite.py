"""Rewriting task instructions through a model role, keeping every fact."""

from __future__ import annotations

import random

import msgspec
import pytest

from domains import get_domain
from writ_async.llm.client import EndpointClient, open_session
from writ_async.llm.limits import ConcurrencyLimiter, RateLimiter
from writ_async.llm.pool import CircuitBreaker, Endpoint, ModelPool
from writ_async.llm.protocol import ChatRequest, Message
from writ_async.mock.config import MockConfig
from writ_async.mock.server import open_mock_server
from writ_async.synthesis.driver import generate_tasks
from writ_async.synthesis.rewrite import facts, missing_facts, rewrite_tasks


class Paraphrase:
    """Keeps the text but says it differently around it (a faithful rewrite)."""

    def respond(self, request: ChatRequest, rng: random.Random) -> Message:
        return Message(role="assistant", content=f"Hello there. {request.messages[-1].content}")


class Lossy:
    """Drops every digit: a rewrite that loses the facts."""

    def respond(self, request: ChatRequest, rng: random.Random) -> Message:
        text = "".join(c for c in request.messages[-1].content if not c.isdigit())
        return Message(role="assistant", content=text)


def test_facts_are_ids_numbers_dates_emails_and_names() -> None:
    text = ("You are Mia Li (mia.li3818@example.com). Cancel reservation 4WQ150 "
            "flying on 2024-05-22; the refund is 130.5.")
    assert facts(text) == ["Mia Li", "mia.li3818@example.com", "4WQ150", "2024-05-22", "130.5"]
    assert missing_facts(text, "Mia Li wants 4WQ150 gone") == [
        "mia.li3818@example.com", "2024-05-22", "130.5"]


async def _rewrite(policy: object):
    base = get_domain("retail").generate_db(seed=0, scale=0.1)
    tasks = generate_tasks(get_domain("retail"), base, 8, seed=1)
    async with open_mock_server(MockConfig(), policy) as server, open_session(16) as session:
        endpoint = Endpoint(name="m", client=EndpointClient("m", server.url, session),
                            rate=RateLimiter(None, None), concurrency=ConcurrencyLimiter(8),
                            breaker=CircuitBreaker())
        pool = ModelPool({"rewriter": [endpoint]})
        return tasks, *await rewrite_tasks(tasks, pool, "rewriter", seed=1)


@pytest.mark.asyncio
async def test_faithful_rewrites_are_kept_and_the_rest_of_the_task_is_unchanged() -> None:
    before, after, report = await _rewrite(Paraphrase())
    assert report.rewritten == len(before) and not report.kept_original
    for old, new in zip(before, after, strict=True):
        assert new.user_scenario.instructions.reason_for_call.startswith("Hello there. ")
        assert msgspec.structs.replace(new, user_scenario=old.user_scenario) == old


@pytest.mark.asyncio
async def test_rewrites_that_lose_a_fact_keep_the_template_wording() -> None:
    before, after, report = await _rewrite(Lossy())
    assert after == before
    assert report.rewritten == 0
    assert all("rewrite lost" in why for why in report.kept_original.values())
