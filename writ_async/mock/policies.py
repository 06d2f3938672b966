"""How the mock server answers: response policies, and the mock's token count.

A ``ResponsePolicy`` turns a decoded chat request into one assistant message (text, tool
calls, or both); the server wraps it in a completion or a stream, derives
``finish_reason`` and counts usage. Policies draw every choice from the ``rng`` they are
given, so a seeded server answers the same requests the same way. Scripted agents and
users plug in here later: anything with a ``respond`` method of the right shape will do.

``PlausiblePolicy`` is the default: a tool call against one of the offered schemas when
the conversation calls for one, otherwise a stretch of customer-service prose whose
length is drawn from a configurable range.

The mock has no tokenizer: one token is ``CHARS_PER_TOKEN`` characters, rounded up, at
least one. The server's usage, its ``/stats`` and its token rate limit all use
``count_tokens`` / ``prompt_tokens`` / ``completion_tokens`` below, so a client that
wants to predict the server's count can call them too.
"""

from __future__ import annotations

import datetime
import random
from typing import Any, Protocol

from writ_async.llm.protocol import (
    ChatRequest,
    FunctionCall,
    Message,
    ToolCall,
    encoder,
)

CHARS_PER_TOKEN = 4


def count_tokens(chars: int) -> int:
    """Tokens in a text of ``chars`` characters: ceil(chars / 4), at least 1."""
    return max(1, (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN)


def message_chars(message: Message) -> int:
    """Characters of one message that count as tokens: content, reasoning and tool calls."""
    chars = len(message.content) if message.content else 0
    for thought in (message.reasoning, message.reasoning_content):
        if thought:
            chars += len(thought)
    if message.tool_calls:
        for call in message.tool_calls:
            chars += len(call.function.name) + len(call.function.arguments)
    return chars


def prompt_tokens(request: ChatRequest) -> int:
    """The request's prompt tokens: every message's content and tool calls, plus the
    offered tool schemas as compact JSON."""
    chars = 0
    for message in request.messages:
        chars += message_chars(message)
    if request.tools:
        chars += len(encoder.encode(request.tools))
    return count_tokens(chars)


def completion_tokens(message: Message) -> int:
    """The completion tokens of an assistant message the server produced."""
    return count_tokens(message_chars(message))


class ResponsePolicy(Protocol):
    """Answers one chat request with one assistant message (which may call tools)."""

    def respond(self, request: ChatRequest, rng: random.Random) -> Message: ...


# -- plausible prose -----------------------------------------------------------------------

_PROSE = (
    "Thank you for reaching out. I have pulled up the details of your account and I can "
    "help with that today. Before I make any change, let me confirm a few things with you. "
    "Could you please share the reservation number and the name on the booking? I see two "
    "upcoming trips on your profile, one next week and one in the spring. The fare rules "
    "allow a change to the same cabin without a fee, but a refund would go back to the "
    "original payment method within five to seven business days. Please note that basic "
    "economy tickets cannot be modified once booked. I have checked the available flights "
    "and there is a seat on the morning departure as well as one in the late afternoon. "
    "The total difference in price comes to a modest amount, which I can charge to the card "
    "on file or to a gift card if you prefer. Would you like me to go ahead with this? "
    "Your order has been located and the items are eligible for exchange. I can offer a "
    "replacement in a different size or colour, and the price difference will be settled "
    "automatically. Once confirmed, you will receive an email with the updated details. "
    "Is there anything else I can help you with today? I appreciate your patience while I "
    "looked into this. Everything is now updated and you are all set. "
)
_PROSE2 = _PROSE + _PROSE  # a window of any start fits, for replies up to len(_PROSE)

_WORDS = (
    "alpha", "amber", "harbor", "cedar", "maple", "orbit", "summit", "willow", "river",
    "falcon", "delta", "coral", "meadow", "nova", "pioneer", "quartz", "sierra", "tango",
)  # fmt: skip
_NAMES = ("Mia", "Noah", "Sara", "Liam", "Ava", "Omar", "Yuki", "Lena", "Ravi", "Ines")


def plausible_text(rng: random.Random, tokens: int) -> str:
    """About ``tokens`` tokens of prose: a word-aligned window of a fixed corpus."""
    chars = max(1, tokens * CHARS_PER_TOKEN)
    parts: list[str] = []
    while chars > 0:  # replies longer than the corpus repeat windows of it
        take = min(chars, len(_PROSE) - 1)
        start = _PROSE.find(" ", rng.randrange(len(_PROSE))) + 1
        end = _PROSE2.find(" ", start + take)
        end = start + take if end < 0 else end
        parts.append(_PROSE2[start:end])
        chars -= take
    text = " ".join(parts).strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else text.rstrip(",") + "."


# -- arguments from a JSON schema ----------------------------------------------------------

_MAX_DEPTH = 8


def sample_arguments(parameters: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A value for a tool's ``parameters`` schema: every required property present, types,
    enums and ``$defs`` references honoured; optional properties included at random."""
    value = _sample(parameters, rng, parameters.get("$defs") or {}, "", 0)
    return value if isinstance(value, dict) else {}


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    for _ in range(_MAX_DEPTH):
        ref = schema.get("$ref")
        if not isinstance(ref, str):
            break
        schema = defs.get(ref.rsplit("/", 1)[-1]) or {}
    return schema


def _sample(schema: Any, rng: random.Random, defs: dict[str, Any], name: str,
            depth: int) -> Any:
    if not isinstance(schema, dict):
        return _string(rng, name, "")
    schema = _resolve(schema, defs)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if enum:
        return rng.choice(enum)
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if options:  # the first non-null option: pydantic lists the specific type first
            chosen = next((o for o in options if not _is_null(o)), options[0])
            return _sample(chosen, rng, defs, name, depth)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        return _object(schema, rng, defs, depth)
    if kind == "array":
        low = int(schema.get("minItems", 1))
        high = max(low, min(int(schema.get("maxItems", 2)), low + 1))
        count = rng.randint(low, high) if depth < _MAX_DEPTH else low
        return [_sample(schema.get("items"), rng, defs, name, depth + 1) for _ in range(count)]
    if kind == "integer":
        low, high = _bounds(schema, 1, 999)
        return rng.randint(int(low), int(high))
    if kind == "number":
        low, high = _bounds(schema, 1.0, 999.0)
        return round(rng.uniform(low, high), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return _string(rng, name, str(schema.get("description", "")), schema)


def _is_null(option: Any) -> bool:
    return isinstance(option, dict) and option.get("type") == "null"


def _object(schema: dict[str, Any], rng: random.Random, defs: dict[str, Any],
            depth: int) -> dict[str, Any]:
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    out: dict[str, Any] = {}
    for key, sub in properties.items():
        if key in required or (depth < _MAX_DEPTH and rng.random() < 0.5):
            out[key] = _sample(sub, rng, defs, key, depth + 1)
    for key in required - out.keys():  # required but not described: any string
        out[key] = _string(rng, key, "")
    return out


def _bounds(schema: dict[str, Any], low: float, high: float) -> tuple[float, float]:
    low = schema.get("minimum", schema.get("exclusiveMinimum", low - 1) + 1)
    high = schema.get("maximum", schema.get("exclusiveMaximum", high + 1) - 1)
    return low, max(low, high)


def _string(rng: random.Random, name: str, description: str,
            schema: dict[str, Any] | None = None) -> str:
    lowered = name.lower()
    fmt = (schema or {}).get("format")
    if fmt == "date" or "yyyy-mm-dd" in description.lower() or lowered in ("date", "dob"):
        day = datetime.date(2024, 5, 1) + datetime.timedelta(days=rng.randrange(60))
        text = day.isoformat()
    elif fmt == "date-time":
        text = f"2024-05-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00"
    elif "email" in lowered:
        text = f"{rng.choice(_NAMES).lower()}.{rng.choice(_WORDS)}@example.com"
    elif lowered.endswith("name"):
        text = rng.choice(_NAMES)
    elif lowered.endswith("id") or lowered.endswith("number"):
        text = f"{rng.choice(_WORDS)}_{rng.randrange(100, 1000)}"
    else:
        text = f"{rng.choice(_WORDS)} {rng.choice(_WORDS)}"
    if schema:
        min_length = int(schema.get("minLength", 0))
        if len(text) < min_length:
            text = text.ljust(min_length, "x")
        if "maxLength" in schema:
            text = text[: int(schema["maxLength"])]
    return text


# -- the default policy --------------------------------------------------------------------


class PlausiblePolicy:
    """Tool calls when the conversation calls for one, otherwise plausible text.

    A tool call is made when tools are offered and either ``tool_choice`` requires one
    (``"required"`` or a named function) or, under ``"auto"``, the last message is the
    user's; after a tool result the policy answers in text, so an agent loop converges.
    Text length is drawn uniformly from ``[min_tokens, max_tokens]``.
    """

    __slots__ = ("max_tokens", "min_tokens")

    def __init__(self, min_tokens: int = 8, max_tokens: int = 48) -> None:
        if not 1 <= min_tokens <= max_tokens:
            raise ValueError(f"need 1 <= min_tokens <= max_tokens, got {min_tokens}, {max_tokens}")
        self.min_tokens = min_tokens
        self.max_tokens = max_tokens

    def __repr__(self) -> str:
        return f"PlausiblePolicy(min_tokens={self.min_tokens}, max_tokens={self.max_tokens})"

    def respond(self, request: ChatRequest, rng: random.Random) -> Message:
        tool = self._tool_to_call(request, rng)
        if tool is None:
            tokens = rng.randint(self.min_tokens, self.max_tokens)
            return Message(role="assistant", content=plausible_text(rng, tokens))
        function = tool.get("function") or {}
        arguments = sample_arguments(function.get("parameters") or {}, rng)
        call = ToolCall(
            id=f"call_{rng.getrandbits(96):024x}",
            function=FunctionCall(
                name=str(function.get("name", "")),
                arguments=encoder.encode(arguments).decode(),
            ),
        )
        return Message(role="assistant", tool_calls=[call])

    @staticmethod
    def _tool_to_call(request: ChatRequest, rng: random.Random) -> dict[str, Any] | None:
        tools = [t for t in request.tools or () if isinstance(t.get("function"), dict)]
        choice = request.tool_choice
        if not tools or choice == "none":
            return None
        if isinstance(choice, dict):
            wanted = (choice.get("function") or {}).get("name")
            named = [t for t in tools if t["function"].get("name") == wanted]
            return named[0] if named else rng.choice(tools)
        if choice == "required" or (request.messages and request.messages[-1].role == "user"):
            return rng.choice(tools)
        return None


class ShapePolicy:
    """A fixed conversation shape, whoever the caller is: for comparing runners.

    The agent (a request that offers tools) answers each user message with ``tool_calls``
    calls of the first offered tool that takes a single string (``calculate`` in both
    tau2 domains: ``"2 + 2"``, valid and cheap), then one text reply. The user (a request
    without tools) replies with text until it has spoken ``user_turns`` times, then sends
    ``###STOP###``. It counts what is in the request only, so two different runners (ours
    and tau2-bench's) driven by it have the same number of agent turns, user turns and
    tool calls per episode.
    """

    def __init__(self, tool_calls: int = 2, user_turns: int = 3) -> None:
        self.tool_calls, self.user_turns = tool_calls, user_turns

    def __repr__(self) -> str:
        return f"ShapePolicy(tool_calls={self.tool_calls}, user_turns={self.user_turns})"

    def respond(self, request: ChatRequest, rng: random.Random) -> Message:
        messages = request.messages
        if not request.tools:  # the user simulator: its own past turns are "assistant"
            spoken = sum(1 for m in messages if m.role == "assistant")
            if spoken + 1 >= self.user_turns:
                return Message(role="assistant", content="Thank you, that is all. ###STOP###")
            return Message(role="assistant", content="Could you please go on with my request?")
        since_user = 0
        for m in reversed(messages):
            if m.role == "user":
                break
            if m.role == "assistant" and m.tool_calls:
                since_user += 1
        name = _single_string_tool(request.tools)
        if name is None or since_user >= self.tool_calls:
            return Message(role="assistant", content="I have checked that. What else?")
        turn = len(messages)
        return Message(role="assistant", tool_calls=[ToolCall(
            id=f"call_shape_{turn}", function=FunctionCall(
                name=name[0], arguments=f'{{"{name[1]}": "2 + 2"}}'))])


def _single_string_tool(tools: list[dict[str, Any]]) -> tuple[str, str] | None:
    for tool in tools:
        fn = tool.get("function", {})
        props = fn.get("parameters", {}).get("properties", {})
        if len(props) == 1:
            (param, schema), = props.items()
            if schema.get("type") == "string":
                return fn["name"], param
    return None
