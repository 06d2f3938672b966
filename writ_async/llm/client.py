"""One OpenAI-compatible endpoint: a single attempt of a chat-completion call.

The client sends one request and turns whatever comes back into either a ``CallResult``
or a typed ``ModelCallError`` (writ_async/errors.py); it never retries and never waits
for permission — that is the pool's job (pool.py). Per attempt it keeps exactly one
timer: an ``asyncio.timeout`` rescheduled as the call moves through its phases (first
token, then the idle gap before each further chunk), always capped by the total deadline.
Connecting is bounded by aiohttp's own connect timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import msgspec

from writ_async.errors import CallTimeout, MalformedResponse, TransientError
from writ_async.llm import responses_wire
from writ_async.llm.assemble import StreamAssembler, check_completion
from writ_async.llm.protocol import (
    Api,
    ChatCompletion,
    ChatRequest,
    StreamOptions,
    Usage,
    completion_decoder,
    encode_request,
    error_decoder,
)
from writ_async.llm.retry import RateFeedback, classify_status, parse_rate_headers
from writ_async.llm.sse import SSEParser

MAX_ERROR_BODY = 64 * 1024  # enough for any error message; never buffer a huge error page


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds allowed per phase of a call; ``total`` caps them all."""

    connect: float = 10.0
    first_token: float = 120.0
    idle: float = 60.0
    total: float = 600.0


class CallResult(msgspec.Struct, frozen=True):
    """A successful call: the completion and how it went."""

    completion: ChatCompletion
    endpoint: str
    latency: float
    usage: Usage
    ttft: float | None = None  # streaming only: seconds to the first content/tool chunk
    chunk_gaps: tuple[float, ...] = ()  # streaming only: seconds between chunks
    attempts: int = 1
    malformed: str | None = None  # set by a participant that kept a malformed answer


@asynccontextmanager
async def open_session(max_connections: int = 8192) -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp session sized for thousands of concurrent requests to few hosts."""
    connector = aiohttp.TCPConnector(
        limit=max_connections, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60
    )
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None),  # phases are timed by the client
        skip_auto_headers=("User-Agent",),
    )
    try:
        yield session
    finally:
        await session.close()


class _Phase:
    """The call's single timer and the phase it currently bounds."""

    __slots__ = ("cm", "deadline", "loop", "name", "seconds")

    def __init__(self, cm: asyncio.Timeout, loop: asyncio.AbstractEventLoop, total: float):
        self.cm, self.loop = cm, loop
        self.deadline = loop.time() + total
        self.name, self.seconds = "total", total

    def arm(self, name: str, seconds: float) -> None:
        when = self.loop.time() + seconds
        if when >= self.deadline:
            self.name, self.seconds, when = "total", self.seconds, self.deadline
        else:
            self.name, self.seconds = name, seconds
        self.cm.reschedule(when)


