from __future__ import annotations

import itertools
import random
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from writ_async.errors import MalformedResponse
from writ_async.llm.sse import Event, SSEParser


def parse(pieces: Iterable[bytes], **kw: int) -> list[Event]:
    parser = SSEParser(**kw)
    events: list[Event] = []
    for piece in pieces:
        events += parser.feed(piece)
    events += parser.finish()
    return events


def random_pieces(data: bytes, seed: int, max_size: int) -> list[bytes]:
    rng = random.Random(seed)
    pieces = []
    pos = 0
    while pos < len(data):
        size = rng.randint(1, max_size)
        pieces.append(data[pos:pos + size])
        pos += size
    return pieces


# Every rule at once: BOM, comments, every line ending (with CRLF pairs that reads will
# split), event/id/retry fields, a field without colon, the optional space, multi-line
# data, an event without data, unknown fields, and multi-byte UTF-8 to split mid-character.
RICH = (
    "\ufeff"
    ": ping\n"
    "data: first\n\n"
    "event: update\r\n"
    "id: 7\r\n"
    "data: {\"a\": 1}\r\n"
    "\r\n"
    "data:no space\r"
    "data:  two spaces\r"
    "\r"
    "data\n"
    "\n"
    "retry: 1500\n"
    "event: lonely\n"
    "id\n"
    "\n"
    "data: héllo ✓ 😀\r\n"
    "unknown: field\n"
    "id: a\0b\n"
    "data: x\n"
    "\n"
    ":\r\n"
    "data: last\r\n"
    "\r\n"
).encode()

RICH_EVENTS = [
    Event(data="first"),
    Event(data='{"a": 1}', event="update", id="7"),
    Event(data="no space\n two spaces", id="7"),
    Event(data="", id="7"),
    Event(data="héllo ✓ 😀\nx", id=""),
    Event(data="last", id=""),
]


def test_rich_stream_all_at_once() -> None:
    parser = SSEParser()
    assert parser.feed(RICH) == RICH_EVENTS
    assert parser.finish() == []
    assert parser.retry == 1500
    assert parser.last_event_id == ""
    assert parser.discarded_bytes == 0


def test_rich_stream_in_one_byte_pieces() -> None:
    assert parse(RICH[i:i + 1] for i in range(len(RICH))) == RICH_EVENTS


def test_rich_stream_split_at_every_position() -> None:
    for i in range(len(RICH) + 1):
        assert parse([RICH[:i], RICH[i:]]) == RICH_EVENTS, i


def test_rich_stream_split_at_every_pair_of_positions() -> None:
    for i in range(len(RICH) + 1):
        for j in range(i, len(RICH) + 1):
            assert parse([RICH[:i], RICH[i:j], RICH[j:]]) == RICH_EVENTS, (i, j)


@given(st.lists(st.integers(0, len(RICH)), max_size=20))
def test_rich_stream_any_splits(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(RICH)]
    assert parse(RICH[a:b] for a, b in itertools.pairwise(bounds)) == RICH_EVENTS


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_each_line_ending(ending: str) -> None:
    text = ending.join(["event: e", "data: a", "data: b", "", "data: c", "", ""])
    assert parse([text.encode()]) == [Event(data="a\nb", event="e"), Event(data="c")]


def test_crlf_split_between_cr_and_lf_is_one_line_ending() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\n") == []  # the LF completes the CRLF: no blank line yet
    assert parser.feed(b"\r") == [Event(data="a")]
    assert parser.feed(b"\ndata: b\r") == []
    assert parser.feed(b"\r") == [Event(data="b")]  # CR CR: a line end, then a blank line


def test_empty_reads_change_nothing() -> None:
    parser = SSEParser()
    assert parser.feed(b"") == []
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"") == []
    assert parser.feed(b"\n\n") == [Event(data="a")]


def test_several_events_in_one_read() -> None:
    events = parse([b"".join(b"data: %d\n\n" % i for i in range(100))])
    assert [e.data for e in events] == [str(i) for i in range(100)]


def test_comments_and_keepalives_dispatch_nothing() -> None:
    assert parse([b": ping\n\n: ping\n\n:\n\n"]) == []


def test_event_without_data_is_not_dispatched_and_resets_its_type() -> None:
    assert parse([b"event: nothing\n\ndata: x\n\n"]) == [Event(data="x")]


def test_empty_data_line_dispatches_empty_data() -> None:
    assert parse([b"data:\n\ndata\n\n"]) == [Event(data=""), Event(data="")]


def test_multiline_data_keeps_empty_lines() -> None:
    assert parse([b"data: a\ndata:\ndata: b\n\n"]) == [Event(data="a\n\nb")]


def test_only_one_space_after_colon_is_dropped() -> None:
    assert parse([b"data:   x \n\n"]) == [Event(data="  x ")]


def test_empty_event_field_means_message() -> None:
    assert parse([b"event:\ndata: x\n\n"]) == [Event(data="x")]


def test_field_names_are_case_sensitive() -> None:
    assert parse([b"Data: x\n\n"]) == []


def test_id_persists_changes_and_resets() -> None:
    events = parse([b"id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\nid:\ndata: d\n\n"])
    assert [e.id for e in events] == ["1", "1", "2", ""]


def test_id_with_nul_is_ignored() -> None:
    assert parse([b"id: 1\n\nid: 2\x003\ndata: a\n\n"]) == [Event(data="a", id="1")]


@pytest.mark.parametrize(("line", "retry"), [
    (b"retry: 3000", 3000), (b"retry: 3s", None), (b"retry:", None), (b"retry: -1", None),
])
def test_retry_takes_only_digits(line: bytes, retry: int | None) -> None:
    parser = SSEParser()
    parser.feed(line + b"\n\n")
    assert parser.retry == retry


