"""Run directories: manifests and fingerprints, refusing the wrong run, atomic files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import msgspec
import pytest

from writ_async.config import Config, LoggingConfig, RunConfig
from writ_async.engine import rundir
from writ_async.engine.journal import EpisodeStarted, read_journal
from writ_async.engine.rundir import (
    Manifest,
    create_run,
    load_manifest,
    manifest_differences,
    new_manifest,
    open_for_resume,
    sha256_bytes,
    sha256_file,
)
from writ_async.errors import RunDirError
from writ_async.mock.config import MockConfig

TASKS = b'[{"id": "0"}, {"id": "1"}]'


def manifest(config: Config | None = None, *, clock: float = 1_700_000_000.0,
             **overrides: object) -> Manifest:
    fields: dict[str, object] = {
        "base_db_hash": "b" * 64, "tasks_file_sha256": sha256_bytes(TASKS),
        "task_ids": ["0", "1"], "trials": 2, "agent": "scripted", "user": "scripted",
    }
    fields.update(overrides)
    return new_manifest(config or Config(), clock=lambda: clock, **fields)  # type: ignore[arg-type]


def started(i: int) -> EpisodeStarted:
    return EpisodeStarted(episode_id=f"{i}:0", attempt=0, task_id=str(i), trial=0, seed=i)


def test_manifest_records_the_run() -> None:
    m = manifest(Config(run=RunConfig(seed=7, domain="retail")))
    assert m.created == "2023-11-14T22:13:20+00:00"
    assert m.run_id.startswith("20231114T221320Z-") and m.run_id.endswith(m.fingerprint()[:8])
    assert m.seed == 7 and m.domain == "retail"
    assert m.config["run"]["seed"] == 7 and m.config == msgspec.to_builtins(m.config)
    assert m.writ_version and m.python_version.count(".") == 2


def test_the_fingerprint_ignores_time_identity_and_where_the_run_goes() -> None:
    base = manifest()
    elsewhere = Config(run=RunConfig(out_dir="/elsewhere"),
                       logging=LoggingConfig(level="debug", format="json"))
    other = manifest(elsewhere, clock=1_800_000_000.0, run_id="mine")
    assert other.created != base.created and other.run_id != base.run_id
    assert other.fingerprint() == base.fingerprint()
    assert manifest_differences(base, other) == []


@pytest.mark.parametrize(("key", "volatile"), [
    ("simulate.concurrency", True), ("export.min_reward", True),
    ("domains.airline.db_path", True), ("models.endpoints.mock.stream", True),
    ("simulate.max_steps", False), ("domains.airline.policy_path", False),
    ("models.endpoints.mock.model", False),
])
def test_settings_of_speed_and_location_are_not_part_of_the_fingerprint(
        key: str, volatile: bool) -> None:
    base = manifest()
    config = json.loads(json.dumps(base.config))
    *path, leaf = key.split(".")
    table = config
    for part in path:
        table = table.setdefault(part, {})
    table[leaf] = "changed"
    other = msgspec.structs.replace(base, config=config)
    assert (other.fingerprint() == base.fingerprint()) is volatile
    assert bool(manifest_differences(base, other)) is not volatile


@pytest.mark.parametrize(("change", "message"), [
    ({"config": Config(run=RunConfig(seed=2))}, "config.run.seed: 0 != 2"),
    ({"config": Config(run=RunConfig(domain="retail"))},
     'config.run.domain: "airline" != "retail"'),
    ({"base_db_hash": "c" * 64}, "base_db_hash differs"),
    ({"tasks_file_sha256": sha256_bytes(b"[]")}, "tasks file differs"),
    ({"task_ids": ["0", "2"]}, 'only stored: ["1"]; only now: ["2"]'),
    ({"task_ids": ["1", "0"]}, "reordered"),
    ({"trials": 3}, "trials: 2 != 3"),
    ({"agent": "gpt"}, 'agent: "scripted" != "gpt"'),
])
def test_the_fingerprint_covers_what_the_run_produces(change: dict[str, object],
                                                       message: str) -> None:
    fields = dict(change)  # the parameter is shared between runs: leave it alone
    config = fields.pop("config", None)
    other = manifest(config, **fields)  # type: ignore[arg-type]
    assert other.fingerprint() != manifest().fingerprint()
    assert any(message in line for line in manifest_differences(manifest(), other))


def test_secrets_are_not_written_and_do_not_change_the_fingerprint(tmp_path: Path) -> None:
    m = manifest(Config(mock=MockConfig(api_key="sk-very-secret")))
    assert m.fingerprint() == manifest().fingerprint()
    run = create_run(tmp_path / "run", m)
    assert "sk-very-secret" not in run.manifest_path.read_text()
    assert load_manifest(run.path).config["mock"]["api_key"] == "<redacted>"


def test_create_writes_the_layout_and_the_manifest_loads_back(tmp_path: Path) -> None:
    m = manifest()
    run = create_run(tmp_path / "deep" / "run", m)
    assert sorted(p.name for p in run.path.iterdir()) == ["export", "manifest.json"]
    assert load_manifest(run.path) == m
    assert json.loads(run.manifest_path.read_text())["run_id"] == m.run_id
    assert run.read_journal().records == 0  # no journal yet is an empty one
    empty = tmp_path / "empty"
    empty.mkdir()
    assert create_run(empty, m).path == empty  # an empty directory is fine


def test_create_refuses_a_non_empty_directory_or_a_file(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(RunDirError, match=r"not empty.*--resume"):
        create_run(tmp_path, manifest())
    with pytest.raises(RunDirError, match="not a directory"):
        create_run(tmp_path / "old.txt", manifest())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.txt"]


def test_resume_keeps_the_stored_manifest_and_continues_the_journal(tmp_path: Path) -> None:
    first = manifest()
    run = create_run(tmp_path / "run", first)
    with run.open_journal(fsync="never") as writer:
        writer.append(started(1))
    with open(run.journal_path, "ab") as f:
        f.write(b"\x40\x00\x00\x00torn")  # a crash in the middle of the next record
    later = manifest(clock=1_800_000_000.0)
    resumed = open_for_resume(run.path, later)
    assert resumed.manifest == first
    assert resumed.read_journal().torn_tail_bytes == 8
    with resumed.open_journal(fsync="never") as writer:  # cuts the torn tail first
        writer.append(started(2))
    contents = read_journal(run.journal_path)
    assert contents.unfinished == {"1:0", "2:0"} and contents.torn_tail_bytes == 0
    assert "run_id=" in repr(resumed)


def test_resume_refuses_another_run_naming_each_difference(tmp_path: Path) -> None:
    run = create_run(tmp_path / "run", manifest(Config(run=RunConfig(seed=1))))
    other = manifest(Config(run=RunConfig(seed=2)), base_db_hash="c" * 64,
                     tasks_file_sha256=sha256_bytes(b"{}"))
    with pytest.raises(RunDirError) as caught:
        open_for_resume(run.path, other)
    text = str(caught.value)
    assert str(run.path) in text and "cannot resume" in text
    for part in ("config.run.seed: 1 != 2", "seed: 1 != 2", "base_db_hash differs",
                 "tasks file differs"):
        assert part in text


@pytest.mark.parametrize(("content", "message"), [
    (None, "no manifest.json"),
    (b"{not json", "not a valid manifest"),
    (b'{"run_id": 3}', "not a valid manifest"),
])
def test_resume_needs_a_readable_manifest(tmp_path: Path, content: bytes | None,
                                          message: str) -> None:
    if content is not None:
        (tmp_path / "manifest.json").write_bytes(content)
    with pytest.raises(RunDirError, match=message):
        open_for_resume(tmp_path, manifest())
    with pytest.raises(RunDirError, match="no run directory"):
        open_for_resume(tmp_path / "missing", manifest())


def test_atomic_writes_leave_no_temporary_files(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    run = create_run(tmp_path / "run", manifest())
    run.write_results(b'{"simulations": []}')
    run.write_results(b'{"simulations": [1]}')
    assert run.results_path.read_bytes() == b'{"simulations": [1]}'
    assert oct(run.results_path.stat().st_mode & 0o777) == oct(0o644)

    def fail(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rundir.os, "replace", fail)
    with pytest.raises(OSError, match="No space"):
        run.write_results(b"half")
    assert run.results_path.read_bytes() == b'{"simulations": [1]}'  # the old file stands
    assert sorted(os.listdir(run.path)) == ["export", "manifest.json", "results.json"]


def test_task_file_hash(tmp_path: Path) -> None:
    (tmp_path / "tasks.json").write_bytes(TASKS)
    assert sha256_file(tmp_path / "tasks.json") == sha256_bytes(TASKS)


def test_resume_takes_a_fixed_endpoint_and_the_stored_config(tmp_path: Path) -> None:
    """After an outage the run goes on against a repaired endpoint: the endpoint's URL and
    transport faults may change on resume; faults that change answers may not. The
    stored configuration comes back from the manifest (secrets unset)."""
    from writ_async.config import ModelsConfig
    from writ_async.engine.rundir import config_from_manifest
    from writ_async.mock.server import FaultRates

    outage = Config(mock=MockConfig(faults=FaultRates(error_5xx=1.0, reset=0.5),
                                    api_key="sekrit"))
    run = create_run(tmp_path / "run", manifest(outage))
    fixed = Config(mock=MockConfig(api_key="other"))
    models = msgspec.to_builtins(fixed.models)
    models["endpoints"]["mock"]["base_url"] = "http://127.0.0.1:9/v1"
    moved = msgspec.structs.replace(fixed, models=msgspec.convert(models, ModelsConfig))
    assert open_for_resume(run.path, manifest(moved)).manifest == run.manifest
    changed = Config(mock=MockConfig(faults=FaultRates(error_5xx=1.0, reset=0.5,
                                                       invalid_tool_args=0.1)))
    with pytest.raises(RunDirError, match=r"mock\.faults\.invalid_tool_args: 0\.0 != 0\.1"):
        open_for_resume(run.path, manifest(changed))
    stored = config_from_manifest(run.path, run.manifest)
    assert stored.mock.faults == outage.mock.faults and stored.mock.api_key is None


def test_a_run_made_before_a_config_key_existed_has_the_same_fingerprint() -> None:
    """A manifest written by a version without a key (here the model parameters, empty by
    default) is the same run as today's, whose manifest holds the key at its default."""
    base = manifest()
    config = json.loads(json.dumps(base.config))
    assert "params" in config["models"]  # today's manifests hold the (empty) table
    del config["models"]["params"]
    for endpoint in config["models"]["endpoints"].values():
        endpoint.pop("params", None)
    older = msgspec.structs.replace(base, config=config)
    assert older.fingerprint() == base.fingerprint()
    config["simulate"]["max_steps"] = 7  # a key that changes results still counts
    assert msgspec.structs.replace(base, config=config).fingerprint() != base.fingerprint()
