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

from typing import Any

import msgspec

from writ_async.errors import MalformedResponse
from writ_async.models.protocol import (
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

__all__ = ["DONE", "StreamAssembler", "check_completion", "chunk_decoder", "split_reasoning"]

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


def _excerpt(text: str) -> str:
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."


def _describe_error(error: Any) -> str:
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


class StreamAssembler:
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
        self.started = started
        self.endpoint = endpoint
        self.done = False  # the [DONE] sentinel arrived
        self.chunks = 0
        self.token_chunks = 0  # chunks carrying content or tool-call data
        self.gaps: list[float] = []
        self.first_token_at: float | None = None
        self.usage: Usage | None = None
        self.id = ""
        self.model = ""
        self.created = 0
        self._choices: dict[int, _ChoiceParts] = {}
        self._last_at: float | None = None

    def __repr__(self) -> str:
        return (f"<StreamAssembler chunks={self.chunks} choices={len(self._choices)}"
                f" done={self.done} ttft={self.ttft}>")

    @property
    def ttft(self) -> float | None:
        if self.first_token_at is None or self.started is None:
            return None
        return self.first_token_at - self.started

    def feed_event(self, data: str, now: float, *, event: str = "message") -> None:
        """Take one server-sent event's data, as it arrived at ``now``.

        Raises ``MalformedResponse`` with reason ``invalid_json`` (not a chunk) or
        ``error_object`` (the server reported an error mid-stream)."""
        if self.done:
            # The stream is over by the protocol's own word; a proxy's trailing
            # keep-alive or a repeated [DONE] must not fail a complete answer.
            return
        if event == "error":
            raise MalformedResponse("error_object", f"error event: {_excerpt(data)}",
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
                f"{_excerpt(data)!r}", endpoint=self.endpoint) from exc
        if chunk.error is not None:
            raise MalformedResponse("error_object", _describe_error(chunk.error),
                                    endpoint=self.endpoint)
        self.feed_chunk(chunk, now)

    def feed_chunk(self, chunk: ChatChunk, now: float) -> None:
        """Take one decoded chunk, as it arrived at ``now``."""
        if self._last_at is not None:
            self.gaps.append(now - self._last_at)
        self._last_at = now
        self.chunks += 1
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
            self.token_chunks += 1
            if self.first_token_at is None:
                self.first_token_at = now

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
                     cut_is_usable: bool = False) -> None:
    """Refuse a completion the engine cannot use, streamed or not.

    Raises ``MalformedResponse`` with reason ``no_choices``; ``length`` or
    ``content_filter`` (a finish_reason that means the answer was cut or withheld);
    ``invalid_tool_arguments`` (a tool call whose arguments are not a JSON object text);
    ``missing_usage`` (when ``require_usage``).

    Empty arguments ``""`` are invalid: OpenAI sends ``"{}"`` for a call without
    arguments, so an empty string means the model (or a truncated stream) left them
    unwritten, and guessing ``{}`` would hide that from the data we keep.

    ``cut_is_usable``: a ``length`` or ``content_filter`` answer passes (the load tester
    measures it as the server's answer; the engine refuses it and decides what to keep)."""
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
                raise MalformedResponse(
                    "invalid_tool_arguments",
                    f"choice {choice.index}, tool call {call.id} ({call.function.name}): "
                    f"arguments are not a JSON object ({exc}): "
                    f"{_excerpt(call.function.arguments)!r}",
                    endpoint=endpoint) from exc
            except RecursionError:  # the decoder recurses once per nesting level
                raise MalformedResponse(
                    "invalid_tool_arguments",
                    f"choice {choice.index}, tool call {call.id} ({call.function.name}): "
                    "arguments nested too deeply to read: "
                    f"{_excerpt(call.function.arguments)!r}",
                    endpoint=endpoint) from None
    if require_usage and c.usage is None:
        raise MalformedResponse("missing_usage", "the completion reports no token usage",
                                endpoint=endpoint)
