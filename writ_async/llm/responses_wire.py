"""OpenAI's Responses API (``POST /v1/responses``) in the chat-completions types: pure, no I/O.

The engine speaks chat completions everywhere (participants, pool, journal); an endpoint
with ``api = "responses"`` translates at its edge, here:

* ``request_body``: a ``ChatRequest`` as a Responses body. A leading system message is
  ``instructions``; the conversation is ``input`` items: ``{"role", "content"}`` messages,
  an assistant's tool calls as ``function_call`` items (``call_id``, ``name``,
  ``arguments``), tool results as ``function_call_output`` items, and an assistant
  message's reasoning items verbatim before it (with ``store: false`` the server keeps
  nothing: its encrypted reasoning must come back in the input). Tools are flat
  (``{"type": "function", "name", "description", "parameters"}``); ``max_tokens`` and
  ``max_completion_tokens`` are ``max_output_tokens``, ``reasoning_effort`` is
  ``reasoning.effort``; ``seed`` and ``stream_options`` are not sent (the API has
  neither). ``extra_body`` keys go last and win (``include = []`` for a model that
  refuses encrypted reasoning).
* ``decode_response`` / ``completion_of``: a Responses object as a ``ChatCompletion`` of
  one choice: ``message`` items' ``output_text`` joined as the content, ``function_call``
  items as tool calls (id: ``call_id``), ``reasoning`` items kept verbatim in
  ``reasoning_items`` and their summary/reasoning text as ``reasoning``; the status as
  the finish reason (``completed``: ``tool_calls`` or ``stop``; ``incomplete``:
  ``length`` or ``content_filter``; ``failed``: an ``error_object`` failure).
* ``ResponsesStreamAssembler``: the same from the streamed events
  (``response.output_item.added``, ``response.output_text.delta``,
  ``response.function_call_arguments.delta``, ``response.output_item.done``,
  ``response.completed``...), with the ``StreamAssembler``'s timing attributes.
* ``chat_request_of``: the inverse of ``request_body``, for the mock server, so that its
  policies answer both APIs from the same ``ChatRequest``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from writ_async.errors import MalformedResponse
from writ_async.llm.assemble import StreamTiming, describe_error, excerpt
from writ_async.llm.protocol import (
    ChatCompletion,
    ChatRequest,
    Choice,
    FunctionCall,
    Message,
    ToolCall,
    Usage,
    encoder,
)

__all__ = ["ENCRYPTED_REASONING", "ResponsesStreamAssembler", "chat_request_of",
           "completion_of", "decode_response", "input_items", "reasoning_text",
           "request_body", "responses_tool"]

ENCRYPTED_REASONING = "reasoning.encrypted_content"


# -- requests ------------------------------------------------------------------------------


def responses_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A chat tool (``{"type": "function", "function": {...}}``) in the Responses shape
    (the function's keys beside ``type``); any other tool as it is."""
    function = tool.get("function")
    if tool.get("type") == "function" and isinstance(function, dict):
        return {"type": "function", **function}
    return tool


def _tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return {"type": "function", "name": choice["function"].get("name")}
    return choice


def input_items(messages: list[Message]) -> tuple[str | None, list[dict[str, Any]]]:
    """``(instructions, input)`` for a conversation (see the module docstring)."""
    # Every item says its type: OpenAI infers "message" from a role, llama.cpp's server
    # refuses an item without one (HTTP 400 "Cannot determine type of 'item'").
    instructions: str | None = None
    items: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        if m.role == "system" and i == 0:
            instructions = m.content or ""
        elif m.role == "assistant":
            items.extend(m.reasoning_items or ())
            if m.content:
                items.append({"type": "message", "role": "assistant", "content": m.content})
            for call in m.tool_calls or ():
                items.append({"type": "function_call", "call_id": call.id,
                              "name": call.function.name,
                              "arguments": call.function.arguments})
        elif m.role == "tool":
            items.append({"type": "function_call_output", "call_id": m.tool_call_id or "",
                          "output": m.content or ""})
        else:
            items.append({"type": "message", "role": m.role, "content": m.content or ""})
    return instructions, items


