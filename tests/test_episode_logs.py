"""Logs emitted while an episode runs carry its ids, from whichever module logs them."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import structlog

from writ_async.logs import configure_logging, episode_context, get_logger, reset_logging

REPO = Path(__file__).resolve().parent.parent

# The scripted participants behind the embedded mock, which fails 30 % of requests with
# a 5xx (seeded): the pool retries them, with back-offs short enough for a test.
CONFIG = """
[logging]
level = "info"
format = "json"

[models.endpoints.mock]
base_url = "mock"
model = "writ-mock"

[models.roles]
agent = ["mock"]
user = ["mock"]
judge = ["mock"]

[models.retry]
max_attempts = 10
backoff_base_s = 0.001
backoff_cap_s = 0.002

[mock]
seed = 0

[mock.faults]
error_5xx = 0.3

[simulate]
task_count = 3
agent = "scripted-http"
user = "scripted-http"
"""


def test_a_retry_in_the_pool_is_logged_with_its_episode(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG, encoding="utf-8")
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "writ_async", "simulate", "--config",
                           str(config), "--out", str(run)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    retries = [e for e in events if e.get("event") == "model.retry"]
    assert retries, done.stderr[-2000:]
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    episodes = {(s["task_id"], s["trial"]) for s in results["simulations"]}
    assert len(episodes) == 3
    for retry in retries:
        assert retry["episode_id"] == f"{retry['task_id']}:{retry['trial']}"
        assert (retry["task_id"], retry["trial"]) in episodes
    # Events outside any episode (the run's own lines) carry none.
    outside = [e for e in events if e.get("event") != "model.retry"]
    assert all("episode_id" not in e for e in outside)


@pytest.mark.asyncio
async def test_concurrent_episodes_keep_their_own_ids() -> None:
    stream = io.StringIO()
    reset_logging()
    configure_logging("info", "json", stream)
    try:
        both = asyncio.Event()
        started = 0

        async def episode(episode_id: str, task_id: str) -> None:
            nonlocal started
            with episode_context(episode_id, task_id, 0):
                started += 1
                if started == 2:
                    both.set()
                await both.wait()  # both contexts are bound at once from here on
                get_logger(component="pool").info("model.retry", attempt=1)

        await asyncio.gather(episode("a:0", "a"), episode("b:0", "b"))
        get_logger().info("after")
    finally:
        reset_logging()
        structlog.contextvars.clear_contextvars()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert sorted((e["episode_id"], e["task_id"]) for e in lines
                  if e["event"] == "model.retry") == [("a:0", "a"), ("b:0", "b")]
    assert next(e for e in lines if e["event"] == "after").get("episode_id") is None
