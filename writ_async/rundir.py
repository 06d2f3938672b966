"""A run directory: what one ``writ simulate`` run owns on disk.

    RUN/manifest.json   what the run is (config, seeds, versions, data hashes, task ids)
    RUN/journal.bin     every event of every episode (writ_async.journal)
    RUN/results.json    tau2-bench's results format, rewritten as the run progresses
    RUN/export/...      SFT data

A run is resumed only with the run it was started as: the manifest's ``fingerprint()``
covers everything that decides what the episodes produce (the config minus where and how
fast the run goes, the base database, the tasks, the seed, the participants), and a
mismatch is refused naming each field that differs. Files other than the journal are
replaced atomically (temp file, fsync, ``os.replace``), so a crash leaves the old file or
the new one, never half of either.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from writ_async import __version__
from writ_async.config import Config
from writ_async.errors import RunDirError
from writ_async.journal import FsyncPolicy, JournalContents, JournalWriter, read_journal
from writ_async.journal import truncate_torn_tail as _truncate_torn_tail

MANIFEST = "manifest.json"
JOURNAL = "journal.bin"
RESULTS = "results.json"
EXPORT = "export"

# Config keys that say where or how fast a run goes, not what it produces: changing them
# (another output path, more concurrency, a new API key) must not block a resume. Paths
# whose content the manifest hashes (database, tasks) are here too: moving the file is
# fine, changing it is caught by the hash. Exports are derived from all finished records
# at the end, so their filters may change as well. ``*`` matches any key of a table;
# absent keys are skipped. Extend this when a setting of that kind is added.
VOLATILE_CONFIG: tuple[str, ...] = (
    "run.out_dir",
    "logging",
    "export",
    "simulate.concurrency",
    "simulate.tasks",
    "domains.*.db_path",
    "models.retry",
    "models.endpoints.*.api_key_env",
    "models.endpoints.*.initial_concurrency",
    "models.endpoints.*.max_concurrency",
    "models.endpoints.*.requests_per_minute",
    "models.endpoints.*.tokens_per_minute",
    "models.endpoints.*.stream",
    "models.endpoints.*.timeouts",
    "mock.host",
    "mock.port",
    "mock.api_key",
    "mock.api_key_env",
    "mock.backlog",
    "mock.access_log",
    # Where the endpoints are and how they misbehave on the wire: after an outage, a run
    # goes on against a fixed endpoint (a failed call is retried or its episode re-run,
    # never kept as data). Faults that change what an answer says stay in the fingerprint.
    "models.endpoints.*.base_url",
    "mock.faults.stall",
    "mock.faults.reset",
    "mock.faults.error_5xx",
    "mock.faults.error_object_200",
    "mock.faults.malformed_json",
    "mock.faults.truncated_stream",
    "mock.stall_s",
    "mock.ttft_ms",
    "mock.tpot_ms",
    "mock.jitter_ms",
    "mock.rpm_limit",
    "mock.tpm_limit",
    "mock.rate_window_s",
)
# What a flag given with ``--resume`` may change, in words (the refusal says it).
RESUME_MAY_CHANGE = ("concurrency, endpoints' URLs, API keys, timeouts, rate limits, retry, "
                     "logging, mock latency and transport faults, export filters")
_SECRETS = ("mock.api_key",)  # never written to disk; the manifest says only that one was set
_REDACTED = "<redacted>"

_canonical = msgspec.json.Encoder(order="sorted")  # the fingerprint must not depend on order


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """What a run is. Fields are only ever appended, with defaults, so old runs still load."""

    run_id: str
    created: str  # ISO 8601, UTC, from the injected clock
    writ_version: str
    python_version: str
    config: dict[str, Any]  # msgspec.to_builtins(Config), secrets redacted
    seed: int  # the run seed; each episode's seed derives from it (records.derive_seed)
    domain: str
    base_db_hash: str
    tasks_file_sha256: str  # of the task file's bytes, or of the encoded synthesized tasks
    task_ids: list[str]
    trials: int
    agent: str  # a role name or "scripted"
    user: str

    def content(self) -> dict[str, Any]:
        """The fields that define what the run produces (no times, ids or versions)."""
        config = msgspec.json.decode(msgspec.json.encode(self.config))  # a private deep copy
        for key in VOLATILE_CONFIG:
            _drop(config, key.split("."))
        return {
            "config": config, "seed": self.seed, "domain": self.domain,
            "base_db_hash": self.base_db_hash, "tasks_file_sha256": self.tasks_file_sha256,
            "task_ids": self.task_ids, "trials": self.trials,
            "agent": self.agent, "user": self.user,
        }

    def fingerprint(self) -> str:
        return hashlib.sha256(_canonical.encode(self.content())).hexdigest()


def new_manifest(
    config: Config,
    *,
    base_db_hash: str,
    tasks_file_sha256: str,
    task_ids: Iterable[str],
    trials: int,
    agent: str,
    user: str,
    clock: Callable[[], float] = time.time,
    run_id: str | None = None,
) -> Manifest:
    """A manifest for ``config``; without ``run_id``, one from the time and fingerprint."""
    plain = msgspec.to_builtins(config)
    for key in _SECRETS:
        _redact(plain, key.split("."))
    stamp = datetime.fromtimestamp(clock(), tz=UTC)
    manifest = Manifest(
        run_id=run_id or "", created=stamp.isoformat(timespec="seconds"),
        writ_version=__version__, python_version=platform.python_version(),
        config=plain, seed=config.run.seed, domain=config.run.domain,
        base_db_hash=base_db_hash, tasks_file_sha256=tasks_file_sha256,
        task_ids=list(task_ids), trials=trials, agent=agent, user=user,
    )
    if run_id is None:
        run_id = f"{stamp:%Y%m%dT%H%M%SZ}-{manifest.fingerprint()[:8]}"
        manifest = msgspec.structs.replace(manifest, run_id=run_id)
    return manifest


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path | str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def manifest_differences(stored: Manifest, now: Manifest) -> list[str]:
    """Each content field that differs, as ``"name: stored != now"`` for a person."""
    a, b = stored.content(), now.content()
    out: list[str] = []
    flat_a, flat_b = _flatten(a["config"], "config"), _flatten(b["config"], "config")
    for key in sorted(flat_a.keys() | flat_b.keys()):
        if flat_a.get(key, _MISSING) != flat_b.get(key, _MISSING):
            out.append(f"{key}: {_show(flat_a.get(key, _MISSING))} != "
                       f"{_show(flat_b.get(key, _MISSING))}")
    for name in ("seed", "domain", "trials", "agent", "user"):
        if a[name] != b[name]:
            out.append(f"{name}: {_show(a[name])} != {_show(b[name])}")
    if a["base_db_hash"] != b["base_db_hash"]:
        out.append(f"base_db_hash differs ({a['base_db_hash'][:12]} != {b['base_db_hash'][:12]})")
    if a["tasks_file_sha256"] != b["tasks_file_sha256"]:
        out.append(f"tasks file differs (sha256 {a['tasks_file_sha256'][:12]} != "
                   f"{b['tasks_file_sha256'][:12]})")
    if a["task_ids"] != b["task_ids"]:
        ids_a, ids_b = set(a["task_ids"]), set(b["task_ids"])
        gone = [t for t in a["task_ids"] if t not in ids_b]
        new = [t for t in b["task_ids"] if t not in ids_a]
        what = (f"only stored: {_show(gone)}; only now: {_show(new)}" if gone or new
                else "the same ids, reordered or repeated")
        out.append(f"task ids differ ({len(a['task_ids'])} != {len(b['task_ids'])}; {what})")
    return out


class RunDir:
    """An open run directory and its manifest; journal and results live inside it."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def journal_path(self) -> Path:
        return self.path / JOURNAL

    @property
    def results_path(self) -> Path:
        return self.path / RESULTS

    @property
    def export_dir(self) -> Path:
        return self.path / EXPORT

    def read_journal(self) -> JournalContents:
        """The journal so far (empty if no event was written yet)."""
        if not self.journal_path.exists():  # a run stopped before its first event
            return JournalContents(self.journal_path)
        return read_journal(self.journal_path)

    def open_journal(self, *, fsync: FsyncPolicy = "interval",
                     fsync_interval: float = 1.0) -> JournalWriter:
        """A writer appending after the last intact record (a torn tail is cut first)."""
        _truncate_torn_tail(self.journal_path)
        return JournalWriter(self.journal_path, fsync=fsync, fsync_interval=fsync_interval)

    def write_results(self, data: bytes) -> None:
        atomic_write(self.results_path, data)

    def __repr__(self) -> str:
        return f"<RunDir {self.path} run_id={self.manifest.run_id}>"


