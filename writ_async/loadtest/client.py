"""The load tester's HTTP client: one attempt, timed, with a lean hot path.

It follows ``models.client.EndpointClient`` (same wire types, SSE parser, stream
assembler, status classification and typed errors) with two differences a load test
needs: a completion cut by ``max_tokens`` (``finish_reason: length``) or withheld by a
filter is a success to measure, not a failure, and a server that sends no usage still
yields token counts, estimated from the text (``usage_estimated``). Answers an agent
could not use (no choices, tool arguments that are not a JSON object) stay errors.
"""

from __future__ import annotations

import asyncio
import time
from time import perf_counter as _now

import aiohttp
import msgspec

from writ_async.errors import CallTimeout, MalformedResponse, TransientError
from writ_async.models.assemble import StreamAssembler
from writ_async.models.client import MAX_ERROR_BODY, CallResult, Timeouts
from writ_async.models.policies import completion_tokens, prompt_tokens
from writ_async.models.protocol import (
    ChatCompletion,
    ChatRequest,
    StreamOptions,
    Usage,
    completion_decoder,
    encoder,
)
from writ_async.models.retry import classify_status
from writ_async.models.sse import SSEParser

_object = msgspec.json.Decoder(dict)


class LoadClient:
    """Sends single attempts to ``base_url`` over a shared session (see module doc)."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession, *, model: str,
                 stream: bool = True, api_key: str | None = None,
                 timeouts: Timeouts | None = None, name: str = "loadtest") -> None:
        self.name = name
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.stream, self.session = model, stream, session
        self.timeouts = timeouts or Timeouts()
        self.usage_estimated = 0  # completions whose usage the server did not report
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._aiohttp_timeout = aiohttp.ClientTimeout(
            total=None, connect=self.timeouts.connect, sock_connect=self.timeouts.connect)

    def __repr__(self) -> str:
        return f"<LoadClient {self.url} stream={self.stream}>"

    async def complete(self, request: ChatRequest, request_id: str | None = None) -> CallResult:
        """One attempt; ``request_id`` goes out as the ``X-Request-Id`` header."""
        headers = self._headers
        if request_id is not None:
            headers = {**headers, "X-Request-Id": request_id}
        request = msgspec.structs.replace(
            request, model=self.model, stream=self.stream,
            stream_options=StreamOptions() if self.stream else None)
        body = encoder.encode(request)
        loop = asyncio.get_running_loop()
        start = _now()  # measurements: perf_counter (uvloop's clock ticks in milliseconds)
        t = self.timeouts
        deadline = loop.time() + t.total  # timers: the loop's clock
        phase = "first_token"
        try:
            async with asyncio.timeout(min(deadline, loop.time() + t.first_token)) as timer:
                async with self.session.post(self.url, data=body, headers=headers,
                                             timeout=self._aiohttp_timeout) as resp:
                    if resp.status != 200:
                        raw = await resp.content.read(MAX_ERROR_BODY)
                        raise classify_status(resp.status, resp.headers, raw,
                                              endpoint=self.name, now_epoch=time.time())
                    if not self.stream:
                        completion = self._decode(await resp.read())
                        ttft, gaps = None, ()
                    else:
                        parser = SSEParser(endpoint=self.name)
                        assembler = StreamAssembler(started=start, endpoint=self.name)
                        async for data in resp.content.iter_any():
                            now = _now()
                            for event in parser.feed(data):
                                assembler.feed_event(event.data, now, event=event.event)
                            if assembler.first_token_at is not None:
                                phase = "idle"
                                timer.reschedule(min(deadline, loop.time() + t.idle))
                        for event in parser.finish():
                            assembler.feed_event(event.data, _now(), event=event.event)
                        completion = assembler.result()
                        ttft, gaps = assembler.ttft, tuple(assembler.gaps)
        except aiohttp.ServerTimeoutError:
            raise CallTimeout("connect", t.connect, endpoint=self.name) from None
        except TimeoutError:
            if loop.time() >= deadline - 1e-3:
                raise CallTimeout("total", t.total, endpoint=self.name) from None
            raise CallTimeout(phase, t.first_token if phase == "first_token" else t.idle,
                              endpoint=self.name) from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}", endpoint=self.name) from None
        end = _now()
        self._check(completion)
        usage = completion.usage
        if usage is None:
            self.usage_estimated += 1
            p = prompt_tokens(request)
            c = completion_tokens(completion.choices[0].message)
            usage = Usage(p, c, p + c)
        return CallResult(completion=completion, endpoint=self.name, latency=end - start,
                          usage=usage, ttft=ttft, chunk_gaps=gaps)

    def _decode(self, raw: bytes) -> ChatCompletion:
        try:
            return completion_decoder.decode(raw)
        except msgspec.DecodeError:
            text = raw[:120].decode("utf-8", "replace")
            reason = "html" if text.lstrip().startswith("<") else "invalid_json"
            if text.lstrip().startswith('{"error"'):
                reason = "error_object"
            raise MalformedResponse(reason, f"not a chat completion: {text!r}",
                                    endpoint=self.name, status=200) from None

    def _check(self, completion: ChatCompletion) -> None:
        if not completion.choices:
            raise MalformedResponse("no_choices", "the completion has no choices",
                                    endpoint=self.name)
        for choice in completion.choices:
            for call in choice.message.tool_calls or ():
                try:
                    _object.decode(call.function.arguments)
                except msgspec.DecodeError:
                    raise MalformedResponse(
                        "invalid_tool_arguments",
                        f"tool call {call.function.name}: arguments are not a JSON object",
                        endpoint=self.name) from None
