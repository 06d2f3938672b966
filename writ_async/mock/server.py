"""A mock OpenAI-compatible chat-completions server on loopback.

It is both the engine's embedded default backend and the peer the client pool is tested
and benchmarked against, so it is a real aiohttp server speaking the real wire format
(``protocol.py``), with the behaviours a client must survive:

* a latency model: time to first token plus time per output token, with jitter, drawn
  from one seeded ``random.Random``; with every latency at zero no sleep is ever called,
  so a benchmark measures the client;
* OpenAI's rate limits: requests and tokens per window (token buckets refilling
  continuously), ``x-ratelimit-*`` headers on every response, 429 with ``retry-after``
  and ``retry-after-ms`` when over;
* faults at configurable per-request probabilities (5xx, reset connection, stall,
  truncated stream, malformed JSON, error object with 200, invalid tool arguments, no
  usage), plus the permanent errors (400 context length, 401, 404 model, 400/422 body);
* counters at ``GET /stats`` (also ``/metrics``), zeroed by ``POST /stats/reset``; with
  ``record_arrivals``, every chat request's arrival time at ``GET /arrivals`` (to check
  that clients kept to a rate).

What it answers is a ``ResponsePolicy`` (``policies.py``), injectable per server.

Per request, the checks run in this order: authorization (401), body (400/422), model
(404), context length (400), rate limits (429), then the drawn faults in the order of
``FaultRates``'s fields: a stall delays and then answers normally; of reset, error_5xx,
error_object_200 and malformed_json the first drawn wins; truncated_stream (streams
only), invalid_tool_args and unholdable_tool_args (when the answer calls a tool) and
no_usage alter the answer.
A fault is counted when it is applied. Token counters include every completion the
server generated, whether or not a fault kept it from the client in full.

Entry points: ``build_app``, ``open_mock_server``, ``serve_forever``; what it is told is a
``MockConfig`` (``config.py``), what it counts ``MockStats`` (``stats.py``), its rate
limits ``ratelimit.py``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import random
import time
from array import array
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from aiohttp import web

from writ_async.llm.protocol import (
    ChatChunk,
    ChatCompletion,
    ChatRequest,
    Choice,
    ChunkChoice,
    Delta,
    DeltaFunction,
    DeltaToolCall,
    ErrorBody,
    ErrorDetail,
    FunctionCall,
    Message,
    ModelCard,
    ModelList,
    Usage,
    encoder,
    request_decoder,
)
from writ_async.mock import quirks as mock_quirks
from writ_async.mock import responses as mock_responses
from writ_async.mock.config import FaultRates, MockConfig, Quirks, resolve_api_key
from writ_async.mock.policies import (
    CHARS_PER_TOKEN,
    PlausiblePolicy,
    ResponsePolicy,
    ShapePolicy,
    completion_tokens,
    prompt_tokens,
)
from writ_async.mock.ratelimit import RateLimits
from writ_async.mock.stats import Counters, MockStats
from writ_async.seeds import mock_request_rng

# -- the service ---------------------------------------------------------------------------

_JSON = "application/json"
_SSE = "text/event-stream"
_DONE = b"data: [DONE]\n\n"
_HTML = (b"<html><head><title>502 Bad Gateway</title></head><body><center>"
         b"<h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n")


def _event(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


_MARK = "\x00writ-mock-piece\x00"  # stands for a piece's text in a chunk template
_MARK_JSON = encoder.encode(_MARK)


def _split_pieces(text: str, size: int,
                  chunk: Callable[[str], bytes]) -> list[tuple[bytes, int]]:
    """``text`` in events of ``size`` characters, each with its token count. The chunk is
    encoded once, around a marker, and every piece is the part before it, the piece's own
    JSON string and the part after: the same bytes as encoding each chunk, for a fraction
    of the cost (this is most of a zero-latency answer's work)."""
    template = chunk(_MARK)
    before, found, after = template.partition(_MARK_JSON)
    parts = [text[i:i + size] for i in range(0, len(text), size)]
    if not found or _MARK_JSON in after:  # the marker is not alone (a model named so)
        return [(chunk(p), -(-len(p) // CHARS_PER_TOKEN)) for p in parts]
    encode = encoder.encode
    return [(before + encode(p) + after, -(-len(p) // CHARS_PER_TOKEN)) for p in parts]


def _reply_budget(chat: ChatRequest) -> int:
    """The reply's token limit, under either name (0: none)."""
    return chat.max_completion_tokens or chat.max_tokens or 0


def _error_bytes(message: str, type_: str | None, code: str | None,
                 param: str | None = None) -> bytes:
    return encoder.encode(ErrorBody(ErrorDetail(message, type_, code, param)))


def _corrupt(arguments: str, rng: random.Random) -> str:
    """Arguments a model might really emit that are not JSON: cut off, or fenced."""
    if len(arguments) > 1 and rng.random() < 0.5:
        return arguments[: rng.randint(1, len(arguments) - 1)]
    return f"```json\n{arguments}\n```"


# Values that JSON text can spell and no run can hold: JSON has no NaN; 1e400 is read as
# infinity; msgpack (the journal) stops at 64-bit integers; readers recurse per level.
UNHOLDABLE_VALUES = ("NaN", "1e400", "9" * 400, "[" * 100_000 + "]" * 100_000)


def _unholdable(arguments: str, rng: random.Random) -> str:
    """``arguments`` with its first value (or a new one) replaced by an unholdable one."""
    value = rng.choice(UNHOLDABLE_VALUES)
    try:
        parsed = json.loads(arguments)
    except ValueError:  # not JSON already: nothing more to spoil
        return arguments
    if not isinstance(parsed, dict):
        return arguments
    key = next(iter(parsed), "value")
    marker = "\x00unholdable"
    text = json.dumps({**parsed, key: marker})
    return text.replace(json.dumps(marker), value, 1)


class _MockService:
    """The request handlers and the state they share (one per application)."""

    def __init__(self, config: MockConfig, policy: ResponsePolicy,
                 clock: Callable[[], float], record_arrivals: bool = False,
                 listed_models: Sequence[str] = ()) -> None:
        self.config = config
        self.policy = policy
        self.clock = clock
        # when each chat request arrived (on ``clock``), for checking a client's rate
        self.arrivals: array[float] | None = array("d") if record_arrivals else None
        self.rng = random.Random(config.seed)
        self.counters = Counters()
        self.limits = RateLimits(config, clock) if config.rpm_limit or config.tpm_limit else None
        key = resolve_api_key(config)
        self.auth = None if key is None else f"Bearer {key}".encode()
        self.models = frozenset(config.models)
        # The allow-list when there is one; else the names clients were configured with
        # (any name is answered, but a client that discovers its model asks /v1/models).
        cards = [ModelCard(id=m) for m in config.models or listed_models or ["mock"]]
        self.models_body = encoder.encode(ModelList(data=cards))
        self.fault_rates = tuple((kind, rate) for kind in FaultRates.__struct_fields__
                                 if (rate := getattr(config.faults, kind)) > 0)
        self.ttft = config.ttft_ms / 1000.0
        self.tpot = config.tpot_ms / 1000.0
        self.jitter = config.jitter_ms / 1000.0
        self.paced = bool(self.ttft or self.tpot or self.jitter)
        self.piece_chars = config.tokens_per_chunk * CHARS_PER_TOKEN
        self.serial = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        # None unless some quirk is on: the default path then pays one identity test
        self.quirks: Quirks | None = None if config.quirks == Quirks() else config.quirks

    # -- small routes ----------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return web.Response()

    async def list_models(self, request: web.Request) -> web.Response:
        if self.auth is not None and not self._authorized(request):
            return self._unauthorized()
        return web.Response(body=self.models_body, content_type=_JSON)

    async def stats(self, request: web.Request) -> web.Response:
        return web.Response(body=encoder.encode(self.counters.snapshot()), content_type=_JSON)

    async def list_arrivals(self, request: web.Request) -> web.Response:
        return web.Response(body=encoder.encode(list(self.arrivals or ())), content_type=_JSON)

    async def reset_stats(self, request: web.Request) -> web.Response:
        self.counters.clear()
        return await self.stats(request)

    async def on_shutdown(self, app: web.Application) -> None:
        """Cancel stalls and in-flight answers, so the runner's cleanup does not wait."""
        for task in list(self.tasks):
            task.cancel()

    # -- chat completions ------------------------------------------------------------------

    async def responses(self, request: web.Request) -> web.StreamResponse:
        return await self.chat(request, responses=True)  # mock_responses.py

    async def chat(self, request: web.Request, responses: bool = False) -> web.StreamResponse:
        started = time.perf_counter()
        if self.arrivals is not None:
            self.arrivals.append(self.clock())
        counters = self.counters
        counters.requests += 1
        counters.in_flight += 1
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            response = await self._chat(request, responses)
        finally:
            counters.in_flight -= 1
            self.tasks.discard(task)  # type: ignore[arg-type]
        if response is None:  # the connection was dropped on purpose: nothing to send
            return web.Response()
        statuses = counters.statuses
        statuses[response.status] = statuses.get(response.status, 0) + 1
        counters.latency.record(time.perf_counter() - started)
        return response

    async def _chat(self, request: web.Request,
                    responses: bool = False) -> web.StreamResponse | None:
        if self.auth is not None and not self._authorized(request):
            return self._unauthorized()
        try:
            decode = mock_responses.decode_request if responses else request_decoder.decode
            chat = decode(await request.read())
        except msgspec.ValidationError as exc:
            return self._refuse(422, f"invalid request: {exc}", "bad_request")
        except msgspec.DecodeError as exc:
            return self._refuse(400, f"request body is not valid JSON: {exc}", "bad_request")
        if not chat.messages:
            return self._refuse(400, "'messages' must contain at least one message",
                                "bad_request", param="messages")
        if self.models and chat.model not in self.models:
            return self._refuse(404, f"The model `{chat.model}` does not exist or you do not "
                                "have access to it.", "model_not_found", code="model_not_found")
        if self.quirks is not None and self.quirks.openai_reasoning_models:
            refused = mock_quirks.parameter_error(self.quirks, chat)
            if refused is not None:
                self.counters.faults["bad_request"] += 1
                return refused
        counters = self.counters
        if chat.stream:
            counters.streamed += 1
        prompt = prompt_tokens(chat)
        limit = self.config.max_context_tokens
        if limit and prompt > limit:
            if self.quirks is not None and self.quirks.llama_context_errors:
                counters.faults["context_length"] += 1
                return mock_quirks.context_error(chat, prompt, limit)
            return self._refuse(
                400, f"This model's maximum context length is {limit} tokens. However, your "
                f"messages resulted in {prompt} tokens. Please reduce the length of the "
                "messages.", "context_length", code="context_length_exceeded",
                param="messages")
        headers: dict[str, str] | None = None
        if self.limits is not None:
            wait, why, headers = self.limits.admit(max(_reply_budget(chat), prompt))
            if wait:
                counters.rate_limited += 1
                return web.Response(
                    body=_error_bytes(self._limit_message(why, prompt, chat), "rate_limit_error",
                                      "rate_limit_exceeded"),
                    status=429, headers=headers, content_type=_JSON)
        faults = self._draw_faults() if self.fault_rates else ()
        if faults:
            early = await self._early_fault(request, chat, faults, headers)
            if early is not False:
                return early
        return await self._answer(request, chat, prompt, faults, headers, responses)

    def _authorized(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization", "").encode()
        return hmac.compare_digest(given, self.auth or b"")

    def _unauthorized(self) -> web.Response:
        return self._refuse(401, "Incorrect API key provided.", "unauthorized",
                            code="invalid_api_key")

    def _refuse(self, status: int, message: str, fault: str, *, code: str | None = None,
                param: str | None = None) -> web.Response:
        self.counters.faults[fault] += 1
        if (fault == "bad_request" and param is None and self.quirks is not None
                and self.quirks.bad_body_as_500):
            return mock_quirks.bad_body_error(status, message)
        headers = self.limits.peek() if self.limits is not None else None
        return web.Response(body=_error_bytes(message, "invalid_request_error", code, param),
                            status=status, headers=headers, content_type=_JSON)

    def _limit_message(self, why: str, prompt: int, chat: ChatRequest) -> str:
        config = self.config
        if why == "requests":
            return (f"Rate limit reached for requests per {config.rate_window_s:g} s: "
                    f"limit {config.rpm_limit}.")
        cost = max(_reply_budget(chat), prompt)
        if cost > config.tpm_limit:
            return (f"Request too large for tokens per {config.rate_window_s:g} s: "
                    f"limit {config.tpm_limit}, requested {cost}.")
        return (f"Rate limit reached for tokens per {config.rate_window_s:g} s: "
                f"limit {config.tpm_limit}, requested {cost}.")

    def _draw_faults(self) -> tuple[str, ...]:
        rng = self.rng
        return tuple(kind for kind, rate in self.fault_rates if rng.random() < rate)

    def _count(self, fault: str) -> None:
        self.counters.faults[fault] += 1

    async def _early_fault(self, request: web.Request, chat: ChatRequest,
                           faults: tuple[str, ...],
                           headers: dict[str, str] | None) -> web.StreamResponse | bool | None:
        """Faults that replace the answer: a response, None (dropped), or False (none)."""
        if "stall" in faults:  # cancelled if the client hangs up or the server shuts down
            self._count("stall")
            await asyncio.sleep(self.config.stall_s)
        if "reset" in faults:
            if chat.stream:  # dropped mid-stream, by _stream
                return False
            self._count("reset")
            self._drop(request)
            return None
        if "error_5xx" in faults:
            self._count("error_5xx")
            status = self.rng.choice((500, 502, 503))
            body = _error_bytes("The server had an error while processing your request. "
                                "Sorry about that!", "server_error", None)
            return web.Response(body=body, status=status, headers=headers, content_type=_JSON)
        if "error_object_200" in faults:
            self._count("error_object_200")
            body = _error_bytes("The model produced invalid content.", "server_error",
                                "internal_error")
            if chat.stream:
                return web.Response(body=_event(body) + _DONE, headers=headers,
                                    content_type=_SSE)
            return web.Response(body=body, headers=headers, content_type=_JSON)
        if "malformed_json" in faults:
            self._count("malformed_json")
            cut = b'{"id":"chatcmpl-x","object":"chat.completion","choices":[{"index":0,' \
                  b'"message":{"role":"assistant","content":"Sure, let me'
            if chat.stream:
                return web.Response(body=_event(cut) + _DONE, headers=headers,
                                    content_type=_SSE)
            if self.rng.random() < 0.5:
                return web.Response(body=_HTML, headers=headers, content_type="text/html")
            return web.Response(body=cut, headers=headers, content_type=_JSON)
        return False

    @staticmethod
    def _drop(request: web.Request) -> None:
        transport = request.transport
        if transport is not None:
            transport.abort()

    def _delay(self, seconds: float) -> float:
        if self.jitter:
            seconds += self.rng.uniform(-self.jitter, self.jitter)
        return seconds if seconds > 0.0 else 0.0

    async def _answer(self, request: web.Request, chat: ChatRequest, prompt: int,
                      faults: tuple[str, ...], headers: dict[str, str] | None,
                      responses: bool = False) -> web.StreamResponse | None:
        rng = self.rng if chat.seed is None else mock_request_rng(self.config.seed, chat.seed)
        message = self.policy.respond(chat, rng)
        finish = "tool_calls" if message.tool_calls else "stop"
        budget = _reply_budget(chat)
        if budget and not message.tool_calls and message.content:
            room = budget * CHARS_PER_TOKEN
            if len(message.content) > room:
                message = msgspec.structs.replace(message, content=message.content[:room])
                finish = "length"
        quirks = self.quirks
        if quirks is not None:
            message, finish = mock_quirks.shape_answer(quirks, chat, message, finish, rng)
            if quirks.reasoning != "off":
                message = mock_quirks.add_reasoning(quirks, chat, message, await request.read())
        if "invalid_tool_args" in faults and message.tool_calls:
            self._count("invalid_tool_args")
            calls = [msgspec.structs.replace(c, function=FunctionCall(
                c.function.name, _corrupt(c.function.arguments, self.rng)))
                for c in message.tool_calls]
            message = msgspec.structs.replace(message, tool_calls=calls)
        if "unholdable_tool_args" in faults and message.tool_calls:
            self._count("unholdable_tool_args")
            calls = [msgspec.structs.replace(c, function=FunctionCall(
                c.function.name, _unholdable(c.function.arguments, self.rng)))
                for c in message.tool_calls]
            message = msgspec.structs.replace(message, tool_calls=calls)
        completion = completion_tokens(message)
        counters = self.counters
        counters.completions += 1
        counters.prompt_tokens += prompt
        counters.completion_tokens += completion
        usage: Usage | None = Usage(prompt, completion, prompt + completion)
        if "no_usage" in faults:
            self._count("no_usage")
            usage = None
        if quirks is not None and chat.stream and quirks.no_stream_usage:
            usage = None
        self.serial += 1
        ident = f"chatcmpl-mock{self.serial:08d}"
        created = int(time.time())
        if responses:
            return await mock_responses.answer(self, request, chat, message, finish, usage,
                                               ident, created, faults, headers)
        if chat.stream:
            if quirks is not None and quirks.stream_writer:
                options = chat.stream_options
                wanted = usage if options is not None and options.include_usage else None
                return await mock_quirks.write_stream(
                    request, quirks, message, finish, wanted, ident=ident, created=created,
                    model=chat.model, piece_chars=self.piece_chars, headers=headers,
                    others_waiting=lambda: self.counters.in_flight > 1,
                    delay=lambda tokens: self._delay(self.tpot * tokens if tokens
                                                     else self.ttft) if self.paced else 0.0)
            return await self._stream(request, chat, message, finish, usage, ident, created,
                                      faults, headers)
        if self.paced:
            delay = self._delay(self.ttft + self.tpot * completion)
            if delay:
                await asyncio.sleep(delay)
        if quirks is not None and quirks.legacy_function_call:
            return web.Response(body=mock_quirks.completion_body(
                message, finish, usage, ident, created, chat.model), headers=headers,
                content_type=_JSON)
        choice = Choice(message=message, finish_reason=finish)
        if usage is None:
            body = encoder.encode({"id": ident, "object": "chat.completion", "created": created,
                                   "model": chat.model, "choices": [choice]})
        else:
            body = encoder.encode(ChatCompletion(choices=[choice], id=ident, created=created,
                                                 model=chat.model, usage=usage))
        return web.Response(body=body, headers=headers, content_type=_JSON)

    def _pieces(self, message: Message, chunk: Callable[[Delta], bytes]) -> list[tuple[bytes, int]]:
        """The stream's content events, each with the tokens it carries (for pacing)."""
        size = self.piece_chars
        pieces: list[tuple[bytes, int]] = []
        if message.reasoning:
            pieces.extend(_split_pieces(message.reasoning, size,
                                        lambda part: chunk(Delta(reasoning=part))))
        if message.reasoning_content:
            pieces.extend(_split_pieces(message.reasoning_content, size,
                                        lambda part: chunk(Delta(reasoning_content=part))))
        text = message.content or ""
        if text:
            pieces.extend(_split_pieces(text, size, lambda part: chunk(Delta(content=part))))
        for index, call in enumerate(message.tool_calls or ()):
            head = DeltaToolCall(index=index, id=call.id, type=call.type,
                                 function=DeltaFunction(name=call.function.name, arguments=""))
            pieces.append((chunk(Delta(tool_calls=[head])), 1))
            args = call.function.arguments
            if args:
                pieces.extend(_split_pieces(args, size, lambda part, i=index: chunk(Delta(
                    tool_calls=[DeltaToolCall(index=i, function=DeltaFunction(arguments=part))]))))
        if not pieces:
            pieces.append((chunk(Delta(content="")), 1))
        return pieces

    async def _stream(self, request: web.Request, chat: ChatRequest, message: Message,
                      finish: str, usage: Usage | None, ident: str, created: int,
                      faults: tuple[str, ...],
                      headers: dict[str, str] | None) -> web.StreamResponse | None:
        model = chat.model

        def chunk(delta: Delta, finish_reason: str | None = None) -> bytes:
            choice = ChunkChoice(delta=delta, finish_reason=finish_reason)
            return _event(encoder.encode(ChatChunk(choices=[choice], id=ident,
                                                   created=created, model=model)))

        role = chunk(Delta(role="assistant", content=""))
        pieces = self._pieces(message, chunk)
        tail = chunk(Delta(), finish)
        options = chat.stream_options
        if usage is not None and options is not None and options.include_usage:
            tail += _event(encoder.encode(ChatChunk(id=ident, created=created, model=model,
                                                    usage=usage)))
        tail += _DONE
        return await self.write_pieces(request, headers, role, pieces, tail, faults)

    async def write_pieces(self, request: web.Request, headers: dict[str, str] | None,
                           opening: bytes, pieces: list[tuple[bytes, int]], tail: bytes,
                           faults: tuple[str, ...]) -> web.StreamResponse | None:
        """Send a stream, whichever API's events it holds: ``opening`` with the first
        piece, each piece when its tokens are due (paced), then ``tail``. The drawn
        stream faults apply: ``truncated_stream`` sends half the pieces and no tail,
        ``reset`` drops the connection after the first piece. Unpaced and unfaulted, the
        whole stream goes out as one body. None when the connection was dropped."""
        reset = "reset" in faults
        if "truncated_stream" in faults:
            self._count("truncated_stream")
            pieces = pieces[: max(1, len(pieces) // 2)]
            tail = b""
        if not self.paced and not reset:
            body = opening + b"".join(p for p, _ in pieces) + tail
            return web.Response(body=body, headers=headers, content_type=_SSE)
        response = web.StreamResponse(headers=headers)
        response.content_type = _SSE
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        due = loop.time()
        for i, (piece, tokens) in enumerate(pieces):
            if self.paced:
                due += self._delay(self.tpot * tokens if i else self.ttft)
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            await response.write(opening + piece if i == 0 else piece)
            if reset:  # mid-stream: the headers and the first piece went out
                self._count("reset")
                self._drop(request)
                return None
        if tail:
            await response.write(tail)
        await response.write_eof()
        return response


# -- the application and the server --------------------------------------------------------

SERVICE_KEY: web.AppKey[_MockService] = web.AppKey("writ_mock_service", _MockService)
_MAX_BODY = 64 * 1024 * 1024


def build_app(config: MockConfig | None = None, policy: ResponsePolicy | None = None, *,
              clock: Callable[[], float] = time.monotonic,
              record_arrivals: bool = False,
              listed_models: Sequence[str] = ()) -> web.Application:
    """The mock's aiohttp application. ``policy`` answers requests (default:
    ``PlausiblePolicy`` sized by the config); ``clock`` drives the rate limits.
    ``record_arrivals``: keep each chat request's arrival time (``GET /arrivals``).
    ``listed_models``: what ``GET /v1/models`` lists when ``config.models`` is empty.

    To run it under your own ``web.AppRunner``, pass ``handler_cancellation=True`` so
    that a client that hangs up during a stall does not leave its handler sleeping."""
    config = config or MockConfig()
    if policy is None:
        policy = (ShapePolicy(config.shape_tool_calls, config.shape_user_turns)
                  if config.policy == "shape"
                  else PlausiblePolicy(config.reply_tokens_min, config.reply_tokens_max))
    service = _MockService(config, policy, clock, record_arrivals, listed_models)
    app = web.Application(client_max_size=_MAX_BODY)
    app[SERVICE_KEY] = service
    app.router.add_post("/v1/chat/completions", service.chat)
    app.router.add_post("/v1/responses", service.responses)
    app.router.add_get("/v1/models", service.list_models)
    app.router.add_get("/health", service.health)
    app.router.add_get("/stats", service.stats)
    app.router.add_get("/metrics", service.stats)
    app.router.add_post("/stats/reset", service.reset_stats)
    app.router.add_get("/arrivals", service.list_arrivals)
    app.on_shutdown.append(service.on_shutdown)
    return app


def app_statistics(app: web.Application) -> MockStats:
    """The counters of an application made by ``build_app``."""
    return app[SERVICE_KEY].counters.snapshot()


class MockServer:
    """A running mock server: where it listens and what it has counted."""

    __slots__ = ("_service", "base_url", "config", "host", "port", "url")

    def __init__(self, service: _MockService, host: str, port: int) -> None:
        self._service = service
        self.config = service.config
        self.host = host
        self.port = port
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.base_url = f"http://{netloc}"
        self.url = f"{self.base_url}/v1"  # what an OpenAI client takes as base_url

    def stats(self) -> MockStats:
        return self._service.counters.snapshot()

    def reset_stats(self) -> None:
        self._service.counters.clear()

    def arrivals(self) -> list[float]:
        """Arrival times of chat requests (empty unless opened with ``record_arrivals``)."""
        return list(self._service.arrivals or ())

    def __repr__(self) -> str:
        c = self._service.counters
        return (f"<MockServer {self.url} requests={c.requests} in_flight={c.in_flight} "
                f"rate_limited={c.rate_limited}>")


@asynccontextmanager
async def open_mock_server(config: MockConfig | None = None,
                           policy: ResponsePolicy | None = None, *,
                           clock: Callable[[], float] = time.monotonic,
                           record_arrivals: bool = False,
                           listed_models: Sequence[str] = (),
                           ) -> AsyncIterator[MockServer]:
    """Serve the mock on ``config.host``/``config.port`` (0: a free port) while inside.

    On exit, stalled and in-flight requests are cancelled, connections closed and every
    task the server started has finished."""
    config = config or MockConfig()
    app = build_app(config, policy, clock=clock, record_arrivals=record_arrivals,
                    listed_models=listed_models)
    runner = web.AppRunner(app, handle_signals=False, handler_cancellation=True,
                           shutdown_timeout=1.0,
                           **({} if config.access_log else {"access_log": None}))
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port, backlog=config.backlog)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield MockServer(app[SERVICE_KEY], host, port)
    finally:
        await runner.cleanup()


async def serve_forever(config: MockConfig | None = None,
                        policy: ResponsePolicy | None = None, *,
                        on_ready: Callable[[MockServer], object] | None = None,
                        listed_models: Sequence[str] = ()) -> None:
    """Serve until cancelled (Ctrl-C under ``asyncio.run``); ``on_ready`` gets the
    server once it listens, e.g. to print its URL. ``listed_models``: see ``build_app``."""
    async with open_mock_server(config, policy, listed_models=listed_models) as server:
        if on_ready is not None:
            on_ready(server)
        await asyncio.get_running_loop().create_future()
