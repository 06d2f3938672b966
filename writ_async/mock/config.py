"""What the mock server can be told: ``MockConfig`` with its faults (``FaultRates``) and
the real servers' ways it imitates (``Quirks``). Plain structs, no server: the run's
configuration (``config.py``) holds them without importing aiohttp."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

from writ_async.errors import ConfigError

Rate = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0.0)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0.0)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]


class FaultRates(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Per-request probabilities of each injected fault (0 = never, 1 = always)."""

    stall: Rate = 0.0  # wait stall_s (or until the client leaves), then answer
    reset: Rate = 0.0  # drop the connection: before any byte, or after a chunk of a stream
    error_5xx: Rate = 0.0  # 500, 502 or 503 with an error JSON body
    error_object_200: Rate = 0.0  # 200 whose body is {"error": ...}
    malformed_json: Rate = 0.0  # 200 with cut-off JSON or an HTML page
    truncated_stream: Rate = 0.0  # a stream that ends early: no finish_reason, no [DONE]
    invalid_tool_args: Rate = 0.0  # tool-call arguments that are not valid JSON
    # arguments no run can hold: NaN, 1e400, a 400-digit integer, 100,000-deep nesting
    unholdable_tool_args: Rate = 0.0
    no_usage: Rate = 0.0  # usage left out


class Quirks(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Which real-server behaviours the mock imitates; all off by default."""

    no_stream_usage: bool = False
    llama_stream_chunks: bool = False
    ping_before_first_token: bool = False
    # "when_waiting": cut a stream when another request is in flight; "always": every one
    interrupt_streams: Literal["never", "when_waiting", "always"] = "never"
    legacy_function_call: bool = False
    tool_args_cut_keep_finish: bool = False
    empty_answer: Rate = 0.0  # probability of answering "" with finish_reason "stop"
    llama_context_errors: bool = False
    bad_body_as_500: bool = False
    # a thinking model's reasoning: in the `reasoning` or `reasoning_content` field, or
    # as a <think> block opening the content; "off": none
    reasoning: Literal["off", "reasoning", "reasoning_content", "think"] = "off"
    # model names that follow OpenAI's reasoning-model parameter rules (others then refuse
    # reasoning_effort); empty: no rules
    openai_reasoning_models: list[str] = msgspec.field(default_factory=list)
    # a server whose tool-call parser failed on an answer that calls tools (see
    # ``mangle_tool_calls``); ``tool_call_parse_failure_rate`` of those answers
    tool_call_parse_failure: Literal["off", "hermes", "json", "sglang_empty",
                                     "trailing_data"] = "off"
    tool_call_parse_failure_rate: Rate = 1.0

    @property
    def stream_writer(self) -> bool:
        """Whether streams are written by ``write_stream`` instead of the mock's own."""
        return (self.llama_stream_chunks or self.ping_before_first_token
                or self.interrupt_streams != "never")


LLAMA_CPP_PYTHON = Quirks(
    no_stream_usage=True, llama_stream_chunks=True, ping_before_first_token=True,
    interrupt_streams="when_waiting", legacy_function_call=True,
    tool_args_cut_keep_finish=True, llama_context_errors=True, bad_body_as_500=True,
)


class MockConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Everything the mock server can be told; every field has a working default."""

    host: str = "127.0.0.1"
    port: Port = 0  # 0: the OS picks a free port
    seed: int = 0
    models: list[str] = msgspec.field(default_factory=list)  # allow-list; empty: any
    api_key: str | None = None  # required bearer key; None: no auth
    api_key_env: str | None = None  # or: the environment variable holding it
    # latency model (milliseconds): first token after ttft, then tpot per output token
    ttft_ms: NonNegativeFloat = 0.0
    tpot_ms: NonNegativeFloat = 0.0
    jitter_ms: NonNegativeFloat = 0.0  # each delay ± uniform(jitter), floored at 0
    tokens_per_chunk: PositiveInt = 4  # stream granularity: one SSE chunk is not one token
    reply_tokens_min: PositiveInt = 8  # length range of the default policy's text replies
    reply_tokens_max: PositiveInt = 48
    # "plausible": text and schema-valid tool calls; "shape": a fixed conversation shape
    # (shape_tool_calls per agent turn, shape_user_turns per episode) for runner comparisons
    policy: Literal["plausible", "shape"] = "plausible"
    shape_tool_calls: NonNegativeInt = 2
    shape_user_turns: PositiveInt = 3
    max_context_tokens: NonNegativeInt = 0  # 0: unlimited
    # rate limits per rate_window_s (60 s: per minute); 0: unlimited
    rpm_limit: NonNegativeInt = 0
    tpm_limit: NonNegativeInt = 0
    rate_window_s: PositiveFloat = 60.0
    faults: FaultRates = msgspec.field(default_factory=FaultRates)
    quirks: Quirks = msgspec.field(default_factory=Quirks)  # a real server's ways (mock_quirks)
    stall_s: PositiveFloat = 600.0
    backlog: PositiveInt = 2048
    access_log: bool = False

    def __post_init__(self) -> None:
        if self.reply_tokens_min > self.reply_tokens_max:
            raise ValueError("reply_tokens_min must not exceed reply_tokens_max")
        if self.api_key is not None and self.api_key_env is not None:
            raise ValueError("set api_key or api_key_env, not both")


def resolve_api_key(config: MockConfig, environ: Mapping[str, str] = os.environ) -> str | None:
    """The key clients must present, reading ``api_key_env`` from ``environ`` if set."""
    if config.api_key_env is None:
        return config.api_key
    value = environ.get(config.api_key_env)
    if not value:
        raise ConfigError("environment", f"variable {config.api_key_env} is not set",
                          "api_key_env")
    return value


FAULT_KINDS = (*FaultRates.__struct_fields__, "context_length", "unauthorized",
               "model_not_found", "bad_request")
