"""`writ simulate --ray` on a real local Ray cluster: a head started on loopback, two
worker processes, one of them killed mid-run.

The cluster is one ``ray start --head --block`` process with two CPUs (so two shard
workers at a time), started and stopped by the module's fixture; stopping it stops every
process it started. Ray's own files go to a short temporary directory (its socket paths
must stay under the Unix limit), removed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from planning import plan_of
from test_simulate import results_without_timing

from writ_async.cluster.ray_run import ClusterStatus, RayOptions, simulate_on_ray
from writ_async.config import Config, default_config
from writ_async.conversation.records import Timing
from writ_async.engine.journal import read_journal
from writ_async.engine.scheduler import StopRequest
from writ_async.engine.simulate import simulate
from writ_async.mock.config import MockConfig
from writ_async.mock.scripted_policy import ScriptedPolicy
from writ_async.mock.server import open_mock_server

ray = pytest.importorskip("ray")

RPM = 4800  # the endpoint's configured limit: 80 requests/s
CONCURRENCY = 16


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    temp = tempfile.mkdtemp(prefix="writ-ray-")
    port = _free_port()
    ray_bin = Path(sys.executable).with_name("ray")
    head = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
         "--node-ip-address=127.0.0.1", f"--temp-dir={temp}", "--include-dashboard=false",
         "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:  # ray.init would wait for minutes on a head that is not up
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
                break
            except OSError:
                if time.monotonic() > deadline or head.poll() is not None:
                    pytest.fail(f"the Ray head did not come up (exit {head.poll()})")
                time.sleep(0.2)
        ray.init(address=address, log_to_driver=False, logging_level="warning")
        yield address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        head.terminate()  # `ray start --block` stops what it started on SIGTERM
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)  # its own session: only its processes
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)


def synthesis_config(base_url: str, task_count: int) -> Config:
    """A scripted synthesis run (tasks synthesized from the generated airline database,
    each told by a sampled user behaviour) over HTTP, against one rate-limited endpoint."""
    config = default_config()
    replace = msgspec.structs.replace
    endpoint = replace(config.models.endpoints["mock"], base_url=base_url,
                       requests_per_minute=float(RPM))
    return replace(
        config, models=replace(config.models, endpoints={"mock": endpoint}),
        simulate=replace(config.simulate, task_count=task_count, agent="scripted-http",
                         user="scripted-http", concurrency=CONCURRENCY, mistake_rate=0.3))


def records_without_timing(run_dir: Path) -> dict[str, object]:
    finished = read_journal(run_dir / "journal.bin").finished
    return {eid: msgspec.structs.replace(r, timing=Timing()) for eid, r in finished.items()}


def over_the_envelope(arrivals: list[float], lease: float) -> list[tuple[float, float, int]]:
    """Intervals in which the endpoint saw more than the shared budget allows.

    The ledger's strict bucket over ``60 + lease`` s holds ``C = RPM / (60 + lease)`` (one
    second's worth) and refills at ``r = (RPM + 1 - C) / (60 + lease)`` per second; a
    request sent in ``[s, t]`` was granted in ``[s - lease, t]``. Between admission and
    arrival a request may be held up, but at most one per episode in flight is. So no
    interval may see more than ``C + r * (t - s + lease) + CONCURRENCY`` requests; a
    budget not shared (each worker its own full rate) breaks this over a few seconds.
    """
    span = 60.0 + lease
    capacity = RPM / span
    rate = (RPM + 1 - capacity) / span
    arrivals = sorted(arrivals)
    bad = []
    for i, start in enumerate(arrivals):
        for j in range(i, len(arrivals)):
            count = j - i + 1
            if count > capacity + rate * (arrivals[j] - start + lease) + CONCURRENCY:
                bad.append((start, arrivals[j], count))
                break
    return bad


@pytest.mark.asyncio
async def test_killed_worker_loses_nothing_and_the_run_equals_a_single_process_run(
        ray_address: str, tmp_path: Path) -> None:
    probe = synthesis_config("http://unused", 24)
    probe_plan = plan_of(probe)
    policy = ScriptedPolicy({t.id: t for t in probe_plan.tasks},
                            {probe_plan.domain_name: probe_plan.domain}, probe_plan.mistakes)
    async with open_mock_server(MockConfig(), policy, record_arrivals=True) as server:
        config = synthesis_config(server.url, 24)
        killed: dict[str, int] = {}

        def kill_one_worker(status: ClusterStatus) -> None:
            if killed:
                return
            for shard in status.shards.values():  # mid-shard: some done, most not
                if shard.attempt == 0 and 2 <= shard.done < shard.total - 3:
                    os.kill(shard.pid, signal.SIGKILL)
                    killed.update(shard=shard.shard, pid=shard.pid, done=shard.done)
                    return

        options = RayOptions(address=ray_address, on_status=kill_one_worker, poll_s=0.1)
        cluster = await simulate_on_ray(plan_of(config), out=tmp_path / "ray", options=options)
        arrivals = server.arrivals()
        await simulate(plan_of(config), out=tmp_path / "single")

    # A worker really died mid-shard, and its shard ran again in another process.
    assert killed, "no shard reached the point where its worker is killed"
    assert cluster.workers == 2 and cluster.shards == 2
    assert cluster.attempts[killed["shard"]] == 2
    assert any(w.endswith(f"@{killed['pid']}") for w in cluster.lost)
    again = next(s for s in cluster.statuses if s.shard == killed["shard"])
    assert again.attempt == 1 and again.pid != killed["pid"] and again.finished

    # Every episode exactly once.
    run = tmp_path / "ray"
    contents = read_journal(run / "journal.bin")
    assert len(contents.finished) == 24 and contents.duplicate_finishes == 0
    assert not contents.unfinished  # the killed attempts' events were not merged orphaned
    simulations = json.loads((run / "results.json").read_text())["simulations"]
    ids = [(s["task_id"], s["trial"]) for s in simulations]
    assert len(ids) == len(set(ids)) == 24
    rows = (run / "export" / "sft_openai.jsonl").read_text().splitlines()
    episodes = [json.loads(r)["metadata"]["episode_id"] for r in rows]
    assert len(episodes) == len(set(episodes)) == cluster.run.export.written

    # The same run directory as one process: results, exports, records.
    assert sorted(p.name for p in run.iterdir()) == sorted(
        p.name for p in (tmp_path / "single").iterdir())
    assert results_without_timing(run) == results_without_timing(tmp_path / "single")
    for name in ("sft_openai.jsonl", "sft_sharegpt.jsonl"):
        assert (run / "export" / name).read_bytes() == (
            tmp_path / "single" / "export" / name).read_bytes()
    assert records_without_timing(run) == records_without_timing(tmp_path / "single")
    assert 0 < cluster.run.summary["average_reward"] < 1  # the mistakes were graded

    # The endpoint never saw more than its configured rate, shared by both workers.
    assert len(arrivals) >= sum(r.model_calls for r in contents.finished.values())
    assert over_the_envelope(arrivals, options.lease_s) == []
    [budget] = cluster.budget
    assert budget.granted_requests >= len(arrivals) - CONCURRENCY
    assert budget.lost_workers == 1  # the dead worker's share went back to the live one


def test_writ_simulate_ray_serves_the_mock_once_for_the_whole_cluster(
        ray_address: str, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("""
