"""What a real server did that the mock's clean OpenAI dialect does not: quirks.

Each quirk is a behaviour observed on a real serving stack, captured raw from
llama-cpp-python's server (0.3.x, FastAPI + sse-starlette) serving Gemma 3 270M on
loopback (benchmarks/bench_real_server.py); ``LLAMA_CPP_PYTHON`` turns all of them on.
The mock server (mock_server.py) calls the hooks below only when a quirk is set, so its
default behaviour and its hot path are untouched.

Observed, and modelled here:

* streams never carry usage, even with ``stream_options.include_usage`` (plain calls do);
* stream framing: the first chunk carries only ``{"role": "assistant"}``; delta fields
  the chunk does not use are explicit ``null``s; every piece of a tool call repeats its
  ``id``, ``type`` and ``function.name`` and a legacy ``function_call`` copy; each event
  is its own write (its own HTTP chunk);
* ``: ping - <time>`` SSE comments while the prompt is being read (every 15 s there);
* a stream is cut with ``data: [DONE]`` and no ``finish_reason`` when another request is
  waiting (``interrupt_requests``, on by default): a single-slot server yielding; the
  connection then closes without the chunked body's last chunk;
* a plain answer that calls tools also carries the legacy ``function_call`` field;
* tool-call arguments cut at ``max_tokens`` keep ``finish_reason: "tool_calls"``, so
  only the arguments' JSON shows the cut;
* an empty answer (``content: ""``, ``finish_reason: "stop"``), which its
  ``chatml-function-calling`` format gives whenever the model chooses to talk;
* context overflow: a plain call gets 400 ``context_length_exceeded`` with llama's own
  message; a streamed call gets 200 ``text/event-stream`` and an empty body;
* a request body that is not valid gets 500, not 400/422: ``text/plain`` "Internal
  Server Error" for broken JSON, an OpenAI-shaped ``internal_server_error`` otherwise.

From other stacks' documentation, not captured here:

* a tool call the server failed to parse, passed through as text
  (``tool_call_parse_failure``, ``mangle_tool_calls``): vLLM's hermes parser leaves the
  ``<tool_call>`` block in the content; a server without a parser returns the bare call
  object; SGLang answers ``tool_calls: []`` with finish_reason ``tool_calls``; a model
  may write data after the arguments' JSON object;

* vLLM with a reasoning parser answers a thinking model's reasoning in its own field,
  ``reasoning`` (``reasoning_content`` before vLLM renamed it, and in DeepSeek's API),
  on the message and on stream deltas; without a parser the ``<think>...</think>`` block
  stays at the start of the content. ``chat_template_kwargs.enable_thinking = false``
  (Qwen3's chat template) turns the thinking off (``reasoning``);
* OpenAI's reasoning models (o-series, GPT-5) refuse ``max_tokens`` (use
  ``max_completion_tokens``) and any ``temperature`` or ``top_p`` but 1, with a 400 and
  ``code: unsupported_parameter`` / ``unsupported_value``; other models refuse
  ``reasoning_effort`` (``openai_reasoning_models``).
"""

from __future__ import annotations

import asyncio
import datetime
import random
from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web

from writ_async.llm.protocol import ChatRequest, FunctionCall, Message, Usage, encoder
from writ_async.mock.config import Quirks
from writ_async.mock.policies import CHARS_PER_TOKEN

_SSE = "text/event-stream"
_JSON = "application/json"




# -- answers -----------------------------------------------------------------------------


