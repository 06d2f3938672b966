"""The load tester's HTTP client: one attempt, timed, on the lean HTTP/1.1 path.

It follows ``models.client.EndpointClient`` (same wire types, SSE parser, stream
assembler, status classification and typed errors) with three differences a load test
needs: the exchange runs on ``loadtest.http`` (a pooled asyncio Protocol that hands
body bytes over with the time their read arrived, and parses the stream inside the read
callback, so no task wake-up sits between a byte's arrival and its timestamp); a
completion cut by ``max_tokens`` (``finish_reason: length``) or withheld by a filter is
a success to measure, not a failure; and a server that sends no usage still yields token
counts, estimated (``usage_estimated``): output tokens as the stream's content chunks,
or from the text of an unstreamed answer. Answers an agent could not use (no
choices, tool arguments that are not a JSON object) stay errors. With ``api="responses"``
it speaks OpenAI's Responses API (``/responses``), through the same wire mapping as the
engine's client (``models.responses_wire``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from time import perf_counter as _now

import msgspec

from writ_async.errors import (
    CallTimeout,
    ModelCallError,
    NotSent,
    StaleConnection,
    TransientError,
)
from writ_async.llm import responses_wire
from writ_async.llm.assemble import StreamAssembler, check_completion, chunk_decoder
from writ_async.llm.client import MAX_ERROR_BODY, CallResult, Timeouts, decode_completion
from writ_async.llm.protocol import (
    Api,
    ChatCompletion,
    ChatRequest,
    StreamOptions,
    Usage,
    encoder,
)
from writ_async.llm.retry import classify_status
from writ_async.loadtest.events import FastSSE
from writ_async.loadtest.http import Connection, Origin, Pool
from writ_async.mock.policies import completion_tokens, prompt_tokens

_DONE = b"[DONE]"
Assembler = StreamAssembler | responses_wire.ResponsesStreamAssembler


def _feed_many(assembler: Assembler, raw: list[bytes], now: float) -> None:
    """Feed the ``data`` of ``message`` events that arrived together, each decoded
    straight from its bytes; anything but a plain chunk (``[DONE]``, blank data, bad
    JSON, an error object) goes through ``feed_event``, whose rules it is. A Responses
    stream has no plain chunks: each event's type is in its data."""
    if not isinstance(assembler, StreamAssembler):
        for data in raw:
            assembler.feed_event(data.decode("utf-8", "replace"), now)
        return
    decode, feed_chunk = chunk_decoder.decode, assembler.feed_chunk
    for data in raw:
        if not assembler.done and data != _DONE:
            try:
                chunk = decode(data)
            except msgspec.DecodeError:
                pass
            else:
                if chunk.error is None:
                    feed_chunk(chunk, now)
                    continue
        assembler.feed_event(data.decode("utf-8", "replace"), now)


class Gate:
    """Holds a prepared request (encoded, on a connection) until its send time.

    Open-loop arrivals are sent by the arrivals task itself, at their intended time,
    with one ``transport.write``: nothing (no task wake-up, no encoding, no connection
    set-up) sits between the decision to send and the send. The client ``arm``s the gate
    once the request is ready; the scheduler ``release``s it at its time. Whichever comes
    second sends, after ``admit()`` (the scheduler's last word: False withdraws it).
    ``sent`` is when it went out (``perf_counter``).
    """

    __slots__ = ("_abort", "_fire", "admit", "intended", "released", "sent")

    def __init__(self, intended: float) -> None:
        self.intended = intended
        self.admit: Callable[[], bool] | None = None
        self.released = False
        self.sent: float | None = None
        self._fire: Callable[[float], None] | None = None
        self._abort: Callable[[], None] | None = None

    def __repr__(self) -> str:
        return f"<Gate intended={self.intended:.6f} released={self.released} sent={self.sent}>"

    def arm(self, fire: Callable[[float], None], abort: Callable[[], None]) -> None:
        if self.released:
            self._go(fire, abort)  # late: its time has passed already
        else:
            self._fire, self._abort = fire, abort

    def disarm(self) -> None:
        """The request will not be sent after all (its sender was cancelled)."""
        self._fire = self._abort = None

    def release(self) -> None:
        self.released = True
        fire, abort = self._fire, self._abort
        if fire is not None and abort is not None:
            self._fire = self._abort = None
            self._go(fire, abort)

    def _go(self, fire: Callable[[float], None], abort: Callable[[], None]) -> None:
        if self.admit is not None and not self.admit():
            abort()
            return
        self.sent = now = _now()
        fire(now)


