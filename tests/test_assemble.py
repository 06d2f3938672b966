from __future__ import annotations

from typing import Any

import msgspec
import pytest

from writ_async.errors import MalformedResponse
from writ_async.llm.assemble import StreamAssembler, check_completion
from writ_async.llm.protocol import (
    ChatChunk,
    ChatCompletion,
    Choice,
    FunctionCall,
    Message,
    ToolCall,
    Usage,
    chunk_decoder,
    completion_decoder,
)
from writ_async.llm.sse import SSEParser

HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000,
        "model": "m"}


def chunk(*choices: dict[str, Any], usage: dict[str, int] | None = None) -> str:
    body: dict[str, Any] = {**HEAD, "choices": list(choices)}
    if usage is not None:
        body["usage"] = usage
    return msgspec.json.encode(body).decode()


def delta(index: int = 0, finish_reason: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"index": index, "delta": fields, "finish_reason": finish_reason}


def call(index: int, *, id: str | None = None, name: str | None = None,
         arguments: str | None = None) -> dict[str, Any]:
    piece: dict[str, Any] = {"index": index}
    if id is not None:
        piece["id"] = id
        piece["type"] = "function"
    function: dict[str, str] = {}
    if name is not None:
        function["name"] = name
    if arguments is not None:
        function["arguments"] = arguments
    if function:
        piece["function"] = function
    return piece


USAGE = {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}

TEXT_STREAM = [
    chunk(delta(role="assistant", content="")),
    chunk(delta(content="Hel")),
    chunk(delta(content="lo")),
    chunk(delta(content="!")),
    chunk(delta(finish_reason="stop")),
    chunk(usage=USAGE),  # stream_options.include_usage: choices empty
    "[DONE]",
]

TOOL_STREAM = [
    chunk(delta(role="assistant", content=None,
                tool_calls=[call(0, id="call_a", name="get_user_details", arguments="")])),
    chunk(delta(tool_calls=[call(0, arguments='{"user_')])),
    chunk(delta(tool_calls=[call(1, id="call_b", name="get_reservation_details",
                                 arguments='{"reserv')])),
    chunk(delta(tool_calls=[call(0, arguments='id": "mia_')])),
    chunk(delta(tool_calls=[call(1, arguments='ation_id": "ABC123"}')])),
    chunk(delta(tool_calls=[call(0, arguments='li_9"}')])),
    chunk(delta(finish_reason="tool_calls")),
    chunk(usage=USAGE),
    "[DONE]",
]


def assemble(events: list[str], started: float = 0.0) -> StreamAssembler:
    assembler = StreamAssembler(started=started)
    for i, data in enumerate(events):
        assembler.feed_event(data, now=started + 1.0 + i * 0.5)
    return assembler


def test_text_stream() -> None:
    assembler = assemble(TEXT_STREAM, started=100.0)
    result = assembler.result()
    assert result == ChatCompletion(
        choices=[Choice(message=Message(role="assistant", content="Hello!"),
                        finish_reason="stop")],
        id="chatcmpl-1", created=1700000000, model="m", usage=Usage(**USAGE))
    assert assembler.done
    assert assembler.chunks == 6
    assert assembler.gaps == [0.5] * 5
    # The role chunk carries only "": the first token is the next chunk.
    assert assembler.first_token_at == 101.5
    assert assembler.ttft == 1.5
    check_completion(result, require_usage=True)


def test_parallel_tool_calls_in_interleaved_pieces() -> None:
    assembler = assemble(TOOL_STREAM)
    result = assembler.result()
    message = result.choices[0].message
    assert message.content is None
    assert message.tool_calls == [
        ToolCall(id="call_a", function=FunctionCall(
            name="get_user_details", arguments='{"user_id": "mia_li_9"}')),
        ToolCall(id="call_b", function=FunctionCall(
            name="get_reservation_details", arguments='{"reservation_id": "ABC123"}')),
    ]
    assert result.choices[0].finish_reason == "tool_calls"
    assert assembler.ttft == 1.0  # tool-call data counts as the first token
    check_completion(result, require_usage=True)


