"""Each episode's agent and user as a run plan names them, and the model pool they need.

Shared by ``writ simulate``, ``writ replay``'s continuations, the Ray shards and
``writ loadtest --from-run`` (which passes a pool that captures requests), so that every
one builds its participants exactly as a plain run does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from writ_async.engine.plan import RunPlan
from writ_async.engine.runner import EpisodeSetup, EpisodeSpec
from writ_async.engine.scheduler import MakeParticipants
from writ_async.environment.domain import Domain
from writ_async.grading.judge import Judge
from writ_async.llm.pool import ModelPool
from writ_async.llm.setup import RateLimiterFactory, open_pool
from writ_async.participants.base import InProcess, Participant
from writ_async.participants.behaviours.content import with_behaviours
from writ_async.participants.llm import LLMAgent, LLMUser
from writ_async.participants.prompts import user_system_prompt
from writ_async.participants.scripted.agent import ScriptedAgent
from writ_async.participants.scripted.mistakes import MistakeConfig
from writ_async.participants.scripted.user import ScriptedUser

SCRIPTED_HTTP = "scripted-http"


def needs_pool(plan: RunPlan) -> bool:
    """Whether a participant (or the judge) of the plan talks to a model."""
    sim = plan.config.simulate
    return not (sim.agent == "scripted" and sim.user == "scripted") or bool(sim.judge)


@asynccontextmanager
async def _maybe_pool(plan: RunPlan, rate_limiter: RateLimiterFactory | None = None,
                      ) -> AsyncIterator[ModelPool | None]:
    if not needs_pool(plan):
        yield None
        return
    config = plan.config
    policy = None
    if SCRIPTED_HTTP in (config.simulate.agent, config.simulate.user):
        from writ_async.mock.scripted_policy import ScriptedPolicy

        policy = ScriptedPolicy({t.id: t for t in plan.tasks}, {plan.domain.name: plan.domain},
                                plan.mistakes)
    async with open_pool(config.models, mock_config=config.mock, seed=plan.seed,
                         mock_policy=policy, rate_limiter=rate_limiter) as pool:
        yield pool


@asynccontextmanager
async def open_participants(plan: RunPlan, setup: EpisodeSetup, *,
                            rate_limiter: RateLimiterFactory | None = None,
                            ) -> AsyncIterator[MakeParticipants]:
    """The participants of each episode (and the judge on ``setup``), with the model
    pool they need open for as long as the context lasts (``rate_limiter``: see
    ``open_pool``)."""
    sim = plan.config.simulate
    async with _maybe_pool(plan, rate_limiter) as pool:
        if sim.judge is not None:
            assert pool is not None
            setup.judge = Judge(pool, sim.judge)
        try:
            yield participants_factory(plan, pool)
        finally:
            setup.judge = None


def participants_factory(plan: RunPlan, pool: ModelPool | None) -> MakeParticipants:
    """Each episode's agent and user as the run's config names them, the LLM ones over
    ``pool`` (``writ loadtest --from-run`` passes a pool that captures requests)."""
    sim = plan.config.simulate
    tools = plan.toolbox.schemas()

    def participants(spec: EpisodeSpec) -> tuple[Participant, Participant]:
        return (_agent(spec, sim.agent, pool, plan.agent_system, tools, plan.domain,
                       plan.mistakes, sim.temperature, sim.max_tokens),
                _user(spec, sim.user, pool, plan.guidelines, plan.domain, sim.temperature,
                      sim.max_tokens))

    return participants


def _tag(spec: EpisodeSpec, role: str) -> str:
    from writ_async.mock.scripted_policy import request_tag

    return request_tag(spec.episode_id, role, spec.seed)


def _agent(spec: EpisodeSpec, who: str, pool: ModelPool | None, system: str,
           tools: list[dict[str, Any]], domain: Domain, mistakes: MistakeConfig,
           temperature: float, max_tokens: int | None) -> Participant:
    if who == "scripted":
        return InProcess(ScriptedAgent(spec.task, domain, spec.seed, mistakes).reply)
    assert pool is not None
    role = "agent" if who == SCRIPTED_HTTP else who
    return LLMAgent(pool, role, system, tools, seed=spec.seed, tag=_tag(spec, "agent"),
                    temperature=temperature, max_tokens=max_tokens)


def _user(spec: EpisodeSpec, who: str, pool: ModelPool | None, guidelines: str,
          domain: Domain, temperature: float, max_tokens: int | None) -> Participant:
    if who == "scripted":
        return InProcess(ScriptedUser(spec.task, spec.seed, behaviours=spec.behaviours,
                                      domain=domain).reply)
    assert pool is not None
    role = "user" if who == SCRIPTED_HTTP else who
    guidelines = with_behaviours(guidelines, spec.behaviours, spec.task, spec.seed,
                                 domain=domain)
    return LLMUser(pool, role, user_system_prompt(spec.task, guidelines), seed=spec.seed,
                   tag=_tag(spec, "user"), temperature=temperature, max_tokens=max_tokens)