class EndpointClient:
    """Sends single attempts to one endpoint over a shared aiohttp session."""

    def __init__(
        self,
        name: str,
        base_url: str,
        session: aiohttp.ClientSession,
        *,
        model: str | None = None,
        stream: bool | None = None,
        api_key: str | None = None,
        timeouts: Timeouts | None = None,
        require_usage: bool = True,
        wall_clock: Callable[[], float] = time.time,
        on_feedback: Callable[[RateFeedback], None] | None = None,
        api: Api = "chat",
    ) -> None:
        self.name = name
        # "responses": OpenAI's Responses API, translated at this edge (responses_wire.py)
        self.api = api
        self.url = base_url.rstrip("/") + ("/responses" if api == "responses"
                                           else "/chat/completions")
        self.model = model  # overrides the request's model: the caller knows roles only
        self.stream = stream  # None: as the request says
        self.session = session
        self.timeouts = timeouts or Timeouts()
        self.require_usage = require_usage
        self.wall_clock = wall_clock
        self.on_feedback = on_feedback
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._aiohttp_timeout = aiohttp.ClientTimeout(
            total=None, connect=self.timeouts.connect, sock_connect=self.timeouts.connect
        )

    def __repr__(self) -> str:
        return f"<EndpointClient {self.name} {self.url}>"

    async def complete(self, request: ChatRequest) -> CallResult:
        """One attempt. Raises a ModelCallError subclass on any failure."""
        if (self.model is not None and request.model != self.model) or (
            self.stream is not None and request.stream != self.stream
        ):
            request = msgspec.structs.replace(
                request,
                model=request.model if self.model is None else self.model,
                stream=request.stream if self.stream is None else self.stream,
            )
        responses = self.api == "responses"
        if responses:
            body = responses_wire.request_body(request)
        else:
            if request.stream and request.stream_options is None:
                request = msgspec.structs.replace(request, stream_options=StreamOptions())
            body = encode_request(_without_reasoning_items(request))
        loop = asyncio.get_running_loop()
        start = loop.time()
        timer = asyncio.timeout(None)
        phase = _Phase(timer, loop, self.timeouts.total)
        try:
            async with timer:
                phase.arm("first_token", self.timeouts.first_token)
                async with self.session.post(
                    self.url, data=body, headers=self._headers, timeout=self._aiohttp_timeout
                ) as resp:
                    if self.on_feedback is not None:
                        feedback = parse_rate_headers(resp.headers)
                        if feedback is not None:
                            self.on_feedback(feedback)
                    if resp.status != 200:
                        raw = await resp.content.read(MAX_ERROR_BODY)
                        raise classify_status(resp.status, resp.headers, raw,
                                              endpoint=self.name, now_epoch=self.wall_clock())
                    if request.stream:
                        return await self._read_stream(resp, phase, start,
                                                       bool(request.tools))
                    raw = await resp.read()
        except aiohttp.ServerTimeoutError:  # a TimeoutError too: must come first
            raise CallTimeout("connect", self.timeouts.connect, endpoint=self.name) from None
        except TimeoutError:
            if timer.expired():
                raise CallTimeout(phase.name, phase.seconds, endpoint=self.name) from None
            raise  # an enclosing scope's timeout: not ours to convert
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}", endpoint=self.name) from None
        decode = responses_wire.decode_response if responses else decode_completion
        completion = decode(raw, resp.headers.get("Content-Type", ""), self.name)
        return _checked(CallResult(
            completion=completion, endpoint=self.name, latency=loop.time() - start,
            usage=completion.usage or Usage(),
        ), self.require_usage, bool(request.tools))

    async def _read_stream(
        self, resp: aiohttp.ClientResponse, phase: _Phase, start: float, offered_tools: bool,
    ) -> CallResult:
        loop = phase.loop
        parser = SSEParser()
        assembler: StreamAssembler | responses_wire.ResponsesStreamAssembler = (
            responses_wire.ResponsesStreamAssembler(started=start, endpoint=self.name)
            if self.api == "responses" else StreamAssembler(started=start, endpoint=self.name))
        try:
            async for data in resp.content.iter_any():
                now = loop.time()
                for event in parser.feed(data):
                    assembler.feed_event(event.data, now, event=event.event)
                if assembler.first_token_at is not None:
                    phase.arm("idle", self.timeouts.idle)
        except aiohttp.ClientPayloadError:
            if not assembler.done:
                raise
            # The connection closed after [DONE] without ending the chunked body, as
            # llama-cpp-python's server does when it cuts a stream short: everything the
            # stream meant to say has come, and the assembler judges it (a cut stream
            # has no finish_reason: interrupted_stream).
        for event in parser.finish():
            assembler.feed_event(event.data, loop.time(), event=event.event)
        completion = assembler.result()
        return _checked(CallResult(
            completion=completion, endpoint=self.name, latency=loop.time() - start,
            usage=completion.usage or Usage(),
            ttft=assembler.ttft,
            chunk_gaps=tuple(assembler.gaps),
        ), self.require_usage, offered_tools)


def _without_reasoning_items(request: ChatRequest) -> ChatRequest:
    """``request`` without Responses reasoning items (a role may fail over from a
    Responses endpoint to a chat one): no chat server knows the field."""
    if not any(m.reasoning_items for m in request.messages):
        return request
    return msgspec.structs.replace(request, messages=[
        msgspec.structs.replace(m, reasoning_items=None) if m.reasoning_items else m
        for m in request.messages])


def decode_completion(raw: bytes, content_type: str, endpoint: str) -> ChatCompletion:
    """A non-streamed 200 body as a completion, or ``MalformedResponse`` saying what it
    was instead: ``error_object`` (an error in a 200), ``html``, or ``invalid_json``."""
    try:
        return completion_decoder.decode(raw)
    except msgspec.DecodeError:
        pass  # find out what it was instead, for a precise error
    try:
        error = error_decoder.decode(raw).error
    except msgspec.DecodeError:
        error = None
    if error is not None:
        raise MalformedResponse("error_object", error.message or "(no message)",
                                endpoint=endpoint, status=200)
    text = raw[:120].decode("utf-8", "replace")
    if "html" in content_type or text.lstrip().startswith("<"):
        raise MalformedResponse("html", f"HTML instead of JSON: {text!r}",
                                endpoint=endpoint, status=200)
    raise MalformedResponse("invalid_json", f"not a chat completion: {text!r}",
                            endpoint=endpoint, status=200)


def _checked(result: CallResult, require_usage: bool, offered_tools: bool) -> CallResult:
    """``check_completion``; a failure carries the completion it judged and the call
    (so a participant that keeps the answer can still account for it). Only a request
    that offered tools can get a tool call back as text (a user simulator's words are
    never read as one)."""
    try:
        check_completion(result.completion, require_usage=require_usage,
                         offered_tools=offered_tools)
    except MalformedResponse as exc:
        exc.completion = result.completion
        exc.call = result
        # where it came from (per-endpoint policies), leaving the message as it was
        exc.endpoint = exc.endpoint or result.endpoint
        raise
    return result
