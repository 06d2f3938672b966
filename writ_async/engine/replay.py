"""Deterministic replay (`writ replay`): verify an episode from its journal, fork it from
any step, re-run a run's failures.

**Verify.** A finished episode's last attempt is re-executed on a fresh overlay of the
run's base (rebuilt from the manifest's config exactly as the run built it): the journal's
agent and user messages are fed back in place of the models (``_Recorded``), the tools run
live, and every event the runner emits goes to a sink that compares it with the recorded
event at the same position (``_Comparing``): tool outputs and errors, the delta hash after
every write, the final delta, the termination, the final DB hash and the re-graded reward.
It is the runner's own code path (``runner.run_episode``), so what is verified is what
runs. The first difference raises ``ReplayDivergence`` (step = message index, event kind,
field path, recorded and replayed values).

Final hashes are verified through the delta hash (equal iff the tau2 hashes are equal,
``overlay.Overlay.delta_hash``): when the replayed final delta hash equals the recorded
one, the recorded tau2 hash stands for the replayed state and the full hash (one SHA-256
pass over the whole database) is not computed. ``full_hash=True`` computes it anyway;
a record without a delta hash (older runs) always has it computed.

**Fork.** ``fork`` restores the state at a step (``runner.restore``: the recorded
messages up to it, their tool calls run live and checked) and goes on live with the
configured participants, as a new episode in a new run directory. **Re-run failures.**
``rerun_failed`` does the same for every failed or rejected episode of a run, from the
start or from the step before its first wrong write, through the scheduler. Both are
``run_episode`` with ``EpisodeSpec.prefix`` set, the path a resumed run takes as well.

**Against the manifest.** ``--all`` also says whether the run is whole (``completeness``):
the episodes its manifest expects (its scenarios times its trials; a run made by
``writ replay``: the episodes of its lineage) against those its journal finished, which
ids are missing, episodes that ended on the infrastructure (``--resume`` runs them
again), a torn tail and a corrupt record. A journal damaged in the middle is read up to
the damage (``read_journal(stop_at_corruption=True)``): what is before it is served, and
the run is salvaged with ``writ journal salvage``.
"""

from __future__ import annotations

import mmap
import shlex
import struct
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec

from writ_async.config import Config, check_config, load_config
from writ_async.conversation.episode import FAILURES, Finished, Termination
from writ_async.conversation.messages import AssistantMessage, Message, ToolMessage, UserMessage
from writ_async.conversation.records import Check, EpisodeRecord, Lineage, Timing, episode_id
from writ_async.conversation.task import Task
from writ_async.engine.journal import (
    HEADER_SIZE,
    RERUN_TERMINATION,
    EpisodeFinished,
    EpisodeStarted,
    Event,
    JournalContents,
    MessageAdded,
    ModelCalled,
    Snapshot,
    ToolExecuted,
    decode_event,
    read_journal,
)
from writ_async.engine.outputs import TASKS, save_tasks, write_outputs
from writ_async.engine.plan import RunPlan, resolve_plan, run_scenarios
from writ_async.engine.run_participants import open_participants
from writ_async.engine.rundir import (
    JOURNAL,
    Manifest,
    atomic_write,
    create_run,
    load_manifest,
    new_manifest,
    salvage_advice,
)
from writ_async.engine.runner import EpisodeSpec, first_difference, restore, run_episode
from writ_async.engine.scheduler import Progress, StopRequest, run_many
from writ_async.environment.domain import Domain
from writ_async.environment.tools import ToolKind
from writ_async.errors import (
    ConfigError,
    JournalCorrupt,
    ReplayDivergence,
    ReplayError,
    RunDirError,
)
from writ_async.export.sft import ExportReport, is_kept
from writ_async.grading.grade import (
    NL_ASSERTION,
    GoldReplay,
    action_matches,
)
from writ_async.grading.results import summary
from writ_async.participants.behaviours import parse_scenario_id, scenario_id
from writ_async.participants.llm import ParticipantError, Turn
from writ_async.seeds import episode_seed

