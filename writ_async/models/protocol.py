"""The OpenAI-compatible chat-completions wire format, as msgspec Structs.

One set of types serves the client (encoding requests, decoding responses and stream
chunks) and the mock server (decoding requests, encoding responses). Unknown fields in
what a server sends are ignored, so richer servers (vLLM, OpenAI) decode as well; fields
we send are omitted when unset, so servers that reject unknown or null parameters are
not upset. Encoders and decoders are built once, here.
"""

from __future__ import annotations

from typing import Any

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
request_decoder = msgspec.json.Decoder(ChatRequest)
completion_decoder = msgspec.json.Decoder(ChatCompletion)
chunk_decoder = msgspec.json.Decoder(ChatChunk)
error_decoder = msgspec.json.Decoder(ErrorBody)
