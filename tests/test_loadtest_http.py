"""The load tester's lean HTTP/1.1 client and its SSE fast path, on their edge cases.

The parser is driven directly with every split of a response (a read can end anywhere),
and the whole client runs over loopback against small scripted servers (closes,
resets, stalls, error bodies, 429s, keep-alive and ``Connection: close``) and the real
mock server.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from writ_async.errors import (
    CallTimeout,
    ContextLengthExceeded,
    MalformedResponse,
    PermanentError,
    RateLimited,
    TransientError,
)
from writ_async.llm.client import Timeouts
from writ_async.llm.protocol import ChatRequest, Message
from writ_async.llm.sse import SSEParser
from writ_async.loadtest.client import LoadClient
from writ_async.loadtest.events import FastSSE
from writ_async.loadtest.http import Connection, Origin, Pool
from writ_async.mock.config import MockConfig
from writ_async.mock.server import open_mock_server

REQUEST = ChatRequest(model="", messages=[Message(role="user", content="hello")])

# -- SSE: the fast path gives exactly the full parser's events -----------------------------

COMMON = b"".join(b'data: {"n": %d, "text": "caf\xc3\xa9"}\n\n' % i for i in range(5)) + \
    b"data: [DONE]\n\n"
ODD = [
    b"\xef\xbb\xbf" + COMMON,  # a BOM
    COMMON.replace(b"\n", b"\r\n"),  # CRLF
    b": keep-alive\n\n" + COMMON,  # a comment first
    COMMON[:40] + b"event: error\ndata: {\"x\": 1}\n\n" + COMMON[40:],
    b"data: a\ndata: b\n\n" + COMMON,  # multi-line data
    b"data:no-space\n\n" + COMMON,
    b"id: 7\ndata: x\n\n" + COMMON,
    COMMON + b"data: {\"last\": 1}\n",  # ended without its blank line: still dispatched
    COMMON + b"data: {\"cut",  # an unterminated last line: dropped
    COMMON[:-2] + b"\n\n\n\xef\xbb\xbfdata: mid-stream BOM\n\n",  # not a BOM to drop here
]


def events_of(parser: Any, data: bytes, cuts: list[int]) -> list[Any]:
    out, last = [], 0
    for cut in [*cuts, len(data)]:
        out.extend(parser.feed(data[last:cut]))
        last = cut
    out.extend(parser.finish())
    return out


@pytest.mark.parametrize("stream", [COMMON, *ODD])
def test_fast_sse_matches_the_full_parser_at_every_split(stream: bytes) -> None:
    expected = events_of(SSEParser(), stream, [])
    assert expected
    for cut in range(len(stream) + 1):
        assert events_of(FastSSE(), stream, [cut]) == expected, cut
    rng = random.Random(3)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(stream)), min(6, len(stream) - 1)))
        assert events_of(FastSSE(), stream, cuts) == expected, cuts


def test_fast_sse_stays_fast_on_the_common_shape() -> None:
    parser = FastSSE()
    events_of(parser, COMMON, list(range(1, len(COMMON), 7)))
    assert parser.fast
    parser = FastSSE()
    events_of(parser, ODD[1], [])
    assert not parser.fast


def test_fast_sse_bounds_an_event() -> None:
    parser = FastSSE(max_event_bytes=100)
    with pytest.raises(MalformedResponse) as info:
        parser.feed(b"data: " + b"x" * 200)
    assert info.value.reason == "event_too_large"


# -- the connection's parser, driven directly ----------------------------------------------


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str) -> None:
        return None


class Recorder:
    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.ended = False
        self.error: BaseException | None = None

    def on_head(self, status: int, headers: dict[str, str], now: float) -> None:
        self.status, self.headers = status, headers

    def on_body(self, data: bytes, now: float) -> None:
        self.body += data

    def on_end(self, now: float) -> None:
        self.ended = True

    def on_error(self, error: BaseException) -> None:
        self.error = error


def drive(response: bytes, cuts: list[int], *, close: bool = False) -> tuple[Recorder, Pool,
                                                                              Connection]:
    pool = Pool(Origin("http://127.0.0.1:9/v1"))
    conn = Connection(pool)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    pool._all.add(conn)
    pool._open += 1
    recorder = Recorder()
    conn.start(b"GET / HTTP/1.1\r\n\r\n", recorder)
    last = 0
    for cut in [*cuts, len(response)]:
        if cut > last:
            conn.data_received(response[last:cut])
        last = cut
    if close:
        conn.connection_lost(None)
    return recorder, pool, conn


BODY = b'{"hello": "world", "n": [1, 2, 3]}'
LENGTH = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY), BODY)
CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Thing: a\r\nx-thing: b\r\n\r\n"
           b"5\r\n" + BODY[:5] + b"\r\n" + b"1a;ext=1\r\n" + BODY[5:31] + b"\r\n"
           + b"%x\r\n" % len(BODY[31:]) + BODY[31:] + b"\r\n0\r\nTrailer: x\r\n\r\n")
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n" + LENGTH


@pytest.mark.parametrize("response", [LENGTH, CHUNKED, CONTINUE])
def test_responses_parse_the_same_at_every_split(response: bytes) -> None:
    for a in range(len(response) + 1):
        for b in (a, min(len(response), a + 1), min(len(response), a + 17)):
            recorder, pool, conn = drive(response, sorted({a, b}))
            assert recorder.error is None, (a, b)
            assert (recorder.status, recorder.body, recorder.ended) == (200, BODY, True), (a, b)
            assert pool._idle == [conn]  # kept alive, back in the pool
    recorder, _, _ = drive(CHUNKED, [])
    assert recorder.headers["x-thing"] == "a, b"  # repeated headers are joined


def test_a_body_read_to_the_close_and_connection_close() -> None:
    response = b"HTTP/1.1 200 OK\r\n\r\n" + BODY
    recorder, pool, conn = drive(response, [30], close=True)
    assert (recorder.body, recorder.ended, recorder.error) == (BODY, True, None)
    assert pool._idle == [] and conn.closed
    response = LENGTH.replace(b"200 OK\r\n", b"200 OK\r\nConnection: close\r\n")
    recorder, pool, conn = drive(response, [])
    assert recorder.ended and pool._idle == [] and conn.transport.aborted  # type: ignore[union-attr]


@pytest.mark.parametrize(("response", "why"), [
    (LENGTH[:-5], "closed by the server mid-response"),
    (LENGTH[:10], "closed by the server mid-response"),
    (CHUNKED[:-7], "closed by the server mid-response"),
    (b"", "closed by the server before the response"),
])
def test_a_close_mid_response_fails_the_exchange(response: bytes, why: str) -> None:
    recorder, pool, _ = drive(response, [], close=True)
    assert isinstance(recorder.error, TransientError) and why in str(recorder.error)
    assert not recorder.ended and pool._idle == []


@pytest.mark.parametrize(("response", "why"), [
    (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP status line"),
    (b"HTTP/2 200\r\n\r\n", "not HTTP/1.x"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "bad header line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "bad Content-Length"),
    (LENGTH + b"extra", "past Content-Length"),
    (CHUNKED.replace(b"1a;ext=1", b"zz"), "bad chunk size"),
    (CHUNKED.replace(BODY[:5] + b"\r\n", BODY[:5] + b"XX"), "not followed by CRLF"),
])
def test_protocol_errors_fail_the_exchange_and_drop_the_connection(response: bytes,
                                                                   why: str) -> None:
    recorder, pool, conn = drive(response, [])
    assert isinstance(recorder.error, TransientError) and why in str(recorder.error)
    assert conn.closed and pool._idle == []


# -- the client over loopback against scripted servers -------------------------------------

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def scripted_server(script: Script) -> AsyncIterator[tuple[str, dict[str, int]]]:
    """A server whose every connection runs ``script``; yields its base URL and counts."""
    counts = {"connections": 0}
    handlers: set[asyncio.Task[Any]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counts["connections"] += 1
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await script(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: what these scripts wait for
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1", counts
    finally:
        server.close()
        # every script ends once its client has gone (EOF); wait for them
        await asyncio.wait_for(asyncio.gather(*handlers), 5)
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length)


def completion(text: str = "hi") -> bytes:
    return json.dumps({
        "id": "c1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}).encode()


def reply(body: bytes, status: str = "200 OK", headers: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{headers}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def client(url: str, *, stream: bool = False, **timeouts: float) -> LoadClient:
    return LoadClient(url, model="m", stream=stream, timeouts=Timeouts(**timeouts))


@pytest.mark.asyncio
async def test_keep_alive_reuses_one_connection_and_sends_the_request_whole() -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            seen.append(await read_request(reader))
            writer.write(reply(completion()))
            await writer.drain()

    async with scripted_server(script) as (url, counts):
        c = client(url)
        for i in range(5):
            result = await c.complete(REQUEST, f"id-{i}")
            assert result.completion.choices[0].message.content == "hi"
        c.close()
    assert counts["connections"] == 1 and c.pool.opened == 1
    head, body = seen[3]
    assert head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"\r\nX-Request-Id: id-3\r\n" in head and b"\r\nHost: 127.0.0.1:" in head
    assert json.loads(body)["model"] == "m" and json.loads(body).get("stream", False) is False


@pytest.mark.asyncio
async def test_connection_close_is_honoured() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply(completion(), headers="Connection: close\r\n"))
        await writer.drain()

    async with scripted_server(script) as (url, counts):
        c = client(url)
        for _ in range(3):
            await c.complete(REQUEST)
        c.close()
    assert counts["connections"] == 3


@pytest.mark.asyncio
async def test_error_statuses_become_typed_errors() -> None:
    bodies = [
        ("429 Too Many Requests", "retry-after-ms: 1500\r\n",
         b'{"error": {"message": "slow down", "type": "rate_limit_error"}}'),
        ("400 Bad Request", "", b'{"error": {"message": "too long", '
                                b'"code": "context_length_exceeded"}}'),
        ("401 Unauthorized", "", b'{"error": {"message": "no key"}}'),
        ("503 Service Unavailable", "", b"<html>down</html>"),
    ]
    queue = list(bodies)

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while queue:
            await read_request(reader)
            status, headers, body = queue.pop(0)
            writer.write(reply(body, status, headers))
            await writer.drain()

    async with scripted_server(script) as (url, _):
        c = client(url)
        errors = []
        for _ in bodies:
            with pytest.raises((RateLimited, PermanentError, TransientError)) as info:
                await c.complete(REQUEST)
            errors.append(info.value)
        c.close()
    limited, long, denied, down = errors
    assert isinstance(limited, RateLimited) and limited.retry_after == 1.5
    assert limited.status == 429 and "slow down" in str(limited)
    assert isinstance(long, ContextLengthExceeded)
    assert isinstance(denied, PermanentError) and denied.status == 401
    assert isinstance(down, TransientError) and down.status == 503
    assert c.pool.opened == 1  # error responses with a body keep the connection


@pytest.mark.asyncio
async def test_closed_and_reset_connections_fail_and_are_replaced() -> None:
    calls = {"n": 0}

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        calls["n"] += 1
        whole = reply(completion())
        if calls["n"] == 1:
            writer.write(whole[:len(whole) // 2])  # half an answer, then a clean close
            await writer.drain()
            return
        if calls["n"] == 2:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()  # RST
            return
        writer.write(whole)
        await writer.drain()

    async with scripted_server(script) as (url, counts):
        c = client(url)
        with pytest.raises(TransientError, match="closed by the server mid-response"):
            await c.complete(REQUEST)
        with pytest.raises(TransientError, match=r"connection (reset|closed)"):
            await c.complete(REQUEST)
        assert (await c.complete(REQUEST)).completion.choices[0].message.content == "hi"
        c.close()
    assert counts["connections"] == 3


@pytest.mark.asyncio
@pytest.mark.parametrize("stream", [False, True])
async def test_a_kept_alive_connection_the_server_closed_is_replaced_once(stream: bool
                                                                          ) -> None:
    # As llama.cpp's llama-server does under its keep-alive policy: a connection that
    # served a request is closed when the next one comes, with no byte of answer. The
    # request never reached the server; it goes again, once, on a new connection.
    answered: list[bytes] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        answered.append(head)
        if stream:
            events = (b'data: {"id":"c","object":"chat.completion.chunk","created":1,'
                      b'"model":"m","choices":[{"index":0,"delta":{"content":"hi"},'
                      b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(events), events))
        else:
            writer.write(reply(completion()))
        await writer.drain()
        await read_request(reader)  # the next request on this connection: closed unread

    async with scripted_server(script) as (url, counts):
        c = client(url, stream=stream)
        for _ in range(3):
            result = await c.complete(REQUEST)
            assert result.completion.choices[0].message.content == "hi"
        c.close()
    assert len(answered) == 3 and counts["connections"] == 3
    assert c.stale_resends == 2  # the 2nd and 3rd requests met a closed connection first


@pytest.mark.asyncio
async def test_a_connection_closed_on_its_first_request_is_an_error() -> None:
    # Nothing back on a new connection is the server's failure, not a stale connection:
    # it is not sent again.
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with scripted_server(script) as (url, counts):
        c = client(url)
        with pytest.raises(TransientError, match="closed by the server before the response"):
            await c.complete(REQUEST)
        c.close()
    assert counts["connections"] == 1 and c.stale_resends == 0


@pytest.mark.asyncio
async def test_streams_in_chunked_encoding_split_into_tiny_writes() -> None:
    events = [
        {"id": "c", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        *({"id": "c", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": {"content": word}}]}
          for word in ("Hello", " there", ", friend")),
        {"id": "c", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"id": "c", "created": 1, "model": "m", "choices": [],
         "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}},
    ]
    sse = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    sse += b"data: [DONE]\n\n"

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(sse), 23):
            piece = sse[i:i + 23]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.001)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await reader.read()  # keep the connection until the client goes

    async with scripted_server(script) as (url, _):
        c = client(url, stream=True)
        result = await c.complete(REQUEST)
        c.close()
    assert result.completion.choices[0].message.content == "Hello there, friend"
    assert result.usage.completion_tokens == 3
    assert result.ttft is not None and 0 < result.ttft <= result.latency
    assert len(result.chunk_gaps) >= 3


@pytest.mark.asyncio
async def test_a_stream_without_usage_counts_its_content_chunks_as_output_tokens() -> None:
    # llama.cpp streams one token per chunk and reports no usage; three content chunks
    # whose text a text-length estimate would put at 5 tokens are 3 tokens.
    words = ("Hello", " there", ", my dear friend")
    events = [
        {"id": "c", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        *({"id": "c", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": {"content": word}}]} for word in words),
        {"id": "c", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    sse = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    sse += b"data: [DONE]\n\n"

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(sse), sse))
        await writer.drain()
        await reader.read()

    async with scripted_server(script) as (url, _):
        c = client(url, stream=True)
        result = await c.complete(REQUEST)
        c.close()
    assert result.completion.choices[0].message.content == "".join(words)
    assert result.usage.completion_tokens == 3
    assert result.usage.prompt_tokens > 0
    assert c.usage_estimated == 1


@pytest.mark.asyncio
async def test_timeouts_by_phase() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()  # never answers; returns when the client gives up

    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        chunk = {"id": "c", "created": 1, "model": "m",
                 "choices": [{"index": 0, "delta": {"content": "Hi"}}]}
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
                     b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await writer.drain()
        await reader.read()

    async with scripted_server(silent) as (url, _):
        c = client(url, stream=True, first_token=0.2, idle=0.2, total=5)
        with pytest.raises(CallTimeout) as info:
            await c.complete(REQUEST)
        assert info.value.phase == "first_token"
        c.close()
    async with scripted_server(stalls) as (url, _):
        c = client(url, stream=True, first_token=2, idle=0.2, total=5)
        with pytest.raises(CallTimeout) as info:
            await c.complete(REQUEST)
        assert info.value.phase == "idle"
        c = client(url, stream=True, first_token=2, idle=2, total=0.3)
        with pytest.raises(CallTimeout) as info:
            await c.complete(REQUEST)
        assert info.value.phase == "total"
        c.close()


@pytest.mark.asyncio
async def test_a_cancelled_exchange_drops_its_connection() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(0.3)
        writer.write(reply(completion()))
        await writer.drain()
        await read_request(reader)  # the same connection must not be used again
        writer.write(reply(completion("wrong connection")))
        await writer.drain()

    async with scripted_server(script) as (url, counts):
        c = client(url)
        task = asyncio.create_task(c.complete(REQUEST))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        result = await c.complete(REQUEST)
        c.close()
    assert result.completion.choices[0].message.content == "hi"
    assert counts["connections"] == 2


@pytest.mark.asyncio
async def test_connections_are_opened_a_few_at_a_time_and_reused() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            await asyncio.sleep(0.01)
            writer.write(reply(completion()))
            await writer.drain()

    async with scripted_server(script) as (url, counts):
        c = client(url)
        c.pool.max_connecting = 3
        opening, most = 0, 0
        connect = c.pool._connect

        async def counted() -> Connection:
            nonlocal opening, most
            opening += 1
            most = max(most, opening)
            try:
                return await connect()
            finally:
                opening -= 1

        c.pool._connect = counted  # type: ignore[method-assign]
        results = await asyncio.gather(*(c.complete(REQUEST) for _ in range(60)))
        c.close()
    assert len(results) == 60 and most == 3
    assert counts["connections"] == c.pool.opened <= 60


@pytest.mark.asyncio
async def test_a_limit_on_open_connections_makes_callers_wait() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            await asyncio.sleep(0.005)
            writer.write(reply(completion()))
            await writer.drain()

    async with scripted_server(script) as (url, counts):
        c = LoadClient(url, model="m", stream=False, max_connections=4)
        results = await asyncio.gather(*(c.complete(REQUEST) for _ in range(40)))
        c.close()
    assert len(results) == 40 and counts["connections"] == c.pool.opened <= 4


@pytest.mark.asyncio
async def test_unreachable_server_is_a_connection_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        c = client(f"http://127.0.0.1:{port}/v1")
        with pytest.raises(TransientError, match="cannot connect"):
            await c.complete(REQUEST)


@pytest.mark.asyncio
@pytest.mark.parametrize("paced", [False, True])
async def test_against_the_real_mock_many_at_once(paced: bool) -> None:
    config = MockConfig(ttft_ms=2 if paced else 0, tpot_ms=0.5 if paced else 0, seed=1)
    async with open_mock_server(config) as server:
        c = LoadClient(server.url, model="m", stream=True)
        results = await asyncio.gather(*(c.complete(REQUEST, str(i)) for i in range(300)))
        c.close()
        stats = server.stats()
    assert stats.requests == 300 and stats.completion_tokens == sum(
        r.usage.completion_tokens for r in results)
    assert all(r.completion.choices[0].message.content for r in results)
    assert all(r.ttft is not None for r in results)
