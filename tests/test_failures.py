"""A run in which nothing could run is a failure, over the real CLI (subprocess, the
embedded mock endpoint answering every call with a 5xx)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from writ_async.commands.simulate import nothing_ran
from writ_async.conversation.records import EpisodeRecord

REPO = Path(__file__).resolve().parents[1]

FAILING = """
[simulate]
agent = "scripted-http"
user = "scripted-http"
task_count = 6
[models.retry]
max_attempts = 2
deadline_s = 5.0
[mock.faults]
error_5xx = 1.0
"""


def test_a_run_where_every_call_fails_exits_non_zero_with_the_cause(tmp_path: Path) -> None:
    config = tmp_path / "failing.toml"
    config.write_text(FAILING, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "writ_async", "simulate", "--config", str(config),
         "--out", str(tmp_path / "run")],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, (done.stdout, done.stderr)
    line = next(x for x in done.stderr.splitlines() if x.startswith("writ: error:"))
    assert "no episode could run:" in line and "role: " in line
    assert "of 6 episodes ended infrastructure_error: mock: HTTP 5" in line
    assert "after 2 attempt" in line


def _record(eid: str, termination: str, error: str | None) -> EpisodeRecord:
    return EpisodeRecord(episode_id=eid, task_id=eid, trial=0, seed=0, domain="airline",
                         termination=termination, messages=[], final_db_hash="",
                         error=error)


def test_nothing_ran_names_the_most_frequent_cause_and_its_role() -> None:
    failed = [_record(str(i), "infrastructure_error", "agent role: mock: HTTP 500")
              for i in range(3)]
    failed.append(_record("x", "infrastructure_error", "user role: connection refused"))
    assert nothing_ran(failed) == ("agent role: 3 of 4 episodes ended infrastructure_error: "
                                   "mock: HTTP 500 (1 other causes)")
    assert nothing_ran([*failed, _record("ok", "user_stop", None)]) is None
    assert nothing_ran([]) is None


def test_resume_after_an_outage_reruns_the_failed_episodes(tmp_path: Path) -> None:
    """Episodes that ended on the infrastructure are not data: `--resume` against the
    repaired endpoint runs them again (from where they broke), and the new records stand
    in for the failed ones, each episode once."""
    from writ_async.engine.journal import read_journal

    failing, fixed = tmp_path / "failing.toml", tmp_path / "fixed.toml"
    failing.write_text(FAILING, encoding="utf-8")
    fixed.write_text(FAILING.replace("error_5xx = 1.0", "error_5xx = 0.0"), encoding="utf-8")
    run = tmp_path / "run"

    def simulate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "writ_async", "simulate", *args],
                              cwd=REPO, capture_output=True, text=True, timeout=300)

    first = simulate("--config", str(failing), "--out", str(run))
    assert first.returncode == 1
    failed = read_journal(run / "journal.bin")
    assert {r.termination for r in failed.finished.values()} == {"infrastructure_error"}
    second = simulate("--config", str(fixed), "--resume", str(run))
    assert second.returncode == 0, (second.stdout, second.stderr)
    after = read_journal(run / "journal.bin")
    assert after.finished.keys() == failed.finished.keys() and after.duplicate_finishes == 0
    assert {r.termination for r in after.finished.values()} == {"user_stop"}
    assert all(after.finished_attempt[eid] == 1 for eid in after.finished)
    assert "infrastructure_error" not in second.stdout.split("termination_reasons")[1][:200]
    replayed = subprocess.run([sys.executable, "-m", "writ_async", "replay", str(run), "--all"],
                              cwd=REPO, capture_output=True, text=True, timeout=300)
    assert replayed.returncode == 0, (replayed.stdout, replayed.stderr)
