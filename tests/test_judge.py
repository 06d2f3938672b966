"""NL-assertion judging: reading the judge's answer, and the not-graded paths."""

from __future__ import annotations

from writ_async.conversation.messages import AssistantMessage, ToolCall, ToolMessage, UserMessage
from writ_async.grading.judge import judge_request, read_verdicts, transcript

ASSERTIONS = ["Agent refuses the cancellation.", "Agent offers a certificate."]


def test_transcript_shows_text_calls_and_results() -> None:
    text = transcript([
        AssistantMessage(content="Hi"), UserMessage(content="cancel ABC123"),
        AssistantMessage(tool_calls=(ToolCall(id="1", name="get_reservation_details",
                                              arguments={"reservation_id": "ABC123"}),)),
        ToolMessage(id="1", content="{...}"),
    ])
    assert text.splitlines() == [
        "agent: Hi", "customer: cancel ABC123",
        'agent calls get_reservation_details({"reservation_id":"ABC123"})',
        "tool result: {...}",
    ]


def test_request_numbers_the_assertions() -> None:
    request = judge_request([UserMessage(content="hello")], ASSERTIONS)
    assert "1. Agent refuses" in request.messages[1].content
    assert "2. Agent offers" in request.messages[1].content
    assert request.temperature == 0.0


def test_verdicts_are_read_from_json_even_with_surrounding_text() -> None:
    answer = ('Sure: {"results": [{"expectation": 2, "met": false, "reason": "no offer"},'
              ' {"expectation": 1, "met": true}]} done')
    checks = read_verdicts(answer, ASSERTIONS)
    assert [(c.name, c.passed) for c in checks] == [(ASSERTIONS[0], True),
                                                     (ASSERTIONS[1], False)]
    assert checks[1].detail == "no offer"


def test_unusable_answers_say_why() -> None:
    assert read_verdicts(None, ASSERTIONS) == "the judge sent no text"
    assert "no JSON object" in read_verdicts("I think it is fine.", ASSERTIONS)
    assert "not the expected JSON" in read_verdicts('{"results": 3}', ASSERTIONS)
    missing = read_verdicts('{"results": [{"expectation": 1, "met": true}]}', ASSERTIONS)
    assert "not 1..2" in missing
