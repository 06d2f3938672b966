"""Per-role and per-endpoint request parameters, and reasoning models' thinking: read
from each field servers use, kept on the message, sent back or not, exported as
configured. Everything over loopback against the real mock server (its vLLM reasoning
and OpenAI parameter-rule quirks), the config through real files, runs through the CLI."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from writ_async.config import Config, load_config
from writ_async.conversation.messages import AssistantMessage, Message, UserMessage
from writ_async.errors import ConfigError, MalformedResponse, PermanentError
from writ_async.llm.protocol import ChatRequest, ModelParams, apply_params, encode_request
from writ_async.llm.protocol import Message as WireMessage
from writ_async.llm.setup import open_pool
from writ_async.mock.policies import PlausiblePolicy
from writ_async.mock.quirks import reasoning_text
from writ_async.participants.llm import LLMAgent, LLMUser

REPO = Path(__file__).resolve().parents[1]
TOOL = {"type": "function", "function": {
    "name": "get_user_details", "description": "Look a user up.",
    "parameters": {"type": "object", "properties": {"user_id": {"type": "string"}},
                   "required": ["user_id"]}}}


def _config(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


# -- config --------------------------------------------------------------------------------

BAD = {
    "unknown key": ("[models.params.agent]\ntemprature = 0.5\n",
                    "models.params.agent.temprature", "known keys: temperature"),
    "wrong type": ("[models.params.agent]\ntemperature = \"hot\"\n",
                   "models.params.agent.temperature", "expected `float"),
    "unknown role": ("[models.params.agnet]\ntemperature = 0.5\n",
                     "models.params.agnet", "not a role"),
    "endpoint key": ("[models.endpoints.mock.params]\nfoo = 1\n",
                     "models.endpoints.mock.params.foo", "unknown key `foo`"),
    "both limits": ("[models.endpoints.mock.params]\nmax_tokens = 5\n"
                    "max_completion_tokens = 5\n", "models.endpoints.mock.params",
                    "not both"),
    "shadowing extra": ("[models.params.agent]\nextra_body = {temperature = 1}\n",
                        "models.params.agent", "extra_body key `temperature`"),
    "bad omit": ("[models.params.agent]\nomit = [\"temprature\"]\n",
                 "models.params.agent.omit[0]", "expected one of: temperature"),
    "bad reasoning": ("[models.params.agent]\nreasoning = \"drop\"\n",
                      "models.params.agent.reasoning", "expected one of: strip, keep, inline"),
    "bad effort": ("[models.params.agent]\nreasoning_effort = \"extreme\"\n",
                   "models.params.agent.reasoning_effort", "expected one of: none, minimal"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_parameter_is_a_config_error_naming_the_key(case: str, tmp_path: Path) -> None:
    text, key, words = BAD[case]
    with pytest.raises(ConfigError) as caught:
        _config(tmp_path, text)
    assert caught.value.key_path == key
    assert words in str(caught.value)


def test_parameters_decode_typed(tmp_path: Path) -> None:
    config = _config(tmp_path, """
[models.params.agent]
temperature = 0.7
top_p = 0.9
seed = 11
max_completion_tokens = 256
reasoning_effort = "low"
tool_choice = "required"
parallel_tool_calls = false
reasoning = "keep"
extra_body = { chat_template_kwargs = { enable_thinking = false } }
""")
    params = config.models.params["agent"]
    assert (params.temperature, params.top_p, params.seed) == (0.7, 0.9, 11)
    assert params.max_completion_tokens == 256 and params.reasoning == "keep"
    assert params.extra_body == {"chat_template_kwargs": {"enable_thinking": False}}


# -- a mock that records what it was sent ---------------------------------------------------


class Recording:
    """The mock's default answers, keeping every request the server decoded."""

    def __init__(self) -> None:
        self.inner = PlausiblePolicy()
        self.requests: list[ChatRequest] = []

    def respond(self, request: ChatRequest, rng: random.Random) -> WireMessage:
        self.requests.append(request)
        return self.inner.respond(request, rng)


def _request(**fields: Any) -> ChatRequest:
    return ChatRequest(model="", messages=[WireMessage(role="user", content="Hello")],
                       **fields)


# -- OpenAI's parameter rules ---------------------------------------------------------------

RULES = """
[models.endpoints.mock]
model = "gpt-5-mock"
[mock.quirks]
openai_reasoning_models = ["gpt-5-mock"]
"""


@pytest.mark.asyncio
async def test_a_reasoning_model_refuses_max_tokens_and_temperature(tmp_path: Path) -> None:
    config = _config(tmp_path, RULES)
    async with open_pool(config.models, mock_config=config.mock) as pool:
        with pytest.raises(PermanentError) as caught:
            await pool.complete("agent", _request(max_tokens=64))
        assert caught.value.status == 400 and "'max_tokens' is not supported" in str(caught.value)
        with pytest.raises(PermanentError) as caught:
            await pool.complete("agent", _request(temperature=0.0))
        assert "'temperature' does not support 0.0" in str(caught.value)


