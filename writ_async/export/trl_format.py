"""The SFT export as Hugging Face TRL reads it: ``export/sft_trl.jsonl``.

``sft_openai.jsonl`` keeps OpenAI's fine-tuning wire format, in which a tool call's
``function.arguments`` is a JSON *text*; OpenAI's own API wants it so. The chat templates
that transformers and TRL apply want it as an *object*: Llama 3.x templates render it with
``arguments | tojson`` (a text would be quoted twice), Qwen 3.6's iterates
``arguments | items`` (a text fails), only some test ``is string``. So a second file, one
row per row of ``sft_openai.jsonl`` in the same order, holds the same rows with every
tool call's arguments decoded; nothing else differs. It is TRL's conversational language
modeling type with tools: the columns ``messages`` (``system`` / ``user`` / ``assistant``
with ``tool_calls`` / ``tool`` roles), ``tools`` (the OpenAI tools list, passed to the
template) and ``metadata`` (ignored by the trainers).

Loading: ``datasets.load_dataset("json", data_files=".../sft_trl.jsonl")`` needs
``datasets>=4.8`` (seen with 4.8.0 and 5.2.0), whose ``Json`` feature keeps each call's
arguments as written. Older releases (seen with 3.6.0; 4.6 has no ``Json``) infer one struct
for the arguments of all tools: every call then carries every argument name of every
tool (``None`` where absent), and dates such as ``"2024-05-17"`` come back as
timestamps, which a template renders wrongly. ``sft_openai.jsonl`` (arguments as text)
loads with those releases too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from writ_async.engine.rundir import atomic_write
from writ_async.errors import DataError
from writ_async.export.sft import OPENAI_FILE

TRL_FILE = "sft_trl.jsonl"

_encoder = msgspec.json.Encoder()


def trl_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI chat message with its tool calls' arguments as objects."""
    out = dict(message)
    calls = message.get("tool_calls")
    if calls:
        out["tool_calls"] = [
            {**call, "function": {**call["function"],
                                  "arguments": _arguments(call["function"].get("arguments"))}}
            for call in calls
        ]
    return out


def _arguments(arguments: Any) -> Any:
    if not isinstance(arguments, str):
        return arguments
    return json.loads(arguments) if arguments else {}


def trl_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """An ``sft_openai.jsonl`` row as a TRL row (arguments decoded, all else kept)."""
    return {**row, "messages": [trl_message(m) for m in row["messages"]]}


def write_trl_export(export_dir: Path | str) -> Path:
    """``export_dir/sft_trl.jsonl`` from ``export_dir/sft_openai.jsonl``, replaced
    atomically; same rows in the same order, so same export, same bytes."""
    export_dir = Path(export_dir)
    source = export_dir / OPENAI_FILE
    try:
        lines = source.read_bytes().splitlines()
    except OSError as exc:
        raise DataError(source, f"cannot read export: {exc.strerror or exc}") from None
    out = bytearray()
    for line in lines:
        if line.strip():
            out += _encoder.encode(trl_row(json.loads(line))) + b"\n"
    path = export_dir / TRL_FILE
    atomic_write(path, bytes(out))
    return path
