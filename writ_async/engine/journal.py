"""The run's journal: an append-only file of framed, checksummed, msgspec-encoded events.

Every event of every episode is appended as it happens, so that a stopped or killed run
can be resumed (finished episodes kept, unfinished ones started again) and a finished
episode replayed. It is data, not a log (operator logs live in ``logs``).

Framing: ``[u32 LE payload length][u32 LE zlib.crc32(payload)][msgpack payload]``. Records
are only appended, so a crash can only tear the *last* one. Reading, the first bad record
(short header, length past the end, CRC mismatch, empty) is a **torn tail** if no intact
record starts anywhere after it: it is dropped and counted in ``torn_tail_bytes``. If an
intact record follows, the damage is mid-file and ``JournalCorrupt`` names its offset, since
dropping it would silently lose what follows. An intact record whose payload does not
decode is not a torn write (its checksum holds): always ``JournalCorrupt``. Readers that
serve what is left (``writ show``, ``writ replay``, ``writ journal salvage``) pass
``stop_at_corruption=True``: the read ends at the bad record, whose error is kept in
``JournalContents.corrupt``, and everything before it is served.

Durability: ``append`` only encodes into a buffer. ``commit()``, called right after an
``EpisodeFinished`` is appended, hands the buffer to the OS with ``os.write``: **an episode
counts as finished once ``commit()`` has returned**, and from then on a SIGKILL cannot lose
it. Power loss needs fsync, chosen per run:

* ``"never"``: the OS writes back when it likes (~30 s on Linux); a power cut can lose
  recent finishes, which a resume runs again.
* ``"finish"``: fsync at every commit; nothing committed is ever lost, but each finish
  blocks the event loop for one fsync (measured ~0.4 ms on this machine's ext4 volume;
  several ms on disks or network volumes), capping a run at a few thousand finishes/s.
* ``"interval"`` (default): fsync at a commit once ``fsync_interval`` seconds have passed
  since the last one; a power cut loses at most that window, at one fsync per interval.

Writes are synchronous on purpose: a commit is one ``os.write`` of the few KB an episode
produced since the last flush (measured ~5 us for 4 KB, ~15 us for a 22 KB episode of 12
tool turns), far below one model call and cheaper than a hand-off to a thread; only fsync
can block for long, hence the policy. One event loop owns a writer (no thread safety); an
exclusive ``flock`` keeps a second process from appending to the same journal.
"""

from __future__ import annotations

import fcntl
import gc
import os
import struct
import time
import zlib
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec

from writ_async.conversation.episode import Termination
from writ_async.conversation.messages import Message
from writ_async.conversation.records import EpisodeRecord
from writ_async.errors import JournalBusy, JournalCorrupt

# -- events ------------------------------------------------------------------------------
# Schemas evolve only by appending fields with defaults: old journals must keep decoding.


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    episode_id: str
    attempt: int  # 0 for the first run of an episode; a restart after a crash is +1


class EpisodeStarted(_Event, frozen=True, kw_only=True, tag="started"):
    task_id: str
    trial: int
    seed: int


class MessageAdded(_Event, frozen=True, kw_only=True, tag="message"):
    message: Message


class ModelCalled(_Event, frozen=True, kw_only=True, tag="model_called"):
    role: str
    endpoint: str
    prompt_tokens: int
    completion_tokens: int
    latency: float
    ttft: float | None
    attempts: int
    # The MalformedResponse reason of an answer kept as the model's output anyway
    # (cut at max_tokens, tool arguments that are not JSON); None for a clean answer.
    malformed: str | None = None


class ToolExecuted(_Event, frozen=True, kw_only=True, tag="tool"):
    call_id: str
    name: str
    output: str
    error: bool
    db_hash: str | None = None  # the overlay's hash after a write, for replay to check


class Snapshot(_Event, frozen=True, kw_only=True, tag="snapshot"):
    delta: bytes  # Overlay.encode_delta()


class EpisodeFinished(_Event, frozen=True, kw_only=True, tag="finished"):
    record: EpisodeRecord


