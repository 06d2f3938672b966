"""One definition of "kept" (``export.keep`` under the run's export filter), over the real
CLI: the run summary, the export, the progress line and ``writ replay --failed`` count the
same episodes. The run's filter differs from the default one (``min_reward = 0``), so a
place that decided by the default filter (as replay's copy did) would count otherwise."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from writ_async.engine.journal import read_journal
from writ_async.export.sft import is_kept

REPO = Path(__file__).resolve().parents[1]

# Episodes with reward 0 are kept unless their evidence or a write failed.
CONFIG = """
[export]
min_reward = 0.0
"""


def _writ(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "writ_async", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    return done


def _number(pattern: str, text: str) -> int:
    found = re.search(pattern, text, re.MULTILINE)
    assert found, f"{pattern!r} not in:\n{text}"
    return int(found.group(1))


def test_summary_export_and_replay_count_the_same_kept_episodes(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG, encoding="utf-8")
    run = tmp_path / "run"
    out = _writ("simulate", "--config", str(config), "--task-count", "20",
                "--mistake-rate", "0.3", "--out", str(run)).stdout
    total = _number(r"^  episodes\s+(\d+)$", out)
    summary_kept = _number(r"^  kept\s+(\d+)$", out)
    export_kept = _number(r"^export: (\d+) of \d+ episodes kept", out)
    records = list(read_journal(run / "journal.bin").finished.values())
    assert len(records) == total == 20
    by_default = sum(is_kept(r) for r in records)
    # the run's filter matters here, and some episodes are dropped all the same
    assert by_default < summary_kept < total
    assert summary_kept == export_kept

    rerun = _writ("replay", str(run), "--failed", "--mistake-rate", "0",
                  "--out", str(tmp_path / "rerun")).stdout
    assert _number(r"re-ran (\d+) failed episode", rerun) == total - export_kept
    recovered = _number(r"recovered (\d+) of", rerun)
    assert recovered == _number(r"^export: (\d+) of \d+ episodes kept", rerun)
    assert recovered > 0
