"""Turn a streamed chat completion back into the ``ChatCompletion`` a plain call returns.

Pure and I/O-free: the client hands over each server-sent event's data (or an already
decoded ``ChatChunk``) with the time it arrived, read from the client's injected clock;
nothing here reads a clock. ``check_completion`` then judges the result the same way for
streamed and non-streamed calls.

How the pieces fit (OpenAI's streaming format, which vLLM, llama.cpp and the mock share):

* each choice is assembled by its ``index``; its ``content`` arrives in pieces to join;
* tool calls are assembled by their own ``index``, so parallel calls may interleave;
  ``id``, ``type`` and ``function.name`` come in the first piece of a call and the first
  non-empty value is kept (servers that repeat them on every piece must not produce
  ``get_userget_user``); ``function.arguments`` arrives in many pieces to join;
* a reasoning model's thinking arrives in ``reasoning_content`` or ``reasoning`` pieces
  (vLLM renamed the field), joined like content and kept under the name it came in;
* ``finish_reason`` comes on a choice's last chunk; ``usage`` often comes alone, in a last
  chunk with no choices (``stream_options.include_usage``);
* the literal ``[DONE]`` ends the stream.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from writ_async.errors import MalformedResponse, ToolCallParseFailure
from writ_async.llm.protocol import (
    THINK_CLOSE,
    THINK_OPEN,
    ChatChunk,
    ChatCompletion,
    Choice,
    FunctionCall,
    Message,
    ToolCall,
    Usage,
)

__all__ = ["DONE", "StreamAssembler", "check_completion", "chunk_decoder", "split_reasoning",
           "text_tool_calls"]

DONE = "[DONE]"

# How much of an offending payload an error message quotes.
_EXCERPT = 200


class _StreamChunk(ChatChunk):
    # A server that fails mid-stream sends {"error": {...}} as an event's data, which a
    # plain ChatChunk decodes into an empty chunk (unknown fields are ignored). Decoding
    # into this subclass catches it in the same single pass. ``Any`` because servers
    # disagree on its shape (an object, a bare string).
    error: Any = None


chunk_decoder = msgspec.json.Decoder(_StreamChunk)
_arguments_decoder = msgspec.json.Decoder(dict[str, Any])


def excerpt(text: str) -> str:
    """``text`` cut for an error message."""
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."


def describe_error(error: Any) -> str:
    """An error object a server sent, as one line: its message and its type or code."""
    if isinstance(error, dict):
        message = error.get("message") or ""
        kind = error.get("type") or error.get("code")
        return f"{message} ({kind})" if kind else str(message or error)
    return str(error)


class _ToolCallParts:
    __slots__ = ("arguments", "id", "name", "type")

    def __init__(self) -> None:
        self.id = ""
        self.type = ""
        self.name = ""
        self.arguments: list[str] = []


class _ChoiceParts:
    __slots__ = ("content", "finish_reason", "has_content", "reasoning", "reasoning_content",
                 "role", "tool_calls")

    def __init__(self) -> None:
        self.role = ""
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.reasoning_content: list[str] = []
        # Whether any content (even "") arrived: a tool-call-only answer has content
        # null, as the same answer not streamed would.
        self.has_content = False
        self.tool_calls: dict[int, _ToolCallParts] = {}
        self.finish_reason: str | None = None


class StreamTiming:
    """What every stream assembler measures, whatever API's events it reads: ``chunks``
    (events of the answer), ``token_chunks`` (those carrying generated text, arguments or
    reasoning), ``gaps`` (between consecutive chunks), ``first_token_at`` and ``ttft``
    (from ``started``, on the clock of the ``now`` values fed)."""

    def __init__(self, *, started: float | None = None, endpoint: str = "") -> None:
        self.started = started
        self.endpoint = endpoint
        self.done = False  # the stream's terminal event arrived
        self.chunks = 0
        self.token_chunks = 0
        self.gaps: list[float] = []
        self.first_token_at: float | None = None
        self._last_at: float | None = None

    @property
    def ttft(self) -> float | None:
        if self.first_token_at is None or self.started is None:
            return None
        return self.first_token_at - self.started

    def _arrived(self, now: float) -> None:
        """One chunk arrived at ``now``."""
        if self._last_at is not None:
            self.gaps.append(now - self._last_at)
        self._last_at = now
        self.chunks += 1

    def _generated(self, now: float) -> None:
        """The chunk that arrived at ``now`` carried generated tokens."""
        self.token_chunks += 1
        if self.first_token_at is None:
            self.first_token_at = now


class StreamAssembler(StreamTiming):
    """Accumulates one streamed response; ``result()`` gives the ``ChatCompletion``.

    ``started`` is when the request was sent (on the same clock as the ``now`` values
    fed later); without it ``ttft`` stays ``None`` but ``first_token_at`` is still kept.

    Timing, for the load tester and the idle-timeout statistics:
    ``first_token_at`` is the arrival of the first chunk carrying content (non-empty) or
    tool-call data; ``ttft`` is that minus ``started``; ``gaps`` lists the intervals
    between consecutive chunks (``[DONE]`` is not a chunk); ``chunks`` counts them and
    ``token_chunks`` those carrying content or tool-call data.
    """

    def __init__(self, *, started: float | None = None, endpoint: str = "") -> None:
        super().__init__(started=started, endpoint=endpoint)  # done: [DONE] arrived
        self.usage: Usage | None = None
        self.id = ""
        self.model = ""
        self.created = 0
        self._choices: dict[int, _ChoiceParts] = {}

    def __repr__(self) -> str:
        return (f"<StreamAssembler chunks={self.chunks} choices={len(self._choices)}"
                f" done={self.done} ttft={self.ttft}>")

    def feed_event(self, data: str, now: float, *, event: str = "message") -> None:
        """Take one server-sent event's data, as it arrived at ``now``.

        Raises ``MalformedResponse`` with reason ``invalid_json`` (not a chunk) or
        ``error_object`` (the server reported an error mid-stream)."""
        if self.done:
            # The stream is over by the protocol's own word; a proxy's trailing
            # keep-alive or a repeated [DONE] must not fail a complete answer.
            return
        if event == "error":
            raise MalformedResponse("error_object", f"error event: {excerpt(data)}",
                                    endpoint=self.endpoint)
        stripped = data.strip()
        if not stripped:
            return  # an empty data line used as a keep-alive carries nothing
        if stripped == DONE:
            self.done = True
            return
        try:
            chunk = chunk_decoder.decode(data)
        except msgspec.DecodeError as exc:  # ValidationError (wrong shape) included
            raise MalformedResponse(
                "invalid_json", f"stream chunk is not a chat-completion chunk ({exc}): "
                f"{excerpt(data)!r}", endpoint=self.endpoint) from exc
        if chunk.error is not None:
            raise MalformedResponse("error_object", describe_error(chunk.error),
                                    endpoint=self.endpoint)
        self.feed_chunk(chunk, now)

    def feed_chunk(self, chunk: ChatChunk, now: float) -> None:
        """Take one decoded chunk, as it arrived at ``now``."""
        self._arrived(now)
        if not self.id and chunk.id:
            self.id = chunk.id
        if not self.model and chunk.model:
            self.model = chunk.model
        if not self.created and chunk.created:
            self.created = chunk.created
        if chunk.usage is not None:
            self.usage = chunk.usage
        token = False
        for choice in chunk.choices:
            parts = self._choices.get(choice.index)
            if parts is None:
                parts = self._choices[choice.index] = _ChoiceParts()
            delta = choice.delta
            if delta.role and not parts.role:
                parts.role = delta.role
            if delta.content is not None:
                parts.has_content = True
                if delta.content:
                    parts.content.append(delta.content)
                    token = True
            if delta.reasoning_content:
                parts.reasoning_content.append(delta.reasoning_content)
                token = True
            if delta.reasoning:
                parts.reasoning.append(delta.reasoning)
                token = True
            if delta.tool_calls:
                token = True
                for piece in delta.tool_calls:
                    call = parts.tool_calls.get(piece.index)
                    if call is None:
                        call = parts.tool_calls[piece.index] = _ToolCallParts()
                    if piece.id and not call.id:
                        call.id = piece.id
                    if piece.type and not call.type:
                        call.type = piece.type
                    function = piece.function
                    if function is not None:
                        if function.name and not call.name:
                            call.name = function.name
                        if function.arguments:
                            call.arguments.append(function.arguments)
            if choice.finish_reason is not None:
                parts.finish_reason = choice.finish_reason
        if token:
            self._generated(now)

    def result(self) -> ChatCompletion:
        """The completion the stream amounts to, once it has ended.

        Raises ``MalformedResponse``: ``truncated_stream`` (neither ``[DONE]`` nor any
        ``finish_reason``: the connection ended early), ``no_choices``,
        ``interrupted_stream`` (``[DONE]`` but no ``finish_reason``: the server stopped
        the answer early), or
        ``invalid_tool_call`` (a tool call without an id or a function name, which a
        non-streamed response could not even express). Content checks (length, content
        filter, usage, tool arguments) are ``check_completion``'s, shared with
        non-streamed calls."""
        finished = any(p.finish_reason is not None for p in self._choices.values())
        if not self.done and not finished:
            raise MalformedResponse(
                "truncated_stream",
                f"stream ended without [DONE] or a finish_reason after {self.chunks} chunk(s)",
                endpoint=self.endpoint)
        if not self._choices:
            raise MalformedResponse("no_choices", "the stream carried no choices",
                                    endpoint=self.endpoint)
        if not finished:
            # [DONE] with no finish_reason: the server cut the answer short on purpose.
            # llama-cpp-python's server does this to a stream when another request is
            # waiting (its interrupt_requests setting, on by default); the text so far
            # is not the model's whole answer and must not pass for it.
            raise MalformedResponse(
                "interrupted_stream",
                f"[DONE] came before any finish_reason, after {self.chunks} chunk(s)",
                endpoint=self.endpoint)
        choices = []
        for index in sorted(self._choices):
            parts = self._choices[index]
            tool_calls = [self._tool_call(index, i, parts.tool_calls[i])
                          for i in sorted(parts.tool_calls)]
            message = Message(
                role=parts.role or "assistant",
                content="".join(parts.content) if parts.has_content else None,
                tool_calls=tool_calls or None,
                reasoning_content="".join(parts.reasoning_content) or None,
                reasoning="".join(parts.reasoning) or None,
            )
            choices.append(Choice(message=message, index=index,
                                  finish_reason=parts.finish_reason))
        return ChatCompletion(choices=choices, id=self.id, created=self.created,
                              model=self.model, usage=self.usage)

    def _tool_call(self, choice: int, index: int, call: _ToolCallParts) -> ToolCall:
        if not call.id or not call.name:
            missing = "id" if not call.id else "function name"
            raise MalformedResponse(
                "invalid_tool_call",
                f"choice {choice}, tool call {index} has no {missing}",
                endpoint=self.endpoint)
        return ToolCall(id=call.id, type=call.type or "function",
                        function=FunctionCall(name=call.name,
                                              arguments="".join(call.arguments)))


def split_reasoning(message: Message) -> tuple[str | None, str | None]:
    """The answer's ``(content, reasoning)``: the reasoning from ``reasoning_content`` or
    ``reasoning`` as the server sent it, and from a ``<think>...</think>`` block that opens
    the content (a server without a reasoning parser passes it through). A content of
    ``reasoning...</think>answer`` counts too: templates that open the think block in the
    prompt (DeepSeek-R1's) leave the model only its end. The block leaves the content;
    the whitespace around both parts is trimmed. An unclosed block stays content: an
    answer cut inside its thinking is not silently emptied."""
    field = message.reasoning_content or message.reasoning or None
    content = message.content
    if not content or THINK_CLOSE not in content:
        return content, field
    text = content.lstrip()
    if text.startswith(THINK_OPEN):
        text = text[len(THINK_OPEN):]
    elif THINK_OPEN in content.split(THINK_CLOSE, 1)[0]:
        return content, field  # a think block that does not open the answer: text
    thought, _, rest = text.partition(THINK_CLOSE)
    thought = thought.strip()
    if field and thought:
        thought = f"{field}\n\n{thought}"
    return rest.lstrip() or None, thought or field


def check_completion(c: ChatCompletion, *, require_usage: bool, endpoint: str = "",
                     cut_is_usable: bool = False, offered_tools: bool = False) -> None:
    """Refuse a completion the engine cannot use, streamed or not.

    Raises ``MalformedResponse`` with reason ``no_choices``; ``length`` or
    ``content_filter`` (a finish_reason that means the answer was cut or withheld);
    ``invalid_tool_arguments`` (a tool call whose arguments are not a JSON object text);
    ``missing_usage`` (when ``require_usage``).

    Empty arguments ``""`` are invalid: OpenAI sends ``"{}"`` for a call without
    arguments, so an empty string means the model (or a truncated stream) left them
    unwritten, and guessing ``{}`` would hide that from the data we keep.

    ``cut_is_usable``: a ``length`` or ``content_filter`` answer passes (the load tester
    measures it as the server's answer; the engine refuses it and decides what to keep).

    ``ToolCallParseFailure`` (reason ``tool_call_parse_failure``) for a tool call the
    server passed through as text: arguments with data after the JSON object (always),
    and, when the request ``offered_tools``, an answer without tool calls whose content
    holds one (``tool_call_parse_failure_of``)."""
    if not c.choices:
        raise MalformedResponse("no_choices", "the completion has no choices",
                                endpoint=endpoint)
    for choice in () if cut_is_usable else c.choices:
        if choice.finish_reason in ("length", "content_filter"):
            raise MalformedResponse(
                choice.finish_reason,
                f"choice {choice.index} ended with finish_reason {choice.finish_reason!r}",
                endpoint=endpoint)
    for choice in c.choices:
        for call in choice.message.tool_calls or ():
            try:
                _arguments_decoder.decode(call.function.arguments)
            except msgspec.DecodeError as exc:  # ValidationError: JSON, but not an object
                if _has_trailing_data(call.function.arguments):
                    raise ToolCallParseFailure(
                        "trailing_data",
                        f"choice {choice.index}, tool call {call.id} ({call.function.name}): "
                        "data after the arguments' JSON object: "
                        f"{excerpt(call.function.arguments)!r}",
                        endpoint=endpoint) from exc
                raise MalformedResponse(
                    "invalid_tool_arguments",
                    f"choice {choice.index}, tool call {call.id} ({call.function.name}): "
                    f"arguments are not a JSON object ({exc}): "
                    f"{excerpt(call.function.arguments)!r}",
                    endpoint=endpoint) from exc
            except RecursionError:  # the decoder recurses once per nesting level
                raise MalformedResponse(
                    "invalid_tool_arguments",
                    f"choice {choice.index}, tool call {call.id} ({call.function.name}): "
                    "arguments nested too deeply to read: "
                    f"{excerpt(call.function.arguments)!r}",
                    endpoint=endpoint) from None
    if offered_tools:
        for choice in c.choices:
            failure = tool_call_parse_failure_of(choice.message, choice.finish_reason)
            if failure is not None:
                kind, why = failure
                raise ToolCallParseFailure(kind, f"choice {choice.index}: {why}",
                                           endpoint=endpoint)
    if require_usage and c.usage is None:
        raise MalformedResponse("missing_usage", "the completion reports no token usage",
                                endpoint=endpoint)


# -- tool calls the server passed through as text ------------------------------------------
# A server whose tool-call parser fails (vLLM's hermes parser on a malformed block, SGLang,
# a server started without a parser) returns the model's call as text. Only structural
# signs count, never prose that merely talks about tools: a <tool_call> tag, a content
# that is nothing but a {"name": ..., "arguments": ...} object, or finish_reason
# "tool_calls" with no call in the message.

TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"
_json_prefix = json.JSONDecoder()


def _leading_value(text: str) -> tuple[Any, str] | None:
    """The JSON value that opens ``text`` and the text after it; None if none does."""
    try:
        value, end = _json_prefix.raw_decode(text)
    except RecursionError:  # nested past the stdlib parser's depth: no usable value
        return None
    except ValueError:
        return None
    return value, text[end:]


def _has_trailing_data(arguments: str) -> bool:
    """Whether ``arguments`` is a JSON object followed by more than whitespace."""
    found = _leading_value(arguments.lstrip())
    return found is not None and isinstance(found[0], dict) and bool(found[1].strip())


def _is_call(value: Any) -> bool:
    return (isinstance(value, dict) and isinstance(value.get("name"), str)
            and ("arguments" in value or "parameters" in value))


def _unfenced(text: str) -> str:
    """``text`` without a Markdown code fence around it (```json ... ```)."""
    if text.startswith("```") and text.endswith("```") and len(text) >= 6:
        inner = text[3:-3]
        first, _, rest = inner.partition("\n")
        return (rest if first.strip().isalpha() or not first.strip() else inner).strip()
    return text


def _json_calls(text: str) -> list[dict[str, Any]] | None:
    """The calls a content made only of a call object (or a list of them) holds."""
    found = _leading_value(_unfenced(text.strip()))
    if found is None or found[1].strip():
        return None
    value = found[0]
    calls = value if isinstance(value, list) else [value]
    return calls if calls and all(_is_call(v) for v in calls) else None


def tool_call_parse_failure_of(message: Message,
                               finish_reason: str | None) -> tuple[str, str] | None:
    """``(kind, why)`` when an answer without tool calls holds one as text, else None."""
    if message.tool_calls:
        return None
    content = split_reasoning(message)[0] or ""
    if TOOL_CALL_OPEN in content:
        return "markup_in_content", (f"a {TOOL_CALL_OPEN} block in the content: "
                                     f"{excerpt(content)!r}")
    if _json_calls(content) is not None:
        return "json_in_content", f"a tool-call object as the content: {excerpt(content)!r}"
    if finish_reason == "tool_calls":
        shape = "[]" if message.tool_calls is not None else "none"
        return "empty_tool_calls", (f"finish_reason 'tool_calls' with tool_calls {shape}: "
                                    f"{excerpt(content)!r}")
    return None


def _arguments_text(call: dict[str, Any]) -> str:
    arguments = call.get("arguments", call.get("parameters"))
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def text_tool_calls(content: str | None) -> list[tuple[str, str]]:
    """``(name, arguments text)`` of each tool call a content holds as text: each
    ``<tool_call>`` block (unclosed: to the end; unreadable: name "" and the block's
    text) or the call objects a content made only of them holds. Empty: none found."""
    text = content or ""
    out: list[tuple[str, str]] = []
    if TOOL_CALL_OPEN in text:
        for block in text.split(TOOL_CALL_OPEN)[1:]:
            inner = block.split(TOOL_CALL_CLOSE, 1)[0].strip()
            found = _leading_value(inner)
            if found is not None and _is_call(found[0]) and not found[1].strip():
                out.append((found[0]["name"], _arguments_text(found[0])))
            else:
                out.append(("", inner))
        return out
    for call in _json_calls(text) or ():
        out.append((call["name"], _arguments_text(call)))
    return out
