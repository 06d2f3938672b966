"""The mock server's ``POST /v1/responses``: OpenAI's Responses API over the same service.

The route shares everything with ``/v1/chat/completions`` (mock_server.py) up to the
answer: authorization, body checks, model allow-list, context length, rate limits and
their headers, the drawn faults (stall, reset, 5xx, error object in a 200, malformed
JSON), the policy's answer and its alterations (invalid or unholdable tool arguments,
no usage, the quirks that shape an answer). The body is read by
``responses_wire.chat_request_of``, so a policy sees the same ``ChatRequest`` either
way; only the answer is written here, as a Responses object or its event stream:

* ``reasoning`` item (when the answer has reasoning: ``quirks.reasoning``), with an
  ``encrypted_content`` when the request ``include``\\ s it: an opaque token here, as it
  is to a client;
* a ``message`` item with one ``output_text`` part (unless the answer is only calls);
* one ``function_call`` item per call;
* status ``completed``, or ``incomplete`` (``max_output_tokens``) for an answer cut at
  its budget.

Streams go ``response.created``, then per item ``response.output_item.added``, its
deltas (``response.reasoning_summary_text.delta``, ``response.output_text.delta``,
``response.function_call_arguments.delta``) and ``response.output_item.done``, then
``response.completed`` (or ``response.incomplete``). Faults on a stream: ``reset``
drops the connection after the first delta, ``truncated_stream`` ends it after half
the deltas with no terminal event.

This module never imports mock_server.py (which routes here): what it needs of the
service is ``MockService`` below.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web

from writ_async.llm.protocol import ChatRequest, Message, Usage, encoder
from writ_async.llm.responses_wire import chat_request_of
from writ_async.mock.policies import CHARS_PER_TOKEN, completion_tokens

__all__ = ["MockService", "answer", "decode_request"]

_SSE = "text/event-stream"
_JSON = "application/json"


class MockService(Protocol):
    """What the route needs of mock_server's service."""

    paced: bool
    ttft: float
    tpot: float
    piece_chars: int

    def _delay(self, seconds: float) -> float: ...
    async def write_pieces(self, request: web.Request, headers: dict[str, str] | None,
                           opening: bytes, pieces: list[tuple[bytes, int]], tail: bytes,
                           faults: tuple[str, ...]) -> web.StreamResponse | None: ...


def decode_request(raw: bytes) -> ChatRequest:
    """The body as the chat request it amounts to (``chat_request_of``); raises
    ``msgspec.DecodeError`` / ``ValidationError``, as the chat route's decoder does."""
    return chat_request_of(raw)[0]


def _encrypted(text: str) -> str:
    return "writ-mock:" + base64.b64encode(text.encode()).decode()


def _items(message: Message, ident: str, encrypted: bool) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    thought = message.reasoning or message.reasoning_content
    if thought:
        item: dict[str, Any] = {"type": "reasoning", "id": f"rs_{ident}",
                                "summary": [{"type": "summary_text", "text": thought}]}
        if encrypted:
            item["encrypted_content"] = _encrypted(thought)
        items.append(item)
    if message.content or not message.tool_calls:
        items.append({"type": "message", "id": f"msg_{ident}", "status": "completed",
                      "role": "assistant",
                      "content": [{"type": "output_text", "text": message.content or "",
                                   "annotations": []}]})
    for i, call in enumerate(message.tool_calls or ()):
        items.append({"type": "function_call", "id": f"fc_{ident}_{i}", "call_id": call.id,
                      "name": call.function.name, "arguments": call.function.arguments,
                      "status": "completed"})
    return items


def _response(chat: ChatRequest, ident: str, created: int, items: list[dict[str, Any]],
              finish: str, usage: Usage | None) -> dict[str, Any]:
    cut = finish == "length"
    return {
        "id": f"resp_{ident}", "object": "response", "created_at": created,
        "status": "incomplete" if cut else "completed", "model": chat.model,
        "output": items, "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
        "usage": None if usage is None else {
            "input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens},
    }


async def answer(service: MockService, request: web.Request, chat: ChatRequest,
                 message: Message, finish: str, usage: Usage | None, ident: str,
                 created: int, faults: tuple[str, ...],
                 headers: dict[str, str] | None) -> web.StreamResponse | None:
    """The policy's (altered) answer as a Responses object or stream."""
    encrypted = chat_request_of(await request.read())[1]  # read once already: cached
    ident = ident.removeprefix("chatcmpl-")
    items = _items(message, ident, encrypted)
    final = _response(chat, ident, created, items, finish, usage)
    if not chat.stream:
        if service.paced:
            # paced by what was generated, even when usage is withheld (no_usage)
            delay = service._delay(service.ttft + service.tpot * completion_tokens(message))
            if delay:
                await asyncio.sleep(delay)
        return web.Response(body=encoder.encode(final), headers=headers, content_type=_JSON)
    return await _stream(service, request, final, items, faults, headers)


class _Events:
    """Encodes events in order, numbering them as OpenAI does (``sequence_number``)."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, kind: str, **fields: Any) -> bytes:
        payload = encoder.encode({"type": kind, "sequence_number": self.n, **fields})
        self.n += 1
        return b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n"


def _pieces(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def _deltas(items: list[dict[str, Any]], size: int,
            event: Callable[..., bytes]) -> list[tuple[bytes, int]]:
    """The stream's events after ``response.created`` and before the terminal one, in
    pieces that each end with one delta (for pacing and faults), with its tokens: an
    item's ``output_item.added`` rides with its first delta, its ``output_item.done``
    with its last."""
    deltas: list[tuple[bytes, int]] = []
    for index, item in enumerate(items):
        kind = item["type"]
        ident = item.get("id", "")
        if kind == "reasoning":
            text = item["summary"][0]["text"]
            opening = {**item, "summary": []}
            name = "response.reasoning_summary_text.delta"
        elif kind == "message":
            text = item["content"][0]["text"]
            opening = {**item, "status": "in_progress", "content": []}
            name = "response.output_text.delta"
        else:
            text = item["arguments"]
            opening = {**item, "status": "in_progress", "arguments": ""}
            name = "response.function_call_arguments.delta"
        head = event("response.output_item.added", output_index=index, item=opening)
        if deltas:  # the previous item ends before this one opens
            previous = deltas[-1]
            deltas[-1] = (previous[0] + event("response.output_item.done",
                                              output_index=index - 1, item=items[index - 1]),
                          previous[1])
        parts = _pieces(text, size) or [""]
        for i, part in enumerate(parts):
            extra = {"summary_index": 0} if kind == "reasoning" else (
                {"content_index": 0} if kind == "message" else {})
            piece = event(name, item_id=ident, output_index=index, delta=part, **extra)
            deltas.append(((head if i == 0 else b"") + piece,
                           -(-len(part) // CHARS_PER_TOKEN)))
    if items:
        last = deltas[-1]
        deltas[-1] = (last[0] + event("response.output_item.done", output_index=len(items) - 1,
                                      item=items[-1]), last[1])
    return deltas


async def _stream(service: MockService, request: web.Request, final: dict[str, Any],
                  items: list[dict[str, Any]], faults: tuple[str, ...],
                  headers: dict[str, str] | None) -> web.StreamResponse | None:
    event = _Events()
    opening = event("response.created",
                    response={**final, "status": "in_progress", "output": [], "usage": None})
    pieces = _deltas(items, service.piece_chars, event)
    end = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
    tail = event(end, response=final)
    return await service.write_pieces(request, headers, opening, pieces, tail, faults)
