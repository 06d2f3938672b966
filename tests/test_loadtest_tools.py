"""`writ loadtest` with tools in the requests: the tool-call and parse-failure rates in
the run's summary, report and console; request parameters from a config.toml
(``--params``). Against the real mock over loopback."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_loadtest import serve_mock

from domains import get_domain
from writ_async.errors import ConfigError
from writ_async.llm.protocol import ModelParams
from writ_async.loadtest import cli as loadtest_cli
from writ_async.loadtest.metrics import record_decoder
from writ_async.loadtest.report import REPORT_HTML, REPORT_JSON
from writ_async.loadtest.run import LoadConfig, run_load
from writ_async.loadtest.traffic import AgentTraffic
from writ_async.mock.config import MockConfig, Quirks
from writ_async.mock.scripted_policy import ScriptedPolicy
from writ_async.mock.server import open_mock_server
from writ_async.synthesis.driver import generate_tasks


def _traffic() -> tuple[AgentTraffic, ScriptedPolicy]:
    domain = get_domain("airline")
    base = domain.base(None, 0, 1.0)
    tasks = generate_tasks(domain, base, 6, 0)
    return AgentTraffic(domain, base, tasks, seed=0), ScriptedPolicy(
        {t.id: t for t in tasks}, {"airline": domain})


async def _run(mock: MockConfig, **config: Any) -> tuple[dict[str, Any], list[Any]]:
    traffic, policy = _traffic()
    async with open_mock_server(mock, policy) as server:
        load = LoadConfig(base_url=server.url, model=config.pop("model", "m"), concurrency=4,
                          requests=40, drain_s=10, **config)
        buffer = io.BytesIO()
        run = await run_load(load, traffic, records=buffer)
        summary = run.summary()
    return summary, [record_decoder.decode(x) for x in buffer.getvalue().splitlines()]


@pytest.mark.asyncio
async def test_the_tool_call_rate_of_agent_traffic() -> None:
    summary, records = await _run(MockConfig())
    tools = summary["tools"]
    assert all(r.tools_offered for r in records)
    measured = [r for r in records if not r.warmup]
    calls = sum(r.tool_calls > 0 for r in measured)
    assert tools["answers"] == len(measured) and tools["with_tool_calls"] == calls
    assert 0 < tools["tool_call_rate"] == round(calls / len(measured), 6) < 1
    assert tools["parse_failures"] == 0 and tools["parse_failure_rate"] == 0


@pytest.mark.asyncio
@pytest.mark.parametrize(("how", "kind"), [("hermes", "markup_in_content"),
                                           ("sglang_empty", "empty_tool_calls"),
                                           ("trailing_data", "trailing_data")])
async def test_parse_failures_are_counted_by_kind(how: str, kind: str) -> None:
    mock = MockConfig(quirks=Quirks(tool_call_parse_failure=how,  # type: ignore[arg-type]
                                    tool_call_parse_failure_rate=0.5))
    summary, records = await _run(mock)
    tools = summary["tools"]
    failed = [r for r in records if r.parse_failure is not None and not r.warmup]
    assert failed and {r.parse_failure for r in failed} == {kind}
    assert all(not r.ok for r in failed)  # an answer the agent cannot use: an error too
    assert tools["parse_failure_kinds"] == {kind: len(failed)}
    assert tools["parse_failure_rate"] == round(len(failed) / tools["answers"], 6)
    assert tools["with_tool_calls"] > 0


@pytest.mark.asyncio
async def test_params_make_a_reasoning_model_answer() -> None:
    # GPT-5 rules: the traffic's temperature is refused; params that omit it are not
    mock = MockConfig(quirks=Quirks(openai_reasoning_models=["gpt-5"]))
    refused, _ = await _run(mock, model="gpt-5")
    assert refused["requests"]["ok"] == 0 and refused["requests"]["errors"]
    params = {"agent": ModelParams(omit=["temperature"], max_completion_tokens=512)}
    answered, _ = await _run(mock, model="gpt-5", params=params)
    assert answered["requests"]["errors"] == {} and answered["tools"]["with_tool_calls"] > 0


def test_params_come_from_a_config_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("""
[models.endpoints.mock]
[models.endpoints.big]
model = "gpt-5"
params = { omit = ["temperature"] }
[models.roles]
agent = ["mock"]
[models.params.agent]
max_completion_tokens = 256
""", encoding="utf-8")
    first = loadtest_cli._role_params(str(path), None)
    assert first == {"agent": ModelParams(max_completion_tokens=256)}
    big = loadtest_cli._role_params(str(path), "big")
    assert big["agent"] == ModelParams(max_completion_tokens=256, omit=["temperature"])
    with pytest.raises(ConfigError, match="no endpoint `nope`"):
        loadtest_cli._role_params(str(path), "nope")


@pytest.fixture
def mock_url() -> Iterator[str]:
    yield from serve_mock("--ttft-ms", "1")


def test_the_report_and_console_carry_the_rates(mock_url: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="writ")
    loadtest_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "report"
    args = parser.parse_args(["loadtest", "--base-url", mock_url, "--model", "m",
                              "--requests", "30", "--report", str(out), "--quiet"])
    assert args.run(args) == 0
    step = json.loads((out / REPORT_JSON).read_text())["steps"][0]
    assert step["tools"]["answers"] == 30 and step["tools"]["tool_call_rate"] > 0
    assert "<h2>Tool calls</h2>" in (out / REPORT_HTML).read_text()
    assert "tool calls " in capsys.readouterr().out


@pytest.mark.asyncio
@pytest.mark.parametrize("stream", [True, False])
async def test_loadtest_over_the_responses_api(stream: bool) -> None:
    from aiohttp import web

    from writ_async.mock.server import build_app

    traffic, policy = _traffic()
    paths: list[str] = []

    @web.middleware
    async def count(request: web.Request, handler: Any) -> web.StreamResponse:
        paths.append(request.path)
        return await handler(request)

    app = build_app(MockConfig(), policy)
    app.middlewares.append(count)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        load = LoadConfig(base_url=f"http://127.0.0.1:{port}/v1", model="m", concurrency=4,
                          requests=30, drain_s=10, api="responses", stream=stream)
        buffer = io.BytesIO()
        run = await run_load(load, traffic, records=buffer)
        summary = run.summary()
    finally:
        await runner.cleanup()
    records = [record_decoder.decode(x) for x in buffer.getvalue().splitlines()]
    assert paths and set(paths) == {"/v1/responses"}
    assert summary["requests"]["ok"] == len(records) > 0 and all(r.ok for r in records)
    # the agent traffic's tool calls come back as function_call items, read as tool calls
    assert summary["tools"]["with_tool_calls"] > 0
    assert summary["tools"]["parse_failures"] == 0
    if stream:
        assert summary["latency_ms"]["ttft"]["count"] == summary["requests"]["measured"]


def test_the_api_flag_reaches_the_load_config() -> None:
    parser = argparse.ArgumentParser(prog="writ")
    loadtest_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    base = ["loadtest", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--report", "r"]
    assert [c.api for c in loadtest_cli.build_configs(parser.parse_args(base))] == ["chat"]
    args = parser.parse_args([*base, "--api", "responses"])
    assert [c.api for c in loadtest_cli.build_configs(args)] == ["responses"]
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--api", "completions"])
