"""`writ data stats`: the statistics of an export, stats.json beside it, contamination."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from conftest import require, tau2_dir
from planning import plan_of

from writ_async.cli import main
from writ_async.config import default_config
from writ_async.conversation.task import Action, EvaluationCriteria, Task, UserScenario
from writ_async.engine.simulate import simulate
from writ_async.export import datastats

KINDS = {"get_user": "read", "book": "write", "cancel": "write", "think": "generic"}


def kind_of(domain: str, tool: str) -> str | None:
    return KINDS.get(tool)


def call(name: str, arguments: dict[str, Any], i: int = 0) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": [{
        "id": f"c{i}", "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)}}]}


def row(*messages: dict[str, Any], episode: str = "t:0") -> dict[str, Any]:
    return {"messages": [{"role": "system", "content": "Be good."}, *messages],
            "tools": [], "metadata": {"domain": "airline", "episode_id": episode}}


def say(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "content": text}


def test_counts_tokens_turns_calls_and_the_read_write_mix() -> None:
    r = row(say("assistant", "Hi!"), say("user", "Book HAT001, please."),
            call("get_user", {"user_id": "u_1"}), {"role": "tool", "tool_call_id": "c0",
                                                   "content": "{}"},
            call("book", {"flight": "HAT001"}, 1), say("assistant", "Done."))
    stats = datastats.compute_stats([r], kind_of=kind_of)
    tokens = stats["tokens_per_row"]
    assert tokens["system"]["max"] == 3  # "Be", "good", "."
    assert stats["turns_per_row"]["max"] == 5  # the tool result is not a turn
    assert stats["tool_calls_per_row"]["max"] == 2
    assert stats["tool_calls"] == {"total": 2, "read": 1, "write": 1, "write_share": 0.5}
    assert tokens["user"]["max"] == datastats.estimate_tokens("Book HAT001, please.") == 5
    assert tokens["tool"]["max"] == 2


def test_token_estimate_counts_words_and_punctuation() -> None:
    assert datastats.estimate_tokens("Hello, world!") == 4
    assert datastats.estimate_tokens("user_id: grace_ramos_6602") == 3
    assert datastats.estimate_tokens("") == 0


def test_greeting_is_excluded_only_before_the_first_user_message() -> None:
    opened = row(say("assistant", "Hi! How can I help?"), say("user", "Hello."),
                 say("assistant", "Sure."))
    assert datastats.assistant_texts(opened) == ["Sure."]
    # an agent that answers first after a user message has no greeting to drop
    unopened = row(say("user", "Hello."), say("assistant", "Hi! How can I help?"))
    assert datastats.assistant_texts(unopened) == ["Hi! How can I help?"]


def test_distinct_n_counts_unique_over_all_ngrams_within_messages() -> None:
    r = row(say("assistant", "Hi"), say("user", "x"), say("assistant", "a b a b"),
            say("assistant", "A b c"))
    text = datastats.compute_stats([r], kind_of=kind_of)["assistant_text"]
    # words: [a b a b], [a b c]; unigrams 7 (3 unique), bigrams 3+2=5 ({ab, ba, bc}: 3)
    assert text["distinct_1"] == round(3 / 7, 4)
    assert text["distinct_2"] == round(3 / 5, 4)
    assert text["distinct_3"] == round(3 / 3, 4)  # aba, bab, abc


def test_masking_makes_sentences_that_differ_only_in_values_one_template() -> None:
    a = datastats.mask_sentence("Your flight HAT118 on 2024-05-17 costs $164.")
    b = datastats.mask_sentence("Your flight HAT002 on 2024-06-01 costs $28.")
    assert a == b == "your flight <id> on <id>-<id>-<id> costs $<id>."
    assert datastats.mask_sentence("From SFO to JFK for grace_ramos_6602") == \
        datastats.mask_sentence("From ATL to LAX for mia_li_3668")
    assert datastats.split_sentences("One. Two? Three!\nFour") == ["One.", "Two?", "Three!",
                                                                  "Four"]
    assert datastats.split_sentences("It costs 1.5 dollars.") == ["It costs 1.5 dollars."]


def test_top_sentence_share_counts_conversations_not_occurrences() -> None:
    rows = [row(say("assistant", "Hi!"), say("user", "q"),
                say("assistant", f"Your code is X{i}Y. Anything else? Anything else?"),
                episode=f"t{i}:0") for i in range(3)]
    rows.append(row(say("assistant", "Hi!"), say("user", "q"), say("assistant", "Bye."),
                    episode="t9:0"))
    text = datastats.compute_stats(rows, kind_of=kind_of)["assistant_text"]
    top = text["top_sentences"]
    # ties broken by the masked text; the greeting "Hi!" is in every row but not counted
    assert [(t["sentence"], t["rows"]) for t in top] == [
        ("anything else?", 3), ("your code is <id>.", 3), ("bye.", 1)]
    assert text["top_sentence_share"] == 0.75
    assert text["sentence_goal_met"] is False
    # three messages are exact copies of one another only if the codes are equal: none are
    assert text["duplicate_messages"] == 0


def test_duplicate_share_is_messages_whose_text_occurs_elsewhere() -> None:
    rows = [row(say("user", "q"), say("assistant", "Done."), say("assistant", "Okay."),
                episode="a:0"),
            row(say("user", "q"), say("assistant", "Done."), episode="b:0")]
    text = datastats.compute_stats(rows, kind_of=kind_of)["assistant_text"]
    assert text["messages"] == 3
    assert text["duplicate_messages"] == 2
    assert text["duplicate_share"] == round(2 / 3, 4)


def test_empty_export_has_zero_figures() -> None:
    stats = datastats.compute_stats([], kind_of=kind_of)
    assert stats["rows"] == 0
    assert stats["assistant_text"]["top_sentence_share"] == 0.0
    assert stats["tool_calls"]["write_share"] == 0.0


def task(task_id: str, *actions: tuple[str, dict[str, Any]]) -> Task:
    return Task(id=task_id, user_scenario=UserScenario(instructions="x"),
                evaluation_criteria=EvaluationCriteria(
                    actions=[Action(name=n, arguments=a) for n, a in actions]))


def test_contamination_matches_the_multiset_of_writes_in_any_order() -> None:
    tasks = [task("t1", ("get_user", {"user_id": "u"}), ("book", {"n": 2}),
                  ("cancel", {"id": "R1"})),
             task("reads-only", ("get_user", {"user_id": "u"}))]
    same = row(say("user", "q"), call("cancel", {"id": "R1"}), call("get_user", {"user_id": "z"}),
               call("book", {"n": 2.0}), episode="same:0")  # other reads, 2.0 == 2
    other = row(say("user", "q"), call("book", {"n": 3}), call("cancel", {"id": "R1"}),
                episode="other:0")
    subset = row(say("user", "q"), call("book", {"n": 2}), episode="subset:0")
    reads = row(say("user", "q"), call("get_user", {"user_id": "u"}), episode="reads:0")
    report = datastats.contamination([same, other, subset, reads], tasks, source="f.json",
                                     kind_of=kind_of)
    assert report["rows_compared"] == 3  # the read-only row has no writes to compare
    assert report["tasks_with_writes"] == 1
    assert report["rows_matching"] == 1
    assert report["matches"] == [{"episode_id": "same:0", "task_ids": ["t1"]}]


def test_simulate_writes_stats_json_equal_to_the_command(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    run = tmp_path / "run"
    assert main(["simulate", "--task-count", "6", "--out", str(run)]) == 0
    summary = capsys.readouterr().out
    assert "data: 6 rows" in summary
    stored = json.loads((run / "export" / "stats.json").read_text())
    assert stored["rows"] == 6
    assert stored["tool_calls"]["write"] > 0
    assert main(["data", "stats", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == stored
    assert main(["data", "stats", str(run)]) == 0
    table = capsys.readouterr().out
    assert "distinct-1/2/3" in table and "top sentence share" in table


def test_split_without_against_is_refused(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "stats", str(tmp_path), "--split", "test"]) == 2
    assert "--split goes with --against" in capsys.readouterr().err


def test_a_missing_export_is_a_clear_error(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "stats", str(tmp_path)]) == 2
    assert "cannot read export" in capsys.readouterr().err


@pytest.mark.asyncio
async def test_a_run_over_tau2_tasks_is_reported_as_contaminated(tmp_path: Path) -> None:
    """tau2's own tasks, exported and compared with the same file: every exported row
    with writes reproduces its task's gold writes, and the summary's config key works."""
    db = require(tau2_dir() / "airline" / "db.json", "tau2-bench airline db.json")
    tasks = require(tau2_dir() / "airline" / "tasks.json", "tau2-bench airline tasks.json")
    config = default_config().with_domain("airline", db_path=str(db))
    replace = msgspec.structs.replace
    config = replace(
        config,
        simulate=replace(config.simulate, tasks=str(tasks), split="test"),
        export=replace(config.export, contamination_tasks=str(tasks),
                       contamination_split="test"))
    outcome = await simulate(plan_of(config), out=tmp_path / "run")
    stats = json.loads((tmp_path / "run" / "export" / "stats.json").read_text())
    report = stats["contamination"]
    assert report["rows_compared"] > 0
    assert report["rows_matching"] == report["rows_compared"]
    for match in report["matches"]:
        assert match["episode_id"].split("@")[0].split(":")[0] in match["task_ids"]
    assert outcome.export.written == stats["rows"]


def test_masked_distinct_2_counts_wording_not_values() -> None:
    r = row(say("user", "q"), say("assistant", "Code X1Y ok"), say("assistant", "Code Z2W ok"))
    text = datastats.compute_stats([r], kind_of=kind_of)["assistant_text"]
    assert text["distinct_2"] == 1.0  # every bigram holds a different code
    assert text["distinct_2_masked"] == 0.5  # "code <id>", "<id> ok", twice


def test_a_bad_contamination_file_stops_the_run_before_any_episode(
        tmp_path: Path) -> None:
    """A wrong ``[export] contamination_tasks`` path is reported at once, naming the file,
    and no episode runs (it used to surface only after the whole run, at export)."""
    import subprocess
    import sys

    missing = tmp_path / "no_such_tasks.json"
    config = tmp_path / "c.toml"
    config.write_text(f'[simulate]\ntask_count = 4\n[export]\ncontamination_tasks = "{missing}"\n')
    proc = subprocess.run([sys.executable, "-m", "writ_async", "simulate", "--config",
                           str(config), "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert str(missing) in proc.stderr and "cannot read tasks" in proc.stderr
    assert "Traceback" not in proc.stderr
    journal = tmp_path / "run" / "journal.bin"
    assert not journal.exists() or journal.stat().st_size == 0
