from __future__ import annotations

import importlib
import io
import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

import domains
from writ_async.cli import main
from writ_async.commands import walk as walk_command
from writ_async.environment.domain import Domain
from writ_async.environment.overlay import Overlay
from writ_async.environment.tools import Toolbox, read, write
from writ_async.errors import ToolError
from writ_async.logs import reset_logging

REPO = Path(__file__).resolve().parents[1]

# -- a tiny domain, so the CLI is tested without the real ones ---------------------------


class Item(msgspec.Struct):
    name: str
    count: int


class FakeDB(msgspec.Struct):
    items: dict[str, Item]


@read
def get_item(db: Overlay, item_id: str) -> Item:
    """Get an item.

    Args:
        item_id: The item id.
    """
    item = db.get("items", item_id)
    if item is None:
        raise ToolError(f"Item {item_id} not found")
    return item


@write
def bump(db: Overlay, item_id: str, by: int = 1) -> Item:
    """Add to an item's count.

    Args:
        item_id: The item id.
        by: How much to add.
    """
    item = db.edit("items", item_id)
    if item is None:
        raise ToolError(f"Item {item_id} not found")
    item.count += by
    return item


def generate(seed: int, scale: float) -> FakeDB:
    rng = random.Random(seed)
    n = max(1, round(3 * scale))
    items = {f"i{k}": Item(name=f"item {k}", count=rng.randrange(10)) for k in range(n)}
    return FakeDB(items=items)


def sample_call(overlay: Overlay, rng: random.Random) -> tuple[str, dict[str, Any]]:
    ids = [key for key, _ in overlay.items("items")] + ["nope"]
    if rng.random() < 0.4:
        return "get_item", {"item_id": rng.choice(ids)}
    return "bump", {"item_id": rng.choice(ids), "by": rng.randint(1, 3)}


FAKE = Domain(
    name="fake",
    toolbox=Toolbox("FakeTools", [get_item, bump]),
    db_file_type=FakeDB,
    generate=generate,
    policy_text="Be helpful.",
    copiers={},
    sample_call=sample_call,
)
BASE_HASH = FAKE.generate_db(0, 1.0).db_hash()