Event = EpisodeStarted | MessageAdded | ModelCalled | ToolExecuted | Snapshot | EpisodeFinished

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Event)
# An episode that ended this way produced nothing to learn from: ``--resume`` runs it again
# and the new attempt's record replaces it.
RERUN_TERMINATION = Termination.INFRASTRUCTURE_ERROR.value

_HEADER = struct.Struct("<II")
HEADER_SIZE = _HEADER.size
_MAX_PAYLOAD = 0xFFFFFFFF

FsyncPolicy = Literal["never", "finish", "interval"]


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def decode_event(payload: bytes | memoryview) -> Event:
    return _decoder.decode(payload)


# -- writing -----------------------------------------------------------------------------


class JournalStatistics(msgspec.Struct, frozen=True, kw_only=True):
    records: int
    bytes_written: int
    buffered_bytes: int
    flushes: int
    fsyncs: int


class JournalWriter:
    """Appends events to a journal file; see the module docstring for the durability rule.

    A resumed run must call ``truncate_torn_tail`` first (``RunDir.open_journal`` does),
    or new records would follow a torn one and read back as mid-file corruption.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        fsync: FsyncPolicy = "interval",
        fsync_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        flush_threshold: int = 1 << 20,
    ) -> None:
        self.path = Path(path)
        self._policy: FsyncPolicy = fsync
        self._interval = fsync_interval
        self._clock = clock
        self._threshold = flush_threshold  # bounds memory if a commit is long in coming
        self._buffer = bytearray()
        self._records = self._written = self._flushes = self._fsyncs = 0
        self._last_sync = clock()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JournalBusy(self.path) from None
        self._fd: int | None = fd

    def append(self, event: Event) -> None:
        """Frame ``event`` into the buffer; nothing reaches the file until a flush."""
        buf = self._buffer
        start = len(buf)
        _encoder.encode_into(event, buf, start + HEADER_SIZE)  # leaves room for the header
        length = len(buf) - start - HEADER_SIZE
        if length > _MAX_PAYLOAD:
            del buf[start:]
            raise ValueError(f"event of {length} bytes does not fit a journal record")
        _HEADER.pack_into(buf, start, length, zlib.crc32(memoryview(buf)[start + HEADER_SIZE:]))
        self._records += 1
        if len(buf) >= self._threshold:
            self.flush()

    def flush(self) -> None:
        """Hand the buffered records to the OS (survives SIGKILL, not power loss)."""
        if self._fd is None:
            raise ValueError(f"journal {self.path} is closed")
        if not self._buffer:
            return
        data, self._buffer = self._buffer, bytearray()
        view = memoryview(data)
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, view[done:])
        finally:
            if done < len(data):
                # A failed write (disk full) may have left part of a record in the file;
                # keeping the rest means a later flush completes that record.
                self._buffer[:0] = view[done:]
            self._written += done
            self._flushes += 1

    def sync(self) -> None:
        """Flush, then fsync: what was appended survives power loss."""
        self.flush()
        assert self._fd is not None  # flush raised otherwise
        os.fsync(self._fd)
        self._fsyncs += 1
        self._last_sync = self._clock()

    def commit(self) -> None:
        """Make an appended ``EpisodeFinished`` count: flush, and fsync per the policy."""
        if self._policy == "finish" or (
            self._policy == "interval" and self._clock() - self._last_sync >= self._interval
        ):
            self.sync()
        else:
            self.flush()

    def close(self) -> None:
        if self._fd is None:
            return
        try:
            if self._policy == "never":
                self.flush()
            else:
                self.sync()
        finally:
            os.close(self._fd)  # also drops the flock
            self._fd = None

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def statistics(self) -> JournalStatistics:
        return JournalStatistics(records=self._records, bytes_written=self._written,
                                 buffered_bytes=len(self._buffer), flushes=self._flushes,
                                 fsyncs=self._fsyncs)

    def __repr__(self) -> str:
        state = "closed" if self._fd is None else f"fsync={self._policy}"
        return (f"<JournalWriter {self.path} {state} records={self._records} "
                f"written={self._written} buffered={len(self._buffer)}>")


# -- reading -----------------------------------------------------------------------------


def _frame_problem(buf: memoryview, offset: int) -> str | None:
    """What is wrong with the record at ``offset``, or None if it is intact."""
    room = len(buf) - offset
    if room < HEADER_SIZE:
        return f"short header ({room} of {HEADER_SIZE} bytes)"
    length, crc = _HEADER.unpack_from(buf, offset)
    if length == 0:
        return "empty record"  # no event encodes to nothing; zero-filled tails land here
    if length > room - HEADER_SIZE:
        return f"length {length} runs past the end of the file"
    start = offset + HEADER_SIZE
    if zlib.crc32(buf[start:start + length]) != crc:
        return "CRC mismatch"
    return None


def _torn_or_raise(buf: memoryview, offset: int, path: Path) -> None:
    """At a bad record: return if it is a torn tail, raise if intact records follow it.

    The byte-wise resync only runs on this rare path; it stops at the first intact
    record, which after a damaged middle record is at most one record further, and in a
    torn tail scans only the tail.
    """
    problem = _frame_problem(buf, offset) or "bad record"
    size = len(buf)
    unpack = _HEADER.unpack_from
    for pos in range(offset + 1, size - HEADER_SIZE + 1):
        length, crc = unpack(buf, pos)
        if 0 < length <= size - pos - HEADER_SIZE:
            start = pos + HEADER_SIZE
            if zlib.crc32(buf[start:start + length]) == crc:
                raise JournalCorrupt(path, offset, f"{problem}, with intact records after it")


def _intact_prefix(buf: memoryview, path: Path) -> int:
    """The length of the run of intact records from the start (framing and CRC only)."""
    offset, size = 0, len(buf)
    while offset < size:
        if _frame_problem(buf, offset) is not None:
            _torn_or_raise(buf, offset, path)
            break
        offset += HEADER_SIZE + _HEADER.unpack_from(buf, offset)[0]
    return offset


def _decode_at(buf: memoryview, offset: int, length: int, path: Path) -> Event:
    start = offset + HEADER_SIZE
    try:
        return _decoder.decode(buf[start:start + length])
    except msgspec.DecodeError as exc:  # ValidationError included: a record of another shape
        raise JournalCorrupt(path, offset, f"undecodable record: {exc}") from None


class JournalContents:
    """What a journal holds: finished records, unfinished episodes, and where events are."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.finished: dict[str, EpisodeRecord] = {}
        self.unfinished: set[str] = set()
        self.attempts: dict[str, int] = {}  # highest attempt seen per episode
        self.finished_attempt: dict[str, int] = {}  # the attempt whose record stands
        self.counts: dict[str, int] = {}  # records per event kind
        self.records = 0
        self.duplicate_finishes = 0  # EpisodeFinished for an already finished episode
        self.valid_bytes = 0  # the intact prefix; a resumed run appends from here
        self.torn_tail_bytes = 0
        # Read with stop_at_corruption: the mid-file damage that ended the read (at
        # byte ``valid_bytes``), and how many bytes from there on were not read.
        self.corrupt: JournalCorrupt | None = None
        self.corrupt_bytes = 0
        # Offsets and lengths, not events: 10,000 episodes' events would cost far more
        # memory decoded than the few that a replay asks for.
        self._spans: dict[str, array[int]] = {}

    def events(self, episode_id: str, attempt: int | None = None) -> list[Event]:
        """The episode's events in journal order (of one attempt, if given), re-read."""
        spans = self._spans.get(episode_id)
        if spans is None:
            return []
        out: list[Event] = []
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            for i in range(0, len(spans), 2):
                offset, length = spans[i], spans[i + 1]
                buf = memoryview(os.pread(fd, HEADER_SIZE + length, offset))
                if _frame_problem(buf, 0) is not None:
                    raise JournalCorrupt(self.path, offset, "record changed since it was read")
                event = _decode_at(buf, 0, length, self.path)
                if attempt is None or event.attempt == attempt:
                    out.append(event)
        finally:
            os.close(fd)
        return out

    def next_attempt(self, episode_id: str) -> int:
        """The attempt number for (re)starting an episode."""
        last = self.attempts.get(episode_id)
        return 0 if last is None else last + 1

    def __repr__(self) -> str:
        return (f"<JournalContents {self.path} records={self.records} "
                f"finished={len(self.finished)} unfinished={len(self.unfinished)} "
                f"torn_tail_bytes={self.torn_tail_bytes}>")


