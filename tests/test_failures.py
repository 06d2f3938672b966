"""A run in which nothing could run is a failure, over the real CLI (subprocess, the
embedded mock endpoint answering every call with a 5xx)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from writ_async.cli import nothing_ran
from writ_async.records import EpisodeRecord

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
