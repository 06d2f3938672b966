"""The OpenAI-compatible chat-completions wire format, as msgspec Structs.

One set of types serves the client (encoding requests, decoding responses and stream
chunks) and the mock server (decoding requests, encoding responses). Unknown fields in
what a server sends are ignored, so richer servers (vLLM, OpenAI) decode as well; fields
we send are omitted when unset, so servers that reject unknown or null parameters are
not upset. Encoders and decoders are built once, here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec


class FunctionCall(msgspec.Struct):
    name: str
    arguments: str  # JSON text, as the model wrote it: it may be invalid


class ToolCall(msgspec.Struct):
    id: str
    function: FunctionCall
    type: str = "function"


class Message(msgspec.Struct, omit_defaults=True):
    role: str
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    # A reasoning model's thinking. Servers disagree on the name: vLLM sent
    # ``reasoning_content`` and renamed it ``reasoning`` (DeepSeek and llama-server use
    # the former); both are read. Sent back (``ReasoningPolicy`` "keep") as
    # ``reasoning_content``, the name the Qwen3 and DeepSeek chat templates read.
    reasoning_content: str | None = None
    reasoning: str | None = None
    # The Responses API's reasoning items behind an assistant message, verbatim (their
    # ``encrypted_content`` included): responses_wire.py reads and sends them; the chat
    # path never sends them (EndpointClient strips them).
    reasoning_items: list[dict[str, Any]] | None = None


class StreamOptions(msgspec.Struct, omit_defaults=True):
    include_usage: bool = True


class ChatRequest(msgspec.Struct, omit_defaults=True):
    model: str
    messages: list[Message]
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    seed: int | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    user: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    top_p: float | None = None
    # OpenAI's reasoning models (o-series, GPT-5) refuse max_tokens and want this instead
    max_completion_tokens: int | None = None
    reasoning_effort: str | None = None
    parallel_tool_calls: bool | None = None
    # Keys merged into the request's top level (the OpenAI SDK's ``extra_body``), e.g.
    # vLLM's ``chat_template_kwargs``. UNSET is never encoded: ``encode_request`` splices
    # the keys in, so they reach the server as its own parameters.
    extra_body: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


class Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class Choice(msgspec.Struct):
    message: Message
    index: int = 0
    finish_reason: str | None = None


class ChatCompletion(msgspec.Struct):
    choices: list[Choice]
    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    usage: Usage | None = None


# -- streaming -----------------------------------------------------------------------------


class DeltaFunction(msgspec.Struct, omit_defaults=True):
    name: str | None = None
    arguments: str | None = None


class DeltaToolCall(msgspec.Struct, omit_defaults=True):
    index: int
    id: str | None = None
    type: str | None = None
    function: DeltaFunction | None = None


class Delta(msgspec.Struct, omit_defaults=True):
    role: str | None = None
    content: str | None = None
    tool_calls: list[DeltaToolCall] | None = None
    reasoning_content: str | None = None  # see Message
    reasoning: str | None = None


class ChunkChoice(msgspec.Struct):
    delta: Delta
    index: int = 0
    finish_reason: str | None = None


class ChatChunk(msgspec.Struct):
    choices: list[ChunkChoice] = msgspec.field(default_factory=list)
    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    usage: Usage | None = None


# -- errors and models list ------------------------------------------------------------------


class ErrorDetail(msgspec.Struct):
    message: str = ""
    type: str | None = None
    code: str | int | None = None
    param: str | None = None


class ErrorBody(msgspec.Struct):
    error: ErrorDetail


class ModelCard(msgspec.Struct):
    id: str
    object: str = "model"
    owned_by: str = "writ"


class ModelList(msgspec.Struct):
    data: list[ModelCard]
    object: str = "list"


encoder = msgspec.json.Encoder()


def encode_request(request: ChatRequest) -> bytes:
    """The request's JSON body, with ``extra_body``'s keys at its top level.

    The keys never collide with the request's own fields (``ModelParams`` refuses such a
    key), so splicing two encoded objects is exact and costs nothing when there is none."""
    extra = request.extra_body
    if extra is msgspec.UNSET:
        return encoder.encode(request)
    body = encoder.encode(msgspec.structs.replace(request, extra_body=msgspec.UNSET))
    if not extra:
        return body
    return body[:-1] + b"," + encoder.encode(extra)[1:]


# -- per-role and per-endpoint parameters ------------------------------------------------

ReasoningPolicy = Literal["strip", "keep", "inline"]
# The wire API an endpoint speaks: chat completions, or OpenAI's Responses API
# (responses_wire.py)
Api = Literal["chat", "responses"]
# What the agent does with a tool call the server passed through as text
# (errors.ToolCallParseFailure): call again, or answer it with an error tool result.
ParseFailurePolicy = Literal["retry", "error_result"]
DEFAULT_PARSE_FAILURE_POLICY: ParseFailurePolicy = "retry"
DEFAULT_PARSE_RETRIES = 2
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]
# What ``omit`` may name: the request fields a participant sets that an endpoint may
# refuse (GPT-5 refuses temperature other than 1, and max_tokens).
Omittable = Literal["temperature", "top_p", "seed", "max_tokens", "max_completion_tokens",
                    "tool_choice", "parallel_tool_calls", "reasoning_effort", "user"]
UnitFloat = Annotated[float, msgspec.Meta(gt=0, le=1)]
Temperature = Annotated[float, msgspec.Meta(ge=0, le=2)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
_PARAMETERS = ("temperature", "top_p", "seed", "max_tokens", "max_completion_tokens",
               "reasoning_effort", "tool_choice", "parallel_tool_calls")
# fields the request has or the client sets: extra_body must not shadow them
_RESERVED = frozenset(ChatRequest.__struct_fields__) - {"extra_body"}


class ModelParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Request parameters for a role (``[models.params.<role>]``) or an endpoint
    (``[models.endpoints.<name>.params]``, over the role's). Unset: the request as the
    participant made it (its temperature, max_tokens and per-episode seed)."""

    temperature: Temperature | None = None
    top_p: UnitFloat | None = None
    seed: int | None = None  # replaces the per-episode seed
    max_tokens: PositiveInt | None = None
    # set: max_tokens is not sent (OpenAI refuses the two together)
    max_completion_tokens: PositiveInt | None = None
    reasoning_effort: ReasoningEffort | None = None
    # sent only with tools (a request without tools may not name a tool choice)
    tool_choice: Literal["auto", "none", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    omit: list[Omittable] = msgspec.field(default_factory=list)  # fields never sent
    extra_body: dict[str, Any] = msgspec.field(default_factory=dict)
    # a model's earlier reasoning on later turns: dropped (default), sent back as
    # ``reasoning_content``, or sent back inside the content as ``<think>...</think>``
    reasoning: ReasoningPolicy | None = None
    # a tool call the server passed through as text: "retry" the turn (a fresh call, with
    # another seed) up to ``tool_call_parse_retries`` times, then answer it with an error
    # tool result; "error_result" at once. Unset: "retry", 2 retries.
    on_tool_call_parse_failure: ParseFailurePolicy | None = None
    tool_call_parse_retries: NonNegativeInt | None = None

    def parse_failure_handling(self) -> tuple[ParseFailurePolicy, int]:
        """``(policy, retries)`` for a tool call passed through as text."""
        policy = self.on_tool_call_parse_failure or DEFAULT_PARSE_FAILURE_POLICY
        retries = (DEFAULT_PARSE_RETRIES if self.tool_call_parse_retries is None
                   else self.tool_call_parse_retries)
        return policy, retries if policy == "retry" else 0

    def __post_init__(self) -> None:
        if self.max_tokens is not None and self.max_completion_tokens is not None:
            raise ValueError("set max_tokens or max_completion_tokens, not both")
        for key in self.extra_body:
            if key in _RESERVED:
                raise ValueError(f"extra_body key `{key}` is a request field of its own; "
                                 "set it with its own key (or `omit` it)")

    def over(self, base: ModelParams | None) -> ModelParams:
        """These parameters on top of ``base``'s: a set value wins, ``omit`` lists are
        joined, ``extra_body`` tables merged key by key (nested tables too)."""
        if base is None:
            return self
        changes: dict[str, Any] = {name: getattr(self, name) for name in _PARAMETERS
                                   if getattr(self, name) is not None}
        if self.max_tokens is not None:
            changes["max_completion_tokens"] = None
        if self.max_completion_tokens is not None:
            changes["max_tokens"] = None
        for name in ("reasoning", "on_tool_call_parse_failure", "tool_call_parse_retries"):
            if getattr(self, name) is not None:
                changes[name] = getattr(self, name)
        changes["omit"] = list(dict.fromkeys([*base.omit, *self.omit]))
        changes["extra_body"] = _merged(base.extra_body, self.extra_body)
        return msgspec.structs.replace(base, **changes)


def _merged(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        below = out.get(key)
        out[key] = (_merged(below, value) if isinstance(below, dict) and isinstance(value, dict)
                    else value)
    return out


THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def apply_params(request: ChatRequest, params: ModelParams | None) -> ChatRequest:
    """``request`` as ``params`` say to send it; with ``params`` None, only the reasoning
    of earlier turns is stripped (what an endpoint without a policy gets)."""
    messages = _reasoning_messages(request.messages,
                                   "strip" if params is None else params.reasoning or "strip")
    if params is None:
        return request if messages is None else msgspec.structs.replace(request,
                                                                          messages=messages)
    changes: dict[str, Any] = {}
    for name in _PARAMETERS:
        value = getattr(params, name)
        if value is not None:
            changes[name] = value
    if params.max_completion_tokens is not None:
        changes["max_tokens"] = None
    if not request.tools:  # OpenAI: tool_choice/parallel_tool_calls need tools
        changes.pop("tool_choice", None)
        changes.pop("parallel_tool_calls", None)
    for name in params.omit:
        changes[name] = None
    if params.extra_body:
        changes["extra_body"] = _merged(request.extra_body or {}, params.extra_body)
    if messages is not None:
        changes["messages"] = messages
    return msgspec.structs.replace(request, **changes) if changes else request


def _reasoning_messages(messages: list[Message], policy: ReasoningPolicy) -> list[Message] | None:
    """The messages with earlier reasoning sent as ``policy`` says; None: unchanged."""
    if policy == "keep" or not any(m.reasoning_content for m in messages):
        return None
    out = []
    for m in messages:
        if m.reasoning_content:
            content = None
            if policy == "inline":
                content = (f"{THINK_OPEN}\n{m.reasoning_content}\n{THINK_CLOSE}\n\n"
                           f"{m.content or ''}")
            m = msgspec.structs.replace(m, reasoning_content=None,
                                        content=m.content if content is None else content)
        out.append(m)
    return out


request_decoder = msgspec.json.Decoder(ChatRequest)
completion_decoder = msgspec.json.Decoder(ChatCompletion)
chunk_decoder = msgspec.json.Decoder(ChatChunk)
error_decoder = msgspec.json.Decoder(ErrorBody)