def read_journal(path: Path | str, *, stop_at_corruption: bool = False) -> JournalContents:
    """Read and check every record; a torn tail is dropped, other damage is raised.

    With ``stop_at_corruption``, mid-file damage ends the read instead: the records
    before it are returned, with the error in ``corrupt`` (nothing after it is used,
    since an episode's events on both sides of a hole cannot be trusted as a whole).
    """
    # The finished records kept here are many small objects and no cycles: the cyclic
    # collector would rescan them again and again for nothing (about a third of the time).
    paused = gc.isenabled()
    gc.disable()
    try:
        contents = JournalContents(Path(path))
        try:
            _read_journal(contents)
        except JournalCorrupt as corrupt:
            if not stop_at_corruption:
                raise
            _end_at_corruption(contents, corrupt)
        return contents
    finally:
        if paused:
            gc.enable()


def _end_at_corruption(contents: JournalContents, corrupt: JournalCorrupt) -> None:
    """Close ``contents`` as a read that ended at the corrupt record: every record
    before it was taken in (the reader raises before a bad record changes anything, and
    its ``finally`` has counted them)."""
    contents.corrupt = corrupt
    contents.valid_bytes = corrupt.offset
    contents.torn_tail_bytes = 0
    contents.corrupt_bytes = contents.path.stat().st_size - corrupt.offset