def shape_answer(quirks: Quirks, chat: ChatRequest, message: Message, finish: str,
                 rng: random.Random) -> tuple[Message, str]:
    """The policy's answer as the quirky server would give it, and its finish_reason."""
    if quirks.empty_answer and rng.random() < quirks.empty_answer:
        return Message(role="assistant", content=""), "stop"
    if quirks.tool_call_parse_failure != "off" and message.tool_calls and (
            quirks.tool_call_parse_failure_rate >= 1.0
            or rng.random() < quirks.tool_call_parse_failure_rate):
        return mangle_tool_calls(quirks.tool_call_parse_failure, message)
    if quirks.tool_args_cut_keep_finish and chat.max_tokens and message.tool_calls:
        room = chat.max_tokens * CHARS_PER_TOKEN
        calls = [msgspec.structs.replace(c, function=FunctionCall(
            c.function.name, c.function.arguments[:room])) for c in message.tool_calls]
        message = msgspec.structs.replace(message, tool_calls=calls)
    return message, finish


def mangle_tool_calls(how: str, message: Message) -> tuple[Message, str]:
    """An answer's tool calls as a server whose tool-call parser failed returns them:

    * ``hermes``: vLLM's hermes parser (Qwen's format) on a block it cannot read passes
      the model's text through: each call a ``<tool_call>`` block in the content, no
      ``tool_calls``, finish_reason ``stop``;
    * ``json``: a server without a tool parser: the bare ``{"name": ..., "arguments":
      ...}`` object (a list for several) as the content;
    * ``sglang_empty``: SGLang: the content announces the call, ``tool_calls`` is ``[]``
      and finish_reason ``tool_calls``;
    * ``trailing_data``: each call's arguments followed by a second copy of the object
      (``{"a": 1}{"a": 1}``), as a model that repeats itself writes them."""
    calls = message.tool_calls or []
    objects = [f'{{"name": {encoder.encode(c.function.name).decode()}, '
               f'"arguments": {c.function.arguments or "{}"}}}' for c in calls]
    prefix = f"{message.content}\n" if message.content else ""
    if how == "hermes":
        blocks = "\n".join(f"<tool_call>\n{o}\n</tool_call>" for o in objects)
        return Message(role="assistant", content=prefix + blocks), "stop"
    if how == "json":
        text = objects[0] if len(objects) == 1 else "[" + ", ".join(objects) + "]"
        return Message(role="assistant", content=text), "stop"
    if how == "sglang_empty":
        names = ", ".join(c.function.name for c in calls)
        return Message(role="assistant", content=f"{prefix}I will call {names} now.",
                       tool_calls=[]), "tool_calls"
    doubled = [msgspec.structs.replace(c, function=FunctionCall(
        c.function.name, c.function.arguments + c.function.arguments)) for c in calls]
    return msgspec.structs.replace(message, tool_calls=doubled), "tool_calls"


class _TemplateKwargs(msgspec.Struct):
    chat_template_kwargs: dict[str, Any] | None = None


_template_kwargs = msgspec.json.Decoder(_TemplateKwargs)


def thinking_enabled(body: bytes) -> bool:
    """Whether the request leaves thinking on (vLLM's ``chat_template_kwargs``, which the
    mock's request type does not hold: the raw body is read for it)."""
    try:
        kwargs = _template_kwargs.decode(body).chat_template_kwargs
    except msgspec.DecodeError:  # the body decoded once already; a shape we do not know
        return True
    return not (kwargs is not None and kwargs.get("enable_thinking") is False)


def reasoning_text(chat: ChatRequest, message: Message) -> str:
    """What the mock's thinking model thinks: a pure function of the request and the
    answer (no random draws, so turning it on changes no other answer)."""
    turns = sum(1 for m in chat.messages if m.role != "system")
    if message.tool_calls:
        plan = "call " + ", ".join(c.function.name for c in message.tool_calls)
    else:
        plan = "answer in words"
    return f"The conversation has {turns} turn(s) so far. I should {plan}."


def add_reasoning(quirks: Quirks, chat: ChatRequest, message: Message, body: bytes) -> Message:
    """The answer with its reasoning where ``quirks.reasoning`` puts it."""
    if quirks.reasoning == "off" or not thinking_enabled(body):
        return message
    thought = reasoning_text(chat, message)
    if quirks.reasoning == "reasoning":
        return msgspec.structs.replace(message, reasoning=thought)
    if quirks.reasoning == "reasoning_content":
        return msgspec.structs.replace(message, reasoning_content=thought)
    return msgspec.structs.replace(
        message, content=f"<think>\n{thought}\n</think>\n\n{message.content or ''}")


