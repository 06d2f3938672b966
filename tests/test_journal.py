"""The journal: framing, torn tails versus corruption, durability across a real SIGKILL."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import zlib
from pathlib import Path

import msgspec
import pytest

from writ_async.conversation.messages import (
    AssistantMessage,
    Message,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from writ_async.conversation.records import EpisodeRecord, RewardInfo, episode_id
from writ_async.engine import journal
from writ_async.engine.journal import (
    HEADER_SIZE,
    EpisodeFinished,
    EpisodeStarted,
    Event,
    JournalWriter,
    MessageAdded,
    ModelCalled,
    Snapshot,
    ToolExecuted,
    decode_event,
    encode_event,
    read_journal,
    truncate_torn_tail,
)
from writ_async.errors import JournalBusy, JournalCorrupt

REPO = Path(__file__).resolve().parents[1]


def make_events(i: int, attempt: int = 0, *, finish: bool = True) -> list[Event]:
    """A deterministic episode ``i`` with every event kind; its size varies with ``i``."""
    task, trial = f"task_{i % 7}", i
    eid = episode_id(task, trial)
    ids = {"episode_id": eid, "attempt": attempt}
    messages: list[Message] = [AssistantMessage(content="Hi! How can I help you today?")]
    events: list[Event] = [EpisodeStarted(**ids, task_id=task, trial=trial, seed=i * 7919),
                           MessageAdded(**ids, message=messages[0])]
    for turn in range(1 + i % 4):
        call = ToolCall(id=f"call_{i}_{turn}", name="update_reservation",
                        arguments={"reservation_id": f"R{i}", "seats": [turn, "12A"]})
        said: list[Message] = [
            UserMessage(content=f"Change réservation {i} — turn {turn} ✈", turn_idx=turn),
            AssistantMessage(content=None, tool_calls=(call,), turn_idx=turn),
            ToolMessage(id=call.id, content='{"status": "ok"}' * (1 + i % 5), turn_idx=turn),
        ]
        messages += said
        events += [MessageAdded(**ids, message=m) for m in said[:2]]
        events.append(ModelCalled(**ids, role="agent", endpoint="mock", prompt_tokens=900 + i,
                                  completion_tokens=17, latency=0.25, attempts=1,
                                  ttft=None if turn % 2 else 0.05))
        events.append(ToolExecuted(**ids, call_id=call.id, name=call.name,
                                   output=said[2].content, error=turn == 2,
                                   db_hash=None if turn == 2 else f"{i:064x}"))
        events.append(MessageAdded(**ids, message=said[2]))
    events.append(Snapshot(**ids, delta=b'{"reservations": {"R%d": {}}}' % i))
    if finish:
        record = EpisodeRecord(episode_id=eid, task_id=task, trial=trial, seed=i * 7919,
                               domain="airline", termination="user_stop", messages=messages,
                               final_db_hash=f"{i:064x}",
                               reward_info=RewardInfo(reward=1.0, reward_basis=["DB"]))
        events.append(EpisodeFinished(**ids, record=record))
    return events


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "little") + zlib.crc32(payload).to_bytes(4, "little") + payload


def write(path: Path, events: list[Event]) -> None:
    with JournalWriter(path, fsync="never") as writer:
        for event in events:
            writer.append(event)


def test_every_kind_round_trips_through_the_codec_and_the_file(tmp_path: Path) -> None:
    events = make_events(3)
    assert {type(e) for e in events} == {EpisodeStarted, MessageAdded, ModelCalled,
                                         ToolExecuted, Snapshot, EpisodeFinished}
    for event in events:
        assert decode_event(encode_event(event)) == event
    write(tmp_path / "j.bin", events)
    contents = read_journal(tmp_path / "j.bin")
    eid = events[0].episode_id
    assert contents.events(eid) == events
    assert contents.finished == {eid: events[-1].record}  # type: ignore[union-attr]
    assert contents.unfinished == set()
    assert contents.records == len(events) and contents.torn_tail_bytes == 0
    assert contents.counts["tool"] == 4 and contents.counts["finished"] == 1
    assert contents.valid_bytes == (tmp_path / "j.bin").stat().st_size


def test_many_episodes_with_restarts(tmp_path: Path) -> None:
    path = tmp_path / "j.bin"
    events: list[Event] = []
    for i in range(300):
        events += make_events(i, finish=i % 3 != 0)
    for i in range(0, 300, 6):  # half of the unfinished ones were restarted and finished
        events += make_events(i, attempt=1)
    write(path, events)
    contents = read_journal(path)
    assert contents.records == len(events)
    assert len(contents.finished) == 250
    assert contents.unfinished == {make_events(i)[0].episode_id for i in range(3, 300, 6)}
    eid = make_events(6)[0].episode_id
    assert contents.events(eid, attempt=1) == make_events(6, attempt=1)
    assert contents.events(eid, attempt=0) == make_events(6, finish=False)
    assert contents.next_attempt(eid) == 2
    assert contents.next_attempt("never:seen") == 0
    assert contents.events("never:seen") == []
    assert contents.finished[eid] == make_events(6, attempt=1)[-1].record  # type: ignore[union-attr]


def test_an_episode_finished_twice_keeps_the_first_and_is_counted(tmp_path: Path) -> None:
    first, again = make_events(1), make_events(1, attempt=1)
    write(tmp_path / "j.bin", first + again)
    contents = read_journal(tmp_path / "j.bin")
    assert contents.duplicate_finishes == 1
    assert contents.finished[first[0].episode_id] == first[-1].record  # type: ignore[union-attr]


def test_a_cut_anywhere_in_the_last_record_drops_exactly_that_record(tmp_path: Path) -> None:
    before = make_events(1) + make_events(2, finish=False)
    last = make_events(2)[-1]
    prefix_path = tmp_path / "prefix.bin"
    write(prefix_path, before)
    prefix = prefix_path.read_bytes()
    record = frame(encode_event(last))
    path = tmp_path / "j.bin"
    for cut in range(len(record)):  # bytes of the last record that reached the file
        path.write_bytes(prefix + record[:cut])
        contents = read_journal(path)
        assert contents.records == len(before)
        assert contents.torn_tail_bytes == cut and contents.valid_bytes == len(prefix)
        assert last.episode_id in contents.unfinished
        assert truncate_torn_tail(path) == cut
        assert path.read_bytes() == prefix
        write(path, [last])  # a resumed run appends after the last good record
        assert read_journal(path).finished[last.episode_id] == last.record


@pytest.mark.parametrize("tail", ["crc", "zeros", "zero_header"])
def test_a_damaged_record_at_the_very_end_is_a_torn_tail(tmp_path: Path, tail: str) -> None:
    path = tmp_path / "j.bin"
    write(path, make_events(1))
    good = path.read_bytes()
    record = bytearray(frame(encode_event(make_events(2)[0])))
    if tail == "crc":
        record[-1] ^= 0x01
    damaged = {"crc": bytes(record), "zeros": bytes(4096), "zero_header": bytes(8)}[tail]
    path.write_bytes(good + damaged)  # zeros: what a power cut can leave past the data
    contents = read_journal(path)
    assert contents.records == len(make_events(1))
    assert contents.torn_tail_bytes == len(damaged)
    assert truncate_torn_tail(path) == len(damaged)
    assert path.read_bytes() == good


def test_a_flipped_byte_in_a_middle_record_is_corruption_at_its_offset(tmp_path: Path) -> None:
    path = tmp_path / "j.bin"
    events = make_events(1)
    write(path, events[:3])
    offset = path.stat().st_size
    write(path, events[3:])
    pristine = path.read_bytes()
    length = int.from_bytes(pristine[offset:offset + 4], "little")
    for pos in range(offset, offset + HEADER_SIZE + length):
        damaged = bytearray(pristine)
        damaged[pos] ^= 0x40
        path.write_bytes(damaged)
        with pytest.raises(JournalCorrupt) as caught:
            read_journal(path)
        assert caught.value.offset == offset, pos
        with pytest.raises(JournalCorrupt):
            truncate_torn_tail(path)
        assert path.read_bytes() == damaged  # nothing is cut when the damage is not a tail


@pytest.mark.parametrize("payload", [b"\xc1", msgspec.msgpack.encode({"kind": "nope"}),
                                     msgspec.msgpack.encode({"kind": "started"})])
@pytest.mark.parametrize("where", ["middle", "end"])
def test_an_intact_but_undecodable_record_is_corruption(tmp_path: Path, payload: bytes,
                                                        where: str) -> None:
    path = tmp_path / "j.bin"
    write(path, make_events(1)[:2])
    offset = path.stat().st_size
    with open(path, "ab") as f:
        f.write(frame(payload))
    if where == "middle":
        write(path, make_events(2)[:2])
    with pytest.raises(JournalCorrupt, match="undecodable") as caught:
        read_journal(path)
    assert caught.value.offset == offset
    assert str(path) in str(caught.value)


def test_appends_are_buffered_until_a_flush_and_commit_makes_them_durable(
        tmp_path: Path) -> None:
    path = tmp_path / "j.bin"
    events = make_events(5)
    with JournalWriter(path, fsync="never") as writer:
        for event in events:
            writer.append(event)
        assert path.stat().st_size == 0  # no syscall per event
        assert writer.statistics().buffered_bytes > 0
        writer.commit()
        stats = writer.statistics()
        assert stats.buffered_bytes == 0 and stats.records == len(events)
        assert stats.bytes_written == path.stat().st_size and stats.fsyncs == 0
        assert "records=" in repr(writer)
    assert read_journal(path).records == len(events)
    with pytest.raises(ValueError, match="closed"):
        writer.flush()


def test_fsync_policies(tmp_path: Path) -> None:
    now = [0.0]
    counts = {}
    for policy in ("never", "finish", "interval"):
        now[0] = 0.0
        writer = JournalWriter(tmp_path / f"{policy}.bin", fsync=policy, fsync_interval=1.0,
                               clock=lambda: now[0])
        for t in (0.5, 0.9, 1.0, 1.5, 2.2):
            now[0] = t
            writer.append(make_events(1)[0])
            writer.commit()
        counts[policy] = writer.statistics().fsyncs
        writer.close()
    assert counts == {"never": 0, "finish": 5, "interval": 2}  # interval: at 1.0 and 2.2


def test_the_buffer_is_flushed_when_it_grows_past_the_threshold(tmp_path: Path) -> None:
    with JournalWriter(tmp_path / "j.bin", fsync="never", flush_threshold=512) as writer:
        for event in make_events(9):
            writer.append(event)
            assert writer.statistics().buffered_bytes < 512


def test_partial_and_failing_writes_never_tear_a_record(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "j.bin"
    real_write = os.write
    calls = [0]

    def stingy_write(fd: int, data: bytes) -> int:
        calls[0] += 1
        if calls[0] == 5:
            raise OSError(28, "No space left on device")
        return real_write(fd, bytes(data)[:7])

    events = make_events(2)
    writer = JournalWriter(path, fsync="never")
    for event in events:
        writer.append(event)
    monkeypatch.setattr(journal.os, "write", stingy_write)
    with pytest.raises(OSError, match="No space"):
        writer.flush()
    assert path.stat().st_size == 28  # four short writes reached the file...
    assert read_journal(path).torn_tail_bytes == 28
    writer.flush()  # ...and a retry completes the record they started
    monkeypatch.setattr(journal.os, "write", real_write)
    writer.close()
    assert read_journal(path).events(events[0].episode_id) == events


def test_a_second_writer_on_the_same_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.bin"
    with JournalWriter(path):
        with pytest.raises(JournalBusy):
            JournalWriter(path)
        with pytest.raises(JournalBusy):
            truncate_torn_tail(path)
    JournalWriter(path).close()  # the lock goes with the writer


# -- a real crash --------------------------------------------------------------------------

CHILD = """
import sys
sys.path.insert(0, sys.argv[2])
from test_journal import child_main
child_main(sys.argv[1])
"""


def child_main(path: str) -> None:
    """Run episodes forever, reporting each one on stdout once it is committed."""
    # Short writes (as a full disk or a signal can cause) and a small flush threshold let
    # the kill land inside a record and inside an unfinished episode, not only between.
    real_write = os.write
    os.write = lambda fd, data: real_write(fd, data[:97])
    writer = JournalWriter(path, fsync="never", flush_threshold=500)
    i = 0
    while True:
        events = make_events(i)
        for event in events:
            writer.append(event)
        writer.commit()
        sys.stdout.write(events[0].episode_id + "\n")
        sys.stdout.flush()
        i += 1


@pytest.mark.parametrize("seed", range(6))
def test_sigkill_never_loses_a_committed_episode(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "j.bin"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(tmp_path / "stderr", "wb") as err:
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(REPO / "tests")],
                                 stdout=subprocess.PIPE, stderr=err, env=env, cwd=REPO)
        assert child.stdout is not None
        reported: list[str] = []
        for _ in range(rng.randint(20, 200)):
            line = child.stdout.readline().decode()
            assert line, (tmp_path / "stderr").read_text()
            reported.append(line.rstrip("\n"))
        # The child runs ahead while we read; a short random pause before the kill keeps
        # it from always landing right after a report.
        time.sleep(rng.uniform(0, 0.003))
        child.kill()  # SIGKILL, wherever the child happens to be
        rest = child.stdout.read().decode()
        child.stdout.close()
        assert child.wait() == -9
    reported += rest.split("\n")[:-1]  # complete lines only

    contents = read_journal(path)
    assert contents.duplicate_finishes == 0
    expected = {make_events(i)[0].episode_id: make_events(i) for i in range(len(reported) + 5)}
    for eid in reported:
        assert contents.finished[eid] == expected[eid][-1].record  # type: ignore[union-attr]
    for eid in contents.finished.keys() | contents.unfinished:  # nothing misread
        got = contents.events(eid)
        assert got == expected[eid][:len(got)]
    assert set(contents.finished) >= set(reported)
    assert len(contents.unfinished) <= 1

    truncate_torn_tail(path)
    write(path, make_events(10_000))
    resumed = read_journal(path)
    assert resumed.torn_tail_bytes == 0
    assert resumed.records == contents.records + len(make_events(10_000))
