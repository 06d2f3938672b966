"""A run's journal against its manifest (``writ replay --all``): the episodes the manifest
expects (its scenarios times its trials; a run made by ``writ replay``: the episodes of
its lineage) against those its journal finished, which ids are missing, episodes that
ended on the infrastructure (``--resume`` runs them again), a torn tail and a corrupt
record.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import msgspec

from writ_async.conversation.records import episode_id
from writ_async.engine.journal import RERUN_TERMINATION
from writ_async.engine.plan import run_scenarios
from writ_async.engine.replay.run import LINEAGE, LineageFile, ReplayRun
from writ_async.engine.rundir import salvage_advice
from writ_async.errors import JournalCorrupt, RunDirError


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
            episodes = msgspec.json.decode(lineage.read_bytes(), type=LineageFile).episodes
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