def create_run(path: Path | str, manifest: Manifest) -> RunDir:
    """A new run at ``path``, which must not exist or be an empty directory."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(path, "exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        raise RunDirError(path, "already exists and is not empty; choose another output "
                                "directory, or continue that run with --resume")
    path.mkdir(parents=True, exist_ok=True)
    atomic_write(path / MANIFEST, _encode_manifest(manifest))
    (path / EXPORT).mkdir(exist_ok=True)
    return RunDir(path, manifest)


def open_for_resume(path: Path | str, manifest: Manifest) -> RunDir:
    """The run at ``path``, if ``manifest`` describes the same run as the stored one.

    The stored manifest is kept (its run id and creation time); a different config or
    different data is refused, naming every field that differs.
    """
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(path, "no run directory to resume here")
    stored = load_manifest(path)
    if stored.fingerprint() != manifest.fingerprint():
        diffs = manifest_differences(stored, manifest) or ["fingerprint differs"]
        raise RunDirError(path, "cannot resume: this would change what the run produces "
                                "(stored != now): " + "; ".join(diffs)
                          + f". On resume only these may change: {RESUME_MAY_CHANGE}; "
                          "`writ simulate --resume RUN` alone continues with the stored "
                          "configuration")
    (path / EXPORT).mkdir(exist_ok=True)
    return RunDir(path, stored)


def config_from_manifest(path: Path | str, manifest: Manifest) -> Config:
    """The configuration a run was started with, as its manifest stores it (paths were
    resolved when it started; a redacted secret comes back unset: give it again through
    its environment variable)."""
    plain = msgspec.json.decode(msgspec.json.encode(manifest.config))  # a private deep copy
    for key in _SECRETS:
        _unredact(plain, key.split("."))
    try:
        return msgspec.convert(plain, Config)
    except msgspec.ValidationError as exc:
        raise RunDirError(path, f"{MANIFEST}: its stored configuration no longer loads "
                                f"({exc}); resume with --config naming the run's config "
                                "file") from None


def load_manifest(path: Path | str) -> Manifest:
    """The manifest of the run directory at ``path``; a clear RunDirError if unusable."""
    file = Path(path) / MANIFEST
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise RunDirError(path, f"no {MANIFEST}: not a run directory, or its creation was "
                                "interrupted") from None
    except OSError as exc:
        raise RunDirError(path, f"cannot read {MANIFEST}: {exc.strerror or exc}") from None
    try:
        return msgspec.json.decode(data, type=Manifest)
    except msgspec.DecodeError as exc:
        raise RunDirError(path, f"{MANIFEST} is not a valid manifest: {exc}") from None


def atomic_write(path: Path | str, data: bytes) -> None:
    """Replace ``path`` with ``data`` all at once: a crash leaves the old file or the new."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    replaced = False
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)  # mkstemp's 0600 is for secrets; these are data
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the data must be on disk before the name points to it
        os.replace(tmp, path)
        replaced = True
    finally:
        if not replaced:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)  # and the rename itself must survive a power cut
    finally:
        os.close(dir_fd)


