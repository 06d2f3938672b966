"""Stopping `writ simulate` with real signals, over the real CLI in a subprocess.

With the default in-process scripted participants no episode ever waits on I/O; the
scheduler must still hear Ctrl-C and SIGTERM between episodes. A stopped run exits as a
process that signal stopped (130 / 143), says at once what the stop does, and its summary
says it is partial; `--resume` then finishes it with every episode exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from writ_async.engine.journal import read_journal

REPO = Path(__file__).resolve().parents[1]
FLAGS = ["--task-count", "300", "--trials", "3", "--concurrency", "16"]
EXPECTED = 900


def _start(run: Path, *extra: str, flags: bool = True) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    given = ["--config", str(REPO / "config.toml"), *FLAGS] if flags else []
    return subprocess.Popen(
        [sys.executable, "-m", "writ_async", "simulate", *given, *extra],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_episodes(proc: subprocess.Popen[str], journal: Path, timeout: float = 120.0) -> None:
    """Until the run has journaled some episodes (so it is past synthesis, running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be stopped"
        if journal.exists() and journal.stat().st_size > 64 * 1024:
            return
        time.sleep(0.02)
    pytest.fail("the run journaled nothing in time")


def _finished(run: Path) -> list[str]:
    contents = read_journal(run / "journal.bin")
    return list(contents.finished)


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_an_in_process_run(tmp_path: Path, sig: int, status: int) -> None:
    run = tmp_path / "run"
    proc = _start(run, "--out", str(run))
    _wait_for_episodes(proc, run / "journal.bin")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == status, (out, err)
    assert "finishing" in err and "episodes in flight" in err and "Ctrl-C again" in err
    done = _finished(run)
    assert 0 < len(done) < EXPECTED
    assert f"partial run: {len(done)} of {EXPECTED} episodes done" in out
    assert f"--resume {run}" in out


def test_resume_alone_continues_with_the_stored_configuration(tmp_path: Path) -> None:
    """`--resume RUN` with no other flag (as the printed hint says) finishes the run with
    the manifest's configuration; a flag that would change results is refused, naming the
    key; one that cannot (concurrency) is taken."""
    run = tmp_path / "run"
    proc = _start(run, "--out", str(run))
    _wait_for_episodes(proc, run / "journal.bin")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    before = set(_finished(run))

    refused = _start(run, "--resume", str(run), "--trials", "4", flags=False)
    out, err = refused.communicate(timeout=120)
    assert refused.returncode == 2, (out, err)
    assert "config.simulate.trials: 3 != 4" in err and "only these may change" in err
    assert set(_finished(run)) == before

    resumed = _start(run, "--resume", str(run), "--concurrency", "4", flags=False)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, (out, err)
    after = _finished(run)
    assert len(after) == len(set(after)) == EXPECTED
    assert before <= set(after)
    assert "partial run" not in out
