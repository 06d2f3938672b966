"""How the scripted agent words airline writes and reads (issue 13): an outcome tells what
the confirmation did not, bags are said in words, dates are shortened only once their month
is known, and searches are summarised by what was compared, not read out in full."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

import pytest

from domains import get_domain
from domains.airline.phrases import PHRASES
from writ_async.conversation.messages import AssistantMessage, Message, ToolMessage
from writ_async.conversation.records import derive_seed
from writ_async.environment.tools import ToolKind
from writ_async.participants import phrasebank as pb
from writ_async.participants.scripted.inprocess import run_scripted_episode
from writ_async.synthesis.driver import generate_tasks

TASKS = 40
_MONEY = re.compile(r"\$\d[\d,]*(?:\.\d\d)?")
_FLIGHT = re.compile(r"\bHAT\d{3}\b")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
# "3 checked bags", "(2 of them paid)", "(0 paid)": counts of bags in digits.
_BAGS_IN_DIGITS = re.compile(r"\b\d+ (?:checked )?bags?\b|\(\d+ (?:of them )?paid\)")


@pytest.fixture(scope="module")
def episodes() -> list[list[Message]]:
    domain = get_domain("airline")
    base = domain.generate_db(seed=0)
    tasks = generate_tasks(domain, base, TASKS, seed=0)
    return [run_scripted_episode(domain, base, task, derive_seed(0, task.id, 0))[0].messages
            for task in tasks]


def _writes(messages: Sequence[Message]) -> list[tuple[int, str, str]]:
    """Each successful write: (index of its call, its confirmation, its outcome sentence)."""
    toolbox = get_domain("airline").toolbox
    out = []
    for i, m in enumerate(messages):
        if not (isinstance(m, AssistantMessage) and m.tool_calls):
            continue
        call = m.tool_calls[0]
        result = messages[i + 1]
        if toolbox.kind(call.name) is not ToolKind.WRITE or not isinstance(result, ToolMessage) \
                or result.content.startswith("Error"):
            continue
        confirmation = messages[i - 2].content or ""
        after = next(x.content for x in messages[i + 1:]
                     if isinstance(x, AssistantMessage) and x.content)
        out.append((i, confirmation, _SENTENCE.split(after or "")[0]))
    return out


def test_an_outcome_does_not_repeat_the_confirmations_figures(
        episodes: list[list[Message]]) -> None:
    checked = 0
    for messages in episodes:
        for _, confirmation, outcome in _writes(messages):
            repeated = set(_MONEY.findall(outcome)) & set(_MONEY.findall(confirmation))
            assert not repeated, (confirmation, outcome)
            # The flights were named in the confirmation: the outcome does not list them.
            assert not _FLIGHT.findall(outcome), (confirmation, outcome)
            checked += 1
    assert checked >= TASKS, checked


def test_a_refund_or_charge_is_told_with_its_sign_and_where_it_went(
        episodes: list[list[Message]]) -> None:
    told = 0
    for messages in episodes:
        for i, _, outcome in _writes(messages):
            call = messages[i].tool_calls[0]  # type: ignore[union-attr]
            if call.name != "update_reservation_flights":
                continue
            if "$" in outcome:
                assert re.search(r"more|cheaper|less|saved", outcome), outcome
                told += 1
            else:
                assert re.search(r"same fare|no price difference|did not change", outcome)
    assert told, "no flight change moved money"


def test_bags_are_counted_in_words(episodes: list[list[Message]]) -> None:
    bag_texts = 0
    for messages in episodes:
        for m in messages:
            if isinstance(m, AssistantMessage) and m.content:
                assert not _BAGS_IN_DIGITS.search(m.content), m.content
                bag_texts += "checked bag" in m.content
    assert bag_texts >= 10, bag_texts


def test_a_passenger_change_names_who_is_replaced(episodes: list[list[Message]]) -> None:
    named = 0
    for messages in episodes:
        for i, confirmation, outcome in _writes(messages):
            call = messages[i].tool_calls[0]  # type: ignore[union-attr]
            if call.name != "update_reservation_passengers":
                continue
            # The confirmation gives the date of birth as a person writes it.
            assert not re.search(r"\d{4}-\d{2}-\d{2}", confirmation), confirmation
            asked = _SENTENCE.split(confirmation)[-1]  # (the message may open with outcomes)
            if re.search(r"replace|in place of", asked):
                assert re.search(r"replaces|is in for|instead of", outcome), outcome
                named += 1
    assert named, "no passenger replaced"


def test_a_day_is_shortened_only_once_its_month_was_said() -> None:
    short = re.compile(r"^(?:\w+day )?the \d+(?:st|nd|rd|th)$")
    for i in range(200):
        # "may I ..." is not the month.
        assert not short.match(pb.day("2024-05-14", pb.Fresh(str(i), "may i have your id?")))
        assert pb.day("2024-05-14", pb.Fresh(str(i), "")) != "the 14th"
    forms = {pb.day("2024-05-14", pb.Fresh(str(i), "your flight on may 12")) for i in range(200)}
    assert {"the 14th", "Tuesday the 14th", "May 14", "Tuesday, May 14"} <= forms, forms
    # Seeded: the same rng, the same words.
    assert pb.day("2024-05-14", pb.Fresh("7", "may 1")) == pb.day("2024-05-14",
                                                                   pb.Fresh("7", "may 1"))


def _flight(number: str, departs: str, price: int, seats: int = 5) -> dict[str, object]:
    return {"flight_number": number, "origin": "PHX", "destination": "DTW",
            "status": "available", "scheduled_departure_time_est": departs,
            "scheduled_arrival_time_est": "23:00:00",
            "available_seats": {"economy": seats}, "prices": {"economy": price}}


def _search(date: str, flights: list[dict[str, object]]) -> pb.Record:
    args = {"origin": "PHX", "destination": "DTW", "date": date}
    return pb.Record("search_direct_flight", args, "[...]", flights, False)


def test_searches_are_summarised_by_what_was_compared() -> None:
    # The cheapest fare has no seat left: the cheapest bookable one is named.
    searches = [_search("2024-05-24", [_flight("HAT001", "09:00:00", 90, seats=0),
                                       _flight("HAT002", "07:00:00", 120)]),
                _search("2024-05-25", [_flight("HAT001", "09:00:00", 110),
                                       _flight("HAT002", "07:00:00", 130)]),
                _search("2024-05-26", [_flight("HAT001", "09:00:00", 100)])]
    seen = pb.Seen(searches)
    for i in range(30):
        text = PHRASES.survey(searches, seen, random.Random(i), {"cabin": "economy"})
        assert text is not None
        assert "PHX to DTW" in text and "$100" in text, text
        assert "$90" not in text and "$130" not in text, text
        assert re.search(r"one to two flights a day|between one and two flights a day", text)
    many = [_flight(f"HAT00{n}", f"0{n}:00:00", 100 + 10 * n) for n in range(3, 8)]
    one = _search("2024-05-24", many)
    for i in range(30):
        text = PHRASES.summary(one, pb.Seen([one]), random.Random(i), {"cabin": "economy"})
        assert text is not None and "five" in text, text
        # Not every option read out.
        assert len(_FLIGHT.findall(text)) <= 2, text


# Pairings a phrase bank composed from independent parts can produce, none of them English.
_BROKEN = re.compile(r"saved you \$[\d.,]+ (?:less|cheaper)|\btotal totals\b|"
                     r"\b(\w+)\b[^.?!]*\bbefore I can \1\b|make the [a-z ]+ change for|"
                     r"\bThere are one\b")
_TWELVE = re.compile(r"\b\d{1,2}:\d\d (?:AM|PM)\b")
_TWENTY_FOUR = re.compile(r"(?<![\d:])\d\d:\d\d\b(?! (?:AM|PM))")


def test_no_composed_sentence_contradicts_itself(episodes: list[list[Message]]) -> None:
    """Each alternative reads well alone; these are the joins that did not."""
    texts = [m.content for messages in episodes for m in messages
             if isinstance(m, AssistantMessage) and m.content]
    assert texts
    for text in texts:
        assert not _BROKEN.search(text), text


def test_a_certificate_is_described_told_and_reported_with_its_amount() -> None:
    text = "Certificate certificate_1 added to user mia_li_3668 with amount 150."
    record = pb.Record("send_certificate", {"user_id": "mia_li_3668", "amount": 150}, text,
                       None, False)
    rng = random.Random(0)
    seen = pb.Seen([record])
    for _ in range(8):
        described = PHRASES.describe("send_certificate", record.arguments, seen, rng) or ""
        assert "$150" in described and "certificate" in described, described
        told = PHRASES.outcome(record, seen, rng) or ""
        assert "certificate" in told and "change is in place" not in told
    assert [amount for amount, _ in PHRASES.amounts(record, seen)] == [150]
    # a model's arguments: a number in a string is one, True is not, no user is no "None"
    for args, said in (({"amount": "150"}, "$150"), ({"amount": True}, "certificate"),
                       ({"amount": 150}, "certificate")):
        for _ in range(6):
            described = PHRASES.describe("send_certificate", args, seen, rng) or ""
            assert said in described and "$True" not in described, described
            assert "None" not in described, described


def test_a_conversation_keeps_one_clock_style(episodes: list[list[Message]]) -> None:
    styles = []
    for messages in episodes:
        text = " ".join(m.content for m in messages if isinstance(m, AssistantMessage)
                        and m.content)
        found = (bool(_TWELVE.search(text)), bool(_TWENTY_FOUR.search(text)))
        assert found != (True, True), text
        styles.append(found)
    assert (True, False) in styles and (False, True) in styles  # both, across conversations


def test_a_report_uses_each_connective_once(episodes: list[list[Message]]) -> None:
    connectives = [c for c in pb.VALUE_MORE if c]
    reports = 0
    for messages in episodes:
        for m in messages:
            if isinstance(m, AssistantMessage) and m.content and "anything else" in m.content:
                reports += 1
                for c in connectives:
                    assert m.content.count(f"{c} ") <= 1 or c == "And", m.content
    assert reports


def test_a_report_does_not_restate_a_figure_its_outcome_just_gave() -> None:
    """"…$85 refunded to your card. The refund for cancelling X is $85." says it twice: the
    recap is left out where the outcome already gave the figure (tau2 still finds it)."""
    domain = get_domain("airline")
    base = domain.generate_db(seed=0)
    reports = 0
    for task in generate_tasks(domain, base, TASKS, seed=7):
        criteria = task.evaluation_criteria
        values = (criteria.communicate_info or []) if criteria else []
        if not values:
            continue
        messages = run_scripted_episode(domain, base, task, derive_seed(0, task.id, 0))[0].messages
        report = next(m.content for m in reversed(messages)
                      if isinstance(m, AssistantMessage) and m.content)
        reports += 1
        for value in values:
            said = re.findall(rf"(?<![\w.]){re.escape(value)}(?!\w|\.\d)", report or "")
            assert len(said) <= 1, report
    assert reports