@pytest.mark.asyncio
async def test_max_completion_tokens_and_omit_make_it_answer(tmp_path: Path) -> None:
    config = _config(tmp_path, RULES + """
[models.endpoints.mock.params]
max_completion_tokens = 3
omit = ["temperature"]
""")
    policy = Recording()
    async with open_pool(config.models, mock_config=config.mock, mock_policy=policy) as pool:
        # what a participant sends (simulate's temperature and max_tokens) goes through
        with pytest.raises(MalformedResponse) as caught:
            await pool.complete("agent", _request(max_tokens=64, temperature=0.0))
    sent = policy.requests[0]
    assert (sent.max_tokens, sent.temperature, sent.max_completion_tokens) == (None, None, 3)
    # answered, and the mock honours the limit under its new name: cut at 3 tokens
    assert caught.value.reason == "length"


@pytest.mark.asyncio
async def test_role_and_endpoint_parameters_reach_the_server(tmp_path: Path) -> None:
    config = _config(tmp_path, """
[models.params.agent]
temperature = 0.7
top_p = 0.5
seed = 9
reasoning_effort = "low"
tool_choice = "required"
parallel_tool_calls = false
extra_body = { chat_template_kwargs = { enable_thinking = false, x = 1 } }
[models.endpoints.mock.params]
temperature = 0.2
extra_body = { chat_template_kwargs = { x = 2 }, top_k = 20 }
""")
    policy = Recording()
    async with open_pool(config.models, mock_config=config.mock, mock_policy=policy) as pool:
        await pool.complete("agent", _request(tools=[TOOL], tool_choice="auto", seed=1))
        await pool.complete("agent", _request())  # no tools: no tool choice either
        await pool.complete("user", _request(temperature=0.0))  # another role: untouched
    with_tools, without, user = policy.requests
    assert (with_tools.temperature, with_tools.top_p, with_tools.seed) == (0.2, 0.5, 9)
    assert (with_tools.reasoning_effort, with_tools.tool_choice,
            with_tools.parallel_tool_calls) == ("low", "required", False)
    assert (without.tool_choice, without.parallel_tool_calls) == (None, None)
    # the endpoint's parameters hold for every role on it, the agent's only for the agent
    assert (user.temperature, user.top_p, user.reasoning_effort) == (0.2, None, None)
    merged = pool.params_for("agent", pool.roles["agent"][0])
    assert merged is not None and merged.extra_body == {
        "chat_template_kwargs": {"enable_thinking": False, "x": 2}, "top_k": 20}


def test_extra_body_is_spliced_into_the_top_level() -> None:
    request = apply_params(_request(), ModelParams(extra_body={"top_k": 20}))
    assert json.loads(encode_request(request)) == {
        "model": "", "messages": [{"role": "user", "content": "Hello"}], "top_k": 20}


@pytest.mark.asyncio
async def test_extra_body_turns_the_mock_models_thinking_off(tmp_path: Path) -> None:
    quirk = "[mock.quirks]\nreasoning = \"reasoning\"\n"
    off = ("[models.params.agent]\n"
           "extra_body = { chat_template_kwargs = { enable_thinking = false } }\n")
    answers = []
    for text in (quirk, quirk + off):
        config = _config(tmp_path, text)
        async with open_pool(config.models, mock_config=config.mock) as pool:
            answers.append((await pool.complete("agent", _request())).completion)
    thinking, quiet = (c.choices[0].message for c in answers)
    assert thinking.reasoning and quiet.reasoning is None


# -- reasoning in answers -------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("mode", ["reasoning", "reasoning_content", "think"])
@pytest.mark.asyncio
async def test_reasoning_is_read_from_each_field(mode: str, stream: bool,
                                                 tmp_path: Path) -> None:
    config = _config(tmp_path, f"""
[models.endpoints.mock]
stream = {str(stream).lower()}
[mock.quirks]
reasoning = "{mode}"
""")
    history: list[Message] = [AssistantMessage(content="Hi! How can I help you today?"),
                              UserMessage(content="My user id is mia_li_3668.")]
    async with open_pool(config.models, mock_config=config.mock) as pool:
        agent = LLMAgent(pool, "agent", "You help.", [TOOL], seed=1, tag="t")
        user = LLMUser(pool, "user", "You are a customer.", seed=1, tag="u")
        turn = await agent.reply(history)
        said = await user.reply(history)
    message = turn.message
    assert isinstance(message, AssistantMessage)
    assert message.reasoning and message.reasoning.startswith("The conversation has 2 turn")
    assert "<think>" not in (message.content or "")
    # the user simulator's thinking is not what it says to the agent
    assert said.message.reasoning and "<think>" not in said.message.content


