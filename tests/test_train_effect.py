"""benchmarks/train_effect/ (issue 17), the CPU side: the three arms synthesized by the real
CLI on tau2's databases, the chat rendering with its loss mask, and the evaluation harness
against a real mock server on loopback."""

from __future__ import annotations

import gzip
import json
import re
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, require, tau2_dir

TRAIN_EFFECT = REPO / "benchmarks" / "train_effect"
sys.path.insert(0, str(TRAIN_EFFECT))

import render  # noqa: E402

PER_ARM = 4  # two rows per domain


def fake_encode(text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """A tiny tokenizer: markers atomic, then words, single spaces/newlines, punctuation.
    Ids are stable hashes of the piece (the mask is what is tested, not the ids)."""
    pieces = list(re.finditer(r"<[a-z_/]+>|\w+|\s|[^\w\s]", text))
    return ([sum(map(ord, m.group())) for m in pieces], [m.span() for m in pieces])


def trained_text(text: str, example_offsets: list[tuple[int, int]], mask: list[int]) -> str:
    return "".join(text[a:b] for (a, b), m in zip(example_offsets, mask, strict=True) if m)


TOOLS = [
    {"type": "function", "function": {
        "name": "get_user_details", "description": "Get the details of a user.",
        "parameters": {"type": "object", "properties": {"user_id": {"type": "string"}},
                       "required": ["user_id"]}}},
    {"type": "function", "function": {
        "name": "cancel_reservation", "description": "Cancel a reservation.",
        "parameters": {"type": "object",
                       "properties": {"reservation_id": {"type": "string"}}}}},
]
ROW: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": "SYSTEM POLICY TEXT"},
        {"role": "assistant", "content": "Hi! How can I help you today?"},
        {"role": "user", "content": "USER ASKS about mia_li_3668"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {
                "name": "get_user_details", "arguments": {"user_id": "mia_li_3668"}}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "TOOL OUTPUT {\"a\": 1}"},
        {"role": "assistant", "content": "Your reservation is ABC123."},
        {"role": "user", "content": "THANKS ###STOP###"},
    ],
    "tools": TOOLS,
}
CALL = ('<tool_call>{"name": "get_user_details", "arguments": {"user_id": "mia_li_3668"}}'
        "</tool_call>")


# -- render and loss masks ----------------------------------------------------------------


def test_loss_mask_covers_assistant_turns_only() -> None:
    rendered = render.render_row(ROW)
    ids, offsets = fake_encode(rendered.text)
    example = render.encode_row(ROW, fake_encode)
    assert example.input_ids == ids
    trained = trained_text(rendered.text, offsets, example.loss_mask)
    # exactly the three assistant turns, each through its end-of-turn marker
    assert trained == ("Hi! How can I help you today?" + render.END + CALL + render.END
                       + "Your reservation is ABC123." + render.END)
    untrained = trained_text(rendered.text, offsets, [1 - m for m in example.loss_mask])
    for text in ("SYSTEM POLICY TEXT", "USER ASKS", "TOOL OUTPUT", "THANKS", "get_user_details",
                 "<start_of_turn>model"):
        assert text.replace(" ", "") in untrained.replace(" ", "")
    assert "mia_li_3668" in untrained  # the user's own mention stays untrained
    assert example.trained_tokens == sum(example.loss_mask) > 0


def test_tool_calls_are_rendered_as_tagged_json() -> None:
    text = render.render_row(ROW).text
    assert f"{render.START}model\n{CALL}{render.END}\n" in text
    payload = json.loads(CALL[len(render.CALL_OPEN):-len(render.CALL_CLOSE)])
    assert payload == {"name": "get_user_details", "arguments": {"user_id": "mia_li_3668"}}
    # tool results come back in a tool turn, text and calls of one turn one per line
    assert f"{render.START}tool\nTOOL OUTPUT {{\"a\": 1}}{render.END}\n" in text
    both = {"role": "assistant", "content": "Looking.", "tool_calls": [
        {"function": {"name": "f", "arguments": '{"x":1}'}},
        {"function": {"name": "g", "arguments": {"y": "é"}}}]}
    assert render.assistant_body(both) == ('Looking.\n<tool_call>{"name": "f", "arguments": '
                                           '{"x":1}}</tool_call>\n<tool_call>{"name": "g", '
                                           '"arguments": {"y": "é"}}</tool_call>')