@pytest.fixture(autouse=True)
def _fake_domain(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Registered as any domain is: one registry entry (removed again after each test).
    monkeypatch.setitem(domains.REGISTRY, "fake", lambda: FAKE)
    yield
    reset_logging()  # `writ walk` configures logging for the process


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def calls_file(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "calls.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# -- tools list ----------------------------------------------------------------------------


def test_tools_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["tools", "list", "--domain", "fake"], capsys)
    assert code == 0
    schemas = json.loads(out)
    assert [s["function"]["name"] for s in schemas] == ["get_item", "bump"]
    assert schemas[1]["function"]["parameters"]["required"] == ["item_id"]


def test_tools_list_with_tools_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shown = [
        {"type": "function", "function": {"name": "bump", "description": "shown"}},
        {"type": "function", "function": {"name": "get_item", "description": "shown"}},
    ]
    path = tmp_path / "tools.json"
    path.write_text(json.dumps(shown))
    code, out, _ = run(["tools", "list", "--domain", "fake", "--tools-json", str(path)], capsys)
    assert code == 0
    assert json.loads(out) == shown


def test_tools_list_with_bad_tools_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tools.json"
    path.write_text(json.dumps([{"type": "function", "function": {"name": "bump"}}]))
    code, out, err = run(["tools", "list", "--domain", "fake", "--tools-json", str(path)], capsys)
    assert code == 2
    assert out == ""
    assert err.startswith("writ: error: ") and "missing ['get_item']" in err
    assert len(err.splitlines()) == 1


def test_unknown_domain(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["tools", "list", "--domain", "mail"], capsys)
    assert code == 2
    # Every registered domain is named, the test's own too.
    assert err == "writ: error: unknown domain 'mail'; known domains: airline, retail, fake\n"


# -- tools call ----------------------------------------------------------------------------


def test_tools_call_from_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = calls_file(
        tmp_path,
        '{"name": "get_item", "arguments": {"item_id": "i0"}}',
        "",
        '{"name": "bump", "arguments": {"item_id": "i0", "by": 2.0}, "id": "call_1"}',
        "   ",
        '{"name": "bump", "arguments": {"item_id": "zz"}}',
        '{"name": "think", "arguments": {}}',
        '{"name": "get_item"}',
    )
    code, out, err = run(["tools", "call", "--domain", "fake", str(path)], capsys)
    assert (code, err) == (0, "")
    results = [json.loads(line) for line in out.splitlines()]
    assert len(results) == 5
    first, bumped, missing, unknown, no_args = results
    assert first["error"] is False and first["db_hash"] == BASE_HASH
    assert json.loads(first["output"])["name"] == "item 0"
    # 2.0 stays a float: the count becomes a float, exactly as in tau2's unvalidated tools.
    assert isinstance(json.loads(bumped["output"])["count"], float)
    assert bumped["db_hash"] != BASE_HASH
    assert missing == {"output": "Error: Item zz not found", "error": True,
                       "db_hash": bumped["db_hash"]}
    assert unknown["output"] == "Error: Tool 'think' not found." and unknown["error"] is True
    assert no_args["output"] == (
        "Error: FakeTools.get_item() missing 1 required positional argument: 'item_id'"
    )


def test_tools_call_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = b'\xef\xbb\xbf{"name": "bump", "arguments": {"item_id": "i1"}}\n'
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, _ = run(["tools", "call", "--domain", "fake"], capsys)
    assert code == 0
    (result,) = [json.loads(line) for line in out.splitlines()]
    assert result["error"] is False and result["db_hash"] != BASE_HASH


def test_tools_call_on_a_db_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "db.json"
    db.write_bytes(msgspec.json.encode(FakeDB(items={"x": Item(name="x", count=1)})))
    path = calls_file(tmp_path, '{"name": "get_item", "arguments": {"item_id": "x"}}')
    code, out, _ = run(["tools", "call", "--domain", "fake", "--db", str(db), str(path)], capsys)
    assert code == 0
    assert json.loads(json.loads(out)["output"]) == {"name": "x", "count": 1}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["get_item"]', "expected a JSON object"),
        ('{"arguments": {}}', 'expected a string "name"'),
        ('{"name": 5, "arguments": {}}', 'expected a string "name"'),
        ('{"name": "get_item", "arguments": ["i0"]}', '"arguments" must be a JSON object'),
        ('{"name": "get_item", "arguments": null}', '"arguments" must be a JSON object'),
    ],
)
def test_tools_call_stops_at_a_malformed_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str, message: str
) -> None:
    path = calls_file(
        tmp_path,
        '{"name": "bump", "arguments": {"item_id": "i0"}}',
        "",
        bad,
        '{"name": "bump", "arguments": {"item_id": "i0"}}',
    )
    code, out, err = run(["tools", "call", "--domain", "fake", str(path)], capsys)
    assert code == 2
    assert len(out.splitlines()) == 1  # the call before the bad line ran; the one after did not
    assert err.startswith(f"writ: error: {path}:3: {message}")
    assert len(err.splitlines()) == 1


def test_tools_call_bad_line_on_stdin_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\xff\n")))
    code, _, err = run(["tools", "call", "--domain", "fake"], capsys)
    assert code == 2
    assert err == "writ: error: <stdin>:1: not UTF-8 text\n"


def test_tools_call_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["tools", "call", "--domain", "fake", str(tmp_path / "no")], capsys)
    assert (code, out) == (2, "")
    assert "cannot read tool calls: No such file or directory" in err


# -- db ------------------------------------------------------------------------------------


def test_db_hash(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["db", "hash", "--domain", "fake"], capsys)
    assert code == 0
    assert out.splitlines() == [f"db_hash  {BASE_HASH}", "items    3"]


def test_db_hash_seed_and_scale(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["db", "hash", "--domain", "fake", "--seed", "5", "--scale", "2"], capsys)
    assert code == 0
    assert out.splitlines()[1] == "items    6"
    assert FAKE.generate_db(5, 2.0).db_hash() in out


def test_db_hash_of_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["db", "hash", "--domain", "fake", "--db", str(tmp_path / "x")], capsys)
    assert code == 2
    assert "cannot read database" in err


def test_db_generate_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_path = tmp_path / "sub" / "db.json"
    code, out, _ = run(["db", "generate", "--domain", "fake", "--out", str(out_path)], capsys)
    assert code == 0
    assert out.splitlines()[0] == f"wrote {out_path}"
    assert FAKE.load_db(out_path).db_hash() == BASE_HASH
    assert list(json.loads(out_path.read_text())) == ["items"]
    assert not list(out_path.parent.glob("*.tmp"))


def test_db_generate_unwritable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run(
        ["db", "generate", "--domain", "fake", "--out", str(blocker / "db.json")], capsys
    )
    assert code == 2
    assert "cannot write database" in err