def test_tool_calls_are_ordered_by_index_not_arrival() -> None:
    assembler = assemble([
        chunk(delta(tool_calls=[call(1, id="b", name="g", arguments="{}")])),
        chunk(delta(tool_calls=[call(0, id="a", name="f", arguments="{}")],
                    finish_reason="tool_calls")),
    ])
    calls = assembler.result().choices[0].message.tool_calls
    assert calls is not None
    assert [c.id for c in calls] == ["a", "b"]


def test_repeated_id_and_name_on_every_piece_are_kept_once() -> None:
    assembler = assemble([
        chunk(delta(tool_calls=[call(0, id="call_a", name="f", arguments='{"x"')])),
        chunk(delta(tool_calls=[call(0, id="call_a", name="f", arguments=": 1}")])),
        chunk(delta(finish_reason="tool_calls")),
        "[DONE]",
    ])
    calls = assembler.result().choices[0].message.tool_calls
    assert calls == [ToolCall(id="call_a", function=FunctionCall(name="f", arguments='{"x": 1}'))]


def test_text_and_tool_call_together() -> None:
    assembler = assemble([
        chunk(delta(role="assistant", content="Let me look.")),
        chunk(delta(tool_calls=[call(0, id="c", name="f", arguments="{}")])),
        chunk(delta(finish_reason="tool_calls")),
        "[DONE]",
    ])
    message = assembler.result().choices[0].message
    assert message.content == "Let me look."
    assert message.tool_calls is not None
    assert len(message.tool_calls) == 1


def test_several_choices_are_assembled_apart() -> None:
    assembler = assemble([
        chunk(delta(1, role="assistant", content="B"), delta(0, role="assistant", content="A")),
        chunk(delta(0, content="a", finish_reason="stop")),
        chunk(delta(1, content="b", finish_reason="length")),
        "[DONE]",
    ])
    result = assembler.result()
    assert [(c.index, c.message.content, c.finish_reason) for c in result.choices] == [
        (0, "Aa", "stop"), (1, "Bb", "length")]


def test_role_defaults_to_assistant_and_usage_may_be_missing() -> None:
    assembler = assemble([chunk(delta(content="x", finish_reason="stop")), "[DONE]"])
    result = assembler.result()
    assert result.choices[0].message.role == "assistant"
    assert result.usage is None
    with pytest.raises(MalformedResponse) as info:
        check_completion(result, require_usage=True)
    assert info.value.reason == "missing_usage"
    check_completion(result, require_usage=False)


def test_usage_in_the_last_content_chunk() -> None:
    assembler = assemble([chunk(delta(content="x", finish_reason="stop"), usage=USAGE), "[DONE]"])
    assert assembler.result().usage == Usage(**USAGE)


def test_without_started_ttft_is_unknown_but_first_token_time_is_kept() -> None:
    assembler = StreamAssembler()
    assembler.feed_event(chunk(delta(content="x")), now=5.0)
    assert assembler.ttft is None
    assert assembler.first_token_at == 5.0


def test_no_token_means_no_first_token_time() -> None:
    assembler = assemble([chunk(delta(role="assistant", content="")),
                          chunk(delta(finish_reason="stop")), "[DONE]"])
    assert assembler.ttft is None
    assert assembler.result().choices[0].message.content == ""


def test_feed_chunk_takes_decoded_chunks() -> None:
    assembler = StreamAssembler(started=0.0)
    for i, data in enumerate(TEXT_STREAM[:-1]):
        assembler.feed_chunk(chunk_decoder.decode(data), now=float(i))
    assembler.feed_event("[DONE]", now=9.0)
    assert assembler.result() == assemble(TEXT_STREAM).result()


def test_keepalive_empty_data_and_events_after_done_are_ignored() -> None:
    assembler = assemble([TEXT_STREAM[0], "", "  ", *TEXT_STREAM[1:], "not json", "[DONE]"])
    assert assembler.chunks == 6
    assert assembler.result() == assemble(TEXT_STREAM).result()