def parameter_error(quirks: Quirks, chat: ChatRequest) -> web.Response | None:
    """OpenAI's 400 for a parameter the model does not take, or None."""
    if chat.model in quirks.openai_reasoning_models:
        if chat.max_tokens is not None:
            return _unsupported("Unsupported parameter: 'max_tokens' is not supported with "
                                "this model. Use 'max_completion_tokens' instead.",
                                "max_tokens", "unsupported_parameter")
        for name in ("temperature", "top_p"):
            value = getattr(chat, name)
            if value is not None and value != 1:
                return _unsupported(f"Unsupported value: '{name}' does not support {value} "
                                    "with this model. Only the default (1) value is "
                                    "supported.", name, "unsupported_value")
    elif quirks.openai_reasoning_models and chat.reasoning_effort is not None:
        return _unsupported("Unsupported parameter: 'reasoning_effort' is not supported "
                            "with this model.", "reasoning_effort", "unsupported_parameter")
    return None


def _unsupported(message: str, param: str, code: str) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param,
                      "code": code}}
    return web.Response(body=encoder.encode(body), status=400, content_type=_JSON)


def completion_body(message: Message, finish: str, usage: Usage | None, ident: str,
                    created: int, model: str) -> bytes:
    """A plain completion whose message also carries the legacy ``function_call``."""
    body: dict[str, Any] = {"role": "assistant", "content": message.content}
    for name in ("reasoning", "reasoning_content"):
        if getattr(message, name) is not None:
            body[name] = getattr(message, name)
    if message.tool_calls:
        body["tool_calls"] = message.tool_calls
        first = message.tool_calls[0].function
        body["function_call"] = {"name": first.name, "arguments": first.arguments}
    out: dict[str, Any] = {
        "id": ident, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": body, "logprobs": None, "finish_reason": finish}],
    }
    if usage is not None:
        out["usage"] = usage
    return encoder.encode(out)


# -- errors ------------------------------------------------------------------------------


def context_error(chat: ChatRequest, prompt: int, limit: int) -> web.Response:
    """Over the context window: llama's 400 for a plain call, an empty 200 stream."""
    if chat.stream:
        return web.Response(body=b"", content_type=_SSE)
    completion = chat.max_tokens or 0
    message = (f"This model's maximum context length is {limit} tokens. However, you "
               f"requested {prompt + completion} tokens ({prompt} in the messages, "
               f"{completion} in the completion). Please reduce the length of the messages "
               "or completion.")
    body = {"error": {"message": message, "type": "invalid_request_error",
                      "param": "messages", "code": "context_length_exceeded"}}
    return web.Response(body=encoder.encode(body), status=400, content_type=_JSON)


def bad_body_error(status: int, message: str) -> web.Response:
    """A refused body as a 500: plain text for broken JSON (400), JSON otherwise (422)."""
    if status == 400:
        return web.Response(body=b"Internal Server Error", status=500,
                            content_type="text/plain", charset="utf-8")
    body = {"error": {"message": message, "type": "internal_server_error", "param": None,
                      "code": None}}
    return web.Response(body=encoder.encode(body), status=500, content_type=_JSON)


# -- streams -----------------------------------------------------------------------------


def _event(payload: Any) -> bytes:
    return b"data: " + encoder.encode(payload) + b"\n\n"


