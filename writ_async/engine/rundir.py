"""A run directory: what one ``writ simulate`` run owns on disk.

    RUN/manifest.json   what the run is (config, seeds, versions, data hashes, task ids)
    RUN/journal.bin     every event of every episode (writ_async.engine.journal)
    RUN/results.json    tau2-bench's results format, rewritten as the run progresses
    RUN/export/...      SFT data

Every file of a run gets the same mode (``file_mode``: 0644 less the process umask, as
``os.open`` gives the journal), so that whoever may read one may read all. A journal
damaged in the middle is refused (``JournalCorrupt``, with how to salvage it);
``salvage_run`` (``writ journal salvage``) copies the run with the journal's intact
prefix to a new directory, which ``writ simulate --resume`` then finishes.

A run is resumed only with the run it was started as: the manifest's ``fingerprint()``
covers everything that decides what the episodes produce (the config minus where and how
fast the run goes, the base database, the tasks, the seed, the participants), and a
mismatch is refused naming each field that differs. Files other than the journal are
replaced atomically (temp file, fsync, ``os.replace``), so a crash leaves the old file or
the new one, never half of either.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import platform
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from writ_async import __version__
from writ_async.config import Config, DomainConfig
from writ_async.engine.journal import FsyncPolicy, JournalContents, JournalWriter, read_journal
from writ_async.engine.journal import truncate_torn_tail as _truncate_torn_tail
from writ_async.errors import JournalBusy, JournalCorrupt, RunDirError
from writ_async.seeds import run_seed

MANIFEST = "manifest.json"
JOURNAL = "journal.bin"
RESULTS = "results.json"
EXPORT = "export"
SALVAGE = "salvage.json"  # in a salvaged run: where it came from and what was dropped
SALVAGED_SUFFIX = "-salvaged"  # the default new directory of `writ journal salvage RUN`
FILE_MODE = 0o644  # less the umask: data, readable by whoever may read the run

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
_DEFAULT_DOMAIN_SECTION = {key: value
                           for key, value in msgspec.to_builtins(DomainConfig()).items()
                           if f"domains.*.{key}" not in VOLATILE_CONFIG}


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """What a run is. Fields are only ever appended, with defaults, so old runs still load."""

    run_id: str
    created: str  # ISO 8601, UTC, from the injected clock
    writ_version: str
    python_version: str
    config: dict[str, Any]  # msgspec.to_builtins(Config), secrets redacted
    seed: int  # the run seed; each episode's seed derives from it (seeds.episode_seed)
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
        # A domain's section left at its defaults is the same run as no section: the
        # commands write one for every registered domain, a library caller may not.
        default = _DEFAULT_DOMAIN_SECTION
        sections = {name: {**default, **section}
                    for name, section in config.get("domains", {}).items()}
        config["domains"] = {name: section for name, section in sections.items()
                             if section != default}
        # A key left unset (None, or an empty table) is the run it was before the key
        # existed: a run started by an older version resumes under a newer one.
        config = _pruned(config)
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
        config=plain, seed=run_seed(config), domain=config.run.domain,
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
        """The journal so far (empty if no event was written yet); mid-file damage is
        raised, saying how to salvage the run."""
        if not self.journal_path.exists():  # a run stopped before its first event
            return JournalContents(self.journal_path)
        with _salvage_hint(self.path):
            return read_journal(self.journal_path)

    def open_journal(self, *, fsync: FsyncPolicy = "interval",
                     fsync_interval: float = 1.0) -> JournalWriter:
        """A writer appending after the last intact record (a torn tail is cut first)."""
        with _salvage_hint(self.path):
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


def salvage_command(run: Path | str) -> str:
    """The command that salvages the run at ``run``, for messages."""
    return f"writ journal salvage {shlex.quote(str(run))}"


def salvage_advice(run: Path | str) -> str:
    """How to go on from a run whose journal is corrupt, in one sentence."""
    new = Path(run).with_name(Path(run).name + SALVAGED_SUFFIX)
    return (f"`{salvage_command(run)}` copies the run with the episodes before the damage "
            f"to {shlex.quote(str(new))} (or --out NEW), and `writ simulate --resume NEW` "
            "finishes it")


@contextlib.contextmanager
def _salvage_hint(run: Path) -> Iterator[None]:
    """Re-raise a ``JournalCorrupt`` with how to salvage the run."""
    try:
        yield
    except JournalCorrupt as exc:
        raise JournalCorrupt(exc.path, exc.offset, f"{exc.reason}; {salvage_advice(run)}"
                             ) from None


class Salvaged(msgspec.Struct, frozen=True, kw_only=True):
    """What ``salvage_run`` did (also written to the new run as ``salvage.json``)."""

    source: str
    out: str
    kept_bytes: int  # of the journal: its intact prefix, copied
    dropped_bytes: int  # from the first bad record (or a torn tail) to the end
    corrupt_at: int | None  # the bad record's offset; None: no mid-file damage
    reason: str  # what was wrong there ("" if nothing)
    finished: int  # episodes whose finish is in the kept prefix
    unfinished: int  # episodes started in it without a finish there (resume goes on)


def salvage_run(path: Path | str, out: Path | str | None = None) -> Salvaged:
    """Copy the run at ``path`` to ``out`` (default ``PATH-salvaged``) with only the
    intact prefix of its journal: everything up to the first damaged record, or the torn
    tail. ``writ simulate --resume OUT`` then finishes it: the episodes finished in the
    prefix are kept, the others run again (one whose start is in the prefix goes on from
    its journaled messages). Everything else a resume reads is copied as it is (manifest,
    tasks, lineage, a Ray run's shards); results and exports, derived from the journal,
    are written again by the resume. The manifest is written last, so a salvage that
    was interrupted leaves no directory that looks like a run.
    """
    path = Path(path)
    manifest = load_manifest(path)  # RunDirError: not a run directory
    journal = path / JOURNAL
    if not journal.exists():
        raise RunDirError(path, f"no {JOURNAL}: the run recorded nothing to salvage")
    out = Path(out) if out is not None else path.with_name(path.name + SALVAGED_SUFFIX)
    if out.resolve() == path.resolve():
        raise RunDirError(out, "a salvage writes a new run directory: give --out another path")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunDirError(out, "already exists and is not empty; choose another --out")
    with open(journal, "rb") as f:
        try:
            # A run still writing its journal is not finished being damaged: refuse.
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JournalBusy(journal) from None
        contents = read_journal(journal, stop_at_corruption=True)
        prefix = f.read(contents.valid_bytes)
        size = os.fstat(f.fileno()).st_size
    corrupt = contents.corrupt
    report = Salvaged(
        source=str(path), out=str(out), kept_bytes=len(prefix),
        dropped_bytes=size - len(prefix),
        corrupt_at=None if corrupt is None else corrupt.offset,
        reason="" if corrupt is None else corrupt.reason,
        finished=len(contents.finished), unfinished=len(contents.unfinished),
    )
    out.mkdir(parents=True, exist_ok=True)
    for item in sorted(path.iterdir()):
        if item.name in (JOURNAL, RESULTS, EXPORT, MANIFEST) or item.name.startswith("."):
            continue
        if item.is_dir():
            shutil.copytree(item, out / item.name)
        elif item.is_file():
            atomic_write(out / item.name, item.read_bytes())
    (out / EXPORT).mkdir(exist_ok=True)
    atomic_write(out / JOURNAL, prefix)
    atomic_write(out / SALVAGE, msgspec.json.format(msgspec.json.encode(report), indent=2)
                 + b"\n")
    atomic_write(out / MANIFEST, _encode_manifest(manifest))
    return report


def file_mode() -> int:
    """The mode every file of a run gets: ``FILE_MODE`` less the process umask."""
    return FILE_MODE & ~_umask()


def _umask() -> int:
    # Linux states it in /proc; setting it to read it back would race with any thread
    # creating a file meanwhile, so that is only the fallback.
    with contextlib.suppress(OSError, ValueError), \
            open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path | str, data: bytes) -> None:
    """Replace ``path`` with ``data`` all at once: a crash leaves the old file or the new."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    replaced = False
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), file_mode())  # mkstemp's 0600 is for secrets; this is data
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


def _pruned(tree: Any) -> Any:
    """``tree`` without the keys whose value is None or a table that prunes to empty."""
    if not isinstance(tree, dict):
        return tree
    out = {}
    for key, value in tree.items():
        value = _pruned(value)
        if value is not None and value != {}:
            out[key] = value
    return out


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