# -- failures ----------------------------------------------------------------------------------


def reason(exc: pytest.ExceptionInfo[MalformedResponse]) -> str:
    return exc.value.reason


def test_stream_cut_before_finish_and_done_is_truncated() -> None:
    assembler = assemble(TEXT_STREAM[:3])
    with pytest.raises(MalformedResponse) as info:
        assembler.result()
    assert reason(info) == "truncated_stream"


def test_empty_stream_is_truncated() -> None:
    with pytest.raises(MalformedResponse) as info:
        StreamAssembler(endpoint="e").result()
    assert reason(info) == "truncated_stream"
    assert info.value.endpoint == "e"


def test_stream_cut_after_finish_reason_is_usable() -> None:
    assembler = assemble(TEXT_STREAM[:5])
    assert not assembler.done
    assert assembler.result().choices[0].message.content == "Hello!"


def test_done_without_finish_reason_is_interrupted() -> None:
    # llama-cpp-python's server ends a stream this way when another request waits:
    # the text so far is not the whole answer (see tests/test_mock_quirks.py).
    assembler = assemble([*TEXT_STREAM[:4], "[DONE]"])
    with pytest.raises(MalformedResponse) as info:
        assembler.result()
    assert reason(info) == "interrupted_stream"


def test_done_without_any_choice_is_no_choices() -> None:
    for events in (["[DONE]"], [chunk(usage=USAGE), "[DONE]"]):
        with pytest.raises(MalformedResponse) as info:
            assemble(events).result()
        assert reason(info) == "no_choices"


@pytest.mark.parametrize("error", [
    '{"error": {"message": "CUDA out of memory", "type": "server_error", "code": 500}}',
    '{"error": "CUDA out of memory"}',
    '{"error": {"message": "CUDA out of memory"}, "choices": []}',
])
def test_error_object_mid_stream(error: str) -> None:
    assembler = StreamAssembler(endpoint="http://m:1")
    assembler.feed_event(TEXT_STREAM[0], now=0.0)
    with pytest.raises(MalformedResponse) as info:
        assembler.feed_event(error, now=1.0)
    assert reason(info) == "error_object"
    assert "CUDA out of memory" in str(info.value)
    assert info.value.endpoint == "http://m:1"


def test_error_event_mid_stream() -> None:
    with pytest.raises(MalformedResponse) as info:
        StreamAssembler().feed_event("overloaded", now=0.0, event="error")
    assert reason(info) == "error_object"


@pytest.mark.parametrize("data", [
    '{"choices": [', "<html>502 Bad Gateway</html>", "[1, 2]", '{"choices": 3}',
    '{"choices": [{"delta": {"tool_calls": [{"id": "no index"}]}}]}',
])
def test_invalid_chunk(data: str) -> None:
    with pytest.raises(MalformedResponse) as info:
        StreamAssembler().feed_event(data, now=0.0)
    assert reason(info) == "invalid_json"


@pytest.mark.parametrize("piece", [call(0, id="c"), call(0, name="f")])
def test_tool_call_without_id_or_name(piece: dict[str, Any]) -> None:
    assembler = assemble([chunk(delta(tool_calls=[piece], finish_reason="tool_calls"))])
    with pytest.raises(MalformedResponse) as info:
        assembler.result()
    assert reason(info) == "invalid_tool_call"


def test_arguments_cut_by_length_are_reported_as_length() -> None:
    assembler = assemble([
        chunk(delta(tool_calls=[call(0, id="c", name="f", arguments='{"a": ')])),
        chunk(delta(finish_reason="length")),
        "[DONE]",
    ])
    with pytest.raises(MalformedResponse) as info:
        check_completion(assembler.result(), require_usage=False)
    assert reason(info) == "length"


def test_repr_shows_counters() -> None:
    assert repr(assemble(TEXT_STREAM)) == (
        "<StreamAssembler chunks=6 choices=1 done=True ttft=1.5>")


