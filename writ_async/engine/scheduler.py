"""Run many episodes at once: bounded concurrency, progress, clean stop.

A fixed set of worker coroutines (``concurrency`` of them, under one task group) takes
episode specs from a queue in order; each runs ``run_episode`` to completion. The model
pool gives backpressure on its own: a worker waiting for a permit holds its slot. The
first stop request (Ctrl-C, SIGTERM) stops admitting new episodes and lets running ones
finish; a second cancels them. Unfinished episodes stay unfinished in the journal, and
``writ simulate --resume`` runs them again.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import IO

from writ_async.conversation.records import EpisodeRecord
from writ_async.engine.runner import Counters, EpisodeSetup, EpisodeSpec, Sink, run_episode
from writ_async.export.sft import ExportFilter, is_kept
from writ_async.logs import get_logger
from writ_async.participants.base import Participant
from writ_async.scopes import CancelScope

MakeParticipants = Callable[[EpisodeSpec], tuple[Participant, Participant]]


@dataclass(slots=True)
class Progress:
    """Counts shown while a run goes; ``render`` is one status line."""

    total: int
    done: int = 0
    running: int = 0
    kept: int = 0
    failed: int = 0
    started_at: float = field(default_factory=time.monotonic)
    counters: Counters = field(default_factory=Counters)
    # "kept" is the export's one decision (``export.keep``) under the run's own filter
    # (``plan.export_filter``), so that it counts what the export will write.
    export_filter: ExportFilter = field(default_factory=ExportFilter)

    def record(self, record: EpisodeRecord) -> None:
        self.done += 1
        if is_kept(record, self.export_filter):
            self.kept += 1
        if record.error is not None:
            self.failed += 1

    def render(self, now: float) -> str:
        elapsed = max(now - self.started_at, 1e-9)
        calls = self.counters.model_calls / elapsed
        tokens = (self.counters.prompt_tokens + self.counters.completion_tokens) / elapsed
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta_text = "--:--" if eta == float("inf") else f"{int(eta // 60)}:{int(eta % 60):02d}"
        return (f"done {self.done}/{self.total}  running {self.running}  kept {self.kept}  "
                f"failed {self.failed}  {calls:,.0f} calls/s  {tokens:,.0f} tok/s  "
                f"ETA {eta_text}")


class StopRequest:
    """First request: stop admitting. Second: cancel what runs.

    ``signal`` remembers the first signal that asked (SIGINT or SIGTERM), so that the
    command can exit as a process stopped by it would (130 / 143). ``notice`` is where
    the operator is told, at once, what the request does (stderr by default); it is
    given the number of episodes in flight, which the scheduler keeps up to date. What a
    second request cancels is whatever runs in a ``cancel_scope()`` at the time.
    """

    def __init__(self, notice: Callable[[str], None] | None = None) -> None:
        self.requests = 0
        self.admitting = True
        self.signal: int | None = None
        self.in_flight: Callable[[], int] = lambda: 0
        self._notice = notice if notice is not None else _to_stderr
        self._scopes: set[CancelScope] = set()

    def __call__(self, sig: int | None = None) -> None:
        self.requests += 1
        self.admitting = False
        if self.signal is None and sig is not None:
            self.signal = sig
        running = self.in_flight()
        if self.requests == 1:
            self._notice(f"stopping: no new episodes; finishing {running} episode"
                         f"{'' if running == 1 else 's'} in flight; Ctrl-C again to cancel "
                         "them")
        elif self._scopes:
            self._notice(f"cancelling {running} episode{'' if running == 1 else 's'} in "
                         "flight (they stay unfinished; --resume runs them again)")
            for scope in list(self._scopes):
                scope.cancel()

    @asynccontextmanager
    async def cancel_scope(self) -> AsyncIterator[CancelScope]:
        """A block that the second request cancels, with the tasks its task groups run
        (at once, if that request came before the block)."""
        scope = CancelScope()
        if self.requests >= 2:
            scope.cancel()
        self._scopes.add(scope)
        try:
            async with scope:
                yield scope
        finally:
            self._scopes.discard(scope)

    def exit_status(self) -> int:
        """128 + the signal's number, as a shell reports a process that signal stopped;
        130 (SIGINT's) when the stop came from elsewhere."""
        return 128 + (self.signal if self.signal is not None else signal.SIGINT)


def _to_stderr(line: str) -> None:
    sys.stderr.write(f"\nwrit: {line}\n")
    sys.stderr.flush()


async def run_many(
    setup: EpisodeSetup,
    specs: Sequence[EpisodeSpec],
    make_participants: MakeParticipants,
    sink: Sink,
    *,
    concurrency: int,
    stop: StopRequest | None = None,
    progress_stream: IO[str] | None = None,
    progress_every: float = 0.5,
    progress: Progress | None = None,
) -> tuple[list[EpisodeRecord], Progress]:
    """Run ``specs`` with at most ``concurrency`` in flight; records in completion order.
    ``progress``: counts to keep up to date (a caller that reports them elsewhere, e.g.
    a Ray shard); by default new ones over ``specs``."""
    stop = stop or StopRequest()
    progress = progress if progress is not None else Progress(total=len(specs))
    stop.in_flight = lambda: progress.running
    queue = deque(specs)
    records: list[EpisodeRecord] = []
    log = get_logger(component="scheduler")

    async def worker() -> None:
        while queue and stop.admitting:
            spec = queue.popleft()
            agent, user = make_participants(spec)
            progress.running += 1
            try:
                record = await run_episode(setup, spec, agent, user, sink, progress.counters)
            finally:
                progress.running -= 1
            records.append(record)
            progress.record(record)
            # In-process participants never suspend, so without this a worker would run
            # the whole queue in one stretch and a stop signal would wait for its end.
            await asyncio.sleep(0)

    async def report() -> None:
        tty = progress_stream is not None and progress_stream.isatty()
        while True:
            await asyncio.sleep(progress_every if tty else max(progress_every, 5.0))
            line = progress.render(time.monotonic())
            if tty:
                progress_stream.write("\r" + line + "\x1b[K")  # type: ignore[union-attr]
                progress_stream.flush()  # type: ignore[union-attr]
            else:
                log.info("progress", status=line)

    loop = asyncio.get_running_loop()
    installed = install_stop_signals(loop, stop)
    try:
        # A second stop request cancels the scope: the group cancels every worker and the
        # reporter and waits for them; the scope then ends the block as a normal return.
        async with stop.cancel_scope(), asyncio.TaskGroup() as group:
            reporter = group.create_task(report())
            workers = [group.create_task(worker()) for _ in range(max(1, concurrency))]
            await asyncio.wait(workers)  # (a worker's error is the group's to raise)
            reporter.cancel()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    # (A worker that dies of a bug fails the task group, which re-raises it: never silent.)
    if progress_stream is not None and progress_stream.isatty():
        progress_stream.write("\r" + progress.render(time.monotonic()) + "\x1b[K\n")
    return records, progress


def install_stop_signals(loop: asyncio.AbstractEventLoop, stop: StopRequest) -> list[int]:
    if sys.platform == "win32":
        return []
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop, sig)
        except (RuntimeError, ValueError):  # not the main thread: leave signals alone
            continue
        installed.append(sig)
    return installed
