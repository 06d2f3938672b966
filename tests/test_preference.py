"""The DPO preference export (export/dpo.jsonl): which trials pair, at which turn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from writ_async.cli import main
from writ_async.engine.journal import read_journal
from writ_async.export import preference
from writ_async.export.trl_format import trl_message
from writ_async.participants.prompts import to_openai


def text(role: str, content: str) -> dict[str, Any]:
    return {"role": role, "content": content}


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": name, "arguments": arguments}}]}


PREFIX = [text("system", "S"), text("assistant", "Hi"), text("user", "Cancel R1.")]


def test_a_different_action_after_a_shared_prefix_is_a_pair() -> None:
    chosen = [*PREFIX, call("get_reservation_details", reservation_id="R1")]
    rejected = [*PREFIX, call("cancel_reservation", reservation_id="R1")]
    assert preference.diverge(chosen, rejected) == (3, "")


def test_same_words_with_another_value_is_a_pair() -> None:
    chosen = [*PREFIX, text("assistant", "I will cancel R1 for $120, ok?")]
    rejected = [*PREFIX, text("assistant", "I will cancel R1 for $210, ok?")]
    assert preference.diverge(chosen, rejected) == (3, "")


def test_other_wording_for_the_same_action_is_no_pair() -> None:
    chosen = [*PREFIX, text("assistant", "Shall I cancel R1?")]
    rejected = [*PREFIX, text("assistant", "Do you want R1 cancelled?")]
    assert preference.diverge(chosen, rejected) == (3, preference.WORDING_ONLY)


def test_a_user_line_that_differs_first_is_no_pair() -> None:
    chosen = [*PREFIX[:2], text("user", "Cancel R1."), call("a")]
    rejected = [*PREFIX[:2], text("user", "Please cancel R1."), call("b")]
    assert preference.diverge(chosen, rejected) == (2, preference.USER_FIRST)
    assert preference.diverge(chosen, chosen)[1] == preference.NO_DIVERGENCE


def write_config(path: Path, enabled: bool) -> Path:
    path.write_text(f"[export]\npreference = {'true' if enabled else 'false'}\n")
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same run twice: trials that pass and fail (seeded mistakes)."""
    root = tmp_path_factory.mktemp("dpo")
    config = write_config(root / "config.toml", True)
    out = []
    for name in ("a", "b"):
        run = root / name
        assert main(["simulate", "--config", str(config), "--task-count", "12", "--trials",
                     "4", "--mistake-rate", "0.5", "--concurrency", "3" if name == "a" else "64",
                     "--out", str(run)]) == 0
        out.append(run)
    return out[0], out[1]


def test_rows_pair_the_failing_trials_own_prefix_with_the_mistake_free_turn(
        runs: tuple[Path, Path]) -> None:
    run = runs[0]
    rows = [json.loads(line) for line in (run / "export" / "dpo.jsonl").read_text().splitlines()]
    assert rows
    records = read_journal(run / "journal.bin").finished
    for row in rows:
        meta = row["metadata"]
        record = records[meta["rejected_episode"]]
        info = record.reward_info
        assert info is not None and (info.reward < 1 or not info.evidence_ok)
        conversation = [trl_message(to_openai(m)) for m in record.messages]
        index = meta["divergence"]
        # message 0 is the system prompt; the rest is the failing trial's conversation
        assert row["prompt"][0]["role"] == "system"
        assert row["prompt"][1:] == conversation[:index - 1]
        assert row["rejected"] == [conversation[index - 1]]
        assert row["chosen"][0]["role"] == "assistant" and row["chosen"] != row["rejected"]
        assert set(row) == {"prompt", "chosen", "rejected", "tools", "metadata"}
        assert row["tools"]
    report = json.loads((run / "export" / "stats.json").read_text())["preference"]
    assert report["written"] == len(rows)
    assert report["rejected"] >= report["written"]


def test_same_records_same_bytes_at_any_concurrency(runs: tuple[Path, Path]) -> None:
    a, b = runs
    assert (a / "export" / "dpo.jsonl").read_bytes() == (b / "export" / "dpo.jsonl").read_bytes()


def test_preference_export_is_off_by_default(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["simulate", "--task-count", "3", "--trials", "2", "--mistake-rate", "0.5",
                 "--out", str(run)]) == 0
    assert not (run / "export" / preference.PREFERENCE_FILE).exists()
    assert "preference" not in json.loads((run / "export" / "stats.json").read_text())


def test_infrastructure_failures_are_never_rejected_turns(runs: tuple[Path, Path]) -> None:
    records = list(read_journal(runs[0] / "journal.bin").finished.values())
    failing = next(r for r in records if preference.is_rejected(r))
    broken = msgspec.structs.replace(failing, termination="infrastructure_error")
    assert not preference.is_rejected(broken)
    ungraded = msgspec.structs.replace(failing, reward_info=None)
    assert not preference.is_rejected(ungraded)