def test_tools_are_rendered_in_the_system_turn() -> None:
    text = render.render_row(ROW).text
    system = text[:text.index(render.END)]
    assert system.startswith(f"{render.BOS}{render.START}system\nSYSTEM POLICY TEXT\n\n")
    assert render.TOOLS_HEADER in system
    for tool in TOOLS:
        assert "\n" + json.dumps(tool, ensure_ascii=False) in system
    plain = render.render([{"role": "user", "content": "hi"}]).text
    assert render.TOOLS_HEADER not in plain and f"{render.START}system" not in plain
    only_tools = render.render([{"role": "user", "content": "hi"}], TOOLS).text
    assert only_tools.startswith(f"{render.BOS}{render.START}system\n{render.TOOLS_HEADER}\n")


def test_generation_prompt_content_parts_and_truncation() -> None:
    messages = ROW["messages"][:3]
    prompt = render.render(messages, TOOLS, add_generation_prompt=True).text
    assert prompt.endswith(f"{render.END}\n{render.START}model\n")
    parts = [*messages[:2], {"role": "user", "content": [
        {"type": "text", "text": "USER ASKS "}, {"type": "text", "text": "about mia_li_3668"}]}]
    assert render.render(parts, TOOLS).text == render.render(messages, TOOLS).text
    full = render.encode_row(ROW, fake_encode)
    cut = render.encode_row(ROW, fake_encode, max_tokens=40)
    assert cut.truncated and not full.truncated
    assert cut.input_ids == full.input_ids[:40] and cut.loss_mask == full.loss_mask[:40]
    with pytest.raises(render.RenderError):
        render.render([{"role": "narrator", "content": "x"}])


def test_batched_encoding_gives_each_rows_example() -> None:
    """train.encode_rows (one batched tokenizer call) makes the same examples as
    render.encode_row one row at a time."""
    import train

    class FakeTokenizer:
        bos_token = render.BOS

        def __call__(self, texts: list[str], **_: Any) -> dict[str, list[Any]]:
            encoded = [fake_encode(t) for t in texts]
            return {"input_ids": [ids for ids, _ in encoded],
                    "offset_mapping": [offsets for _, offsets in encoded]}

    short = {**ROW, "messages": ROW["messages"][:4]}
    cut = len(render.encode_row(ROW, fake_encode).input_ids) - 3
    batched = train.encode_rows(FakeTokenizer(), [ROW, short], max_tokens=cut)
    assert batched == [render.encode_row(ROW, fake_encode, max_tokens=cut),
                       render.encode_row(short, fake_encode, max_tokens=cut)]
    assert batched[0].truncated and not batched[1].truncated
    assert all(e.trained_tokens > 0 for e in batched)


def test_token_mask_rules() -> None:
    # zero-width tokens never trained; a token is trained when it starts inside a span
    assert render.token_mask([(0, 0), (0, 2), (2, 4), (4, 6), (6, 8)], [(2, 6)]) == [
        0, 0, 1, 1, 0]
    assert render.token_mask([(0, 3), (3, 5)], [(1, 4)]) == [0, 1]


def jinja_like_transformers() -> Any:
    """transformers' chat-template environment (chat_template_utils): sandboxed Jinja,
    trim_blocks and lstrip_blocks, its own ``tojson``."""
    sandbox = pytest.importorskip("jinja2.sandbox", reason="jinja2 not installed "
                                  "(pip install -e '.[train]' brings it)")
    env = sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False, **kw)

    def raise_exception(message: str) -> None:
        raise ValueError(message)

    env.globals["raise_exception"] = raise_exception
    return env.from_string(render.CHAT_TEMPLATE)


def test_chat_template_renders_what_render_renders() -> None:
    template = jinja_like_transformers()
    for gen in (False, True):
        ours = render.render_row(ROW, add_generation_prompt=gen).text
        theirs = template.render(messages=ROW["messages"], tools=ROW["tools"],
                                 add_generation_prompt=gen, bos_token=render.BOS)
        assert theirs == ours


def test_response_template_parses_tool_calls() -> None:
    parsing = pytest.importorskip("transformers.utils.chat_parsing.response_parser",
                                  reason="transformers>=5.17 not installed")
    prompt = render.render(ROW["messages"][:3], TOOLS, add_generation_prompt=True).text
    parsed = parsing.parse_response(CALL + render.END, render.RESPONSE_TEMPLATE, prefix=prompt)
    assert parsed["tool_calls"] == [{"type": "function", "function": {
        "name": "get_user_details", "arguments": {"user_id": "mia_li_3668"}}}]
    text = parsing.parse_response("Sure." + render.END, render.RESPONSE_TEMPLATE, prefix=prompt)
    assert text == {"role": "assistant", "content": "Sure."}


