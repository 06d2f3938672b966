"""Issue 14, "Failures are failures", over the real CLI (subprocess, real run directories):
`writ replay --all` against the manifest, a corrupt journal served up to the damage and
salvaged into a run that `--resume` finishes, `writ show` of infrastructure errors,
verdicts and write errors, and the export's file mode."""

from __future__ import annotations

import json
import shutil
import stat
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import require, tau2_dir

from writ_async.engine.journal import EpisodeFinished, read_journal
from writ_async.engine.replay.verify import iter_events

REPO = Path(__file__).resolve().parents[1]
_FRAME = struct.Struct("<II")  # the journal's record header: payload length, CRC-32

FAILING = """
[simulate]
agent = "scripted-http"
user = "scripted-http"
task_count = 2
[models.retry]
max_attempts = 2
deadline_s = 5.0
[mock.faults]
error_5xx = 1.0
"""


def writ(*args: str | Path, umask: int = -1) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "writ_async", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300, umask=umask)


def simulate(out: Path, *args: str) -> None:
    done = writ("simulate", "--domain", "retail", "--task-count", "3", "--trials", "2",
                "--out", out, *args)
    assert done.returncode == 0, (done.stdout, done.stderr)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of 3 tasks x 2 trials (six episodes), never modified by a test."""
    out = tmp_path_factory.mktemp("manifest") / "run"
    simulate(out)
    return out


def copy_run(run_dir: Path, dst: Path) -> Path:
    shutil.copytree(run_dir, dst)
    return dst


def records(journal: Path) -> list[tuple[int, int]]:
    """(offset, payload length) of every record of a journal."""
    data, offset, out = journal.read_bytes(), 0, []
    while offset < len(data):
        length, _ = _FRAME.unpack_from(data, offset)
        out.append((offset, length))
        offset += _FRAME.size + length
    return out


def finishes(run: Path) -> Counter[str]:
    """How many EpisodeFinished events each episode has in the run's journal."""
    contents = read_journal(run / "journal.bin")
    return Counter(e.episode_id for e in iter_events(contents.path, contents.valid_bytes)
                   if isinstance(e, EpisodeFinished))


# -- 1. replay --all against the manifest ---------------------------------------------------


def test_replay_all_of_a_whole_run_says_complete_and_exits_0(run_dir: Path) -> None:
    done = writ("replay", run_dir, "--all")
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "expected    6 episodes (manifest: 3 tasks x 2 trials)" in done.stdout
    assert "journaled   6 finished" in done.stdout
    assert "complete: every expected episode finished" in done.stdout


