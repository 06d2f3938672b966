"""The exports as Hugging Face datasets / TRL read them.

The first tests need nothing but writ. The others use the real libraries of the optional
``[train]`` extra (``pip install -e '.[train]'``) and skip, saying so, where they are not
installed: ``datasets.load_dataset`` on a real run's export, TRL's own format checks and
chat-template application, with chat templates that TRL ships for Llama 3.2 and Qwen 3
on a tokenizer built offline (no hub access).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from writ_async.cli import main
from writ_async.export.trl_format import TRL_FILE, trl_row


def test_trl_row_decodes_tool_call_arguments_and_keeps_everything_else() -> None:
    row = {"messages": [
        {"role": "system", "content": "S"},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "c1", "type": "function",
            "function": {"name": "get_user_details", "arguments": '{"user_id":"u_1"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "{}"}],
        "tools": [{"type": "function"}], "metadata": {"domain": "airline"}}
    out = trl_row(row)
    assert out["messages"][1]["tool_calls"][0]["function"]["arguments"] == {"user_id": "u_1"}
    assert out["messages"][0] == row["messages"][0] and out["messages"][2] == row["messages"][2]
    assert out["tools"] == row["tools"] and out["metadata"] == row["metadata"]
    # the input row is not changed
    assert row["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"user_id":"u_1"}'


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small run of the main job with preference pairs (trials that pass and fail)."""
    root = tmp_path_factory.mktemp("trl")
    config = root / "config.toml"
    config.write_text("[export]\npreference = true\n")
    out = root / "run"
    assert main(["simulate", "--config", str(config), "--task-count", "8", "--trials", "4",
                 "--mistake-rate", "0.5", "--out", str(out)]) == 0
    return out


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_sft_trl_file_is_the_openai_file_with_arguments_as_objects(run_dir: Path) -> None:
    openai = rows(run_dir / "export" / "sft_openai.jsonl")
    trl = rows(run_dir / "export" / TRL_FILE)
    assert len(trl) == len(openai) > 0
    assert trl == [trl_row(r) for r in openai]
    calls = [c for r in trl for m in r["messages"] for c in m.get("tool_calls") or ()]
    assert calls and all(isinstance(c["function"]["arguments"], dict) for c in calls)


# -- with the real libraries -------------------------------------------------------------

TEMPLATES = ("llama3_2.jinja", "qwen3_training.jinja")


def libraries() -> tuple[Any, Any, Any]:
    reason = "needs the [train] extra: pip install -e '.[train]' (datasets, trl, transformers)"
    datasets = pytest.importorskip("datasets", reason=reason)
    data_utils = pytest.importorskip("trl.data_utils", reason=reason)
    transformers = pytest.importorskip("transformers", reason=reason)
    return datasets, data_utils, transformers


def tokenizer(transformers: Any, template: str) -> Any:
    """A word-level tokenizer made here (nothing downloaded) carrying one of the chat
    templates TRL ships for real models."""
    import trl
    from tokenizers import Tokenizer, models, pre_tokenizers

    path = Path(trl.__file__).parent / "chat_templates" / template
    if not path.exists():
        pytest.skip(f"this TRL release ships no {template}")
    core = Tokenizer(models.WordLevel({"<unk>": 0, "<s>": 1, "</s>": 2}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>",
                                               eos_token="</s>", unk_token="<unk>")
    tok.chat_template = path.read_text()
    return tok


def load(datasets: Any, path: Path, cache: Path) -> Any:
    return datasets.load_dataset("json", data_files=str(path), split="train",
                                 cache_dir=str(cache))


def test_sft_trl_loads_with_datasets_as_written(run_dir: Path, tmp_path: Path) -> None:
    datasets, data_utils, _ = libraries()
    path = run_dir / "export" / TRL_FILE
    ds = load(datasets, path, tmp_path)
    assert set(ds.column_names) == {"messages", "tools", "metadata"}
    assert len(ds) == len(rows(path))
    # Arrow must not merge the arguments of different tools into one struct (every call
    # with every tool's argument names, dates as timestamps): each row reads back as written
    for loaded, written in zip(ds, rows(path), strict=True):
        assert loaded["messages"] == written["messages"]
        assert loaded["tools"] == written["tools"]
        assert data_utils.is_conversational(loaded)


@pytest.mark.parametrize("template", TEMPLATES)
def test_real_chat_templates_render_every_call_and_the_tools(run_dir: Path, tmp_path: Path,
                                                            template: str) -> None:
    datasets, data_utils, transformers = libraries()
    tok = tokenizer(transformers, template)
    ds = load(datasets, run_dir / "export" / TRL_FILE, tmp_path)
    example = ds[0]
    text = data_utils.maybe_apply_chat_template(
        {"messages": example["messages"]}, tok, tools=example["tools"])["text"]
    for message in example["messages"]:
        for call in message.get("tool_calls") or ():
            args = json.dumps(call["function"]["arguments"])
            assert args in text or json.dumps(call["function"]["arguments"],
                                              separators=(",", ":")) in text
    for tool in example["tools"]:
        assert tool["function"]["name"] in text


def test_openai_wire_arguments_are_quoted_twice_by_a_llama_template(run_dir: Path) -> None:
    """Why sft_trl.jsonl exists: the OpenAI file's arguments are JSON text, and a template
    that renders ``arguments | tojson`` quotes them a second time."""
    _, data_utils, transformers = libraries()
    tok = tokenizer(transformers, "llama3_2.jinja")
    openai = rows(run_dir / "export" / "sft_openai.jsonl")[0]
    trl = rows(run_dir / "export" / TRL_FILE)[0]
    wire = data_utils.maybe_apply_chat_template({"messages": openai["messages"]}, tok,
                                                tools=openai["tools"])["text"]
    ready = data_utils.maybe_apply_chat_template({"messages": trl["messages"]}, tok,
                                                 tools=trl["tools"])["text"]
    call = next(c for m in trl["messages"] for c in m.get("tool_calls") or ())
    first_key = next(iter(call["function"]["arguments"]))
    assert f'"{{\\"{first_key}\\"' in wire  # "{\"user_id\"...": a string, not an object
    assert f'{{"{first_key}"' in ready


@pytest.mark.parametrize("template", TEMPLATES)
def test_dpo_rows_are_trl_preference_rows(run_dir: Path, tmp_path: Path,
                                          template: str) -> None:
    datasets, data_utils, transformers = libraries()
    path = run_dir / "export" / "dpo.jsonl"
    written = rows(path)
    assert written, "the run with mistakes gave no preference pairs"
    ds = load(datasets, path, tmp_path)
    assert {"prompt", "chosen", "rejected", "tools"} <= set(ds.column_names)
    tok = tokenizer(transformers, template)
    for example in ds:
        assert data_utils.is_conversational(example)
        out = data_utils.maybe_apply_chat_template(
            {k: example[k] for k in ("prompt", "chosen", "rejected")}, tok,
            tools=example["tools"])
        assert out["chosen"] != out["rejected"]
        assert out["prompt"] and out["chosen"] and out["rejected"]