[simulate]
task_count = 6
agent = "scripted-http"
user = "scripted-http"
concurrency = 4
""")
    writ = [sys.executable, "-m", "writ_async", "simulate", "--config", str(config)]
    done = subprocess.run([*writ, "--ray", ray_address, "--out", str(tmp_path / "ray")],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "ray: 2 shards on 2 workers" in done.stdout
    local = subprocess.run([*writ, "--out", str(tmp_path / "local")], capture_output=True,
                           text=True, timeout=180)
    assert local.returncode == 0, local.stderr
    assert results_without_timing(tmp_path / "ray") == results_without_timing(
        tmp_path / "local")
    assert not (tmp_path / "ray" / "shards").exists()


@pytest.mark.asyncio
async def test_a_stopped_ray_run_resumes_on_the_cluster_to_the_same_run(
        ray_address: str, tmp_path: Path) -> None:
    config = default_config()
    replace = msgspec.structs.replace
    # Over HTTP to a mock that takes 20 ms a call, so the 120 episodes take seconds: the
    # in-process scripted pair can finish a 60-episode shard between two progress reports,
    # and then there is nothing left to stop.
    config = replace(config, mock=replace(config.mock, ttft_ms=20.0),
                     simulate=replace(config.simulate, task_count=60, trials=2,
                                      concurrency=8, mistake_rate=0.3,
                                      agent="scripted-http", user="scripted-http"))
    stop = StopRequest()

    def stop_after_some(status: ClusterStatus) -> None:
        if sum(s.done for s in status.shards.values()) >= 10:
            stop()

    run = tmp_path / "ray"
    first = await simulate_on_ray(plan_of(config), out=run, options=RayOptions(
        address=ray_address, on_status=stop_after_some, poll_s=0.05, stop=stop))
    assert first.run.stopped_early and (run / "shards").is_dir()
    merged = len(read_journal(run / "journal.bin").finished)
    assert 10 <= merged < 120 and merged == first.merged

    second = await simulate_on_ray(plan_of(config), out=run, resume=True,
                                   options=RayOptions(address=ray_address))
    assert not second.run.stopped_early and second.merged == 120 - merged
    contents = read_journal(run / "journal.bin")
    assert len(contents.finished) == 120 and contents.duplicate_finishes == 0
    await simulate(plan_of(config), out=tmp_path / "single")
    assert results_without_timing(run) == results_without_timing(tmp_path / "single")
    assert records_without_timing(run) == records_without_timing(tmp_path / "single")