LINEAGE = "lineage.json"  # in a run made by `writ replay`: its parent and fork steps

FROM_START = "from_start"
FROM_FIRST_WRONG_WRITE = "from_first_wrong_write"
FORK = "fork"


# -- the run being replayed ----------------------------------------------------------------


@dataclass(slots=True)
class RecordedEpisode:
    """One episode's recorded attempt: the last finished one (else the latest)."""

    episode_id: str
    attempt: int
    events: list[Event]
    record: EpisodeRecord | None  # None: this attempt never finished

    @property
    def messages(self) -> list[Message]:
        return [e.message for e in self.events if isinstance(e, MessageAdded)]

    @property
    def started(self) -> EpisodeStarted | None:
        return next((e for e in self.events if isinstance(e, EpisodeStarted)), None)


class ReplayRun:
    """A run directory opened for replay: manifest, config, rebuilt base, tasks, journal."""

    def __init__(self, path: Path, manifest: Manifest, plan: RunPlan,
                 contents: JournalContents) -> None:
        self.path = path
        self.manifest = manifest
        self.config = plan.config
        self.plan = plan
        # The setup verification and forks restore on (their caches and judge are this
        # replay's own, not the frozen plan's).
        self.setup = plan.episode_setup()
        self.contents = contents
        self._tasks = {t.id: t for t in plan.tasks}

    def task(self, task_id: str) -> Task:
        task = self._tasks.get(task_id)
        if task is None:
            raise ReplayError(f"{self.path}: task {task_id!r} is not among the run's tasks")
        return task

    def episode_ids(self) -> list[str]:
        """Every finished episode, in the order the journal finished them."""
        return list(self.contents.finished)

    def recorded(self, ep_id: str) -> RecordedEpisode:
        contents = self.contents
        if ep_id not in contents.attempts:
            known = list(contents.attempts)
            hint = f"; ids look like {known[0]!r}" if known else ""
            lost = ""
            if contents.corrupt is not None:
                lost = (f"; the journal is corrupt from byte {contents.corrupt.offset}, "
                        f"episodes recorded after it cannot be read: {salvage_advice(self.path)}")
            raise ReplayError(f"{self.path}: no episode {ep_id!r} in this run "
                              f"({len(known)} episodes, {len(contents.finished)} finished"
                              f"{hint}){lost}")
        events = contents.events(ep_id)
        standing = contents.finished_attempt.get(ep_id)
        finished = next((e for e in events if isinstance(e, EpisodeFinished)
                         and e.attempt == standing), None)
        attempt = finished.attempt if finished is not None else contents.attempts[ep_id]
        return RecordedEpisode(
            episode_id=ep_id, attempt=attempt,
            events=[e for e in events if e.attempt == attempt],
            record=finished.record if finished is not None else None,
        )

    def __repr__(self) -> str:
        return (f"<ReplayRun {self.path} run_id={self.manifest.run_id} "
                f"episodes={len(self.contents.attempts)} finished={len(self.contents.finished)}>")


def run_config(path: Path | str) -> tuple[Manifest, Config]:
    """A run directory's manifest and the config it was run with (whose ``[run] domain``
    the command looks up for ``open_run``)."""
    manifest = load_manifest(Path(path))  # RunDirError: not a run directory
    try:
        return manifest, msgspec.convert(manifest.config, Config)
    except msgspec.ValidationError as exc:
        raise RunDirError(path, f"the manifest's config cannot be used: {exc}") from None