class _Call:
    """One exchange in flight: parses what its connection reports, resolves ``future``."""

    __slots__ = ("assembler", "body", "client", "conn", "ended", "first_at", "future",
                 "headers", "last_at", "parser", "payload", "start", "status", "timer",
                 "unused")

    def __init__(self, client: LoadClient, conn: Connection, start: float,
                 future: asyncio.Future[tuple[ChatCompletion, float, Assembler | None]]
                 ) -> None:
        self.client, self.conn, self.start, self.future = client, conn, start, future
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.first_at: float | None = None  # first body byte (non-streamed) / token
        self.last_at = start
        if client.stream:
            self.parser: FastSSE | None = FastSSE(endpoint=client.name)
            assemble = (responses_wire.ResponsesStreamAssembler if client.api == "responses"
                        else StreamAssembler)
            self.assembler: Assembler | None = assemble(started=start, endpoint=client.name)
        else:
            self.parser = self.assembler = None
        self.timer: asyncio.TimerHandle | None = None
        self.ended = False  # the connection reported the end (or an error)
        self.payload = b""
        self.unused = True  # the connection is ours and nothing was sent on it

    # -- sending -----------------------------------------------------------------------

    def fire(self, now: float) -> None:
        """Send the request now (``now``: ``perf_counter``, its send time)."""
        self.unused = False
        self.start = self.last_at = now
        if self.assembler is not None:
            self.assembler.started = now
        t = self.client.timeouts
        self.timer = asyncio.get_running_loop().call_later(min(t.first_token, t.total),
                                                           self.check_timeout)
        conn = self.conn
        if conn.closed:  # the server closed it while the request waited for its time
            self.on_error(TransientError("connection closed by the server before the "
                                         "request was sent", endpoint=self.client.name))
            return
        try:
            conn.start(self.payload, self)
        except (OSError, RuntimeError) as exc:  # the transport broke since acquire
            self.fail(TransientError(f"cannot send: {exc}", endpoint=self.client.name))

    def withdraw(self) -> None:
        """The request will not be sent (its gate was withdrawn)."""
        self.hand_back()
        if not self.future.done():
            self.future.set_exception(NotSent())

    def hand_back(self) -> None:
        """Give the unused connection back to the pool, once."""
        if self.unused:
            self.unused = False
            self.client.pool._release(self.conn)

    # -- what the connection reports ---------------------------------------------------

    def on_head(self, status: int, headers: dict[str, str], now: float) -> None:
        self.status, self.headers = status, headers
        self.last_at = now

    def on_body(self, data: bytes, now: float) -> None:
        self.last_at = now
        if self.status != 200:
            room = MAX_ERROR_BODY - len(self.body)
            if room > 0:
                self.body += data[:room]
            return
        parser = self.parser
        if parser is None:
            self.body += data
            return
        assembler = self.assembler
        assert assembler is not None
        try:
            raw, events = parser.feed_raw(data)
            if raw:
                _feed_many(assembler, raw, now)
            for event in events:
                assembler.feed_event(event.data, now, event=event.event)
        except ModelCallError as error:
            self.fail(error)
            return
        if self.first_at is None:
            self.first_at = assembler.first_token_at

    def on_end(self, now: float) -> None:
        self.ended = True
        self._stop_timer()
        if self.future.done():
            return
        client = self.client
        try:
            if self.status != 200:
                raise classify_status(self.status, self.headers, bytes(self.body),
                                      endpoint=client.name, now_epoch=time.time())
            if self.parser is None:
                decode = (responses_wire.decode_response if client.api == "responses"
                          else decode_completion)
                completion = decode(bytes(self.body), self.headers.get("content-type", ""),
                                    client.name)
            else:
                assert self.assembler is not None
                for event in self.parser.finish():
                    self.assembler.feed_event(event.data, now, event=event.event)
                completion = self.assembler.result()
        except ModelCallError as error:
            self.future.set_exception(error)
            return
        self.future.set_result((completion, now, self.assembler))

    def on_error(self, error: BaseException) -> None:
        self.ended = True
        self._stop_timer()
        if not self.future.done():
            self.future.set_exception(error)

    def fail(self, error: BaseException) -> None:
        """Give up on the exchange (its connection cannot carry another)."""
        if not self.ended:
            self.conn.abort()
        self.on_error(error)

    # -- timeouts ------------------------------------------------------------------------

    def check_timeout(self) -> None:
        """The timer fired: time out, or sleep again until the next deadline."""
        self.timer = None
        if self.future.done():
            return
        t = self.client.timeouts
        now = _now()
        total = self.start + t.total
        if self.first_at is None:
            due, phase, seconds = min(total, self.start + t.first_token), "first_token", \
                t.first_token
        else:
            due, phase, seconds = min(total, self.last_at + t.idle), "idle", t.idle
        if now >= due - 1e-4:
            if now >= total - 1e-3:
                phase, seconds = "total", t.total
            self.fail(CallTimeout(phase, seconds, endpoint=self.client.name))
            return
        self.timer = asyncio.get_running_loop().call_later(due - now, self.check_timeout)

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class LoadClient:
    """Sends single attempts to ``base_url`` over its own connection pool (module doc)."""

    def __init__(self, base_url: str, *, model: str, stream: bool = True,
                 api_key: str | None = None, timeouts: Timeouts | None = None,
                 name: str = "loadtest", max_connections: int = 10_000,
                 api: Api = "chat") -> None:
        self.name, self.api = name, api
        self.url = base_url.rstrip("/") + ("/responses" if api == "responses"
                                           else "/chat/completions")
        self.origin = Origin(self.url)
        self.model, self.stream = model, stream
        self.timeouts = timeouts or Timeouts()
        self.pool = Pool(self.origin, limit=max_connections,
                         connect_timeout=self.timeouts.connect, name=name)
        self.usage_estimated = 0  # completions whose usage the server did not report
        self.stale_resends = 0  # requests sent again after a stale kept-alive connection
        head = (f"POST {self.origin.path} HTTP/1.1\r\nHost: {self.origin.authority}\r\n"
                "Content-Type: application/json\r\nAccept: application/json, "
                "text/event-stream\r\n")
        if api_key:
            head += f"Authorization: Bearer {api_key}\r\n"
        self._head = head.encode("latin-1")
        self._stream_options = StreamOptions() if stream else None

    def __repr__(self) -> str:
        return f"<LoadClient {self.url} api={self.api} stream={self.stream}>"

    def close(self) -> None:
        self.pool.close()

    def encode(self, request: ChatRequest, request_id: str | None = None) -> bytes:
        """The request's bytes on the wire (head and JSON body)."""
        if (request.model != self.model or request.stream != self.stream
                or request.stream_options != self._stream_options):
            request = msgspec.structs.replace(request, model=self.model, stream=self.stream,
                                              stream_options=self._stream_options)
        body = (responses_wire.request_body(request) if self.api == "responses"
                else encoder.encode(request))
        rid = b"" if request_id is None else b"X-Request-Id: %s\r\n" % request_id.encode()
        return b"%s%sContent-Length: %d\r\n\r\n%s" % (self._head, rid, len(body), body)

    async def _send(self, payload: bytes, gate: Gate | None, *,
                    fresh: bool = False) -> _Call:
        """Send ``payload`` on a pooled connection (``fresh``: a new one), now or when
        ``gate`` says; the call's ``future`` gives the answer."""
        conn = await self.pool.acquire(fresh=fresh)
        future: asyncio.Future[tuple[ChatCompletion, float, Assembler | None]] = \
            asyncio.get_running_loop().create_future()
        call = _Call(self, conn, 0.0, future)
        call.payload = payload
        if gate is None:
            call.fire(_now())
        else:
            gate.arm(call.fire, call.withdraw)
        return call

    async def complete(self, request: ChatRequest, request_id: str | None = None, *,
                       gate: Gate | None = None) -> CallResult:
        """One attempt; ``request_id`` goes out as the ``X-Request-Id`` header. With a
        ``gate`` the request is prepared and sent when the gate says (``NotSent`` if it
        is withdrawn)."""
        payload = self.encode(request, request_id)
        call = await self._send(payload, gate)
        try:
            try:
                completion, end, assembler = await call.future
                start = call.start
            except StaleConnection:
                # The server had closed the kept-alive connection (its keep-alive
                # policy): it never saw the request. Sent again, once, on a new
                # connection, timed from the first send, and counted (stale_resends).
                self.stale_resends += 1
                start, gate = call.start, None
                call = await self._send(payload, None, fresh=True)
                completion, end, assembler = await call.future
                if assembler is not None:
                    assembler.started = start
        except asyncio.CancelledError:
            if call.start:
                call.fail(TransientError("cancelled", endpoint=self.name))
            elif gate is not None:
                gate.disarm()
                call.hand_back()
            raise
        # offered tools: a tool call the server left in the text is a parse failure
        check_completion(completion, require_usage=False, endpoint=self.name,
                         cut_is_usable=True, offered_tools=bool(request.tools))
        usage = completion.usage
        if usage is None:
            self.usage_estimated += 1
            p = prompt_tokens(request)
            if assembler is not None and assembler.token_chunks:
                # Streaming servers send one generated token per content chunk
                # (llama.cpp, vLLM, TGI); counting chunks is truer than text length,
                # which undercounted llama.cpp's tokens by ~9 % and so inflated TPOT.
                c = assembler.token_chunks
            else:
                c = completion_tokens(completion.choices[0].message)
            usage = Usage(p, c, p + c)
        if assembler is None:
            return CallResult(completion=completion, endpoint=self.name, latency=end - start,
                              usage=usage)
        return CallResult(completion=completion, endpoint=self.name, latency=end - start,
                          usage=usage, ttft=assembler.ttft, chunk_gaps=tuple(assembler.gaps))