def request_body(request: ChatRequest) -> bytes:
    """The Responses body that says what ``request`` says."""
    instructions, items = input_items(request.messages)
    body: dict[str, Any] = {"model": request.model}
    if instructions is not None:
        body["instructions"] = instructions
    body["input"] = items
    if request.tools:
        body["tools"] = [responses_tool(t) for t in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = _tool_choice(request.tool_choice)
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    budget = request.max_completion_tokens or request.max_tokens
    if budget is not None:
        body["max_output_tokens"] = budget
    if request.reasoning_effort is not None:
        body["reasoning"] = {"effort": request.reasoning_effort}
    if request.user is not None:
        body["user"] = request.user
    body["store"] = False
    body["include"] = [ENCRYPTED_REASONING]
    if request.stream:
        body["stream"] = True
    if request.extra_body is not msgspec.UNSET:
        body.update(request.extra_body)
    return encoder.encode(body)


# -- answers -------------------------------------------------------------------------------


class _Usage(msgspec.Struct):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


class _Response(msgspec.Struct):
    output: list[dict[str, Any]] = msgspec.field(default_factory=list)
    id: str = ""
    object: str = ""
    created_at: float = 0
    model: str = ""
    status: str | None = None
    usage: _Usage | None = None
    # servers disagree on its shape (an object, a string), as on chat streams' errors
    error: Any = None
    incomplete_details: Any = None


_response_decoder = msgspec.json.Decoder(_Response)


def decode_response(raw: bytes, content_type: str, endpoint: str) -> ChatCompletion:
    """A non-streamed 200 body as a completion, or ``MalformedResponse``: ``error_object``
    (an error in a 200, or status ``failed``), ``html``, ``invalid_json``, or what
    ``completion_of`` refuses."""
    try:
        response = _response_decoder.decode(raw)
    except msgspec.DecodeError:
        text = raw[:120].decode("utf-8", "replace")
        if "html" in content_type or text.lstrip().startswith("<"):
            raise MalformedResponse("html", f"HTML instead of JSON: {text!r}",
                                    endpoint=endpoint, status=200) from None
        raise MalformedResponse("invalid_json", f"not a Responses object: {text!r}",
                                endpoint=endpoint, status=200) from None
    return completion_of(response, endpoint)


def reasoning_text(item: dict[str, Any]) -> str:
    """A reasoning item's readable text: its summaries, then its reasoning text (open
    models served by vLLM), blank-line separated; "" for encrypted reasoning only."""
    parts = []
    for key in ("summary", "content"):
        for part in item.get(key) or ():
            if isinstance(part, dict) and isinstance(part.get("text"), str) and part["text"]:
                parts.append(part["text"])
    return "\n\n".join(parts)


def _finish(response: _Response, calls: bool, endpoint: str) -> str:
    status = response.status
    if status == "failed" or (response.error is not None and status is None):
        raise MalformedResponse("error_object", describe_error(response.error)
                                or "status failed", endpoint=endpoint, status=200)
    if status == "incomplete":
        details = response.incomplete_details
        reason = details.get("reason") if isinstance(details, dict) else None
        return "content_filter" if reason == "content_filter" else "length"
    if status is None and not response.output:
        raise MalformedResponse("invalid_json", "not a Responses object (no status, no "
                                "output)", endpoint=endpoint, status=200)
    if status not in (None, "completed"):  # queued, in_progress, cancelled: no answer yet
        raise MalformedResponse("interrupted_stream", f"response status {status!r}",
                                endpoint=endpoint)
    return "tool_calls" if calls else "stop"


def completion_of(response: _Response, endpoint: str = "") -> ChatCompletion:
    """The ``ChatCompletion`` a Responses object amounts to (module docstring)."""
    texts: list[str] = []
    has_message = False
    calls: list[ToolCall] = []
    reasoning: list[dict[str, Any]] = []
    for index, item in enumerate(response.output):
        kind = item.get("type")
        if kind == "message":
            has_message = True
            for part in item.get("content") or ():
                if isinstance(part, dict) and part.get("type") in ("output_text", "refusal"):
                    text = part.get("text", part.get("refusal"))
                    if isinstance(text, str):
                        texts.append(text)
        elif kind == "function_call":
            call_id, name = item.get("call_id"), item.get("name")
            if not isinstance(call_id, str) or not call_id or not isinstance(name, str) \
                    or not name:
                missing = "call_id" if not call_id else "name"
                raise MalformedResponse("invalid_tool_call",
                                        f"output item {index} (function_call) has no {missing}",
                                        endpoint=endpoint)
            arguments = item.get("arguments")
            calls.append(ToolCall(id=call_id, function=FunctionCall(
                name=name, arguments=arguments if isinstance(arguments, str) else "")))
        elif kind == "reasoning":
            reasoning.append(item)
        # other items (a hosted tool's calls) are nothing the engine asked for
    finish = _finish(response, bool(calls), endpoint)
    thought = "\n\n".join(t for t in map(reasoning_text, reasoning) if t)
    message = Message(role="assistant", content="".join(texts) if has_message else None,
                      tool_calls=calls or None, reasoning=thought or None,
                      reasoning_items=reasoning or None)
    usage = None
    if response.usage is not None:
        u = response.usage
        usage = Usage(u.input_tokens, u.output_tokens,
                      u.total_tokens or u.input_tokens + u.output_tokens)
    return ChatCompletion(choices=[Choice(message=message, finish_reason=finish)],
                          id=response.id, object="response", created=int(response.created_at),
                          model=response.model, usage=usage)


# -- streams ---------------------------------------------------------------------------------

_TEXT_DELTAS = frozenset({"response.output_text.delta", "response.refusal.delta"})
_REASONING_DELTAS = frozenset({"response.reasoning_summary_text.delta",
                               "response.reasoning_text.delta"})
_ENDS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_event_decoder = msgspec.json.Decoder(dict[str, Any])


class ResponsesStreamAssembler(StreamTiming):
    """Accumulates one streamed Responses answer; ``result()`` gives the completion.

    The attributes the client and the load tester read are ``StreamAssembler``'s
    (``done``, ``chunks``, ``token_chunks``, ``gaps``, ``first_token_at``, ``ttft``); an
    event counts as a chunk, one carrying text, arguments or reasoning as a token chunk.
    The terminal event's ``response`` is the answer when it lists its output (OpenAI's
    does); else the items are rebuilt from ``output_item.added``/``.done`` and deltas."""

    def __init__(self, *, started: float | None = None, endpoint: str = "") -> None:
        super().__init__(started=started, endpoint=endpoint)  # done: the terminal event
        self._items: dict[int, dict[str, Any]] = {}
        self._finished_items: set[int] = set()
        self._deltas: dict[int, list[str]] = {}
        self._final: _Response | None = None
        self._places: dict[str, int] = {}  # item id -> output place, where none is sent

    def __repr__(self) -> str:
        return (f"<ResponsesStreamAssembler events={self.chunks} items={len(self._items)}"
                f" done={self.done} ttft={self.ttft}>")

    def feed_event(self, data: str, now: float, *, event: str = "message") -> None:
        """Take one server-sent event's data, as it arrived at ``now``; raises
        ``MalformedResponse`` (``invalid_json``, ``error_object``)."""
        if self.done:
            return
        stripped = data.strip()
        if not stripped:
            return
        if stripped == "[DONE]":  # not the API's, but a proxy's habit: the end all the same
            self.done = True
            return
        try:
            payload = _event_decoder.decode(stripped)
        except msgspec.DecodeError as exc:
            raise MalformedResponse(
                "invalid_json", f"stream event is not a Responses event ({exc}): "
                f"{excerpt(data)!r}", endpoint=self.endpoint) from exc
        kind = payload.get("type") or event
        if kind == "error" or (kind == "message" and "error" in payload):
            error = payload.get("error", payload)
            raise MalformedResponse("error_object", describe_error(error),
                                    endpoint=self.endpoint)
        self._arrived(now)
        if kind in _ENDS:
            try:
                self._final = msgspec.convert(payload.get("response") or {}, _Response)
            except msgspec.ValidationError as exc:
                raise MalformedResponse("invalid_json", f"{kind} without a response ({exc})",
                                        endpoint=self.endpoint) from exc
            self.done = True
            return
        index = payload.get("output_index")
        if not isinstance(index, int):
            index = self._place(payload)
            if index is None:
                return  # response.created, in_progress...: nothing of the answer
        if kind in ("response.output_item.added", "response.output_item.done"):
            item = payload.get("item")
            if isinstance(item, dict):
                self._items[index] = item
                if kind == "response.output_item.done":
                    self._finished_items.add(index)
            return
        delta = payload.get("delta")
        if isinstance(delta, str) and (kind in _TEXT_DELTAS or kind in _REASONING_DELTAS
                                       or kind == "response.function_call_arguments.delta"):
            self._deltas.setdefault(index, []).append(delta)
            if delta:
                self._generated(now)

    def _place(self, payload: dict[str, Any]) -> int | None:
        """The output place of an event that names its item instead (llama.cpp's server
        sends ``item_id``, or the item with its ``id``, and no ``output_index``): items
        take places in the order they first appear."""
        item = payload.get("item")
        ident = payload.get("item_id") or (item.get("id") if isinstance(item, dict) else None)
        if not isinstance(ident, str):
            return None
        return self._places.setdefault(ident, len(self._places))

    def result(self) -> ChatCompletion:
        """The completion the stream amounts to, once it has ended: ``truncated_stream``
        when it ended without a terminal event, ``interrupted_stream`` after a bare
        ``[DONE]``, else ``completion_of``'s answer."""
        final = self._final
        if final is None:
            if self.done:
                raise MalformedResponse("interrupted_stream",
                                        f"[DONE] without response.completed, after "
                                        f"{self.chunks} event(s)", endpoint=self.endpoint)
            raise MalformedResponse("truncated_stream",
                                    f"stream ended without response.completed after "
                                    f"{self.chunks} event(s)", endpoint=self.endpoint)
        if not final.output and self._items:
            final = msgspec.structs.replace(
                final, output=[self._item(i) for i in sorted(self._items)])
        return completion_of(final, self.endpoint)

    def _item(self, index: int) -> dict[str, Any]:
        item = self._items[index]
        if index in self._finished_items:
            return item
        joined = "".join(self._deltas.get(index, ()))
        kind = item.get("type")
        if kind == "message":
            return {**item, "content": [{"type": "output_text", "text": joined}]}
        if kind == "function_call":
            return {**item, "arguments": item.get("arguments") or joined}
        if kind == "reasoning" and joined and not reasoning_text(item):
            return {**item, "summary": [{"type": "summary_text", "text": joined}]}
        return item


# -- the mock's side: a Responses body as a ChatRequest ------------------------------------------


class _Request(msgspec.Struct):
    model: str
    input: str | list[dict[str, Any]] = msgspec.field(default_factory=list)
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    reasoning: dict[str, Any] | None = None
    user: str | None = None
    stream: bool = False
    include: list[str] | None = None


_request_decoder = msgspec.json.Decoder(_Request)


def _chat_tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") == "function" and "name" in tool:
        return {"type": "function", "function": {k: v for k, v in tool.items() if k != "type"}}
    return tool


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = [p.get("text") for p in content or () if isinstance(p, dict)]
    return "".join(p for p in parts if isinstance(p, str))


def chat_request_of(raw: bytes) -> tuple[ChatRequest, bool]:
    """A Responses body as the ``ChatRequest`` that ``request_body`` would have made it
    from, and whether it asked for encrypted reasoning. Raises ``msgspec.DecodeError``
    (not JSON) or ``msgspec.ValidationError`` (not a Responses request)."""
    r = _request_decoder.decode(raw)
    messages: list[Message] = []
    if r.instructions is not None:
        messages.append(Message(role="system", content=r.instructions))
    reasoning: list[dict[str, Any]] = []  # waiting for the assistant message it goes with
    # whether the last message is an assistant's whose tool calls may still grow
    open_turn = False
    items = [{"role": "user", "content": r.input}] if isinstance(r.input, str) else r.input
    for item in items:
        kind = item.get("type", "message")
        if kind == "reasoning":
            reasoning.append(item)
        elif kind == "function_call":
            call = ToolCall(id=str(item.get("call_id", "")), function=FunctionCall(
                name=str(item.get("name", "")), arguments=str(item.get("arguments", ""))))
            if open_turn and not reasoning:
                last = messages[-1]
                messages[-1] = msgspec.structs.replace(last,
                                                       tool_calls=[*(last.tool_calls or ()), call])
            else:
                messages.append(_assistant(None, [call], reasoning))
                reasoning, open_turn = [], True
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append(Message(role="tool", tool_call_id=str(item.get("call_id", "")),
                                    content=output if isinstance(output, str)
                                    else encoder.encode(output).decode()))
            open_turn = False
        else:
            role = str(item.get("role", "user"))
            if role == "assistant":
                messages.append(_assistant(_text(item.get("content")), None, reasoning))
                reasoning, open_turn = [], True
            else:
                messages.append(Message(role=role, content=_text(item.get("content"))))
                open_turn = False
    effort = (r.reasoning or {}).get("effort")
    chat = ChatRequest(
        model=r.model, messages=messages,
        tools=[_chat_tool(t) for t in r.tools] if r.tools else None,
        tool_choice=(r.tool_choice if not isinstance(r.tool_choice, dict)
                     else {"type": "function", "function": {"name": r.tool_choice.get("name")}}),
        temperature=r.temperature, top_p=r.top_p, user=r.user, stream=r.stream,
        max_completion_tokens=r.max_output_tokens, parallel_tool_calls=r.parallel_tool_calls,
        reasoning_effort=effort if isinstance(effort, str) else None,
    )
    return chat, ENCRYPTED_REASONING in (r.include or ())


def _assistant(content: str | None, calls: list[ToolCall] | None,
               reasoning: list[dict[str, Any]]) -> Message:
    thought = "\n\n".join(t for t in map(reasoning_text, reasoning) if t)
    return Message(role="assistant", content=content, tool_calls=calls,
                   reasoning_content=thought or None, reasoning_items=reasoning or None)
