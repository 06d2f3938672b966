"""Replay: verify every episode from the journal, catch edited journals at the right step,
fork from a step, re-run failures, and resume through the same restore path."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import msgspec
import pytest
from conftest import require, tau2_dir
from planning import open_replay, plan_of

from writ_async.cli import main
from writ_async.config import Config, default_config
from writ_async.conversation.episode import Termination
from writ_async.conversation.messages import AssistantMessage, Message, ToolMessage, UserMessage
from writ_async.conversation.records import EpisodeRecord, derive_seed
from writ_async.engine.journal import (
    EpisodeFinished,
    Event,
    JournalContents,
    JournalWriter,
    MessageAdded,
    Snapshot,
    ToolExecuted,
    read_journal,
)
from writ_async.engine.plan import resumable_prefix
from writ_async.engine.replay.continuation import FROM_FIRST_WRONG_WRITE, FROM_START, Overrides
from writ_async.engine.replay.fork import fork
from writ_async.engine.replay.rerun import rerun_failed
from writ_async.engine.replay.run import RecordedEpisode, ReplayRun
from writ_async.engine.replay.verify import iter_events, verify_all, verify_episode
from writ_async.engine.rundir import new_manifest
from writ_async.engine.runner import Counters, EpisodeSpec, restore, run_episode
from writ_async.engine.simulate import simulate
from writ_async.environment.tools import ToolKind
from writ_async.errors import ReplayDivergence, ReplayError
from writ_async.export.sft import is_kept
from writ_async.logs import reset_logging
from writ_async.participants.base import Turn
from writ_async.participants.llm import ParticipantError

replace = msgspec.structs.replace


def tau2_config(domain: str, **simulate_settings: object) -> Config:
    db = require(tau2_dir() / domain / "db.json", f"tau2-bench {domain} db.json")
    tasks = require(tau2_dir() / domain / "tasks.json", f"tau2-bench {domain} tasks.json")
    config = default_config().with_domain(domain, db_path=str(db))
    return replace(config, run=replace(config.run, domain=domain),
                   simulate=replace(config.simulate, tasks=str(tasks), **simulate_settings))


@pytest.fixture(scope="module")
def mistakes_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scripted airline run over tau2-bench's tasks, half of its episodes with a mistake."""
    out = tmp_path_factory.mktemp("replay") / "run"
    asyncio.run(simulate(plan_of(tau2_config("airline", mistake_rate=0.5)), out=out))
    return out


@pytest.fixture(autouse=True)
def _logging() -> Iterator[None]:
    yield
    reset_logging()  # the CLI configures logging for the process


def episodes(run_dir: Path) -> dict[str, EpisodeRecord]:
    return read_journal(run_dir / "journal.bin").finished


def with_writes(run_dir: Path) -> EpisodeRecord:
    """The first episode whose agent made a successful write, and later spoke again."""
    run = open_replay(run_dir)
    for record in episodes(run_dir).values():
        if any(isinstance(m, AssistantMessage) and m.tool_calls
               and run.plan.toolbox.kind(m.tool_calls[0].name) is ToolKind.WRITE
               for m in record.messages):
            return record
    raise AssertionError("no episode with a write")


def step_of(record: EpisodeRecord, predicate: Callable[[Message], bool]) -> int:
    return next(i for i, m in enumerate(record.messages) if predicate(m))


def edited_copy(src: Path, dst: Path, edit: Callable[[list[Event]], list[Event]]) -> Path:
    """A copy of the run at ``src`` whose journal went through ``edit``."""
    dst.mkdir()
    for name in ("manifest.json", "tasks.json"):
        shutil.copy(src / name, dst / name)
    contents = read_journal(src / "journal.bin")
    events = edit(list(iter_events(contents.path, contents.valid_bytes)))
    with JournalWriter(dst / "journal.bin", fsync="never") as writer:
        for event in events:
            writer.append(event)
    return dst


def verify(run_dir: Path, episode: str, *, full_hash: bool = False) -> ReplayDivergence | None:
    run = open_replay(run_dir)
    return asyncio.run(verify_episode(run, episode, full_hash=full_hash)).divergence