# -- walk ----------------------------------------------------------------------------------


def table(out: str) -> list[str]:
    """The summary without its timing lines, which vary from run to run."""
    return [line for line in out.splitlines() if "time" not in line and "calls/s" not in line]


def test_walk(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["walk", "--domain", "fake", "--episodes", "6", "--calls", "5", "--seed", "1"]
    code, out, _ = run(argv, capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("walk fake: seed 1, 6 episodes x 5 calls")
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:5]}
    assert set(rows) == {"get_item", "bump", "total"}
    calls, ok, errors = map(int, rows["total"])
    assert calls == 30 and ok + errors == 30
    assert sum(int(rows[t][0]) for t in ("get_item", "bump")) == 30
    assert "distinct final DB hashes" in out
    assert "base DB unchanged         yes" in out
    # Same seed, same walk.
    main(argv)
    assert table(capsys.readouterr().out) == table(out)


def test_walk_reads_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[run]\nseed = 4\n[walk]\nepisodes = 2\ncalls_per_episode = 3\n'
                      '[logging]\nlevel = "warning"\n')
    code, out, err = run(["walk", "--config", str(config), "--domain", "fake"], capsys)
    assert code == 0
    assert "seed 4, 2 episodes x 3 calls" in out
    assert err == ""  # info events are below the configured level


def test_walk_with_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[walk]\nepisodes = 0\n")
    code, out, err = run(["walk", "--config", str(config)], capsys)
    assert (code, out) == (2, "")
    assert err == f"writ: error: {config} at `walk.episodes`: expected `int` >= 1\n"


def test_walk_episodes_are_independent() -> None:
    base = FAKE.generate_db(0, 1.0)

    def final_hashes(episodes: int) -> set[str]:
        stats = walk_command.walk(FAKE, base, FAKE.toolbox, episodes=episodes, calls=4, seed=9)
        return stats.final_hashes

    assert final_hashes(3) <= final_hashes(8)
    assert base.verify_unchanged()


def test_walk_counts_with_a_virtual_clock() -> None:
    ticks = iter([10.0, 12.5])
    base = FAKE.generate_db(0, 1.0)
    stats = walk_command.walk(FAKE, base, FAKE.toolbox, episodes=2, calls=3, seed=0,
                     clock=lambda: next(ticks))
    assert (stats.episodes, stats.calls, stats.seconds) == (2, 6, 2.5)
    assert "calls/s                   2" in walk_command.render_walk(stats, 0.1, True)


@pytest.mark.parametrize("argv", [["walk", "--episodes", "0"], ["walk", "--calls", "x"],
                                  ["db", "hash"], ["tools"], []])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage: writ" in capsys.readouterr().err


# -- python -m writ_async ------------------------------------------------------------------


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "writ_async", *args],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )


def test_module_entry_point_reports_errors() -> None:
    proc = run_module("tools", "list", "--domain", "mail")
    assert proc.returncode == 2
    assert proc.stderr == "writ: error: unknown domain 'mail'; known domains: airline, retail\n"


def test_module_lists_airline_tools() -> None:
    try:
        airline = importlib.import_module("domains.airline")
    except ImportError as exc:
        pytest.skip(f"domains.airline is not importable yet: {exc}")
    if not hasattr(airline, "DOMAIN"):
        pytest.skip("domains.airline does not define DOMAIN yet")
    proc = run_module("tools", "list", "--domain", "airline")
    assert proc.returncode == 0, proc.stderr
    schemas = json.loads(proc.stdout)
    assert isinstance(schemas, list)
    assert [s["function"]["name"] for s in schemas] == airline.DOMAIN.toolbox.names()


def test_mock_server_command_serves_until_stopped() -> None:
    import signal
    import subprocess
    import sys
    import urllib.request

    proc = subprocess.Popen(
        [sys.executable, "-m", "writ_async", "mock-server", "--port", "0", "--seed", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("mock server listening on http://127.0.0.1:")
        url = line.split()[-1]
        with urllib.request.urlopen(url.removesuffix("/v1") + "/health", timeout=10) as resp:
            assert resp.status == 200
        with urllib.request.urlopen(url + "/models", timeout=10) as resp:
            assert b'"object":"list"' in resp.read()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    assert proc.returncode == 0


def test_mock_server_bad_override_is_a_clear_error(capsys) -> None:
    assert main(["mock-server", "--ttft-ms", "-5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("writ: error:") and "ttft_ms" in err