@pytest.mark.parametrize("policy_name, expected", [
    ("strip", (None, "Let me check.")),
    ("keep", ("I need the id.", "Let me check.")),
    ("inline", (None, "<think>\nI need the id.\n</think>\n\nLet me check.")),
])
@pytest.mark.asyncio
async def test_reasoning_is_fed_back_or_stripped_per_role(
        policy_name: str, expected: tuple[str | None, str], tmp_path: Path) -> None:
    config = _config(tmp_path, f"[models.params.agent]\nreasoning = \"{policy_name}\"\n")
    recording = Recording()
    history: list[Message] = [
        UserMessage(content="Hello"),
        AssistantMessage(content="Let me check.", reasoning="I need the id."),
        UserMessage(content="It is mia_li_3668."),
    ]
    async with open_pool(config.models, mock_config=config.mock, mock_policy=recording) as pool:
        await LLMAgent(pool, "agent", "You help.", [TOOL], seed=1, tag="t").reply(history)
        # the user role has no policy: the default strips (its view has the agent's words
        # as user text and no reasoning of the agent's at all)
        await LLMUser(pool, "user", "You are a customer.", seed=1, tag="u").reply(history)
    sent = recording.requests[0].messages[2]
    assert sent.role == "assistant"
    assert (sent.reasoning_content, sent.content) == expected
    assert all(m.reasoning_content is None for m in recording.requests[1].messages)


def test_a_message_without_reasoning_encodes_as_before() -> None:
    # the journal's bytes for old-shaped messages must not change, and old records decode
    plain = AssistantMessage(content="Hi", turn_idx=3)
    encoded = msgspec.msgpack.encode(plain)
    assert b"reasoning" not in encoded
    old = msgspec.msgpack.encode({"role": "assistant", "content": "Hi", "tool_calls": None,
                                  "turn_idx": 3, "usage": None})
    assert msgspec.msgpack.decode(old, type=AssistantMessage) == plain
    thinking = AssistantMessage(content="Hi", reasoning="because")
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(thinking),
                                  type=AssistantMessage) == thinking


# -- a whole run: journal, replay, export ---------------------------------------------------

RUN = """
[simulate]
agent = "agent"
user = "scripted"
task_count = 3
max_steps = 20

[models.endpoints.mock]
stream = true

[models.params.agent]
reasoning = "keep"

[mock.quirks]
reasoning = "reasoning"

[export]
min_reward = 0.0
terminations = ["user_stop", "agent_stop", "max_steps", "too_many_errors"]
require_evidence = false
"""


def _writ(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "writ_async", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("export_reasoning", [False, True])
def test_a_run_journals_replays_and_exports_reasoning(export_reasoning: bool,
                                                      tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(RUN + f"reasoning = {str(export_reasoning).lower()}\n", encoding="utf-8")
    run = tmp_path / "run"
    done = _writ("simulate", "--config", str(config), "--out", str(run))
    assert done.returncode == 0, done.stderr
    replayed = _writ("replay", str(run), "--all")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    trl = _rows(run / "export" / "sft_trl.jsonl")
    assert trl, "the config keeps every episode"
    assistant = [m for row in trl for m in row["messages"] if m["role"] == "assistant"]
    thoughts = [m.get("reasoning_content") for m in assistant]
    gpt = [t["value"] for row in _rows(run / "export" / "sft_sharegpt.jsonl")
           for t in row["conversations"] if t["from"] == "gpt"]
    if export_reasoning:
        # every model-written turn has its thinking; the fixed greeting has none
        assert thoughts[0] is None and all(t and t.startswith("The conversation has")
                                           for t in thoughts[1:])
        assert gpt and all(v.startswith("<think>\nThe conversation has") for v in gpt)
        openai = _rows(run / "export" / "sft_openai.jsonl")
        assert [m.get("reasoning_content") for row in openai for m in row["messages"]
                if m["role"] == "assistant"] == thoughts
    else:
        assert set(thoughts) == {None}
        assert not any("<think>" in v for v in gpt)
        assert b"reasoning" not in (run / "export" / "sft_openai.jsonl").read_bytes()


def test_the_mock_reasoning_text_is_a_pure_function() -> None:
    # turning the quirk on draws nothing from the mock's rng, so answers stay the same
    chat = _request()
    answer = WireMessage(role="assistant", content="x")
    assert reasoning_text(chat, answer) == reasoning_text(chat, answer)


def test_gpt5_style_endpoint_through_the_cli(tmp_path: Path) -> None:
    base = RULES + """
[simulate]
agent = "agent"
user = "scripted"
task_count = 2
max_steps = 8
max_tokens = 64
"""
    refused = tmp_path / "refused.toml"
    refused.write_text(base, encoding="utf-8")
    done = _writ("simulate", "--config", str(refused), "--out", str(tmp_path / "a"))
    assert done.returncode == 1
    assert "'max_tokens' is not supported" in done.stdout + done.stderr
    fixed = tmp_path / "fixed.toml"
    fixed.write_text(base + """
[models.endpoints.mock.params]
max_completion_tokens = 64
omit = ["temperature"]
""", encoding="utf-8")
    done = _writ("simulate", "--config", str(fixed), "--out", str(tmp_path / "b"))
    assert done.returncode == 0, done.stderr
