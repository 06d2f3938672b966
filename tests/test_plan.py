"""The run plan: resolved once by the command, frozen, and the one thing replay, the
cluster and loadtest take from a run's configuration (none imports ``simulate``)."""

from __future__ import annotations

import ast
import dataclasses
import pickle
from pathlib import Path

import msgspec
import pytest

from domains import get_domain
from writ_async.config import default_config
from writ_async.conversation.records import episode_id
from writ_async.engine.plan import RunPlan, resolve_plan
from writ_async.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1] / "writ_async"


def small_plan() -> RunPlan:
    config = default_config()
    replace = msgspec.structs.replace
    config = replace(config, simulate=replace(config.simulate, task_count=3, trials=2))
    return resolve_plan(config, get_domain(config.run.domain))


def test_the_plan_is_frozen_and_holds_every_episode_in_run_order() -> None:
    plan = small_plan()
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.seed = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.tasks = ()  # type: ignore[misc]
    assert isinstance(plan.tasks, tuple) and isinstance(plan.episodes, tuple)
    assert plan.episode_ids == [episode_id(t.id, trial) for t in plan.tasks
                                for trial in (0, 1)]
    assert len({e.seed for e in plan.episodes}) == len(plan.episodes) == 6
    # What a run mutates lives in a setup of its own, never in the plan.
    one, two = plan.episode_setup(), plan.episode_setup()
    assert one is not two and one.gold is not two.gold


def test_the_plan_travels_to_a_worker_whole() -> None:
    # The Ray driver puts the plan in the object store: workers resolve nothing.
    plan = small_plan()
    copy = pickle.loads(pickle.dumps(plan))
    assert copy.base.db_hash() == plan.base.db_hash()
    assert copy.episodes == plan.episodes and copy.domain.name == plan.domain.name


def test_a_plan_refuses_a_domain_other_than_the_configs() -> None:
    config = default_config()
    other = "retail" if config.run.domain != "retail" else "airline"
    with pytest.raises(ConfigError, match="domain"):
        resolve_plan(config, get_domain(other))


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


@pytest.mark.parametrize("path", [*sorted((ROOT / "engine" / "replay").glob("*.py")),
                                  *sorted((ROOT / "cluster").glob("*.py")),
                                  *sorted((ROOT / "loadtest").glob("*.py"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_replay_cluster_and_loadtest_take_the_plan_not_simulate(path: Path) -> None:
    assert not {m for m in _imports(path) if m.startswith("writ_async.engine.simulate")}


def test_only_the_commands_look_the_domain_up() -> None:
    engine = ["engine/simulate.py", "engine/plan.py", "engine/outputs.py",
              "engine/run_participants.py", "cluster/shards.py", "cluster/ray_run.py",
              "loadtest/recorded.py", *(f"engine/replay/{p.name}"
                                        for p in sorted((ROOT / "engine/replay").glob("*.py")))]
    assert all(not any(m == "domains" or m.startswith("domains.")
                       for m in _imports(ROOT / name)) for name in engine)