# -- helpers -------------------------------------------------------------------------------

_MISSING = object()


def _encode_manifest(manifest: Manifest) -> bytes:
    return msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n"


def _drop(tree: Any, parts: list[str]) -> None:
    if not isinstance(tree, dict) or not parts:
        return
    head, rest = parts[0], parts[1:]
    keys = list(tree) if head == "*" else [head] if head in tree else []
    for key in keys:
        if rest:
            _drop(tree[key], rest)
        else:
            del tree[key]


def _redact(tree: Any, parts: list[str]) -> None:
    _swap(tree, parts, lambda value: value is not None, _REDACTED)


def _unredact(tree: Any, parts: list[str]) -> None:
    _swap(tree, parts, lambda value: value == _REDACTED, None)


def _swap(tree: Any, parts: list[str], when: Callable[[Any], bool], new: Any) -> None:
    """Set the value at the dotted key ``parts`` of ``tree`` to ``new`` where ``when``."""
    for part in parts[:-1]:
        tree = tree.get(part) if isinstance(tree, dict) else None
    if isinstance(tree, dict) and when(tree.get(parts[-1])):
        tree[parts[-1]] = new


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not value:
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, item in value.items():
        out.update(_flatten(item, f"{prefix}.{key}"))
    return out


def _show(value: Any, limit: int = 80) -> str:
    if value is _MISSING:
        return "(absent)"
    text = msgspec.json.encode(value).decode()
    return text if len(text) <= limit else text[:limit - 3] + "..."
