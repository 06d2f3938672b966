"""How `writ loadtest` stops, over the real CLI in a subprocess against `writ mock-server`.

Ctrl-C or SIGTERM writes the report of what completed, marked partial, with no
traceback, and exits 130 / 143 (as `writ simulate` does); a second signal cancels the
requests in flight. Without --duration or --requests the printed plan states the
default bound. Against a port where nothing listens the command exits non-zero with a
one-line cause, and latencies are n/a (null in JSON, n/a in HTML), not 0.0 ms.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from writ_async.loadtest.cli import DEFAULT_DURATION_S
from writ_async.loadtest.report import REPORT_HTML, REPORT_JSON, REQUESTS_JSONL

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _mock(*flags: str) -> Iterator[str]:
    """`writ mock-server` on a free loopback port; yields its base URL."""
    with subprocess.Popen([sys.executable, "-m", "writ_async", "mock-server", "--port", "0",
                           *flags], cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert "listening on" in line, line
            yield line.split()[-1]
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def fast_mock() -> Iterator[str]:
    yield from _mock("--ttft-ms", "2", "--tpot-ms", "0.2")


@pytest.fixture(scope="module")
def slow_mock() -> Iterator[str]:
    # Requests outlast the test: only the second signal can end them.
    yield from _mock("--ttft-ms", "60000", "--tpot-ms", "0")


def _start(url: str, report: Path, *flags: str, quiet: bool = True) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "writ_async", "loadtest", "--base-url", url, "--model", "m",
         "--report", str(report), *(["--quiet"] if quiet else []), *flags],
        cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_requests(proc: subprocess.Popen[str], report: Path) -> str:
    """Until the run has recorded answered requests; returns the plan line it printed."""
    assert proc.stdout is not None
    plan = proc.stdout.readline()  # printed before the first request
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the load test ended before it could be stopped"
        records = report / REQUESTS_JSONL
        if records.exists() and records.stat().st_size > 0:
            return plan
        time.sleep(0.02)
    pytest.fail("the load test recorded nothing in time")


def _report(report: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((report / REPORT_JSON).read_text())
    return loaded


@pytest.mark.parametrize(("sig", "status", "name"), [(signal.SIGINT, 130, "SIGINT"),
                                                      (signal.SIGTERM, 143, "SIGTERM")])
def test_a_signal_writes_the_partial_report_and_exits_as_stopped(
        fast_mock: str, tmp_path: Path, sig: int, status: int, name: str) -> None:
    """No bound given (the default: 30 s), a sweep of two steps: the signal in the first
    step stops it there, and the report of what completed is written."""
    report = tmp_path / "report"
    proc = _start(fast_mock, report, "--sweep", "2,4")
    plan = _wait_for_requests(proc, report)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == status, (out, err)
    assert "Traceback" not in err and "Traceback" not in out
    assert "finishing" in err and "in flight" in err and "Ctrl-C again" in err
    assert f"stopped by {name}" in out and "1 of 2 steps run" in out
    data = _report(report)
    assert data["partial"] is True and data["stopped_by"] == name
    assert data["steps_planned"] == 2 and len(data["steps"]) == 1
    step = data["steps"][0]
    assert step["stop_reason"] == "interrupted"
    assert step["requests"]["ok"] > 0
    assert step["latency_ms"]["e2e_from_intended"]["p50"] is not None
    # The window measured is the time it ran, not the 30 s it was planned for.
    assert step["measured_s"] < DEFAULT_DURATION_S
    records = (report / REQUESTS_JSONL).read_bytes().splitlines()
    assert len(records) >= step["requests"]["measured"]
    assert "Partial report" in (report / REPORT_HTML).read_text()
    assert "concurrency 2, 4, 2 steps" in plan


def test_a_second_signal_cancels_the_requests_in_flight(slow_mock: str, tmp_path: Path,
                                                        ) -> None:
    report = tmp_path / "report"
    proc = _start(slow_mock, report, "--concurrency", "3", "--duration", "120", quiet=False)
    assert proc.stdout is not None and proc.stderr is not None
    for line in proc.stderr:  # the progress line, each second
        if "in flight 3 " in line:
            break
    else:
        pytest.fail("no progress line with the requests in flight")
    proc.send_signal(signal.SIGINT)
    for line in proc.stderr:
        if "Ctrl-C again to cancel" in line:
            break
    else:
        pytest.fail("the first signal was not acknowledged")
    proc.send_signal(signal.SIGINT)  # the drain would wait 60 s for requests of 60 s
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "cancelling" in err and "Traceback" not in err
    data = _report(report)
    assert data["partial"] is True
    step = data["steps"][0]
    assert step["requests"]["ok"] == 0
    assert step["requests"]["cancelled_at_drain"] == 3


def test_without_a_bound_the_plan_states_the_default_and_the_run_has_it(
        fast_mock: str, tmp_path: Path) -> None:
    report = tmp_path / "report"
    proc = _start(fast_mock, report, "--concurrency", "2")
    plan = _wait_for_requests(proc, report)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert f"stops after {DEFAULT_DURATION_S:g} s (no --duration or --requests" in plan
    assert _report(report)["config"]["duration_s"] == DEFAULT_DURATION_S
    done = subprocess.run([sys.executable, "-m", "writ_async", "loadtest", "--help"],
                          cwd=REPO, env=ENV, capture_output=True, text=True, check=True)
    assert f"default: {DEFAULT_DURATION_S:g}" in " ".join(done.stdout.split())


@pytest.mark.parametrize("flags", [["--duration", "0"], ["--duration", "nan"],
                                   ["--duration", "inf"], ["--requests", "0"]])
def test_a_bound_that_is_none_is_refused(tmp_path: Path, flags: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "writ_async", "loadtest", "--base-url", "http://127.0.0.1:9/v1",
         "--model", "m", "--report", str(tmp_path / "r"), "--quiet", *flags],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and "writ: error:" in done.stderr
    assert not (tmp_path / "r").exists()


def test_a_dead_port_fails_in_one_line_and_has_no_latency(tmp_path: Path) -> None:
    report = tmp_path / "report"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, not listening: every connect is refused
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
        proc = _start(url, report, "--requests", "20", "--concurrency", "2")
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, (out, err)
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.strip()]
    assert len(errors) == 1, err
    assert errors[0].startswith("writ: error: no request was answered: 20 of 20 failed")
    assert "connection" in errors[0] and "cannot connect" in errors[0]
    table = [line for line in out.splitlines() if line.startswith("concurrency 2:")]
    assert len(table) == 1
    assert "TTFT p50/p99 n/a" in table[0] and "e2e p50/p99 n/a" in table[0]
    assert "0.0 ms" not in table[0] and "0 ms" not in table[0]
    step = _report(report)["steps"][0]
    assert step["requests"]["errors"] == {"connection": 20}
    for key in ("ttft_from_intended", "e2e_from_intended", "tpot"):
        summary = step["latency_ms"][key]
        assert summary["count"] == 0 and summary["p50"] is None and summary["p99"] is None
    assert step["conversations"]["duration_ms"]["p50"] is None
    page = (report / REPORT_HTML).read_text()
    row = page.split("<th>client-bound</th></tr>", 1)[1].split("</tr>", 1)[0]
    cells = row.replace("<tr>", "").split("</td>")
    ttft_p50, ttft_p99, e2e_p50, e2e_p99 = (c.replace("<td>", "") for c in cells[6:10])
    assert [ttft_p50, ttft_p99, e2e_p50, e2e_p99] == ["n/a"] * 4
    assert "None" not in page.split("<h2>Configuration</h2>", 1)[0]


def test_a_dead_port_with_no_bound_stops_once_nothing_connects(tmp_path: Path) -> None:
    """Without --duration/--requests the bound is 30 s per step; against a port where
    nothing listens the run stops after its first refused connects instead, and a sweep
    runs no higher step (it could not connect either)."""
    report = tmp_path / "report"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, not listening: every connect is refused
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
        proc = _start(url, report, "--sweep", "2,4,8")
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, (out, err)
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.strip()]
    assert len(errors) == 1, err
    assert errors[0].startswith("writ: error: no request was answered: the first ")
    assert "failed to connect, so the run stopped early" in errors[0]
    steps = _report(report)["steps"]
    assert [step["stop_reason"] for step in steps] == ["unreachable"]
    gone = steps[0]["unreachable"]
    assert gone["failed_connects"] >= 64 and gone["detail"]
