"""What the commands do before the engine runs, for tests that call the engine directly:
look the configured domain up in the registry and resolve the run plan, or open a run
directory for replay on the domain its manifest names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from domains import get_domain
from writ_async.config import Config
from writ_async.engine.plan import RunPlan, resolve_plan
from writ_async.engine.replay.run import ReplayRun, open_run, run_config


def plan_of(config: Config, **kwargs: Any) -> RunPlan:
    return resolve_plan(config, get_domain(config.run.domain), **kwargs)


def open_replay(path: Path | str) -> ReplayRun:
    _, config = run_config(path)
    return open_run(path, get_domain(config.run.domain))
