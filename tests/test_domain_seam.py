"""One seam for domains: a domain is a folder plus one registry line.

A third domain is defined here, in the test (two tools, a one-table database, a
generator, a policy, one task synthesizer, its forbidden request and vague opener),
registered with one ``domains.REGISTRY`` entry and then run end to end: tasks
synthesized, `simulate` with the scripted agent and user, results graded, the export
written, and its tools dispatched as `writ tools call` does. None of it names the domain
anywhere in writ_async, which only ever sees the ``Domain`` record.
"""

from __future__ import annotations

import ast
import asyncio
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from planning import plan_of

import domains
from writ_async.config import default_config
from writ_async.conversation.messages import AssistantMessage, UserMessage
from writ_async.engine.simulate import simulate
from writ_async.environment.domain import Domain, Environment
from writ_async.environment.overlay import BaseDB, Overlay
from writ_async.environment.tools import Toolbox, read, write
from writ_async.errors import ConfigError, SynthesisError, ToolError
from writ_async.logs import reset_logging
from writ_async.participants.behaviours.scenarios import BehaviourMix
from writ_async.synthesis.drafts import Draft, Shape, Step, execute
from writ_async.synthesis.driver import generate_tasks

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = "Could you reset every counter in the building to zero?"
FORBIDDEN_REASON = "counters only ever go up"
OPENER = "Hello, it's about one of my counters."

# -- the tiny domain -------------------------------------------------------------------------


class Counter(msgspec.Struct):
    owner: str
    value: int


class CounterDB(msgspec.Struct):
    counters: dict[str, Counter]


@read
def get_counter(db: Overlay, counter_id: str) -> Counter:
    """Get a counter.

    Args:
        counter_id: The counter's id.
    """
    counter = db.get("counters", counter_id)
    if counter is None:
        raise ToolError(f"Counter {counter_id} not found")
    return counter


@write
def bump_counter(db: Overlay, counter_id: str, by: int) -> Counter:
    """Add to a counter.

    Args:
        counter_id: The counter's id.
        by: How much to add (at least 1).
    """
    if by < 1:
        raise ToolError("by must be at least 1")
    counter = db.edit("counters", counter_id)
    if counter is None:
        raise ToolError(f"Counter {counter_id} not found")
    counter.value += by
    return counter


def generate(seed: int, scale: float) -> CounterDB:
    rng = random.Random(seed)
    n = max(2, round(6 * scale))
    return CounterDB(counters={f"c{k}": Counter(owner=f"user_{k % 3}", value=rng.randrange(50))
                               for k in range(n)})


def sample_call(overlay: Overlay, rng: random.Random) -> tuple[str, dict[str, Any]]:
    ids = [key for key, _ in overlay.items("counters")]
    if rng.random() < 0.5:
        return "get_counter", {"counter_id": rng.choice(ids)}
    return "bump_counter", {"counter_id": rng.choice(ids), "by": rng.randint(1, 3)}


class Bumps:
    """The tiny domain's write-intensive synthesizer: each request bumps one counter."""

    generator = "tiny.bumps/1"

    def __init__(self, base: BaseDB) -> None:
        self.ids = sorted(base.tables["counters"])

    def draft(self, env: Environment, rng: random.Random, shape: Shape) -> Draft | None:
        if shape.writes == 0 or shape.writes > len(self.ids):
            return None  # no refusal-only tasks here: the driver draws another shape
        steps = []
        for counter_id in rng.sample(self.ids, shape.writes):
            by = rng.randint(1, 9)
            read_call = ("get_counter", {"counter_id": counter_id})
            execute(env, read_call)
            write_call = ("bump_counter", {"counter_id": counter_id, "by": by})
            after = json.loads(execute(env, write_call))
            steps.append(Step(kind="bump", reads=[read_call], write=write_call,
                              ask=f"you want counter {counter_id} raised by {by}",
                              communicate=[str(after["value"])],
                              note=f"bump {counter_id} by {by}"))
        ids = ", ".join(s.write[1]["counter_id"] for s in steps if s.write)
        return Draft(known_info=f"Your counters are {ids}.", identity=[], steps=steps)


TINY = Domain(
    name="tiny",
    toolbox=Toolbox("TinyTools", [get_counter, bump_counter]),
    db_file_type=CounterDB,
    generate=generate,
    policy_text="Counters only go up. Confirm before bumping one.",
    copiers={},
    sample_call=sample_call,
    write_intensive=Bumps,
    forbidden_requests={FORBIDDEN: FORBIDDEN_REASON},
    vague_openers=(OPENER,),
    bytes_per_scale=1_000,
)


@pytest.fixture(autouse=True)
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The one registry line a shipped domain has in domains/__init__.py.
    monkeypatch.setitem(domains.REGISTRY, "tiny", lambda: TINY)
    yield
    reset_logging()  # the commands configure logging for the process


# -- the seam ----------------------------------------------------------------------------------


def test_a_registered_domain_is_looked_up_like_the_shipped_ones() -> None:
    assert domains.names() == ("airline", "retail", "tiny")
    assert domains.get_domain("tiny") is TINY


