"""Verify a finished episode from its journal.

The episode's last attempt is re-executed on a fresh overlay of the run's base (rebuilt
from the manifest's config exactly as the run built it): the journal's agent and user
messages are fed back in place of the models (``_Recorded``), the tools run live, and
every event the runner emits goes to a sink that compares it with the recorded event at
the same position (``_Comparing``): tool outputs and errors, the delta hash after every
write, the final delta, the termination, the final DB hash and the re-graded reward. It
is the runner's own code path (``runner.run_episode``), so what is verified is what runs.
The first difference raises ``ReplayDivergence`` (step = message index, event kind, field
path, recorded and replayed values).

Final hashes are verified through the delta hash (equal iff the tau2 hashes are equal,
``overlay.Overlay.delta_hash``): when the replayed final delta hash equals the recorded
one, the recorded tau2 hash stands for the replayed state and the full hash (one SHA-256
pass over the whole database) is not computed. ``full_hash=True`` computes it anyway; a
record without a delta hash (older runs) always has it computed.
"""

from __future__ import annotations

import mmap
import struct
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from writ_async.conversation.episode import FAILURES, Termination
from writ_async.conversation.messages import AssistantMessage, Message, UserMessage
from writ_async.conversation.records import Check, EpisodeRecord, Timing
from writ_async.engine.journal import (
    HEADER_SIZE,
    EpisodeFinished,
    Event,
    MessageAdded,
    ModelCalled,
    Snapshot,
    ToolExecuted,
    decode_event,
)
from writ_async.engine.replay.run import RecordedEpisode, ReplayRun, behaviours_of
from writ_async.engine.runner import EpisodeSpec, first_difference, run_episode
from writ_async.environment.tools import ToolKind
from writ_async.errors import JournalCorrupt, ParticipantError, ReplayDivergence, ReplayError
from writ_async.grading.grade import NL_ASSERTION
from writ_async.participants.base import Turn


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of verifying one episode."""

    episode_id: str
    attempt: int
    messages: int
    tool_calls: int
    writes: int
    termination: str
    reward: float | None
    divergence: ReplayDivergence | None = None

    @property
    def ok(self) -> bool:
        return self.divergence is None


class _Recorded:
    """A participant that answers with the recorded messages (agent or user side).

    When the recorded messages run out, it ends the episode the way the record says it
    ended (a participant failure, a timeout); anything else is a divergence.
    """

    __slots__ = ("agent", "messages", "record")

    def __init__(self, messages: list[Message], record: EpisodeRecord, *, agent: bool) -> None:
        self.messages, self.record, self.agent = messages, record, agent

    async def reply(self, history: Sequence[Message]) -> Turn:
        step = len(history)
        wanted = "assistant" if self.agent else "user"
        if step < len(self.messages):
            message = self.messages[step]
            if isinstance(message, AssistantMessage if self.agent else UserMessage):
                return Turn(message)  # type: ignore[arg-type]
            raise ReplayDivergence(step, "message", "role", _role(message), wanted,
                                   f"the episode asks the {wanted} here")
        ending = self.record.termination
        side = Termination.AGENT_ERROR if self.agent else Termination.USER_ERROR
        if ending == Termination.TIMEOUT:
            raise TimeoutError
        if ending in FAILURES and ending in (side, Termination.INFRASTRUCTURE_ERROR,
                                             Termination.CONTEXT_WINDOW_EXCEEDED):
            # The runner names the failing role in front of the error again.
            said = (self.record.error or "").removeprefix(
                f"{'agent' if self.agent else 'user'} role: ")
            raise ParticipantError(Termination(ending), said)
        raise ReplayDivergence(step, "message", "message", "(none: the recorded messages "
                               f"end here, termination {ending})", f"a {wanted} message",
                               f"the episode asks the {wanted} here")


class _RecordedJudge:
    """The judge's recorded outcome, given back (a replay calls no model): its verdicts,
    or why it gave none."""

    def __init__(self, record: EpisodeRecord) -> None:
        self.record = record

    async def __call__(self, messages: Sequence[Message],
                       assertions: Sequence[str]) -> tuple[list[Check] | None, str]:
        info = self.record.reward_info
        if info is None or self.record.not_judged or (
                NL_ASSERTION in info.not_graded and not info.nl_assertions):
            return None, self.record.not_judged
        return list(info.nl_assertions), ""


_NO_TIMING = Timing()


def _comparable(record: EpisodeRecord, recorded: EpisodeRecord) -> EpisodeRecord:
    """``record`` without what a replay cannot or need not reproduce: wall-clock times and
    model-call accounting (a replay calls no model), and the final delta hash when the
    recorded one predates that field."""
    return msgspec.structs.replace(
        record, timing=_NO_TIMING, model_calls=0, prompt_tokens=0, completion_tokens=0,
        final_delta_hash=record.final_delta_hash if recorded.final_delta_hash else None,
    )


class _Comparing:
    """A sink that compares every event the replay emits with the recorded one."""

    __slots__ = ("batch", "index", "record", "recorded", "step")

    def __init__(self, recorded: list[Event], record: EpisodeRecord) -> None:
        self.recorded = recorded
        self.record = record
        self.index = 0  # next recorded event
        self.step = 0  # messages so far
        self.batch = 0  # tool events since the last message

    def append(self, event: Event) -> None:
        kind = _kind(event)
        if isinstance(event, ToolExecuted):
            step = self.step + self.batch
            self.batch += 1
        else:
            step = self.step
            self.batch = 0
        if self.index >= len(self.recorded):
            raise ReplayDivergence(step, kind, "event", "(none: the recorded attempt ends "
                                   "here)", kind)
        recorded = self.recorded[self.index]
        self.index += 1
        if type(recorded) is not type(event):
            raise ReplayDivergence(step, kind, "event", _kind(recorded), kind,
                                   "a recorded event is missing, or one is extra")
        if isinstance(event, MessageAdded):
            self.step += 1
            if recorded != event:
                _raise(step, kind, "", recorded, event)
            kept = self.record.messages
            if step >= len(kept) or kept[step] != event.message:
                _raise(step, kind, f"record.messages[{step}]",
                       kept[step] if step < len(kept) else None, event.message,
                       "the journal's message and the episode's record disagree")
        elif isinstance(event, EpisodeFinished):
            a = _comparable(recorded.record, self.record)  # type: ignore[attr-defined]
            b = _comparable(event.record, self.record)
            if a != b:
                _raise(step, kind, "record", a, b)
        elif isinstance(event, Snapshot):
            if recorded.delta != event.delta:  # type: ignore[attr-defined]
                _raise(step, kind, "delta", _delta(recorded.delta),  # type: ignore[attr-defined]
                       _delta(event.delta))
        elif recorded != event:
            _raise(step, kind, "", recorded, event)

    def commit(self) -> None:
        pass

    def finish(self) -> None:
        """After the episode: every recorded event must have been reproduced."""
        if self.index < len(self.recorded):
            left = self.recorded[self.index]
            raise ReplayDivergence(self.step, _kind(left), "event", _kind(left),
                                   "(none: the replay ended)",
                                   f"{len(self.recorded) - self.index} recorded event(s) "
                                   "not reproduced")


def _raise(step: int, kind: str, path: str, recorded: object, replayed: object,
           note: str = "") -> None:
    where, a, b = first_difference(recorded, replayed, path)
    raise ReplayDivergence(step, kind, where or kind, a, b, note)


def _kind(event: Event) -> str:
    return str(type(event).__struct_config__.tag)


def _role(message: Message) -> str:
    return str(type(message).__struct_config__.tag)


def _delta(data: bytes) -> Any:
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        return data


async def verify_episode(run: ReplayRun, episode: str | RecordedEpisode, *,
                         full_hash: bool = False) -> Verdict:
    """Re-execute one finished episode and compare everything with its record."""
    ep = run.recorded(episode) if isinstance(episode, str) else episode
    record = ep.record
    if record is None:
        raise ReplayError(f"{run.path}: episode {ep.episode_id!r} never finished (attempt "
                          f"{ep.attempt} has no finished event): nothing to verify; fork it "
                          "with --from STEP")
    started = ep.started
    task_id, trial, seed = ((started.task_id, started.trial, started.seed) if started
                            else (record.task_id, record.trial, record.seed))
    setup = run.setup
    # One known final state: the recorded one. Equal delta hashes mean equal tau2
    # hashes, so the full hash is computed only when the replayed state differs.
    setup.known_hashes = ({} if full_hash or not record.final_delta_hash
                          else {record.final_delta_hash: record.final_db_hash})
    setup.judge = _RecordedJudge(record) if run.config.simulate.judge else None
    recorded = [e for e in ep.events if not isinstance(e, ModelCalled)]
    messages = [e.message for e in recorded if isinstance(e, MessageAdded)]
    sink = _Comparing(recorded, record)
    spec = EpisodeSpec(task=run.task(task_id), trial=trial, seed=seed, attempt=ep.attempt,
                       lineage=record.lineage, behaviours=behaviours_of(ep.episode_id))
    divergence = None
    try:
        await run_episode(setup, spec, _Recorded(messages, record, agent=True),
                          _Recorded(messages, record, agent=False), sink)
        sink.finish()
    except ReplayDivergence as found:
        divergence = found
    finally:
        setup.known_hashes, setup.judge = {}, None
    calls = [c for m in record.messages if isinstance(m, AssistantMessage)
             for c in m.tool_calls or ()]
    toolbox = run.plan.toolbox
    info = record.reward_info
    return Verdict(
        episode_id=ep.episode_id, attempt=ep.attempt, messages=len(record.messages),
        tool_calls=len(calls),
        writes=sum(1 for c in calls if toolbox.kind(c.name) is ToolKind.WRITE),
        termination=record.termination, reward=None if info is None else info.reward,
        divergence=divergence,
    )


async def verify_all(run: ReplayRun, *, full_hash: bool = False) -> list[Verdict]:
    """Verify every finished episode of the run, in the order they finished.

    One pass over the journal: events are decoded once and kept only until their
    episode finishes and is verified, so memory holds the episodes that were in flight
    together when the run recorded them, not the whole run.
    """
    pending: dict[str, list[Event]] = {}
    done: set[str] = set()
    verdicts = []
    standing = run.contents.finished_attempt
    for event in iter_events(run.contents.path, run.contents.valid_bytes):
        eid = event.episode_id
        if eid in done:
            continue  # a duplicate finish (the first stands, as in read_journal)
        events = pending.get(eid)
        if events is None:
            events = pending[eid] = []
        events.append(event)
        if isinstance(event, EpisodeFinished):
            if event.attempt != standing.get(eid):
                # An attempt a later one replaced (an infrastructure error, re-run).
                pending[eid] = [e for e in events if e.attempt != event.attempt]
                continue
            del pending[eid]
            done.add(eid)
            attempt = event.attempt
            ep = RecordedEpisode(eid, attempt, [e for e in events if e.attempt == attempt],
                                 event.record)
            verdicts.append(await verify_episode(run, ep, full_hash=full_hash))
    return verdicts


_FRAME = struct.Struct("<II")  # journal.py's record header: payload length, CRC-32


def iter_events(path: Path, end: int) -> Iterator[Event]:
    """The events of the journal's first ``end`` bytes (its intact prefix, as
    ``read_journal`` found it), in order, from one mapping of the file."""
    if end <= 0:
        return
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        view = memoryview(mapped)
        try:
            offset = 0
            while offset < end:
                length, crc = _FRAME.unpack_from(view, offset)
                start = offset + HEADER_SIZE
                payload = view[start:start + length]
                if zlib.crc32(payload) != crc:
                    raise JournalCorrupt(path, offset, "record changed since it was read")
                yield decode_event(payload)
                del payload
                offset = start + length
        finally:
            view.release()


def render_verdict(verdict: Verdict) -> str:
    head = f"episode {verdict.episode_id} (attempt {verdict.attempt})"
    if verdict.divergence is None:
        reward = "-" if verdict.reward is None else f"{verdict.reward:g}"
        return (f"{head}: verified: {verdict.messages} messages, {verdict.tool_calls} tool "
                f"calls ({verdict.writes} writes), termination {verdict.termination}, "
                f"reward {reward}")
    d = verdict.divergence
    lines = [f"{head}: DIVERGED at step {d.step}",
             f"  event     {d.event}",
             f"  field     {d.field}",
             f"  recorded  {_show(d.recorded)}",
             f"  replayed  {_show(d.replayed)}"]
    if d.note:
        lines.append(f"  note      {d.note}")
    return "\n".join(lines)


def render_table(verdicts: Sequence[Verdict], seconds: float | None = None,
                 unfinished: int = 0) -> str:
    diverged = [v for v in verdicts if not v.ok]
    rows = [("episodes", str(len(verdicts))),
            ("verified", str(len(verdicts) - len(diverged))),
            ("diverged", str(len(diverged)))]
    if unfinished:
        rows.insert(1, ("unfinished", f"{unfinished} (not verified: they never finished)"))
    reasons = Counter(v.divergence.reason for v in diverged if v.divergence is not None)
    rows += [(f"  {reason}", str(n)) for reason, n in sorted(reasons.items())]
    if seconds is not None and seconds > 0:
        rows.append(("episodes/s", f"{len(verdicts) / seconds:,.0f}"))
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    for v in diverged[:20]:
        d = v.divergence
        assert d is not None
        lines.append(f"{v.episode_id}: step {d.step}, {d.event}, {d.field}")
    if len(diverged) > 20:
        lines.append(f"... and {len(diverged) - 20} more")
    return "\n".join(lines)


def _show(value: object, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
