"""Tasks in tau2-bench's format: what the user wants, and how the outcome is graded.

``load_tasks`` reads a tau2-bench ``tasks.json`` (optionally restricted to a split from
``split_tasks.json``); a malformed file is a DataError naming the task and field.
Synthesized tasks (later issues) use the same Structs plus the WRIT axes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from writ_async.errors import DataError


class Instructions(msgspec.Struct, kw_only=True):
    domain: str
    reason_for_call: str
    known_info: str | None = None
    unknown_info: str | None = None
    task_instructions: str = ""


class UserScenario(msgspec.Struct, kw_only=True):
    instructions: Instructions | str
    persona: str | None = None


class Action(msgspec.Struct, kw_only=True):
    """A gold tool call. ``compare_args`` None means: compare every argument."""

    name: str
    arguments: dict[str, Any]
    action_id: str = ""
    requestor: str = "assistant"
    info: str | None = None
    compare_args: list[str] | None = None


class EvaluationCriteria(msgspec.Struct, kw_only=True):
    actions: list[Action] | None = None
    env_assertions: list[Any] | None = None
    communicate_info: list[str] | None = None
    nl_assertions: list[str] | None = None
    reward_basis: list[str] = msgspec.field(default_factory=lambda: ["DB", "COMMUNICATE"])


class Axes(msgspec.Struct, kw_only=True):
    """WRIT's two difficulty axes: write decisions, and reads needed per decision."""

    writes: int
    evidence: int


class Provenance(msgspec.Struct, kw_only=True):
    """How writ synthesized a task, and the end state its gold actions reach.

    ``read_plan`` lists the action ids of the gold reads from which every decision's
    arguments are identifiable; its length is the task's evidence burden. ``seed`` is the
    run's seed, ``task_seed`` the one of the rng that drew this task (derived from the run
    seed, the task's index and the attempt). ``requests`` names the user's requests in
    order (refused ones start with ``refuse_``).
    """

    generator: str
    seed: int
    task_seed: int
    base_db_hash: str
    gold_db_hash: str
    read_plan: list[str] = msgspec.field(default_factory=list)
    requests: list[str] = msgspec.field(default_factory=list)


class Task(msgspec.Struct, kw_only=True):
    id: str
    user_scenario: UserScenario
    evaluation_criteria: EvaluationCriteria | None = None
    description: dict[str, Any] | str | None = None
    initial_state: Any = None
    annotations: Any = None
    issues: Any = None
    # writ additions (absent in tau2-bench files)
    axes: Axes | None = None
    trajectory_type: str | None = None  # "write_intensive" / "read_heavy" / None
    synthesis: Provenance | None = None

    @property
    def gold_actions(self) -> list[Action]:
        criteria = self.evaluation_criteria
        return list(criteria.actions or []) if criteria else []


def load_tasks(path: Path | str, split_path: Path | str | None = None,
               split: str | None = None) -> list[Task]:
    """Tasks from a tau2-bench tasks file, in file order, optionally one split's only."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(path, f"cannot read tasks: {exc.strerror or exc}") from None
    try:
        tasks = msgspec.json.decode(raw, type=list[Task])
    except msgspec.ValidationError as exc:
        raise DataError(path, f"not a tau2-bench tasks file: {_where(raw, str(exc))}") from None
    except msgspec.DecodeError as exc:
        raise DataError(path, f"malformed JSON: {exc}") from None
    ids = [t.id for t in tasks]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataError(path, f"task id {dup!r} appears more than once")
    if split is None:
        return tasks
    if split_path is None:
        split_path = path.with_name("split_tasks.json")
    try:
        splits = json.loads(Path(split_path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(split_path, f"cannot read splits: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise DataError(split_path, f"malformed JSON at line {exc.lineno}: {exc.msg}") from None
    if split not in splits:
        raise DataError(split_path, f"no split {split!r} (splits: {', '.join(splits)})")
    wanted = {str(i) for i in splits[split]}
    missing = wanted - set(ids)
    if missing:
        raise DataError(split_path, f"split {split!r} names unknown tasks {sorted(missing)[:5]}")
    return [t for t in tasks if t.id in wanted]


def _where(raw: bytes, message: str) -> str:
    """Add the offending task's id to msgspec's ``$[17].user_scenario`` path."""
    import re

    m = re.search(r"\$\[(\d+)\]", message)
    if not m:
        return message
    try:
        entry = json.loads(raw)[int(m.group(1))]
        task_id = entry.get("id") if isinstance(entry, dict) else None
    except (ValueError, IndexError):
        return message
    return f"{message} (task id {task_id!r})" if task_id is not None else message