def open_run(path: Path | str, domain: Domain) -> ReplayRun:
    """Open a run directory of ``domain`` for replay; a clear ``WritError`` if it cannot
    be replayed.

    The base database is rebuilt from the manifest's config as the run built it and must
    have the manifest's hash; the tasks are the run's own ``tasks.json`` (or, for runs
    without one, reloaded or re-synthesized and checked against the manifest's hash).
    """
    path = Path(path)
    manifest, config = run_config(path)
    stored = path / TASKS
    tasks = None
    if stored.exists():
        try:
            tasks = (msgspec.json.decode(stored.read_bytes(), type=list[Task]),
                     manifest.tasks_file_sha256)
        except msgspec.DecodeError as exc:
            raise RunDirError(path, f"{TASKS} is not a task list: {exc}") from None
    plan = resolve_plan(config, domain, tasks=tasks)
    if plan.base.db_hash() != manifest.base_db_hash:
        raise ReplayError(f"{path}: the database rebuilt from the run's config has hash "
                          f"{plan.base.db_hash()[:12]}, the run's had "
                          f"{manifest.base_db_hash[:12]}: it changed since the run")
    if tasks is None and plan.tasks_hash != manifest.tasks_file_sha256:
        raise ReplayError(f"{path}: the run's tasks changed since the run (sha256 "
                          f"{plan.tasks_hash[:12]} != {manifest.tasks_file_sha256[:12]})")
    journal = path / JOURNAL
    if not journal.exists():
        raise ReplayError(f"{path}: no {JOURNAL}: the run recorded no episode")
    # Damage in the middle ends the read there: the episodes before it are still served
    # (``corruption_warning`` says what was lost and how to salvage the run).
    return ReplayRun(path, manifest, plan, read_journal(journal, stop_at_corruption=True))


def corruption_warning(run: ReplayRun) -> str | None:
    """What a corrupt journal means for what is shown, and how to salvage; None if intact."""
    contents = run.contents
    corrupt = contents.corrupt
    if corrupt is None:
        return None
    return (f"{corrupt}: only the {contents.valid_bytes} bytes before it are read "
            f"({len(contents.finished)} finished episodes; the {contents.corrupt_bytes} "
            f"bytes from it on are not); {salvage_advice(run.path)}")


# -- the run against its manifest ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Completeness:
    """The run's journal against what its manifest expects."""

    expected: int  # episodes the run holds
    basis: str  # where ``expected`` comes from, in words
    finished: int  # of the expected, those with a finished record in the journal
    missing: list[str]  # expected ids without one, in run order (empty if ids are unknown)
    unfinished: list[str]  # of ``missing``, those started in the journal
    rerun: list[str]  # finished with an infrastructure error: ``--resume`` runs them again
    torn_tail_bytes: int  # a cut last record (the run was stopped mid-write)
    valid_bytes: int
    corrupt: JournalCorrupt | None
    corrupt_bytes: int = 0

    @property
    def missing_count(self) -> int:
        return self.expected - self.finished

    @property
    def complete(self) -> bool:
        return (self.missing_count <= 0 and not self.rerun and not self.torn_tail_bytes
                and self.corrupt is None)


def completeness(run: ReplayRun) -> Completeness:
    """Compare ``run``'s journal with its manifest (see the module docstring)."""
    contents, manifest = run.contents, run.manifest
    lineage = run.path / LINEAGE
    expected_ids: list[str] | None
    if lineage.exists():
        # A run made by `writ replay`: its episodes are its lineage's (their ids may
        # differ from the parent's when the behaviours were changed, so only count).
        try:
            episodes = msgspec.json.decode(lineage.read_bytes(), type=_LineageFile).episodes
        except msgspec.DecodeError as exc:
            raise RunDirError(run.path, f"{LINEAGE} cannot be read: {exc}") from None
        expected_ids, expected = None, len(episodes)
        basis = f"{LINEAGE}: {expected} re-run or forked episode(s)"
    else:
        tasks = [run.task(t) for t in manifest.task_ids]
        scenarios = run_scenarios(run.config, tasks)
        expected_ids = [episode_id(s.id, trial) for s in scenarios
                        for trial in range(manifest.trials)]
        expected = len(expected_ids)
        told = "" if len(scenarios) == len(tasks) else f", {len(scenarios)} scenarios"
        basis = f"manifest: {len(tasks)} tasks{told} x {manifest.trials} trials"
    finished = contents.finished
    if expected_ids is None:
        done, missing, unfinished = len(finished), [], sorted(contents.unfinished)
    else:
        wanted = set(expected_ids)
        done = sum(1 for eid in finished if eid in wanted)
        missing = [eid for eid in expected_ids if eid not in finished]
        unfinished = [eid for eid in missing if eid in contents.unfinished]
    rerun = [eid for eid, r in finished.items() if r.termination == RERUN_TERMINATION]
    return Completeness(expected=expected, basis=basis, finished=done, missing=missing,
                        unfinished=unfinished, rerun=rerun,
                        torn_tail_bytes=contents.torn_tail_bytes,
                        valid_bytes=contents.valid_bytes, corrupt=contents.corrupt,
                        corrupt_bytes=contents.corrupt_bytes)


