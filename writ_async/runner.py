"""The thin async shell around one episode: carry out what the state machine asks.

``run_episode`` asks the agent or the user (through their participants), runs tool calls
on the episode's own environment, appends every event to the journal, and when the
episode finishes grades it and commits its record. All decisions live in
``writ_async.episode``; this module only does the I/O and the bookkeeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import msgspec

from writ_async.domain import Domain
from writ_async.episode import (
    AskAgent,
    AskUser,
    Episode,
    Finished,
    Limits,
    RunTools,
    Termination,
)
from writ_async.grading import GoldCache, grade
from writ_async.journal import (
    EpisodeFinished,
    EpisodeStarted,
    Event,
    MessageAdded,
    ModelCalled,
    Snapshot,
    ToolExecuted,
)
from writ_async.judge import Judge, nl_assertions_of
from writ_async.messages import ToolMessage
from writ_async.overlay import BaseDB
from writ_async.participants import Participant, ParticipantError, Turn
from writ_async.records import EpisodeRecord, Timing, episode_id
from writ_async.tasks import Task
from writ_async.tools import Toolbox, ToolKind


class Sink(Protocol):
    """Where events go (the journal writer)."""

    def append(self, event: Event) -> None: ...

    def commit(self) -> None: ...


@dataclass(frozen=True, slots=True)
class EpisodeSpec:
    """Everything that defines one episode, independent of when or where it runs."""

    task: Task
    trial: int
    seed: int
    attempt: int = 0


@dataclass(slots=True)
class EpisodeSetup:
    """What every episode of a run shares: the domain, its base, limits, grading."""

    domain: Domain
    base: BaseDB
    toolbox: Toolbox
    limits: Limits
    greeting: str | None
    gold: GoldCache
    agent_name: str
    user_name: str
    timeout_s: float | None = None
    wall_clock: Callable[[], float] = time.time
    judge: Judge | None = None  # grades NL assertions; None: they are reported not graded


@dataclass(slots=True)
class Counters:
    """Live totals across episodes, for progress and statistics."""

    model_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_calls: int = 0


async def run_episode(
    setup: EpisodeSetup,
    spec: EpisodeSpec,
    agent: Participant,
    user: Participant,
    sink: Sink,
    counters: Counters | None = None,
) -> EpisodeRecord:
    """Run one episode to its end, journal it, grade it, and commit its record."""
    counters = counters or Counters()
    ep_id = episode_id(spec.task.id, spec.trial)
    started = setup.wall_clock()
    env = setup.domain.environment(setup.base, setup.toolbox)
    episode = Episode(setup.limits, setup.greeting)
    state = _Progress()

    def add(event_message: object) -> None:
        sink.append(MessageAdded(episode_id=ep_id, attempt=spec.attempt,
                                 message=event_message))  # type: ignore[arg-type]

    sink.append(EpisodeStarted(episode_id=ep_id, attempt=spec.attempt, task_id=spec.task.id,
                               trial=spec.trial, seed=spec.seed))
    error: str | None = None
    try:
        async with asyncio.timeout(setup.timeout_s):
            action = episode.start()
            if episode.messages:
                add(episode.messages[-1])
            while not isinstance(action, Finished):
                if isinstance(action, RunTools):
                    results = []
                    for call in action.calls:
                        result = env.call(call.name, call.arguments)
                        counters.tool_calls += 1
                        written = setup.toolbox.kind(call.name) is ToolKind.WRITE
                        sink.append(ToolExecuted(
                            episode_id=ep_id, attempt=spec.attempt, call_id=call.id,
                            name=call.name, output=result.output, error=result.error,
                            # the cheap state hash after every write (equal iff the tau2
                            # hash is equal); the tau2 hash itself is taken at the end
                            db_hash=env.overlay.delta_hash() if written else None,
                        ))
                        results.append(ToolMessage(id=call.id, content=result.output,
                                                   error=result.error,
                                                   turn_idx=episode.next_turn + len(results)))
                    for message in results:
                        add(message)
                    action = episode.tools_returned(results)
                    continue
                is_agent = isinstance(action, AskAgent)
                assert is_agent or isinstance(action, AskUser)
                try:
                    turn = await (agent if is_agent else user).reply(episode.messages)
                except ParticipantError as failure:
                    error = str(failure)
                    action = episode.failed(failure.reason)
                    break
                _account(sink, ep_id, spec, turn, "agent" if is_agent else "user",
                         counters, state)
                add(turn.message)
                action = (episode.agent_replied(turn.message) if is_agent  # type: ignore[arg-type]
                          else episode.user_replied(turn.message))  # type: ignore[arg-type]
    except TimeoutError:
        error = f"episode timed out after {setup.timeout_s:g} s"
        episode.failed(Termination.TIMEOUT)

    assert episode.termination is not None
    final_hash = env.db_hash()
    sink.append(Snapshot(episode_id=ep_id, attempt=spec.attempt,
                         delta=env.overlay.encode_delta()))
    nl_results, not_judged = None, ""
    assertions = nl_assertions_of(spec.task)
    if setup.judge is not None and assertions:
        nl_results, not_judged = await setup.judge(episode.messages, assertions)
    reward = grade(
        spec.task, episode.messages, episode.termination.value, final_hash,
        setup.gold.get(setup.domain, setup.base, spec.task), setup.toolbox, nl_results,
    )
    if not_judged:
        reward = msgspec.structs.replace(reward, note=f"{reward.note} ({not_judged})".strip())
    ended = setup.wall_clock()
    task = spec.task
    record = EpisodeRecord(
        episode_id=ep_id, task_id=task.id, trial=spec.trial, seed=spec.seed,
        domain=setup.domain.name, termination=episode.termination.value,
        messages=list(episode.messages), final_db_hash=final_hash, reward_info=reward,
        agent=setup.agent_name, user=setup.user_name, model_calls=state.calls,
        prompt_tokens=state.prompt_tokens, completion_tokens=state.completion_tokens,
        trajectory_type=task.trajectory_type,
        axes=None if task.axes is None else {"writes": task.axes.writes,
                                             "evidence": task.axes.evidence},
        error=error,
        timing=Timing(start_time=started, end_time=ended, duration=ended - started,
                      model_seconds=state.model_seconds),
    )
    sink.append(EpisodeFinished(episode_id=ep_id, attempt=spec.attempt, record=record))
    sink.commit()
    return record


@dataclass(slots=True)
class _Progress:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_seconds: float = 0.0


def _account(sink: Sink, ep_id: str, spec: EpisodeSpec, turn: Turn, role: str,
             counters: Counters, state: _Progress) -> None:
    call = turn.call
    if call is None:
        return
    state.calls += 1
    state.prompt_tokens += call.usage.prompt_tokens
    state.completion_tokens += call.usage.completion_tokens
    state.model_seconds += call.latency
    counters.model_calls += 1
    counters.prompt_tokens += call.usage.prompt_tokens
    counters.completion_tokens += call.usage.completion_tokens
    sink.append(ModelCalled(
        episode_id=ep_id, attempt=spec.attempt, role=role, endpoint=call.endpoint,
        prompt_tokens=call.usage.prompt_tokens, completion_tokens=call.usage.completion_tokens,
        latency=call.latency, ttft=call.ttft, attempts=call.attempts,
    ))