def stream_events(message: Message, finish: str, usage: Usage | None, *, ident: str,
                  created: int, model: str, piece_chars: int,
                  llama_chunks: bool) -> list[tuple[bytes, int]]:
    """The stream's events after the role chunk, each with the tokens it carries; the
    finish chunk, any usage chunk and ``[DONE]`` are the last three or two."""
    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        if llama_chunks:
            delta = {"role": None, "content": None, "function_call": None,
                     "tool_calls": None, **delta}
        return _event({"id": ident, "object": "chat.completion.chunk", "created": created,
                       "model": model, "choices": [{"index": 0, "finish_reason": finish_reason,
                                                    "logprobs": None, "delta": delta}]})

    events: list[tuple[bytes, int]] = []
    for name in ("reasoning", "reasoning_content"):
        thought = getattr(message, name) or ""
        for i in range(0, len(thought), piece_chars):
            part = thought[i:i + piece_chars]
            events.append((chunk({name: part}), -(-len(part) // CHARS_PER_TOKEN)))
    text = message.content or ""
    for i in range(0, len(text), piece_chars):
        part = text[i:i + piece_chars]
        events.append((chunk({"content": part}), -(-len(part) // CHARS_PER_TOKEN)))
    for index, call in enumerate(message.tool_calls or ()):
        args = call.function.arguments
        parts = [args[i:i + piece_chars] for i in range(0, len(args), piece_chars)] or [""]
        for n, part in enumerate(parts):
            if llama_chunks or n == 0:  # llama repeats the call's header on every piece
                piece = {"index": index, "id": call.id, "type": call.type,
                         "function": {"name": call.function.name, "arguments": part}}
            else:
                piece = {"index": index, "function": {"arguments": part}}
            delta: dict[str, Any] = {"tool_calls": [piece]}
            if llama_chunks:
                delta["function_call"] = {"name": call.function.name, "arguments": part}
            events.append((chunk(delta), max(1, -(-len(part) // CHARS_PER_TOKEN))))
    events.append((chunk({}, finish), 0))
    if usage is not None:
        events.append((_event({"id": ident, "object": "chat.completion.chunk",
                               "created": created, "model": model, "choices": [],
                               "usage": usage}), 0))
    events.append((b"data: [DONE]\n\n", 0))
    return events


async def write_stream(request: web.Request, quirks: Quirks, message: Message, finish: str,
                       usage: Usage | None, *, ident: str, created: int, model: str,
                       piece_chars: int, headers: dict[str, str] | None,
                       others_waiting: Callable[[], bool],
                       delay: Callable[[int], float]) -> web.StreamResponse | None:
    """Write a stream the way the quirky server does: one write per event, a ping comment
    before the first token, and a cut (``[DONE]``, no finish_reason) when another request
    is waiting. ``delay(tokens)`` is the pacing before an event (tokens 0: the first).
    None when the stream was cut: the connection is closed, no response is left to send."""
    response = web.StreamResponse(headers=headers)
    response.content_type = _SSE
    await response.prepare(request)
    role: dict[str, Any] = {"role": "assistant"}
    if not quirks.llama_stream_chunks:
        role["content"] = ""
    await response.write(_event({"id": ident, "object": "chat.completion.chunk",
                                 "created": created, "model": model,
                                 "choices": [{"index": 0, "finish_reason": None,
                                              "logprobs": None, "delta": role}]}))
    if quirks.ping_before_first_token:
        stamp = datetime.datetime.now(datetime.UTC)
        await response.write(f": ping - {stamp}\n\n".encode())
    events = stream_events(message, finish, usage, ident=ident, created=created, model=model,
                           piece_chars=piece_chars, llama_chunks=quirks.llama_stream_chunks)
    first = True
    for event, tokens in events:
        if (quirks.interrupt_streams == "always"
                or (quirks.interrupt_streams == "when_waiting" and others_waiting())):
            await response.write(b"data: [DONE]\n\n")
            # llama's handler raises on the cut: the connection closes (its buffer
            # flushed) without the chunked body's terminating chunk
            if request.transport is not None:
                request.transport.close()
            return None
        wait = delay(0 if first else tokens)
        first = False
        if wait > 0:
            await asyncio.sleep(wait)
        await response.write(event)
    await response.write_eof()
    return response