# -- end to end: bytes through the SSE parser ---------------------------------------------------


def test_byte_stream_split_anywhere_assembles_the_same() -> None:
    body = "".join(f"data: {e}\n\n" for e in TOOL_STREAM).replace("\n\n", "\n\n: ping\n\n", 1)
    raw = body.encode()

    def run(pieces: list[bytes]) -> ChatCompletion:
        parser = SSEParser()
        assembler = StreamAssembler(started=0.0)
        for i, piece in enumerate(pieces):
            for event in parser.feed(piece):
                assembler.feed_event(event.data, now=float(i), event=event.event)
        for event in parser.finish():
            assembler.feed_event(event.data, now=float(len(pieces)))
        return assembler.result()

    expected = run([raw])
    assert expected == assemble(TOOL_STREAM).result()
    assert run([raw[i:i + 1] for i in range(len(raw))]) == expected
    for i in range(len(raw) + 1):
        assert run([raw[:i], raw[i:]]) == expected


# -- check_completion --------------------------------------------------------------------------


SOME_USAGE = Usage(1, 2, 3)


def completion(finish_reason: str | None = "stop", arguments: str | None = None,
               usage: Usage | None = SOME_USAGE) -> ChatCompletion:
    calls = None
    if arguments is not None:
        calls = [ToolCall(id="c", function=FunctionCall(name="f", arguments=arguments))]
    return ChatCompletion(
        choices=[Choice(message=Message(role="assistant", tool_calls=calls),
                        finish_reason=finish_reason)],
        usage=usage)


def test_check_completion_accepts_a_good_one() -> None:
    check_completion(completion(), require_usage=True)
    check_completion(completion("tool_calls", '{"a": [1, {"b": null}]}'), require_usage=True)
    check_completion(completion("tool_calls", " {} "), require_usage=True)


def test_check_completion_no_choices() -> None:
    with pytest.raises(MalformedResponse) as info:
        check_completion(ChatCompletion(choices=[], usage=Usage()), require_usage=False,
                         endpoint="e")
    assert reason(info) == "no_choices"
    assert info.value.endpoint == "e"


@pytest.mark.parametrize("finish_reason", ["length", "content_filter"])
def test_check_completion_refuses_cut_or_filtered_answers(finish_reason: str) -> None:
    with pytest.raises(MalformedResponse) as info:
        check_completion(completion(finish_reason), require_usage=False)
    assert reason(info) == finish_reason


def test_check_completion_missing_usage() -> None:
    check_completion(completion(usage=None), require_usage=False)
    with pytest.raises(MalformedResponse) as info:
        check_completion(completion(usage=None), require_usage=True)
    assert reason(info) == "missing_usage"


# ('{"a": 1} x', data after the object, is a ToolCallParseFailure: test_tool_call_parsing)
@pytest.mark.parametrize("arguments", ["", "{", '{"a": 1', "[]", "null", '"{}"', "1"])
def test_check_completion_invalid_tool_arguments(arguments: str) -> None:
    with pytest.raises(MalformedResponse) as info:
        check_completion(completion("tool_calls", arguments), require_usage=False)
    assert reason(info) == "invalid_tool_arguments"


def test_check_completion_on_a_decoded_non_streamed_body() -> None:
    body = msgspec.json.encode({
        "id": "x", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None, "tool_calls": [
                {"id": "c", "type": "function",
                 "function": {"name": "f", "arguments": "{'a': 1}"}}]}}],
        "usage": USAGE,
    })
    with pytest.raises(MalformedResponse) as info:
        check_completion(completion_decoder.decode(body), require_usage=True)
    assert reason(info) == "invalid_tool_arguments"


def test_chunk_type_is_the_protocol_chunk() -> None:
    # feed_chunk accepts what protocol.chunk_decoder produces, not only our subclass.
    assert isinstance(chunk_decoder.decode(TEXT_STREAM[0]), ChatChunk)