def render_completeness(run: ReplayRun, c: Completeness, limit: int = 10) -> list[str]:
    """Lines for ``writ replay --all``: how whole the run is, and how to go on."""
    lines = [f"expected    {c.expected} episodes ({c.basis})",
             f"journaled   {c.finished} finished"]
    if c.missing_count > 0:
        shown = ", ".join(c.missing[:limit])
        more = f", ... and {len(c.missing) - limit} more" if len(c.missing) > limit else ""
        lines.append(f"missing     {c.missing_count}" + (f": {shown}{more}" if shown else ""))
        if c.unfinished:
            lines.append(f"  started, not finished  {len(c.unfinished)}")
    if c.rerun:
        lines.append(f"infrastructure_error  {len(c.rerun)} (not data; `writ simulate "
                     f"--resume` runs them again): {', '.join(c.rerun[:limit])}"
                     + (" ..." if len(c.rerun) > limit else ""))
    if c.torn_tail_bytes:
        lines.append(f"cut tail    the journal ends in a torn record of {c.torn_tail_bytes} "
                     f"bytes after byte {c.valid_bytes} (the run was stopped mid-write)")
    if c.corrupt is not None:
        lines.append(f"corrupt     record at byte {c.corrupt.offset}: {c.corrupt.reason}; "
                     f"the {c.corrupt_bytes} bytes from it on are not read")
    if c.complete:
        lines.append("complete: every expected episode finished and the journal is intact")
    elif c.corrupt is not None:
        lines.append(f"INCOMPLETE: {salvage_advice(run.path)}")
    else:
        lines.append(f"INCOMPLETE: `writ simulate --resume {shlex.quote(str(run.path))}` "
                     "finishes the run")
    return lines


# -- verify --------------------------------------------------------------------------------


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


# -- forks and re-runs ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Overrides:
    """What a continuation may change from the parent run's config."""

    seed: int | None = None  # episode seeds derive from this instead (seeds.episode_seed)
    agent: str | None = None
    user: str | None = None
    config_path: str | None = None  # its [models] and [mock] replace the parent's
    mistake_rate: float | None = None
    concurrency: int | None = None
    behaviours: tuple[str, ...] | None = None  # the user's behaviours for the continuation