def test_replay_all_reports_missing_episodes_and_a_cut_tail(run_dir: Path,
                                                             tmp_path: Path) -> None:
    run = copy_run(run_dir, tmp_path / "cut")
    journal = run / "journal.bin"
    offset, length = records(journal)[len(records(journal)) // 2]
    with open(journal, "r+b") as f:
        f.truncate(offset + _FRAME.size + length // 2)  # killed mid-record
    left = read_journal(journal)
    gone = sorted(set(finishes(run_dir)) - set(left.finished))
    assert gone and left.torn_tail_bytes

    done = writ("replay", run, "--all")
    assert done.returncode == 1, (done.stdout, done.stderr)  # verified, but not whole
    out = done.stdout
    assert "expected    6 episodes" in out
    assert f"journaled   {len(left.finished)} finished" in out
    missing = next(line for line in out.splitlines() if line.startswith("missing"))
    assert missing.startswith(f"missing     {len(gone)}: ")
    assert all(eid in missing for eid in gone)
    assert f"cut tail    the journal ends in a torn record of {left.torn_tail_bytes} bytes" in out
    assert f"INCOMPLETE: `writ simulate --resume {run}`" in out


# -- 2. a corrupt record: served up to it, salvaged, resumed --------------------------------


def test_a_corrupt_journal_is_served_up_to_the_damage_salvaged_and_resumed(
        run_dir: Path, tmp_path: Path) -> None:
    run = copy_run(run_dir, tmp_path / "corrupt")
    journal = run / "journal.bin"
    frames = records(journal)
    offset, length = frames[len(frames) // 2]
    data = bytearray(journal.read_bytes())
    data[offset + _FRAME.size + length // 2] ^= 0xFF  # a flipped byte, intact records after
    journal.write_bytes(bytes(data))
    whole = read_journal(run_dir / "journal.bin")
    before = list(read_journal(journal, stop_at_corruption=True).finished)
    assert before and len(before) < len(whole.finished)

    shown = writ("show", run, before[0])
    assert shown.returncode == 0, (shown.stdout, shown.stderr)
    assert f"episode {before[0]}" in shown.stdout and "grade: reward" in shown.stdout
    assert f"corrupt journal record at byte {offset}" in shown.stderr
    assert f"writ journal salvage {run}" in shown.stderr
    verified = writ("replay", run, before[0])
    assert verified.returncode == 0 and "verified" in verified.stdout, verified.stderr
    every = writ("replay", run, "--all")
    assert every.returncode == 1, (every.stdout, every.stderr)
    assert f"corrupt     record at byte {offset}: CRC mismatch" in every.stdout
    assert f"INCOMPLETE: `writ journal salvage {run}`" in every.stdout
    refused = writ("simulate", "--resume", run)
    assert refused.returncode == 2 and "writ journal salvage" in refused.stderr

    new = tmp_path / "salvaged"
    salvaged = writ("journal", "salvage", run, "--out", new)
    assert salvaged.returncode == 0, (salvaged.stdout, salvaged.stderr)
    assert f"journal corrupt at byte {offset}: CRC mismatch" in salvaged.stdout
    assert f"finish it with: writ simulate --resume {new}" in salvaged.stdout
    assert (new / "journal.bin").read_bytes() == bytes(data[:offset])
    assert (new / "manifest.json").read_bytes() == (run / "manifest.json").read_bytes()
    assert json.loads((new / "salvage.json").read_text())["corrupt_at"] == offset

    resumed = writ("simulate", "--resume", new)
    assert resumed.returncode == 0, (resumed.stdout, resumed.stderr)
    assert finishes(new) == Counter(dict.fromkeys(whole.finished, 1))  # each done once
    for name in ("sft_openai.jsonl", "sft_sharegpt.jsonl"):  # the same data as unbroken
        assert (new / "export" / name).read_bytes() == (run_dir / "export" / name).read_bytes()
    assert writ("replay", new, "--all").returncode == 0


def test_salvage_refuses_a_directory_in_use(run_dir: Path, tmp_path: Path) -> None:
    done = writ("journal", "salvage", run_dir, "--out", run_dir)
    assert done.returncode == 2 and "another path" in done.stderr
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    done = writ("journal", "salvage", run_dir, "--out", tmp_path / "taken")
    assert done.returncode == 2 and "not empty" in done.stderr


# -- 3. show: infrastructure errors, verdicts, write errors ---------------------------------


def test_show_does_not_grade_an_infrastructure_error(tmp_path: Path) -> None:
    config = tmp_path / "failing.toml"
    config.write_text(FAILING, encoding="utf-8")
    run = tmp_path / "run"
    assert writ("simulate", "--config", config, "--out", run).returncode == 1
    episode = next(iter(read_journal(run / "journal.bin").finished))
    shown = writ("show", run, episode)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "termination infrastructure_error  not graded: infrastructure error" in out
    assert "grade: not graded: infrastructure error" in out
    assert "left out of rewards" in out
    assert "FAIL" not in out and "reward 0" not in out and "DB DIFFERS" not in out
    every = writ("replay", run, "--all")  # not data: the run is not whole
    assert every.returncode == 1, (every.stdout, every.stderr)
    assert "infrastructure_error  2 (not data" in every.stdout


def test_show_gives_the_verdict_and_the_write_errors(tmp_path: Path) -> None:
    source = require(tau2_dir() / "airline" / "tasks.json", "tau2-bench airline tasks.json")
    tasks = tmp_path / "tasks.json"
    # tau2's task 8 on a generated database: its gold fails there (invalid_task) and a
    # scripted mistake makes a write the environment refuses
    tasks.write_text(json.dumps([t for t in json.loads(source.read_text()) if t["id"] == "8"]))
    run = tmp_path / "run"
    done = writ("simulate", "--tasks", tasks, "--mistake-rate", "0.5", "--out", run)
    assert done.returncode == 0, (done.stdout, done.stderr)
    record = read_journal(run / "journal.bin").finished["8:0"]
    assert record.reward_info is not None and record.reward_info.write_errors
    shown = writ("show", run, "8:0", "--full")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "reward 0 (invalid_task)" in out
    assert "  verdict: invalid_task: the task's own gold actions fail on this database" in out
    assert "  write errors (refused writes the gold does not expect; not exported):" in out
    for error in record.reward_info.write_errors:
        assert f"    {' '.join(error.split())}" in out


# -- 4. export files get the run's file mode -------------------------------------------------


def test_every_file_of_a_run_gets_the_same_mode_under_a_umask(tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = writ("simulate", "--domain", "retail", "--task-count", "2", "--out", run,
                umask=0o027)
    assert done.returncode == 0, (done.stdout, done.stderr)
    modes = {str(p.relative_to(run)): stat.S_IMODE(p.stat().st_mode)
             for p in run.rglob("*") if p.is_file()}
    assert {"export/sft_openai.jsonl", "export/sft_sharegpt.jsonl", "journal.bin",
            "manifest.json"} <= modes.keys()
    assert set(modes.values()) == {0o640}, {k: oct(v) for k, v in modes.items()}