class ListSink:
    """A sink that keeps the events in a list."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def append(self, event: Event) -> None:
        self.events.append(event)

    def commit(self) -> None:
        pass


def positions(events: Sequence[Event], episode: str, kind: type) -> list[int]:
    return [i for i, e in enumerate(events) if e.episode_id == episode and isinstance(e, kind)]


# -- verify ----------------------------------------------------------------------------------


def test_every_episode_of_a_scripted_run_replays_exactly(mistakes_run: Path) -> None:
    run = open_replay(mistakes_run)
    verdicts = asyncio.run(verify_all(run))
    assert len(verdicts) == 50
    assert [v.divergence for v in verdicts if not v.ok] == []
    assert sum(v.writes for v in verdicts) > 0
    assert any(v.reward == 0 for v in verdicts)  # the mistakes are reproduced too
    full = asyncio.run(verify_all(run, full_hash=True))  # with the tau2 hash computed
    assert all(v.ok for v in full)


def test_the_record_keeps_the_final_delta_hash(mistakes_run: Path) -> None:
    run = open_replay(mistakes_run)
    for record in episodes(mistakes_run).values():
        restored = restore(run.setup, record.messages)
        assert record.final_delta_hash == restored.env.overlay.delta_hash()
        assert record.final_db_hash == restored.env.db_hash()


def test_a_changed_tool_output_is_caught_at_its_step(mistakes_run: Path, tmp_path: Path) -> None:
    record = with_writes(mistakes_run)
    eid = record.episode_id

    def edit(events: list[Event]) -> list[Event]:
        i = positions(events, eid, ToolExecuted)[0]
        events[i] = replace(events[i], output=events[i].output + " ")
        return events

    found = verify(edited_copy(mistakes_run, tmp_path / "run", edit), eid)
    assert found is not None
    assert (found.step, found.event, found.field) == (
        step_of(record, lambda m: isinstance(m, ToolMessage)), "tool", "output")
    assert found.recorded == found.replayed + " "


def test_a_changed_tool_message_is_caught_at_its_step(mistakes_run: Path,
                                                      tmp_path: Path) -> None:
    record = with_writes(mistakes_run)
    eid = record.episode_id
    target = step_of(record, lambda m: isinstance(m, ToolMessage))

    def edit(events: list[Event]) -> list[Event]:
        i = positions(events, eid, MessageAdded)[target]
        events[i] = replace(events[i], message=replace(events[i].message, content="{}"))
        return events

    found = verify(edited_copy(mistakes_run, tmp_path / "run", edit), eid)
    assert found is not None
    assert (found.step, found.event, found.field) == (target, "message", "message.content")
    assert found.recorded == "{}"


def test_a_changed_write_hash_is_caught(mistakes_run: Path, tmp_path: Path) -> None:
    record = with_writes(mistakes_run)
    eid = record.episode_id

    def edit(events: list[Event]) -> list[Event]:
        i = next(i for i in positions(events, eid, ToolExecuted) if events[i].db_hash)
        events[i] = replace(events[i], db_hash="0" * 32)
        return events

    found = verify(edited_copy(mistakes_run, tmp_path / "run", edit), eid)
    assert found is not None and (found.event, found.field) == ("tool", "db_hash")
    write = step_of(record, lambda m: isinstance(m, AssistantMessage) and bool(m.tool_calls) and
                    m.tool_calls[0].name in ("book_reservation", "cancel_reservation",
                                             "update_reservation_flights",
                                             "update_reservation_baggages",
                                             "update_reservation_passengers", "send_certificate"))
    assert found.step == write + 1


def test_a_removed_tool_event_is_caught_at_its_step(mistakes_run: Path, tmp_path: Path) -> None:
    record = with_writes(mistakes_run)
    eid = record.episode_id

    def edit(events: list[Event]) -> list[Event]:
        del events[positions(events, eid, ToolExecuted)[0]]
        return events

    found = verify(edited_copy(mistakes_run, tmp_path / "run", edit), eid)
    assert found is not None
    assert (found.step, found.event, found.field) == (
        step_of(record, lambda m: isinstance(m, ToolMessage)), "tool", "event")
    assert found.recorded == "message"  # what the journal has there instead


def test_a_removed_user_message_is_caught_at_its_step(mistakes_run: Path,
                                                      tmp_path: Path) -> None:
    record = with_writes(mistakes_run)
    eid = record.episode_id
    target = step_of(record, lambda m: isinstance(m, UserMessage))

    def edit(events: list[Event]) -> list[Event]:
        del events[positions(events, eid, MessageAdded)[target]]
        return events

    found = verify(edited_copy(mistakes_run, tmp_path / "run", edit), eid)
    assert found is not None
    assert (found.step, found.event, found.field) == (target, "message", "role")
    assert (found.recorded, found.replayed) == ("assistant", "user")


def test_a_removed_snapshot_is_caught_at_the_end(mistakes_run: Path, tmp_path: Path) -> None:
    record = with_writes(mistakes_run)
    eid = record.episode_id

    def edit(events: list[Event]) -> list[Event]:
        del events[positions(events, eid, Snapshot)[0]]
        return events

    found = verify(edited_copy(mistakes_run, tmp_path / "run", edit), eid)
    assert found is not None
    assert (found.step, found.event, found.recorded) == (len(record.messages), "snapshot",
                                                         "finished")


def test_an_altered_completion_is_caught_at_its_step(mistakes_run: Path, tmp_path: Path) -> None:
    record = with_writes(mistakes_run)
    eid = record.episode_id
    target = step_of(record, lambda m: isinstance(m, AssistantMessage) and bool(m.tool_calls))

    def edit(events: list[Event]) -> list[Event]:
        i = positions(events, eid, MessageAdded)[target]
        message = events[i].message
        call = message.tool_calls[0]
        altered = replace(call, arguments={**call.arguments, "extra": 1})
        events[i] = replace(events[i], message=replace(message, tool_calls=(altered,)))
        return events

    found = verify(edited_copy(mistakes_run, tmp_path / "run", edit), eid)
    assert found is not None
    assert found.step == target and found.event == "message"
    assert found.field == f"record.messages[{target}].tool_calls[0].arguments.extra"
    assert found.replayed == 1


def test_an_altered_user_message_is_caught_at_its_step(mistakes_run: Path,
                                                       tmp_path: Path) -> None:
    record = with_writes(mistakes_run)
    eid = record.episode_id
    target = step_of(record, lambda m: isinstance(m, UserMessage) and "yes" in m.content.lower())

    def edit(events: list[Event]) -> list[Event]:
        i = positions(events, eid, MessageAdded)[target]
        events[i] = replace(events[i], message=replace(events[i].message, content="No."))
        return events

    found = verify(edited_copy(mistakes_run, tmp_path / "run", edit), eid)
    assert found is not None
    assert (found.step, found.event, found.field) == (target, "message",
                                                      f"record.messages[{target}].content")
    assert found.replayed == "No."


def test_an_altered_grade_and_hash_are_caught(mistakes_run: Path, tmp_path: Path) -> None:
    record = with_writes(mistakes_run)
    eid = record.episode_id

    def reward(events: list[Event]) -> list[Event]:
        i = positions(events, eid, EpisodeFinished)[0]
        r = events[i].record
        events[i] = replace(events[i], record=replace(
            r, reward_info=replace(r.reward_info, reward=1.0 - r.reward_info.reward)))
        return events

    found = verify(edited_copy(mistakes_run, tmp_path / "a", reward), eid)
    assert found is not None
    assert (found.step, found.event, found.field) == (len(record.messages), "finished",
                                                      "record.reward_info.reward")

    def final_hash(events: list[Event]) -> list[Event]:
        i = positions(events, eid, EpisodeFinished)[0]
        events[i] = replace(events[i], record=replace(events[i].record, final_db_hash="f" * 64))
        return events

    edited = edited_copy(mistakes_run, tmp_path / "b", final_hash)
    found = verify(edited, eid, full_hash=True)
    assert found is not None and found.field == "record.final_db_hash"
    assert found.replayed == record.final_db_hash
    found = verify(edited, eid)  # through the delta hash: the grade shows the difference
    assert found is not None and found.field.startswith("record.reward_info")


def test_runs_with_models_and_a_judge_replay_without_calling_models(tmp_path: Path) -> None:
    # Over HTTP the journal holds model calls, which replay skips (it calls no model).
    http = tau2_config("airline", split="test", agent="scripted-http", user="scripted-http",
                       mistake_rate=0.3)
    asyncio.run(simulate(plan_of(http), out=tmp_path / "http"))
    run = open_replay(tmp_path / "http")
    assert run.contents.counts.get("model_called", 0) > 0
    assert all(v.ok for v in asyncio.run(verify_all(run)))
    # The judge's outcome (here: an answer it could not use) is given back from the record.
    judged = tau2_config("airline", split="test", judge="judge")
    asyncio.run(simulate(plan_of(judged), out=tmp_path / "judged"))
    run = open_replay(tmp_path / "judged")
    assert all(r.not_judged for r in run.contents.finished.values())
    assert all(v.ok for v in asyncio.run(verify_all(run)))


def test_replay_of_failures_and_timeouts_ends_the_same_way(tmp_path: Path) -> None:
    config = tau2_config("airline", episode_timeout_s=0.05)
    plan = plan_of(config)
    task = plan.tasks[0]

    class Failing:
        def __init__(self, after: int, failure: BaseException | None) -> None:
            self.after, self.failure = after, failure

        async def reply(self, history: Sequence[Message]) -> Turn:
            if len(history) >= self.after:
                if self.failure is None:
                    await asyncio.sleep(30)  # until the episode times out
                raise self.failure
            return Turn(UserMessage(content="Hello, I need help.", turn_idx=len(history)))

    class Talker:
        async def reply(self, history: Sequence[Message]) -> Turn:
            return Turn(AssistantMessage(content="Could you tell me more?",
                                         turn_idx=len(history)))

    run = ReplayRun(tmp_path, new_manifest(config, base_db_hash="", tasks_file_sha256="",
                                           task_ids=[task.id], trials=1, agent="a", user="u"),
                    plan, JournalContents(tmp_path / "journal.bin"))
    setup = run.setup
    for failure, ending in ((ParticipantError(Termination.USER_ERROR, "bad"), "user_error"),
                            (None, "timeout")):
        sink = ListSink()
        spec = EpisodeSpec(task=task, trial=0, seed=1)
        record = asyncio.run(run_episode(setup, spec, Talker(), Failing(5, failure), sink))
        assert record.termination == ending
        ep = RecordedEpisode(record.episode_id, 0, sink.events, record)
        assert asyncio.run(verify_episode(run, ep)).ok


# -- fork ------------------------------------------------------------------------------------


def test_a_fork_equals_the_original_up_to_its_step_and_finishes(mistakes_run: Path,
                                                                tmp_path: Path) -> None:
    run = open_replay(mistakes_run)
    record = with_writes(mistakes_run)
    k = step_of(record, lambda m: isinstance(m, AssistantMessage) and bool(m.tool_calls))
    out = asyncio.run(fork(run, record.episode_id, k, out=tmp_path / "fork"))
    (forked,) = out.episodes
    assert forked.record.messages[:k] == record.messages[:k]
    # the same participants and seed: the live continuation is the original's too
    assert forked.record.messages == record.messages
    assert forked.record.termination == record.termination
    lineage = forked.record.lineage
    assert lineage is not None
    assert (lineage.parent_run, lineage.parent_episode, lineage.fork_step, lineage.mode) == (
        run.manifest.run_id, record.episode_id, k, "fork")
    assert (tmp_path / "fork" / "lineage.json").exists()
    assert all(v.ok for v in asyncio.run(verify_all(open_replay(tmp_path / "fork"))))


def test_a_fork_with_other_settings_keeps_the_prefix(mistakes_run: Path, tmp_path: Path) -> None:
    run = open_replay(mistakes_run)
    record = next(r for r in episodes(mistakes_run).values() if not is_kept(r)
                  and r.reward_info is not None and r.reward_info.reward == 0)
    k = step_of(record, lambda m: isinstance(m, UserMessage)) + 1
    out = asyncio.run(fork(run, record.episode_id, k, out=tmp_path / "fork",
                           overrides=Overrides(seed=7, mistake_rate=0.0)))
    (forked,) = out.episodes
    assert forked.record.messages[:k] == record.messages[:k]
    assert forked.record.seed == derive_seed(7, record.task_id, record.trial)
    assert is_kept(forked.record)  # without mistakes, the continuation is right
    manifest = open_replay(tmp_path / "fork").manifest
    assert manifest.config["simulate"]["mistake_rate"] == 0.0


def test_a_fork_inside_a_block_of_tool_results_keeps_the_prefix(mistakes_run: Path,
                                                                tmp_path: Path) -> None:
    run = open_replay(mistakes_run)
    record = with_writes(mistakes_run)
    k = step_of(record, lambda m: isinstance(m, ToolMessage))  # the result is re-run live
    restored = restore(run.setup, record.messages[:k])
    assert len(restored.episode.messages) == k  # stops after the call, which is pending
    out = asyncio.run(fork(run, record.episode_id, k, out=tmp_path / "fork"))
    assert out.episodes[0].record.messages[:k + 1] == record.messages[:k + 1]


def test_forks_that_cannot_be_made_are_refused(mistakes_run: Path, tmp_path: Path) -> None:
    run = open_replay(mistakes_run)
    record = with_writes(mistakes_run)
    with pytest.raises(ReplayError, match=r"within 0\.\."):
        asyncio.run(fork(run, record.episode_id, 999, out=tmp_path / "a"))
    with pytest.raises(ReplayError, match="ended at step"):
        asyncio.run(fork(run, record.episode_id, len(record.messages), out=tmp_path / "b"))
    with pytest.raises(ReplayError, match="no episode"):
        asyncio.run(fork(run, "nope:0", 1, out=tmp_path / "c"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# -- one restore path for runs, resumes and forks --------------------------------------------


def test_run_episode_restores_the_prefix_and_asks_only_after_it(mistakes_run: Path) -> None:
    run = open_replay(mistakes_run)
    record = with_writes(mistakes_run)
    k = step_of(record, lambda m: isinstance(m, AssistantMessage) and bool(m.tool_calls))
    asked: list[int] = []
    rest = list(record.messages)

    class Rest:
        async def reply(self, history: Sequence[Message]) -> Turn:
            asked.append(len(history))
            return Turn(rest[len(history)])  # type: ignore[arg-type]

    sink = ListSink()
    spec = EpisodeSpec(task=run.task(record.task_id), trial=record.trial, seed=record.seed,
                       prefix=tuple(record.messages[:k]))
    counters = Counters()
    replayed = asyncio.run(run_episode(run.setup, spec, Rest(), Rest(), sink,
                                       counters))
    assert min(asked) == k
    assert replayed.messages == record.messages
    assert replayed.final_db_hash == record.final_db_hash
    # the new attempt's journal holds the whole episode, restored part included
    assert [e.message for e in sink.events if isinstance(e, MessageAdded)] == record.messages
    assert counters.tool_calls == sum(isinstance(m, ToolMessage) for m in record.messages)


def test_resume_goes_on_from_a_crashed_attempt(mistakes_run: Path, tmp_path: Path) -> None:
    record = with_writes(mistakes_run)
    eid = record.episode_id

    def crash(events: list[Event]) -> list[Event]:
        # the episode's events up to its first tool result, cut between the tool
        # event and its message: a crash in the middle of a block of tool results
        tool = positions(events, eid, ToolExecuted)[0]
        return [e for i, e in enumerate(events) if e.episode_id != eid or i <= tool]

    crashed = edited_copy(mistakes_run, tmp_path / "run", crash)
    contents = read_journal(crashed / "journal.bin")
    assert eid in contents.unfinished
    prefix = resumable_prefix(open_replay(mistakes_run).setup, contents.events(eid))
    call = step_of(record, lambda m: isinstance(m, AssistantMessage) and bool(m.tool_calls))
    assert prefix == tuple(record.messages[:call + 1])  # the call, its result to run again

    config = msgspec.convert(open_replay(mistakes_run).manifest.config, Config)
    outcome = asyncio.run(simulate(plan_of(config), out=crashed, resume=True))
    assert outcome.progress is not None and outcome.progress.total == 1
    resumed = read_journal(crashed / "journal.bin")
    assert resumed.finished[eid].messages == record.messages
    assert resumed.attempts[eid] == 1
    assert all(v.ok for v in asyncio.run(verify_all(open_replay(crashed))))


# -- re-running failures ---------------------------------------------------------------------


def test_failed_episodes_are_recovered_without_mistakes(mistakes_run: Path,
                                                        tmp_path: Path) -> None:
    run = open_replay(mistakes_run)
    failed = [r for r in episodes(mistakes_run).values() if not is_kept(r)]
    assert failed, "a mistake rate of 0.5 must fail some episodes"
    out = asyncio.run(rerun_failed(run, mode=FROM_START, out=tmp_path / "start",
                                   overrides=Overrides(mistake_rate=0.0)))
    assert out.selected == len(out.episodes) == len(failed)
    assert out.recovered == len(failed)
    assert {e.parent_episode for e in out.episodes} == {r.episode_id for r in failed}
    assert all(e.fork_step == 0 for e in out.episodes)

    out = asyncio.run(rerun_failed(run, mode=FROM_FIRST_WRONG_WRITE, out=tmp_path / "wrong",
                                   overrides=Overrides(mistake_rate=0.0)))
    assert len(out.episodes) == len(failed) and out.recovered > 0
    forked = [e for e in out.episodes if e.fork_step > 0]
    assert forked, "some failures have a wrong write to go back to"
    parents = episodes(mistakes_run)
    for e in forked:
        assert e.record.messages[:e.fork_step] == parents[e.parent_episode].messages[
            :e.fork_step]
    assert all(v.ok for v in asyncio.run(verify_all(open_replay(tmp_path / "wrong"))))


def test_rerunning_with_the_same_mistakes_recovers_nothing(mistakes_run: Path,
                                                           tmp_path: Path) -> None:
    run = open_replay(mistakes_run)
    out = asyncio.run(rerun_failed(run, mode=FROM_START, out=tmp_path / "again"))
    assert out.recovered == 0 and out.episodes


# -- the command -----------------------------------------------------------------------------


def test_cli_verifies_and_reports_divergences(mistakes_run: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    record = with_writes(mistakes_run)
    assert main(["replay", str(mistakes_run), record.episode_id]) == 0
    assert "verified" in capsys.readouterr().out
    assert main(["replay", str(mistakes_run), "--all"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"episodes\s+50\n", out) and re.search(r"diverged\s+0\n", out)

    def edit(events: list[Event]) -> list[Event]:
        i = positions(events, record.episode_id, ToolExecuted)[0]
        events[i] = replace(events[i], output="changed")
        return events

    edited = edited_copy(mistakes_run, tmp_path / "edited", edit)
    assert main(["replay", str(edited), record.episode_id]) == 2
    out = capsys.readouterr().out
    assert "DIVERGED at step" in out and "output" in out and "'changed'" in out
    assert main(["replay", str(edited), "--all"]) == 2
    out = capsys.readouterr().out
    assert re.search(r"diverged\s+1\n", out) and re.search(r"tool: output\s+1\n", out)


def test_cli_errors_are_one_line(mistakes_run: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(mistakes_run), "nope:0"]) == 2
    assert "writ: error:" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "missing"), "0:0"]) == 2
    assert "manifest.json" in capsys.readouterr().err
    assert main(["replay", str(mistakes_run)]) == 2
    assert "EPISODE, --all or --failed" in capsys.readouterr().err
    assert main(["replay", str(mistakes_run), "0:0", "--seed", "3"]) == 2
    assert "only apply" in capsys.readouterr().err
    assert main(["replay", str(mistakes_run), "0:0", "--from", "999",
                 "--out", str(tmp_path / "f")]) == 2
    assert "within 0.." in capsys.readouterr().err


def test_cli_fork_and_failed(mistakes_run: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    record = with_writes(mistakes_run)
    assert main(["replay", str(mistakes_run), record.episode_id, "--from", "3",
                 "--out", str(tmp_path / "fork")]) == 0
    assert f"forked {record.episode_id}" in capsys.readouterr().out
    assert main(["replay", str(mistakes_run), "--failed", "--from-first-wrong-write",
                 "--mistake-rate", "0", "--out", str(tmp_path / "failed")]) == 0
    out = capsys.readouterr().out
    assert "recovered" in out and "from first wrong write" in out
    assert main(["replay", str(tmp_path / "failed"), "--all"]) == 0


def test_a_run_whose_data_changed_is_refused(mistakes_run: Path, tmp_path: Path) -> None:
    copy = edited_copy(mistakes_run, tmp_path / "run", lambda events: events)
    manifest = (copy / "manifest.json").read_text()
    stored = open_replay(mistakes_run).manifest.base_db_hash
    (copy / "manifest.json").write_text(manifest.replace(stored, "0" * 64))
    with pytest.raises(ReplayError, match="changed since the run"):
        open_replay(copy)
    (copy / "journal.bin").unlink()
    (copy / "manifest.json").write_text(manifest)
    with pytest.raises(ReplayError, match="recorded no episode"):
        open_replay(copy)


def test_a_fork_can_change_the_users_behaviours(mistakes_run: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    record = with_writes(mistakes_run)
    assert main(["replay", str(mistakes_run), record.episode_id, "--from", "2",
                 "--behaviours", "verbose+out_of_order", "--mistake-rate", "0",
                 "--out", str(tmp_path / "fork")]) == 0
    forked = next(iter(episodes(tmp_path / "fork").values()))
    assert forked.behaviours == ["out_of_order", "verbose"]
    assert forked.episode_id == f"{record.task_id}@out_of_order+verbose:{record.trial}"
    assert forked.messages[:2] == record.messages[:2]
    assert forked.termination == "user_stop"
    capsys.readouterr()
    assert main(["replay", str(mistakes_run), record.episode_id, "--from", "2",
                 "--behaviours", "chatty", "--out", str(tmp_path / "bad")]) == 2
    assert "unknown behaviour 'chatty'" in capsys.readouterr().err