def test_bom_is_dropped_only_at_stream_start() -> None:
    bom = "\ufeff".encode()
    assert parse([bom + b"data: a\n\n"]) == [Event(data="a")]
    assert parse([bom[:1], bom[1:2], bom[2:], b"data: a\n\n"]) == [Event(data="a")]
    # A second BOM is part of the first line's field name, so that line is unknown.
    assert parse([bom + bom + b"data: a\n\ndata: b\n\n"]) == [Event(data="b")]
    assert parse([b"data: " + bom + b"a\n\n"]) == [Event(data="\ufeffa")]


def test_invalid_utf8_becomes_replacement_character() -> None:
    assert parse([b"data: a\xffb\n\n"]) == [Event(data="a\ufffdb")]


def test_multibyte_character_split_across_reads() -> None:
    text = "data: 😀é\n\n".encode()
    for i in range(len(text) + 1):
        assert parse([text[:i], text[i:]]) == [Event(data="😀é")]


# -- end of stream -----------------------------------------------------------------------


def test_finish_dispatches_an_event_whose_lines_ended_but_no_blank_line_came() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: {"done": false}\n') == []
    assert parser.finish() == [Event(data='{"done": false}')]
    assert parser.discarded_bytes == 0


def test_finish_accepts_a_trailing_lone_cr_as_line_end() -> None:
    assert parse([b"data: a\r"]) == [Event(data="a")]


def test_finish_discards_an_unterminated_last_line() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: a\n\ndata: {"cut') == [Event(data="a")]
    assert parser.finish() == []
    assert parser.discarded_bytes == len(b'data: {"cut')


def test_finish_discards_partial_line_but_keeps_complete_lines_of_the_event() -> None:
    parser = SSEParser()
    parser.feed(b"data: kept\ndata: cu")
    assert parser.finish() == [Event(data="kept")]
    assert parser.discarded_bytes == len(b"data: cu")


def test_finish_twice_and_feed_after_finish() -> None:
    parser = SSEParser()
    parser.feed(b"data: a\n")
    assert parser.finish() == [Event(data="a")]
    assert parser.finish() == []
    with pytest.raises(RuntimeError):
        parser.feed(b"data: b\n\n")


def test_empty_stream() -> None:
    assert parse([]) == []
    assert parse([b""]) == []


# -- large events and the size bound --------------------------------------------------------


def big_event(size: int) -> tuple[bytes, str]:
    rng = random.Random(size)
    # Multi-byte characters too, so random cuts land inside them.
    alphabet = "abcdefghij{}\":,é✓😀"
    payload = "".join(rng.choices(alphabet, k=size))  # at least `size` bytes
    stream = (": ping\n\ndata: " + payload + "\r\ndata: tail\r\n\r\ndata: after\n\n").encode()
    return stream, payload


BIG_200K, BIG_200K_PAYLOAD = big_event(200 * 1024)
BIG_4M, BIG_4M_PAYLOAD = big_event(4 * 1024 * 1024)


def test_big_event_expected() -> None:
    assert len(BIG_200K) > 200 * 1024
    assert len(BIG_4M) > 4 * 1024 * 1024
    expected = [Event(data=BIG_200K_PAYLOAD + "\ntail"), Event(data="after")]
    assert parse([BIG_200K]) == expected


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from([7, 100, 4096, 65536]))
def test_200k_event_in_random_pieces(seed: int, max_size: int) -> None:
    expected = [Event(data=BIG_200K_PAYLOAD + "\ntail"), Event(data="after")]
    assert parse(random_pieces(BIG_200K, seed, max_size)) == expected


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from([1024, 16384, 262144]))
def test_4m_event_in_random_pieces(seed: int, max_size: int) -> None:
    # With 1 KiB reads that is thousands of feeds of a growing 4 MiB line: a parser that
    # re-scanned or re-joined its buffer on every read would take minutes here.
    expected = [Event(data=BIG_4M_PAYLOAD + "\ntail"), Event(data="after")]
    assert parse(random_pieces(BIG_4M, seed, max_size)) == expected


def test_many_small_events_in_one_big_read() -> None:
    stream = b"data: x\n\n" * 200_000
    parser = SSEParser()
    assert len(parser.feed(stream)) == 200_000


def test_event_at_the_bound_passes() -> None:
    # The bound counts each data value plus its joining newline.
    assert parse([b"data: " + b"x" * 9 + b"\n\n"], max_event_bytes=10) == [Event(data="x" * 9)]


def test_unterminated_line_beyond_the_bound_raises_while_feeding() -> None:
    parser = SSEParser(max_event_bytes=1000)
    parser.feed(b"data: ")
    with pytest.raises(MalformedResponse) as info:
        for _ in range(100):
            parser.feed(b"x" * 100)
    assert info.value.reason == "event_too_large"
    with pytest.raises(RuntimeError):
        parser.feed(b"\n\n")


def test_many_data_lines_beyond_the_bound_raise() -> None:
    parser = SSEParser(max_event_bytes=1000, endpoint="http://m:8000")
    with pytest.raises(MalformedResponse) as info:
        parser.feed(b"data: 0123456789\n" * 200)
    assert info.value.reason == "event_too_large"
    assert info.value.endpoint == "http://m:8000"


def test_the_bound_is_per_event() -> None:
    events = parse([b"data: 0123456789\n\n" * 1000], max_event_bytes=100)
    assert len(events) == 1000


def test_bound_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SSEParser(max_event_bytes=0)


def test_repr_shows_counters() -> None:
    parser = SSEParser()
    parser.feed(b"data: a\n\ndata: b")
    assert repr(parser) == "<SSEParser events=1 buffered=7 pending_data=0 finished=False>"