def continuation_config(parent: Config, overrides: Overrides) -> Config:
    """The parent's config with the overrides applied and checked. What decides the
    environment (domain, database, tasks, limits, run seed) is never overridden."""
    replace = msgspec.structs.replace
    config = parent
    source = overrides.config_path or "<command line>"
    if overrides.config_path is not None:
        other = load_config(overrides.config_path)
        config = replace(config, models=other.models, mock=other.mock)
    changes = {key: value for key, value in (
        ("agent", overrides.agent), ("user", overrides.user),
        ("mistake_rate", overrides.mistake_rate), ("concurrency", overrides.concurrency),
    ) if value is not None}
    if changes:
        config = replace(config, simulate=replace(config.simulate, **changes))
    try:  # re-validate: the overrides bypassed the field constraints
        config = msgspec.convert(msgspec.to_builtins(config), Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(source, str(exc)) from None
    check_config(config, source)
    return config


@dataclass(frozen=True, slots=True)
class Continued:
    """One re-run episode: its parent, where it started, and how it ended (``recovered``:
    the new run's export keeps it, ``export.keep`` under that run's filter)."""

    parent_episode: str
    fork_step: int
    record: EpisodeRecord
    recovered: bool
    note: str = ""


@dataclass(slots=True)
class ReplayOutcome:
    run_dir: Path
    mode: str
    episodes: list[Continued]
    export: ExportReport
    summary: dict[str, Any]
    stopped_early: bool = False
    selected: int = 0  # episodes chosen for a re-run (of which some may not have finished)
    skipped: list[str] = field(default_factory=list)

    @property
    def recovered(self) -> int:
        return sum(1 for e in self.episodes if e.recovered)


def first_wrong_write(record: EpisodeRecord, task: Task, run: ReplayRun,
                      gold: GoldReplay) -> int | None:
    """The index of the assistant message holding the episode's first wrong write, or
    None. A write (one that succeeded) is wrong when its evidence or confirmation check
    failed, or when no gold write not yet matched matches it (``grading.action_matches``).
    """
    toolbox = run.plan.toolbox
    info = record.reward_info
    failed = {c.name for c in (info.evidence_checks if info else []) if not c.passed}
    gold_writes = [a for i, a in enumerate(task.gold_actions)
                   if toolbox.kind(a.name) is ToolKind.WRITE and i not in gold.failed]
    used: set[int] = set()
    messages = record.messages
    for i, message in enumerate(messages):
        if not (isinstance(message, AssistantMessage) and message.tool_calls):
            continue
        results = {}
        for later in messages[i + 1:i + 1 + len(message.tool_calls)]:
            if isinstance(later, ToolMessage):
                results.setdefault(later.id, later)
        for call in message.tool_calls:
            result = results.get(call.id)
            if toolbox.kind(call.name) is not ToolKind.WRITE or result is None or result.error:
                continue
            label = f"{call.name}[{call.id}]"
            if f"evidence:{label}" in failed or f"confirmation:{label}" in failed:
                return i
            match = next((k for k, action in enumerate(gold_writes)
                          if k not in used and action_matches(action, call)), None)
            if match is None:
                return i
            used.add(match)
    return None


def _spec(run: ReplayRun, ep: RecordedEpisode, step: int, mode: str,
          overrides: Overrides) -> EpisodeSpec:
    started = ep.started
    record = ep.record
    if started is not None:
        task_id, trial, seed = started.task_id, started.trial, started.seed
    elif record is not None:
        task_id, trial, seed = record.task_id, record.trial, record.seed
    else:
        raise ReplayError(f"{run.path}: episode {ep.episode_id!r} has no recorded start")
    behaviours = behaviours_of(ep.episode_id)
    if overrides.behaviours is not None:
        behaviours = overrides.behaviours
    if overrides.seed is not None:
        seed = episode_seed(overrides.seed, scenario_id(task_id, behaviours), trial)
    lineage = Lineage(parent_run=run.manifest.run_id, parent_dir=str(run.path),
                      parent_episode=ep.episode_id, parent_attempt=ep.attempt,
                      fork_step=step, mode=mode)
    return EpisodeSpec(task=run.task(task_id), trial=trial, seed=seed, attempt=0,
                       prefix=tuple(ep.messages[:step]), lineage=lineage,
                       behaviours=behaviours)


def check_fork(run: ReplayRun, ep: RecordedEpisode, step: int) -> None:
    """Refuse a fork that cannot be made: a step outside the conversation, a recorded
    prefix that does not reproduce, or a step at which the episode had already ended."""
    messages = ep.messages
    if not 0 <= step <= len(messages):
        raise ReplayError(f"episode {ep.episode_id!r} has {len(messages)} messages: a step "
                          f"must be within 0..{len(messages)}, not {step}")
    try:
        restored = restore(run.setup, messages[:step])
    except ReplayDivergence as divergence:
        raise ReplayError(f"cannot fork episode {ep.episode_id!r} at step {step}: the "
                          f"recorded episode does not reproduce up to it: {divergence}"
                          ) from None
    if isinstance(restored.action, Finished):
        raise ReplayError(f"episode {ep.episode_id!r} ended at step {step} "
                          f"({restored.action.reason}): fork from an earlier step")


async def fork(run: ReplayRun, episode: str, step: int, *, out: Path,
               overrides: Overrides | None = None, progress_stream: IO[str] | None = None,
               stop: StopRequest | None = None) -> ReplayOutcome:
    """Restore ``episode`` at message ``step`` and go on live, in a new run at ``out``."""
    overrides = overrides or Overrides()
    ep = run.recorded(episode)
    check_fork(run, ep, step)
    config = continuation_config(run.config, overrides)
    spec = _spec(run, ep, step, FORK, overrides)
    return await _continue(run, config, [spec], out, FORK, progress_stream, stop)


async def rerun_failed(run: ReplayRun, *, mode: str = FROM_START, out: Path,
                       overrides: Overrides | None = None,
                       progress_stream: IO[str] | None = None,
                       stop: StopRequest | None = None) -> ReplayOutcome:
    """Re-run every failed or rejected episode of ``run`` into a new run at ``out``, from
    the start or from the step before its first wrong write (``mode``), through the
    scheduler at the configured concurrency."""
    if mode not in (FROM_START, FROM_FIRST_WRONG_WRITE):
        raise ValueError(f"unknown mode {mode!r}")
    overrides = overrides or Overrides()
    config = continuation_config(run.config, overrides)
    setup = run.setup
    parent_filter = run.plan.export_filter
    specs, notes = [], {}
    for ep_id in run.episode_ids():
        record = run.contents.finished[ep_id]
        if is_kept(record, parent_filter):  # only what the run's export dropped
            continue
        ep = run.recorded(ep_id)
        step = 0
        if mode == FROM_FIRST_WRONG_WRITE:
            task = run.task(record.task_id)
            wrong = first_wrong_write(record, task, run, setup.gold.get(
                setup.domain, setup.base, task))
            if wrong is not None:
                step = wrong
            elif record.termination in FAILURES:
                step = len(ep.messages)  # no wrong write: go on from where it failed
                notes[ep_id] = "no wrong write: continued from where it failed"
            else:
                notes[ep_id] = "no wrong write: from the start"
            if step:
                try:
                    check_fork(run, ep, step)
                except ReplayError as refused:
                    step = 0
                    notes[ep_id] = f"from the start ({refused})"
        specs.append(_spec(run, ep, step, mode, overrides))
    outcome = await _continue(run, config, specs, out, mode, progress_stream, stop, notes)
    outcome.selected = len(specs)
    return outcome


class _LineageFile(msgspec.Struct, frozen=True, kw_only=True):
    parent_run: str
    parent_dir: str
    mode: str
    episodes: list[Lineage]


async def _continue(run: ReplayRun, config: Config, specs: list[EpisodeSpec], out: Path,
                    mode: str, progress_stream: IO[str] | None, stop: StopRequest | None,
                    notes: dict[str, str] | None = None) -> ReplayOutcome:
    parent = run.plan
    plan = resolve_plan(config, parent.domain, tasks=(parent.tasks, parent.tasks_hash),
                        base=parent.base)
    kept_by = plan.export_filter  # "kept" in the new run: its progress, summary, export
    order = {t.id: i for i, t in enumerate(parent.tasks)}
    task_ids = sorted({s.task.id for s in specs}, key=order.__getitem__)
    manifest = new_manifest(
        config, base_db_hash=run.manifest.base_db_hash,
        tasks_file_sha256=parent.tasks_hash, task_ids=task_ids, trials=run.manifest.trials,
        agent=config.simulate.agent, user=config.simulate.user,
    )
    new_run = create_run(out, manifest)
    save_tasks(new_run, parent.tasks)
    lineage = _LineageFile(parent_run=run.manifest.run_id, parent_dir=str(run.path),
                           mode=mode, episodes=[s.lineage for s in specs if s.lineage])
    atomic_write(new_run.path / LINEAGE,
                 msgspec.json.format(msgspec.json.encode(lineage), indent=2) + b"\n")
    setup = plan.episode_setup()
    async with open_participants(plan, setup) as participants:
        journal = new_run.open_journal()
        try:
            if specs:
                await run_many(setup, specs, participants, journal,
                               concurrency=config.simulate.concurrency, stop=stop,
                               progress_stream=progress_stream,
                               progress=Progress(total=len(specs), export_filter=kept_by))
        finally:
            journal.close()
    finished = new_run.read_journal().finished
    records, episodes = [], []
    notes = notes or {}
    for spec in specs:
        assert spec.lineage is not None
        # the continuation's own id: the parent's, unless its behaviours were changed
        record = finished.get(spec.episode_id)
        if record is None:
            continue
        records.append(record)
        episodes.append(Continued(parent_episode=spec.lineage.parent_episode,
                                  fork_step=spec.lineage.fork_step, record=record,
                                  recovered=is_kept(record, kept_by),
                                  note=notes.get(spec.lineage.parent_episode, "")))
    tasks = [t for t in parent.tasks if t.id in set(task_ids)]
    report = write_outputs(new_run, plan, records, tasks)
    return ReplayOutcome(run_dir=new_run.path, mode=mode, episodes=episodes, export=report,
                         summary=summary(records, tasks, kept_by),
                         stopped_early=len(records) < len(specs),
                         selected=len(specs))


def render_outcome(run: ReplayRun, outcome: ReplayOutcome) -> str:
    lines = []
    if outcome.mode == FORK:
        (ep,) = outcome.episodes or [None]
        if ep is None:
            return f"fork stopped before its episode finished: {outcome.run_dir}"
        info = ep.record.reward_info
        reward = "-" if info is None else f"{info.reward:g}"
        evidence = "-" if info is None else ("ok" if info.evidence_ok else "failed")
        lines.append(f"forked {ep.parent_episode} of {run.path} at step {ep.fork_step} "
                     f"into {outcome.run_dir}")
        lines.append(f"  {len(ep.record.messages)} messages, termination "
                     f"{ep.record.termination}, reward {reward}, evidence {evidence}")
    else:
        lines.append(f"re-ran {outcome.selected} failed episode(s) of {run.path} "
                     f"({outcome.mode.replace('_', ' ')}) into {outcome.run_dir}")
        lines.append(f"  recovered {outcome.recovered} of {len(outcome.episodes)} "
                     "(kept by the run's export filter)")
        if outcome.episodes:
            width = max(len(e.parent_episode) for e in outcome.episodes)
            lines.append(f"  {'episode':<{width}}  from  termination      reward  evidence")
            for e in outcome.episodes:
                info = e.record.reward_info
                reward = "-" if info is None else f"{info.reward:g}"
                evidence = "-" if info is None else ("ok" if info.evidence_ok else "failed")
                note = f"  ({e.note})" if e.note else ""
                lines.append(f"  {e.parent_episode:<{width}}  {e.fork_step:>4}  "
                             f"{e.record.termination:<15}  {reward:>6}  {evidence}{note}")
    report = outcome.export
    lines.append(f"export: {report.kept} of {report.total} episodes kept, {report.written} "
                 "written")
    if outcome.stopped_early:
        lines.append("stopped before every episode finished")
    return "\n".join(lines)


def behaviours_of(episode_id: str) -> tuple[str, ...]:
    """The user behaviours of an episode, from its id (``task[@behaviours]:trial``)."""
    scenario, _, _ = episode_id.rpartition(":")
    return parse_scenario_id(scenario)[1]
