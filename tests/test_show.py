"""`writ show`: the transcript, tool calls with results, state diffs after writes, the grade."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from conftest import require, tau2_dir
from planning import open_replay, plan_of

from writ_async.cli import main
from writ_async.config import Config, default_config
from writ_async.conversation.messages import AssistantMessage, ToolMessage
from writ_async.conversation.records import EpisodeRecord
from writ_async.engine.journal import EpisodeFinished, JournalWriter, read_journal
from writ_async.engine.replay.verify import iter_events
from writ_async.engine.show import render_episode, state_diff
from writ_async.engine.simulate import simulate
from writ_async.logs import reset_logging

replace = msgspec.structs.replace


def airline_config(**simulate_settings: object) -> Config:
    db = require(tau2_dir() / "airline" / "db.json", "tau2-bench airline db.json")
    tasks = require(tau2_dir() / "airline" / "tasks.json", "tau2-bench airline tasks.json")
    config = default_config().with_domain("airline", db_path=str(db))
    return replace(config,
                   simulate=replace(config.simulate, tasks=str(tasks), **simulate_settings))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("show") / "run"
    asyncio.run(simulate(plan_of(airline_config(mistake_rate=0.5)), out=out))
    return out


@pytest.fixture(autouse=True)
def _logging() -> Iterator[None]:
    yield
    reset_logging()


def booking(run_dir: Path) -> EpisodeRecord:
    """An episode that books a reservation (a created record) after other writes or not."""
    for record in read_journal(run_dir / "journal.bin").finished.values():
        names = [c.name for m in record.messages if isinstance(m, AssistantMessage)
                 for c in m.tool_calls or ()]
        if "book_reservation" in names:
            return record
    raise AssertionError("no booking in the run")


def test_show_has_messages_calls_diffs_and_the_grade(run_dir: Path) -> None:
    record = booking(run_dir)
    text = render_episode(open_replay(run_dir), record.episode_id)
    assert f"episode {record.episode_id}" in text
    assert "[0] agent: Hi! How can I help you today?" in text
    assert "[1] user: " in text
    assert "agent calls book_reservation(" in text
    assert "tool book_reservation: " in text
    assert "state after this write:" in text
    assert ": created {" in text  # the new reservation
    assert "users[" in text  # the payment taken from the user's account
    assert "grade: reward " in text
    assert "actions (diagnostic" in text and "evidence (" in text
    assert "DB matches" in text or "DB DIFFERS" in text
    for message in record.messages:  # every message is there
        if isinstance(message, ToolMessage):
            assert message.content[:100] in text


def test_show_names_failed_checks(run_dir: Path) -> None:
    records = read_journal(run_dir / "journal.bin").finished.values()
    failed = next(r for r in records if r.reward_info and not r.reward_info.evidence_ok)
    text = render_episode(open_replay(run_dir), failed.episode_id)
    assert "evidence FAILED" in text
    failing = next(c for c in failed.reward_info.evidence_checks if not c.passed)
    assert f"FAIL {failing.name}" in text


def test_show_flags_a_result_that_does_not_reproduce(run_dir: Path, tmp_path: Path) -> None:
    record = booking(run_dir)
    edited = tmp_path / "run"
    edited.mkdir()
    for name in ("manifest.json", "tasks.json"):
        shutil.copy(run_dir / name, edited / name)
    contents = read_journal(run_dir / "journal.bin")
    with JournalWriter(edited / "journal.bin", fsync="never") as writer:
        for event in iter_events(contents.path, contents.valid_bytes):
            if isinstance(event, EpisodeFinished) and event.episode_id == record.episode_id:
                messages = [replace(m, content="{}") if isinstance(m, ToolMessage) else m
                            for m in event.record.messages]
                event = replace(event, record=replace(event.record, messages=messages))
            writer.append(event)
    text = render_episode(open_replay(edited), record.episode_id)
    assert "!! the replay gives another result" in text


def test_state_diff_is_field_level(run_dir: Path) -> None:
    base = open_replay(run_dir).plan.base
    key = next(iter(base.tables["reservations"]))
    old = msgspec.to_builtins(base.tables["reservations"][key])
    changed = {**old, "cabin": "business" if old["cabin"] != "business" else "economy",
               "payment_history": [*old["payment_history"], {"payment_id": "x", "amount": 5}]}
    lines = list(state_diff(base, {}, {"reservations": {key: changed, "NEW001": {"a": 1}}}))
    assert f'reservations[{key}].cabin: "{old["cabin"]}" -> "{changed["cabin"]}"' in lines
    assert (f'reservations[{key}].payment_history: appended '
            '{"payment_id":"x","amount":5}') in lines
    assert 'reservations[NEW001]: created {"a":1}' in lines
    assert list(state_diff(base, {"reservations": {key: changed}},
                           {"reservations": {key: changed}})) == []


def test_cli_show(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = booking(run_dir)
    assert main(["show", str(run_dir), record.episode_id]) == 0
    out = capsys.readouterr().out
    assert "state after this write:" in out and "grade: reward" in out
    assert main(["show", str(run_dir), "nope:0"]) == 2
    assert "no episode 'nope:0'" in capsys.readouterr().err