def _read_journal(contents: JournalContents) -> None:
    path = contents.path
    data = path.read_bytes()  # one read; payloads are decoded from zero-copy slices
    buf = memoryview(data)
    size = len(buf)
    unpack, crc32 = _HEADER.unpack_from, zlib.crc32
    spans, finished, attempts = contents._spans, contents.finished, contents.attempts
    finished_attempt = contents.finished_attempt
    kinds: dict[type[msgspec.Struct], int] = {}
    offset = 0
    try:
        while offset < size:  # the framing checks of _frame_problem, inlined: this loop is hot
            start = offset + HEADER_SIZE
            if start > size:
                _torn_or_raise(buf, offset, path)
                break
            length, crc = unpack(buf, offset)
            end = start + length
            if length == 0 or end > size or crc32(buf[start:end]) != crc:
                _torn_or_raise(buf, offset, path)
                break
            event = _decode_at(buf, offset, length, path)
            eid = event.episode_id
            span = spans.get(eid)
            if span is None:
                span = spans[eid] = array("q")
            span.append(offset)
            span.append(length)
            if event.attempt > attempts.get(eid, -1):
                attempts[eid] = event.attempt
            kind = type(event)
            kinds[kind] = kinds.get(kind, 0) + 1
            if isinstance(event, EpisodeFinished):
                prior = finished.get(eid)
                if prior is None or (prior.termination == RERUN_TERMINATION
                                     and event.attempt > finished_attempt[eid]):
                    # A later attempt of an episode that ended on the infrastructure (re-run
                    # by --resume) stands in for it; any other second finish is a scheduler
                    # bug, and the first one stands.
                    finished[eid] = event.record
                    finished_attempt[eid] = event.attempt
                else:
                    contents.duplicate_finishes += 1
            offset = end
    finally:
        # Also when a corrupt record ends the read: what came before it stands.
        contents.records = sum(kinds.values())
        contents.counts = {str(k.__struct_config__.tag): n for k, n in kinds.items()}
        contents.unfinished = set(spans) - set(finished)
        contents.valid_bytes = offset
    contents.torn_tail_bytes = size - offset


def truncate_torn_tail(path: Path | str) -> int:
    """Cut a torn last record off, so appends follow the last good one; bytes removed.

    Checks framing and checksums only (no decoding); mid-file damage still raises.
    """
    path = Path(path)
    try:
        f = open(path, "r+b")  # noqa: SIM115 - closed below, after the lock is checked
    except FileNotFoundError:
        return 0
    with f:
        try:
            # Cutting a file another process is appending to would destroy its records.
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JournalBusy(path) from None
        data = f.read()
        end = _intact_prefix(memoryview(data), path)
        torn = len(data) - end
        if torn:
            f.truncate(end)
            os.fsync(f.fileno())  # the cut must be on disk before any new record is
    return torn