# -- arms ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def arms_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tau2 = require(tau2_dir(), "tau2-bench data")
    out = tmp_path_factory.mktemp("train_effect")
    done = subprocess.run(
        [sys.executable, str(TRAIN_EFFECT / "arms.py"), "--tau2", str(tau2), "--per-arm",
         str(PER_ARM), "--heldout", "2", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out


def rows_of(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_arms_have_the_same_budget_and_their_own_mix(arms_out: Path) -> None:
    manifest = json.loads((arms_out / "manifest.json").read_text())
    rows = {arm: rows_of(arms_out / "arms" / f"{arm}.jsonl") for arm in
            ("write_only", "writ_mix", "writ_mix_users")}
    for arm, got in rows.items():
        assert len(got) == PER_ARM
        assert manifest["arms"][arm]["rows"] == PER_ARM
        assert manifest["arms"][arm]["by_domain"] == {"airline": 2, "retail": 2}
        assert rows_of(arms_out / "carry" / "arms" / f"{arm}.jsonl.gz") == got
        assert all(r["messages"] and r["tools"] for r in got)
        assert all(run["test_split_matches"] == 0 for run in manifest["arms"][arm]["runs"])
    assert {r["metadata"]["trajectory_type"] for r in rows["write_only"]} == {"write_intensive"}
    assert "read_heavy" in {r["metadata"]["trajectory_type"] for r in rows["writ_mix"]}
    assert all(not r["metadata"]["behaviours"] for r in rows["writ_mix"])
    assert all(r["metadata"]["behaviours"] for r in rows["writ_mix_users"])
    # same seed, same mix: the users arm tells the very tasks of the mix arm
    tasks = {arm: [r["metadata"]["task_id"] for r in got] for arm, got in rows.items()}
    assert tasks["writ_mix_users"] == tasks["writ_mix"]
    # tau2-bench's own data: the system prompt holds tau2's policy
    policy = (tau2_dir() / "airline" / "policy.md").read_text().strip().splitlines()[0]
    airline = next(r for r in rows["writ_mix"] if r["metadata"]["domain"] == "airline")
    assert policy in airline["messages"][0]["content"]


def test_heldout_tasks_are_read_heavy_and_unseen(arms_out: Path) -> None:
    for domain in ("airline", "retail"):
        heldout = json.loads((arms_out / "carry" / "heldout" / f"{domain}_read_heavy.json")
                             .read_text())
        assert len(heldout) == 2
        assert all("-r-" in t["id"] for t in heldout)
        gold = {json.dumps(t["evaluation_criteria"]["actions"], sort_keys=True)
                for t in heldout}
        for run in (arms_out / "synth").glob(f"*_{domain}"):
            trained = json.loads((run / "tasks.json").read_text())
            seen = {json.dumps(t["evaluation_criteria"]["actions"], sort_keys=True)
                    for t in trained}
            assert not gold & seen
        for name in ("db.json", "tasks.json", "split_tasks.json", "policy.md", "tools.json"):
            assert (arms_out / "carry" / "tau2" / domain / name).is_file()


def test_real_rows_render_with_every_assistant_turn_trained(arms_out: Path) -> None:
    for row in rows_of(arms_out / "arms" / "writ_mix_users.jsonl"):
        rendered = render.render_row(row)
        example = render.encode_row(row, fake_encode)
        _, offsets = fake_encode(rendered.text)
        trained = trained_text(rendered.text, offsets, example.loss_mask)
        for message in row["messages"]:
            if message["role"] == "assistant":
                assert render.assistant_body(message) in trained
            elif message["role"] == "tool" and len(message["content"]) > 40:
                assert message["content"] not in trained


# -- evaluate -----------------------------------------------------------------------------


@pytest.fixture
def mock_url() -> Iterator[str]:
    yield from _serve_mock()


def _serve_mock(*flags: str) -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-m", "writ_async", "mock-server", "--port", "0",
                             *flags], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"http://\S+", line)
        assert match, line
        yield match.group()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def slow_mock_url() -> Iterator[str]:
    """A mock whose every answer takes a second: an evaluation cannot finish in a few."""
    yield from _serve_mock("--ttft-ms", "1000")


def evaluate(arms_out: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = arms_out / "eval"
    done = subprocess.run(
        [sys.executable, str(TRAIN_EFFECT / "evaluate.py"), "--data", str(arms_out / "carry"),
         "--out", str(out), "--limit", "2", "--max-steps", "20", "--concurrency", "4", *args],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    label = args[args.index("--label") + 1]
    path = out / label / "summary.json"
    return done, json.loads(path.read_text()) if path.exists() else {}


def test_evaluate_against_the_mock_endpoint(arms_out: Path, mock_url: str) -> None:
    done, summary = evaluate(arms_out, "--label", "mock", "--agent-url", mock_url,
                             "--agent-model", "writ-mock", "--parallel")
    assert done.returncode == 0, done.stderr
    assert set(summary["sets"]) == {"airline/test", "retail/test", "airline/read_heavy",
                                    "retail/read_heavy"}
    for part in summary["sets"].values():
        assert part["episodes"] == 2 and part["infrastructure_errors"] == 0
        assert part["model_calls"] > 0  # the agent really was the endpoint
        assert part["pass_1"] == 0.0  # the mock's plausible answers solve nothing
        assert part["agent_answers"] > 0
        assert part["replay_exit"] == 0  # every episode re-ran from its journal, the same
    assert summary["overall"]["test"]["episodes"] == 4
    assert "Pass^1" in done.stdout and "read-heavy (held out) | both" in done.stdout


@pytest.fixture
def second_mock_url() -> Iterator[str]:
    yield from _serve_mock()


def test_evaluate_spreads_one_agent_over_several_servers(
        arms_out: Path, mock_url: str, second_mock_url: str) -> None:
    """Servers that answer one request at a time serve one model together: every one of
    them takes calls (`--agent-url` again, or comma-separated)."""
    done, summary = evaluate(arms_out, "--label", "two", "--agent-url",
                             f"{mock_url},{second_mock_url}", "--agent-model", "writ-mock",
                             "--sets", "test", "--domains", "airline", "--concurrency", "2")
    assert done.returncode == 0, done.stderr
    assert summary["sets"]["airline/test"]["episodes"] == 2
    assert mock_url in summary["agent"] and second_mock_url in summary["agent"]
    for url in (mock_url, second_mock_url):
        stats = json.loads(urllib.request.urlopen(url.removesuffix("/v1") + "/stats").read())
        assert stats["completions"] > 0, url


def test_evaluate_reads_the_grader_rewards(arms_out: Path) -> None:
    # the scripted agent behind the mock solves tau2's and writ's tasks: Pass^1 is 1
    # (read-heavy tasks need up to ~50 steps: the helper's 20 is raised, the last flag wins)
    done, summary = evaluate(arms_out, "--label", "scripted", "--agent", "scripted-http",
                             "--max-steps", "200")
    assert done.returncode == 0, done.stderr
    assert {k: (v["episodes"], v["pass_1"], v["pass_1_of_tasks"], v["unfinished"])
            for k, v in summary["overall"].items()} == {
        "test": (4, 1.0, 1.0, 0), "read_heavy": (4, 1.0, 1.0, 0)}


def test_every_trial_is_an_expected_episode(arms_out: Path) -> None:
    done, summary = evaluate(arms_out, "--label", "twice", "--agent", "scripted",
                             "--sets", "test", "--domains", "retail", "--trials", "2")
    assert done.returncode == 0, done.stderr
    part = summary["sets"]["retail/test"]
    assert (part["tasks"], part["expected_episodes"], part["episodes"]) == (2, 4, 4)
    assert (part["unfinished"], part["pass_1_of_tasks"]) == (0, 1.0)
    for part in summary["sets"].values():  # the gold plan's calls, every one well formed
        assert part["tool_calls"] >= part["episodes"] and part["tool_calls_bad_arguments"] == 0
        assert part["replay_exit"] == 0


def test_evaluate_leaves_infrastructure_errors_out(arms_out: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done, summary = evaluate(arms_out, "--label", "dead", "--agent-url",
                             f"http://127.0.0.1:{port}/v1", "--sets", "test",
                             "--domains", "airline", "--timeout", "5")
    assert done.returncode == 0, done.stderr
    part = summary["sets"]["airline/test"]
    assert (part["episodes"], part["infrastructure_errors"], part["pass_1"]) == (0, 2, None)
    # the stricter reading counts the lost episodes as failures
    assert (part["unfinished"], part["pass_1_of_tasks"]) == (0, 0.0)
    assert part["exit"] != 0  # writ said no episode could run
    assert "n/a" in done.stdout


def test_evaluate_stops_at_its_deadline_and_scores_what_finished(
        arms_out: Path, slow_mock_url: str) -> None:
    done, summary = evaluate(arms_out, "--label", "late", "--agent-url", slow_mock_url,
                             "--agent-model", "writ-mock", "--sets", "test", "--domains",
                             "airline", "--deadline", "4", "--concurrency", "1")
    assert done.returncode == 0, done.stderr
    part = summary["sets"]["airline/test"]
    assert part["stopped_at_deadline"] is True
    assert part["exit"] == 130  # writ's exit for a run stopped by Ctrl-C
    # the episode in flight finished and is scored; the second was never admitted
    assert (part["tasks"], part["episodes"], part["unfinished"]) == (2, 1, 1)
    assert part["pass_1_of_tasks"] == 0.0
    assert part["replay_exit"] == 1  # what finished verifies; the run is incomplete
