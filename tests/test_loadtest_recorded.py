"""``writ loadtest --from-run``: a simulate run's recorded requests, sent again.

A small ``writ simulate`` with LLM agent and user runs against a real mock server that
keeps every chat-completion body it receives; the load tester then replays the run and
the same mock must receive the very same bodies, conversation by conversation, in the
recorded order.
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web
from planning import plan_of

from domains import get_domain
from writ_async.config import Config, EndpointConfig, default_config
from writ_async.engine.journal import read_journal
from writ_async.engine.simulate import simulate
from writ_async.errors import ReplayError, WritError
from writ_async.loadtest import cli as loadtest_cli
from writ_async.loadtest.metrics import conversation_decoder, record_decoder
from writ_async.loadtest.recorded import RecordedTraffic
from writ_async.loadtest.report import CONVERSATIONS_JSONL, REPORT_JSON, REQUESTS_JSONL
from writ_async.loadtest.run import LoadConfig, run_load
from writ_async.mock.config import MockConfig
from writ_async.mock.server import build_app

MODEL = "writ-mock"


@asynccontextmanager
async def recording_mock() -> AsyncIterator[tuple[str, list[tuple[str, bytes]]]]:
    """A mock server that keeps (``X-Request-Id``, body) of every chat request."""
    bodies: list[tuple[str, bytes]] = []
    app = build_app(MockConfig(reply_tokens_min=4, reply_tokens_max=16))

    @web.middleware
    async def keep(request: web.Request,
                   handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                   ) -> web.StreamResponse:
        if request.path == "/v1/chat/completions":
            bodies.append((request.headers.get("X-Request-Id", ""), await request.read()))
        return await handler(request)

    app.middlewares.append(keep)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}/v1", bodies
    finally:
        await runner.cleanup()


def llm_run_config(url: str, *, stream: bool) -> Config:
    config = default_config()
    replace = msgspec.structs.replace
    endpoint = EndpointConfig(base_url=url, model=MODEL, stream=stream)
    return replace(
        config,
        models=replace(config.models, endpoints={"mock": endpoint}),
        simulate=replace(config.simulate, agent="agent", user="user", tasks=None,
                         task_count=3, trials=1, max_steps=14, concurrency=2,
                         max_tokens=40))


def split_by_conversation(records: list[Any]) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    for r in records:
        out.setdefault(r.conversation, []).append(r)
    return out


@pytest.mark.asyncio
@pytest.mark.parametrize("stream", [False, True])
async def test_replayed_requests_equal_the_recorded_ones(tmp_path: Path, stream: bool) -> None:
    async with recording_mock() as (url, bodies):
        outcome = await simulate(plan_of(llm_run_config(url, stream=stream)), out=tmp_path / "run")
        recorded_bodies = [b for _, b in bodies]
        bodies.clear()
        traffic = RecordedTraffic(tmp_path / "run", get_domain("airline"))
        episodes = len(traffic.conversations)
        config = LoadConfig(base_url=url, model=MODEL, stream=stream, concurrency=1,
                            requests=sum(len(c) for c in traffic.conversations), drain_s=10)
        requests, conversations = io.BytesIO(), io.BytesIO()
        run = await run_load(config, traffic, records=requests, conversations=conversations)
        summary = run.summary()
    journal = read_journal(tmp_path / "run" / "journal.bin")
    assert episodes == len(outcome.records) == 3
    assert journal.counts["model_called"] == len(recorded_bodies)  # no failed calls
    replayed = [b for _, b in bodies]
    assert sorted(replayed) == sorted(recorded_bodies)  # the very same bytes, each once
    # conversation by conversation, in the recorded order of each episode (the simulate
    # run interleaved its episodes, concurrency 2)
    records = [record_decoder.decode(line) for line in requests.getvalue().splitlines()]
    assert all(r.ok for r in records)
    sent = dict(bodies)
    for conv, rs in split_by_conversation(records).items():
        rs.sort(key=lambda r: r.turn)
        ours = [sent[r.id] for r in rs]
        theirs = [b for b in recorded_bodies if b in ours]
        assert ours == theirs, conv
        roles = {json.loads(b).get("tools") is not None for b in ours}
        assert roles == {True, False}  # agent requests (with tools) and user requests
    convs = [conversation_decoder.decode(line) for line in conversations.getvalue().splitlines()]
    assert len(convs) == 3 and all(c.completed for c in convs)
    assert summary["conversations"]["completed_measured"] == 3


def test_a_run_without_model_calls_is_refused_clearly(tmp_path: Path) -> None:
    import asyncio

    config = default_config()
    replace = msgspec.structs.replace
    config = replace(config, simulate=replace(config.simulate, tasks=None, task_count=2))
    asyncio.run(simulate(plan_of(config), out=tmp_path / "scripted"))
    with pytest.raises(ReplayError, match="recorded no model calls"):
        RecordedTraffic(tmp_path / "scripted", get_domain("airline"))


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="writ")
    commands = parser.add_subparsers(dest="command", required=True)
    loadtest_cli.add_parser(commands)
    args = parser.parse_args(argv)
    return args.run(args)


def test_cli_from_run(tmp_path: Path) -> None:
    import asyncio

    async def record() -> None:
        async with recording_mock() as (url, _):
            await simulate(plan_of(llm_run_config(url, stream=False)), out=tmp_path / "run")

    asyncio.run(record())
    from writ_async.loadtest.testing import open_timed_mock

    async def serve_and_load() -> int:
        async with open_timed_mock(MockConfig()) as url:
            return await asyncio.to_thread(_run_cli, [
                "loadtest", "--base-url", url, "--model", MODEL, "--from-run",
                str(tmp_path / "run"), "--concurrency", "2", "--requests", "20", "--quiet",
                "--report", str(tmp_path / "report")])

    assert asyncio.run(serve_and_load()) == 0
    report = json.loads((tmp_path / "report" / REPORT_JSON).read_text())
    assert report["config"]["traffic"]["kind"] == "recorded"
    assert report["config"]["traffic"]["episodes"] == 3
    assert report["steps"][0]["requests"]["ok"] == 20
    assert (tmp_path / "report" / REQUESTS_JSONL).stat().st_size > 0
    assert (tmp_path / "report" / CONVERSATIONS_JSONL).stat().st_size > 0
    with pytest.raises(WritError):
        _run_cli(["loadtest", "--base-url", "http://127.0.0.1:9/v1", "--model", MODEL,
                  "--from-run", str(tmp_path / "nothing"), "--requests", "1",
                  "--report", str(tmp_path / "r2")])
