"""The thin async shell around one episode: carry out what the state machine asks.

``run_episode`` asks the agent or the user (through their participants), runs tool calls
on the episode's own environment, appends every event to the journal, and when the
episode finishes grades it and commits its record. All decisions live in
``writ_async.conversation.episode``; this module only does the I/O and the bookkeeping.

Every episode starts from a ``Restored`` state: ``restore`` feeds the recorded messages of
``spec.prefix`` to a fresh ``Episode`` and runs their tool calls live on a fresh overlay
(checking each result against the recorded one), journaling them as a live run would.
An empty prefix is a new episode; the messages of a crashed attempt are a resume; a
parent episode's first k messages are a fork (``writ replay --from``). The three are the
same code path: restore, then carry on live.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from writ_async.conversation.episode import (
    Action,
    AskAgent,
    AskUser,
    Episode,
    Finished,
    Limits,
    RunTools,
    Termination,
    ToolOutcome,
)
from writ_async.conversation.messages import (
    AssistantMessage,
    Message,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from writ_async.conversation.records import Check, EpisodeRecord, Lineage, Timing, episode_id
from writ_async.conversation.task import Task
from writ_async.engine.drive import Hooks, drive, on, run_tools
from writ_async.engine.journal import (
    EpisodeFinished,
    EpisodeStarted,
    Event,
    MessageAdded,
    ModelCalled,
    Snapshot,
    ToolExecuted,
)
from writ_async.environment.domain import Domain, Environment
from writ_async.environment.overlay import BaseDB
from writ_async.environment.tools import Toolbox, ToolKind
from writ_async.errors import ReplayDivergence
from writ_async.grading.gold import GoldCache
from writ_async.grading.grade import grade
from writ_async.grading.judge import nl_assertions_of
from writ_async.llm.client import CallResult
from writ_async.logs import episode_context
from writ_async.participants.base import Participant, Turn
from writ_async.participants.behaviours.scenarios import scenario_id

# What grades NL assertions: ``(checks, "")`` or ``(None, why not graded)`` (judge.Judge).
JudgeFn = Callable[[Sequence[Message], Sequence[str]], Awaitable[tuple[list[Check] | None, str]]]


class Sink(Protocol):
    """Where events go (the journal writer)."""

    def append(self, event: Event) -> None: ...

    def commit(self) -> None: ...


class _Discard:
    """A sink that keeps nothing (a dry-run restore)."""

    def append(self, event: Event) -> None:
        pass

    def commit(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class EpisodeSpec:
    """Everything that defines one episode, independent of when or where it runs.

    ``prefix``: recorded messages to restore before going live (a resume or a fork);
    ``lineage``: the parent episode of a replayed one, copied into its record.
    """

    task: Task
    trial: int
    seed: int
    attempt: int = 0
    prefix: tuple[Message, ...] = ()
    lineage: Lineage | None = None
    behaviours: tuple[str, ...] = ()  # how the user behaves (participants/behaviours/)

    @property
    def episode_id(self) -> str:
        """``task[@behaviours]:trial``: a task told by other behaviours is another episode."""
        return episode_id(scenario_id(self.task.id, self.behaviours), self.trial)


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
    judge: JudgeFn | None = None  # grades NL assertions; None: they are reported not graded
    # Final states already hashed, delta hash -> tau2 hash (equal delta hashes mean equal
    # tau2 hashes): the full hash of a state is computed once. None: always compute it.
    known_hashes: dict[str, str] | None = None


@dataclass(slots=True)
class Counters:
    """Live totals across episodes, for progress and statistics."""

    model_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_calls: int = 0


@dataclass(slots=True)
class Restored:
    """An episode at some step: the conversation so far (``episode``), its overlay
    (``env``) and what it asks next (``action``)."""

    episode: Episode
    env: Environment
    action: Action


class _Journal:
    """The sink, bound to one episode attempt."""

    __slots__ = ("attempt", "episode_id", "sink")

    def __init__(self, sink: Sink, ep_id: str, attempt: int) -> None:
        self.sink, self.episode_id, self.attempt = sink, ep_id, attempt

    def message(self, message: Message) -> None:
        self.sink.append(MessageAdded(episode_id=self.episode_id, attempt=self.attempt,
                                      message=message))


def restore(setup: EpisodeSetup, prefix: Sequence[Message], sink: Sink | None = None, *,
            ep_id: str = "", attempt: int = 0, counters: Counters | None = None) -> Restored:
    """The state after the recorded messages ``prefix``, rebuilt on a fresh overlay.

    Agent and user messages are fed to a fresh ``Episode`` as recorded; tool calls run
    live and each result must equal the recorded one, else ``ReplayDivergence`` names
    the first difference. When the prefix ends inside a block of tool results, the
    restored state stops after the tool-call message, with its calls pending (they run
    again live, and deterministically). Events go to ``sink`` as in a live run.
    """
    journal = _Journal(sink or _Discard(), ep_id, attempt)
    counters = counters or Counters()
    env = setup.domain.environment(setup.base, setup.toolbox)
    episode = Episode(setup.limits, setup.greeting)
    action = episode.start()
    if episode.messages:
        greeting = episode.messages[-1]
        if prefix and prefix[0] != greeting:
            _differ(0, "message", "message", prefix[0], greeting)
        journal.message(greeting)
    while len(episode.messages) < len(prefix):
        step = len(episode.messages)
        if isinstance(action, Finished):
            raise ReplayDivergence(step, "message", "role", _role(prefix[step]),
                                   f"(none: the episode ended with {action.reason})")
        if isinstance(action, RunTools):
            end = step + len(action.calls)
            if end > len(prefix):
                break  # the block's results are not all recorded: they run live
            action = run_tools(episode, action, on(env),
                               _Recording(setup, env, journal, counters, episode,
                                          expected=prefix[step:end]))
            continue
        message = prefix[step]
        if isinstance(action, AskAgent) and isinstance(message, AssistantMessage):
            action = episode.agent_replied(message)
        elif isinstance(action, AskUser) and isinstance(message, UserMessage):
            action = episode.user_replied(message)
        else:
            wanted = "assistant" if isinstance(action, AskAgent) else "user"
            raise ReplayDivergence(step, "message", "role", _role(message), wanted,
                                   f"the episode asks the {wanted} here")
        journal.message(episode.messages[-1])  # as the episode holds it (turn_idx set)
    return Restored(episode, env, action)


class _Recording(Hooks):
    """The runner's steps in the journal: each model call, message and tool execution
    (with the delta hash after a write); with ``expected`` (a restore), each tool result
    must equal the recorded one."""

    __slots__ = ("counters", "env", "episode", "expected", "journal", "setup", "state")

    def __init__(self, setup: EpisodeSetup, env: Environment, journal: _Journal,
                 counters: Counters, episode: Episode, *,
                 expected: Sequence[Message] | None = None,
                 state: _Progress | None = None) -> None:
        self.setup, self.env, self.journal, self.counters = setup, env, journal, counters
        self.episode, self.expected, self.state = episode, expected, state or _Progress()

    def replied(self, role: str, turn: Turn, message: AssistantMessage | UserMessage) -> None:
        _account(self.journal, turn, role, self.counters, self.state)
        self.journal.message(message)

    def tool_ran(self, index: int, call: ToolCall, result: ToolOutcome) -> None:
        self.counters.tool_calls += 1
        written = (call.raw_arguments is None
                   and self.setup.toolbox.kind(call.name) is ToolKind.WRITE)
        journal = self.journal
        journal.sink.append(ToolExecuted(
            episode_id=journal.episode_id, attempt=journal.attempt, call_id=call.id,
            name=call.name, output=result.output, error=result.error,
            # the cheap state hash after every write (equal iff the tau2 hash is equal);
            # the tau2 hash itself is taken at the end
            db_hash=self.env.overlay.delta_hash() if written else None,
        ))
        if self.expected is not None:
            message = self.episode.tool_message(index, result)
            if self.expected[index] != message:
                _differ(self.episode.next_turn + index, "tool", "message",
                        self.expected[index], message)

    def tools_added(self, messages: Sequence[ToolMessage]) -> None:
        for message in messages:
            self.journal.message(message)


def _role(message: Message) -> str:
    return type(message).__struct_config__.tag  # type: ignore[return-value]


def _differ(step: int, event: str, field: str, recorded: object, replayed: object) -> None:
    """Raise the first difference between two recorded values (structs, lists, ...)."""
    path, a, b = first_difference(recorded, replayed, field)
    raise ReplayDivergence(step, event, path, a, b)


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


_MISSING = _Absent()


def first_difference(recorded: object, replayed: object,
                     path: str = "") -> tuple[str, object, object]:
    """The first place where two values differ: ``(path, recorded part, replayed part)``,
    walking Structs as their fields, dicts by key and lists by index (``path.key[3]``).
    Values that are equal give ``(path, recorded, replayed)`` unchanged."""
    return _walk(msgspec.to_builtins(recorded), msgspec.to_builtins(replayed), path)


def _walk(a: object, b: object, path: str) -> tuple[str, object, object]:
    if a == b:
        return path, a, b
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            if a.get(key, _MISSING) != b.get(key, _MISSING):
                return _walk(a.get(key, _MISSING), b.get(key, _MISSING),
                             f"{path}.{key}" if path else str(key))
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            if x != y:
                return _walk(x, y, f"{path}[{i}]")
        return f"{path}.length", len(a), len(b)
    return path, a, b


async def run_episode(
    setup: EpisodeSetup,
    spec: EpisodeSpec,
    agent: Participant,
    user: Participant,
    sink: Sink,
    counters: Counters | None = None,
) -> EpisodeRecord:
    """Run one episode to its end (from ``spec.prefix`` restored, if any), journal it,
    grade it, and commit its record. Whatever is logged meanwhile (model retries, a
    judge's failures) carries the episode's ids (``logs.episode_context``)."""
    with episode_context(spec.episode_id, spec.task.id, spec.trial):
        return await _run_episode(setup, spec, agent, user, sink, counters)


async def _run_episode(setup: EpisodeSetup, spec: EpisodeSpec, agent: Participant,
                       user: Participant, sink: Sink, counters: Counters | None,
                       ) -> EpisodeRecord:
    counters = counters or Counters()
    ep_id = spec.episode_id
    started = setup.wall_clock()
    journal = _Journal(sink, ep_id, spec.attempt)
    state = _Progress()

    sink.append(EpisodeStarted(episode_id=ep_id, attempt=spec.attempt, task_id=spec.task.id,
                               trial=spec.trial, seed=spec.seed))
    restored = restore(setup, spec.prefix, sink, ep_id=ep_id, attempt=spec.attempt,
                       counters=counters)
    episode, env, action = restored.episode, restored.env, restored.action
    hooks = _Recording(setup, env, journal, counters, episode, state=state)
    try:
        async with asyncio.timeout(setup.timeout_s):
            error = await drive(episode, action, agent, user, on(env), hooks)
    except TimeoutError:
        error = f"episode timed out after {setup.timeout_s:g} s"
        episode.failed(Termination.TIMEOUT)

    assert episode.termination is not None
    final_delta = env.overlay.delta_hash()
    final_hash = _final_hash(setup, env, final_delta)
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
        final_delta_hash=final_delta, not_judged=not_judged, lineage=spec.lineage,
        behaviours=list(spec.behaviours),
    )
    sink.append(EpisodeFinished(episode_id=ep_id, attempt=spec.attempt, record=record))
    sink.commit()
    return record


def _final_hash(setup: EpisodeSetup, env: Environment, delta_hash: str) -> str:
    known = setup.known_hashes
    if known is None:
        return env.db_hash()
    found = known.get(delta_hash)
    if found is None:
        found = known[delta_hash] = env.db_hash()
    return found


@dataclass(slots=True)
class _Progress:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_seconds: float = 0.0


def _account(journal: _Journal, turn: Turn, role: str, counters: Counters,
             state: _Progress) -> None:
    # calls thrown away for a tool call passed through as text came first, and cost too
    for call in (*turn.discarded, turn.call):
        if call is not None:
            _account_call(journal, call, role, counters, state)


def _account_call(journal: _Journal, call: CallResult, role: str, counters: Counters,
                  state: _Progress) -> None:
    state.calls += 1
    state.prompt_tokens += call.usage.prompt_tokens
    state.completion_tokens += call.usage.completion_tokens
    state.model_seconds += call.latency
    counters.model_calls += 1
    counters.prompt_tokens += call.usage.prompt_tokens
    counters.completion_tokens += call.usage.completion_tokens
    journal.sink.append(ModelCalled(
        episode_id=journal.episode_id, attempt=journal.attempt, role=role,
        endpoint=call.endpoint,
        prompt_tokens=call.usage.prompt_tokens, completion_tokens=call.usage.completion_tokens,
        latency=call.latency, ttft=call.ttft, attempts=call.attempts,
        malformed=call.malformed,
    ))
