"""Tasks in tau2-bench's format: what the user wants, and how the outcome is graded.

``load_tasks`` reads a tau2-bench ``tasks.json`` (optionally restricted to a split from
``split_tasks.json``); a malformed file is a DataError naming the task and field.
Synthesized tasks use the same Structs plus the WRIT axes and their provenance.

Two checks need what the file alone does not say, and run where tasks meet a domain
(``plan.resolve_plan``): ``check_gold_actions`` (every gold action is a call the domain's
toolbox can bind) and ``check_base`` (synthesized tasks run on the database they were
synthesized on).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from writ_async.errors import DataError

if TYPE_CHECKING:
    from writ_async.environment.tools import Toolbox

_SHOWN = 5  # problems quoted in one error message


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


def check_gold_actions(tasks: Sequence[Task], toolbox: Toolbox, source: Path | str) -> None:
    """DataError unless every gold action names a tool of ``toolbox`` with arguments it
    binds (no unknown argument, none missing), requested by the assistant.

    The binding is the toolbox's own (``Toolbox.binding_error``, Python's wording), so a
    task passes exactly when its gold call would reach the tool. Argument *values* are the
    tool's to judge at call time (some gold calls fail by design). No airline or retail
    tool is the user's, so a gold action with ``requestor`` other than ``assistant``
    could never be made.
    """
    problems: list[str] = []
    for task in tasks:
        for i, action in enumerate(task.gold_actions):
            where = f"task {task.id!r} gold action {i} ({action.name})"
            tool = toolbox.tools.get(action.name)
            if tool is None:
                problems.append(f"{where}: no such tool in {toolbox.owner}")
            elif action.requestor != "assistant":
                problems.append(f"{where}: requestor {action.requestor!r}, but the domain "
                                "has no user tools")
            elif (why := toolbox.binding_error(tool, action.arguments)) is not None:
                problems.append(f"{where}: {why}")
    if problems:
        more = len(problems) - _SHOWN
        raise DataError(source, "; ".join(problems[:_SHOWN])
                        + (f" (and {more} more)" if more > 0 else ""))


def check_base(tasks: Sequence[Task], db_hash: str, source: Path | str) -> None:
    """DataError unless every synthesized task (one with ``synthesis``) was synthesized on
    the database whose hash is ``db_hash``: its gold actions, end state and read plan are
    facts about that database only, and on another one its episodes would be graded
    against a plan that means nothing there.

    Tasks without provenance (tau2-bench's) are not checked here: nothing records their
    database (see ``plan.resolve_plan`` for what happens to them).
    """
    recorded: dict[str, Task] = {}
    for task in tasks:
        if task.synthesis is not None:
            recorded.setdefault(task.synthesis.base_db_hash, task)
    if len(recorded) > 1:
        (h1, t1), (h2, t2), *_ = recorded.items()
        raise DataError(source, f"tasks were synthesized on {len(recorded)} different "
                        f"databases (task {t1.id!r} on {h1[:12]}, task {t2.id!r} on "
                        f"{h2[:12]}); one run has one database: generate them together")
    if recorded and db_hash not in recorded:
        expected, task = next(iter(recorded.items()))
        assert task.synthesis is not None
        raise DataError(source, f"tasks were synthesized on database {expected[:12]} but the "
                        f"loaded database is {db_hash[:12]}; run with the --db, or the "
                        f"--seed and --scale, that the tasks were generated with (they "
                        f"record seed {task.synthesis.seed})")


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