def test_the_engine_never_imports_the_domains() -> None:
    """Only the commands resolve a domain by name: commands/ and loadtest's command (each
    resolves the run plan, or opens a run for replay, on the ``Domain`` it looked up).
    Imports inside functions and string imports (``import_module("domains....")``) count
    too."""
    importers = set()
    for path in sorted((REPO / "writ_async").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.Call) and node.args and _imports_by_string(node):
                names = [_leading_text(node.args[0])]
            if any(n == "domains" or n.startswith("domains.") for n in names):
                importers.add(path.relative_to(REPO).as_posix())
    assert importers == {"writ_async/loadtest/cli.py", *(
        f"writ_async/commands/{name}.py" for name in (
            "args", "data", "db", "replay", "simulate", "taskgen", "tools", "walk"))}


def _imports_by_string(call: ast.Call) -> bool:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in ("import_module", "__import__")


def _leading_text(arg: ast.expr) -> str:
    # "domains.x" or f"domains.{name}": the literal text the module name starts with.
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        return str(arg.values[0].value)
    return ""


def test_tasks_are_synthesized_by_the_domains_own_synthesizer() -> None:
    base = TINY.generate_db(0, 1.0)
    tasks = generate_tasks(TINY, base, 4, seed=1)
    assert [t.id for t in tasks] == [f"tiny-w-{i:06d}" for i in range(4)]
    assert all(t.synthesis is not None and t.synthesis.generator == "tiny.bumps/1"
               for t in tasks)
    assert all(t.axes is not None and t.axes.writes >= 2 for t in tasks)
    # A domain without a read-heavy synthesizer says so instead of failing on an import.
    with pytest.raises(SynthesisError, match="tiny: the domain has no read-heavy"):
        generate_tasks(TINY, base, 2, seed=1, mix={"read_heavy": 1.0})


def test_simulate_runs_the_registered_domain_end_to_end(tmp_path: Path) -> None:
    config = default_config()
    replace = msgspec.structs.replace
    mix = BehaviourMix(weights={"forbidden_first": 1.0, "vague_then_narrows": 1.0})
    config = replace(
        config, run=replace(config.run, domain="tiny"),
        simulate=replace(config.simulate, task_count=4, behaviours=mix),
        synthesis=replace(config.synthesis, mix={"write_intensive": 1.0}))
    outcome = asyncio.run(simulate(plan_of(config), out=tmp_path / "run"))
    assert len(outcome.records) == 4
    assert outcome.summary["average_reward"] == 1.0
    assert outcome.summary["kept"] == 4

    behaviours = [r.behaviours for r in outcome.records]
    # The domain's own forbidden request and opener, not the generic ones, and the agent
    # refuses with the domain's reason.
    for record in outcome.records:
        first = next(m.content for m in record.messages if isinstance(m, UserMessage))
        assert first == (FORBIDDEN if "forbidden_first" in record.behaviours else OPENER)
    refused = [r for r in outcome.records if "forbidden_first" in r.behaviours]
    assert refused and len(refused) < len(outcome.records), behaviours
    for record in refused:
        assert any(FORBIDDEN_REASON in (m.content or "") for m in record.messages
                   if isinstance(m, AssistantMessage))

    results = json.loads((tmp_path / "run" / "results.json").read_bytes())
    types = {c["action"]["name"]: c["tool_type"] for s in results["simulations"]
             for c in s["reward_info"]["action_checks"]}
    assert types == {"get_counter": "read", "bump_counter": "write"}
    stats = json.loads((tmp_path / "run" / "export" / "stats.json").read_bytes())
    assert stats["rows"] == 4
    assert stats["domains"] == {"tiny": 4}


def test_the_commands_take_a_registered_domain(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from writ_async.cli import main

    calls = tmp_path / "calls.jsonl"
    calls.write_text('{"name": "bump_counter", "arguments": {"counter_id": "c1", "by": 2}}\n'
                     '{"name": "get_counter", "arguments": {"counter_id": "c1"}}\n'
                     '{"name": "get_counter", "arguments": {"counter_id": "nope"}}\n')
    assert main(["tools", "call", "--domain", "tiny", str(calls)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    start = generate(0, 1.0).counters["c1"].value
    assert [json.loads(x["output"])["value"] for x in lines[:2]] == [start + 2, start + 2]
    assert lines[2]["error"] and "Counter nope not found" in lines[2]["output"]

    # `[run] domain` and `[domains.<name>]` accept the registered name, and only it.
    config = tmp_path / "config.toml"
    config.write_text('[run]\ndomain = "tiny"\n[domains.tiny]\nscale = 2.0\n'
                      '[synthesis]\nmix = { write_intensive = 1.0 }\n')
    out = tmp_path / "run"
    assert main(["simulate", "--config", str(config), "--task-count", "2",
                 "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_bytes())
    assert manifest["domain"] == "tiny"
    assert list(manifest["config"]["domains"]) == ["airline", "retail", "tiny"]
    assert manifest["config"]["domains"]["tiny"]["scale"] == 2.0
    assert len(json.loads((out / "tasks.json").read_bytes())) == 2

    config.write_text('[run]\ndomain = "tiny"\n[domains.tinny]\nscale = 2.0\n')
    from writ_async.config import load_config

    with pytest.raises(ConfigError, match="unknown domain `tinny`; known domains: "
                       "airline, retail, tiny") as info:
        load_config(config, domains=domains.names())
    assert info.value.key_path == "domains.tinny"
