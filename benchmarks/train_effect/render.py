"""One TRL row (``messages`` + ``tools``) as Gemma-3-style chat text, with a loss mask.

The format (the same one ``CHAT_TEMPLATE`` renders, so that the model is served the text it
was trained on)::

    <bos><start_of_turn>system
    {system prompt}

    # Tools
    ...TOOLS_HEADER...
    {"type": "function", "function": {...}}        one line per tool
    <end_of_turn>
    <start_of_turn>model
    Hi! How can I help you today?<end_of_turn>
    <start_of_turn>user
    ...<end_of_turn>
    <start_of_turn>model
    <tool_call>{"name": "get_user_details", "arguments": {"user_id": "u1"}}</tool_call><end_of_turn>
    <start_of_turn>tool
    {tool output}<end_of_turn>

Gemma 3 has no system or tool role; fine-tuning teaches the two extra turn names, and the
base model is evaluated with the same template. Only assistant turns are trained: the span
from just after ``<start_of_turn>model\\n`` through its ``<end_of_turn>`` (so the model
learns to stop), never the header (the serving side writes it as the generation prompt).

JSON is written as transformers' ``tojson`` filter writes it (``json.dumps`` with
``ensure_ascii=False`` and the default separators), so Python and the template agree byte
for byte. The tokenizer is injected (``Encode``): the tests use a small fake one and
``train.py`` wraps a transformers fast tokenizer's offsets mapping.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

BOS = "<bos>"
EOS = "<eos>"
START = "<start_of_turn>"
END = "<end_of_turn>"
CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
TURN_NAMES = {"system": "system", "user": "user", "assistant": "model", "tool": "tool"}
GENERATION_PROMPT = f"{START}model\n"
SPECIAL_TOKENS = (BOS, EOS, START, END)
TOOLS_HEADER = (
    "# Tools\n\n"
    "To call a tool, answer with exactly one "
    '<tool_call>{"name": TOOL_NAME, "arguments": {ARGUMENT: VALUE}}</tool_call> '
    "and nothing else; its result comes back in a tool turn. The tools, one JSON object a line:"
)

# (token ids, (start, end) character offsets of each token in the text)
Encode = Callable[[str], tuple[Sequence[int], Sequence[tuple[int, int]]]]


class RenderError(ValueError):
    """A row this format cannot render (unknown role, malformed tool call)."""


def _dumps(value: Any) -> str:
    # transformers' chat-template ``tojson``: json.dumps(x, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False)


def content_text(content: Any) -> str:
    """A message's text: a string, None, or OpenAI content parts (the text parts joined,
    as transformers serve hands them to the template)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(str(p.get("text", "")) for p in content
                       if isinstance(p, Mapping) and p.get("type") == "text")
    raise RenderError(f"message content of type {type(content).__name__}")


def tool_call_text(call: Mapping[str, Any]) -> str:
    """``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``. Arguments given as a
    JSON text (OpenAI wire form) are written as they are, as the template does."""
    function = call.get("function", call)
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise RenderError(f"tool call without a function name: {call!r}")
    arguments = function.get("arguments")
    if arguments is None:
        arguments = {}
    if isinstance(arguments, str):
        body = '{"name": ' + _dumps(function["name"]) + ', "arguments": ' + arguments + "}"
    else:
        body = _dumps({"name": function["name"], "arguments": arguments})
    return CALL_OPEN + body + CALL_CLOSE


def assistant_body(message: Mapping[str, Any]) -> str:
    """An assistant turn's text: its content, then each tool call, one per line."""
    parts = [content_text(message.get("content"))]
    parts += [tool_call_text(c) for c in message.get("tool_calls") or ()]
    return "\n".join(p for p in parts if p)


def system_body(system: Mapping[str, Any] | None, tools: Sequence[Any] | None) -> str:
    text = content_text(system.get("content")) if system is not None else ""
    if tools:
        text += ("\n\n" if system is not None else "") + TOOLS_HEADER
        text += "".join("\n" + _dumps(tool) for tool in tools)
    return text


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str
    trained: tuple[tuple[int, int], ...]  # character spans of assistant turns (loss 1)


def render(messages: Sequence[Mapping[str, Any]], tools: Sequence[Any] | None = None, *,
           add_generation_prompt: bool = False, bos: str = BOS) -> Rendered:
    """The chat text of ``messages`` and the character spans trained on."""
    out = [bos]
    size = len(bos)
    trained: list[tuple[int, int]] = []

    def emit(piece: str) -> None:
        nonlocal size
        out.append(piece)
        size += len(piece)

    rest = list(messages)
    system = rest.pop(0) if rest and rest[0].get("role") == "system" else None
    if system is not None or tools:
        emit(f"{START}system\n{system_body(system, tools)}{END}\n")
    for message in rest:
        role = message.get("role")
        if role not in TURN_NAMES:
            raise RenderError(f"unknown role {role!r}")
        emit(f"{START}{TURN_NAMES[role]}\n")
        if role == "assistant":
            begin = size
            emit(assistant_body(message) + END)
            trained.append((begin, size))
            emit("\n")
        else:
            emit(content_text(message.get("content")) + END + "\n")
    if add_generation_prompt:
        emit(GENERATION_PROMPT)
    return Rendered("".join(out), tuple(trained))


def render_row(row: Mapping[str, Any], **kwargs: Any) -> Rendered:
    """A row of ``export/sft_trl.jsonl`` (or ``arms/<arm>.jsonl``)."""
    return render(row["messages"], row.get("tools"), **kwargs)


def token_mask(offsets: Sequence[tuple[int, int]],
               spans: Sequence[tuple[int, int]]) -> list[int]:
    """1 for each token that starts inside a trained span, else 0. Zero-width tokens
    (e.g. a BOS a tokenizer adds itself) are never trained."""
    mask = []
    spans = sorted(spans)
    i = 0
    for start, end in offsets:
        while i < len(spans) and spans[i][1] <= start:
            i += 1
        inside = i < len(spans) and spans[i][0] <= start < spans[i][1] and end > start
        mask.append(1 if inside else 0)
    return mask


@dataclass(frozen=True, slots=True)
class Example:
    input_ids: list[int]
    loss_mask: list[int]
    truncated: bool

    @property
    def trained_tokens(self) -> int:
        return sum(self.loss_mask)


def encode_row(row: Mapping[str, Any], encode: Encode, *, max_tokens: int | None = None,
               bos: str = BOS) -> Example:
    """Token ids and loss mask of one row, cut to ``max_tokens`` (the end is dropped)."""
    rendered = render_row(row, bos=bos)
    ids, offsets = encode(rendered.text)
    return example(rendered, ids, offsets, max_tokens=max_tokens)


def example(rendered: Rendered, ids: Sequence[int], offsets: Sequence[tuple[int, int]], *,
            max_tokens: int | None = None) -> Example:
    """The example of a rendered row from its tokens (``encode_row`` in two halves, so a
    caller can tokenize many rows in one batched call)."""
    if len(ids) != len(offsets):
        raise RenderError(f"tokenizer gave {len(ids)} ids but {len(offsets)} offsets")
    mask = token_mask(offsets, rendered.trained)
    ids = list(ids)
    truncated = max_tokens is not None and len(ids) > max_tokens
    if truncated:
        ids, mask = ids[:max_tokens], mask[:max_tokens]
    return Example(ids, mask, truncated)


# -- the same format for transformers: chat template and response template -----------------

# Rendered by transformers' sandboxed Jinja (trim_blocks, lstrip_blocks, its ``tojson``);
# every tag strips the whitespace around it, so all output is in the quoted strings.
CHAT_TEMPLATE = (
    "{%- macro text(content) -%}"
    "{%- if content is string -%}{{- content -}}"
    "{%- elif content -%}{%- for part in content -%}"
    "{%- if part.type == 'text' -%}{{- part.text -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
    "{{- bos_token -}}"
    "{%- if messages and messages[0].role == 'system' -%}"
    "{%- set system = messages[0] -%}{%- set rest = messages[1:] -%}"
    "{%- else -%}{%- set system = none -%}{%- set rest = messages -%}{%- endif -%}"
    "{%- if system is not none or tools -%}"
    "{{- '" + START + "system\\n' -}}"
    "{%- if system is not none -%}{{- text(system.content) -}}{%- endif -%}"
    "{%- if tools -%}"
    "{%- if system is not none -%}{{- '\\n\\n' -}}{%- endif -%}"
    "{{- " + json.dumps(TOOLS_HEADER) + " -}}"
    "{%- for tool in tools -%}{{- '\\n' + (tool | tojson) -}}{%- endfor -%}"
    "{%- endif -%}"
    "{{- '" + END + "\\n' -}}"
    "{%- endif -%}"
    "{%- for message in rest -%}"
    "{%- if message.role == 'assistant' -%}"
    "{{- '" + START + "model\\n' -}}"
    "{%- set body = text(message.content) -%}"
    "{{- body -}}"
    "{%- for call in message.tool_calls or [] -%}"
    "{%- if body or not loop.first -%}{{- '\\n' -}}{%- endif -%}"
    "{%- set fn = call.function if call.function is defined else call -%}"
    "{%- set args = fn.arguments if fn.arguments is defined and fn.arguments is not none "
    "else {} -%}"
    "{%- if args is string -%}"
    "{{- '" + CALL_OPEN + "{\"name\": ' + (fn.name | tojson) + ', \"arguments\": ' + args"
    " + '}" + CALL_CLOSE + "' -}}"
    "{%- else -%}"
    "{{- '" + CALL_OPEN + "' + ({'name': fn.name, 'arguments': args} | tojson) + '"
    + CALL_CLOSE + "' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{{- '" + END + "\\n' -}}"
    "{%- elif message.role in ['user', 'tool', 'system'] -%}"
    "{{- '" + START + "' + message.role + '\\n' + text(message.content) + '" + END + "\\n' -}}"
    "{%- else -%}{{- raise_exception('unknown role ' + message.role) -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '" + START + "model\\n' -}}{%- endif -%}"
)

# transformers' declarative response template (tokenizer.response_template), read by
# `transformers serve` to turn generated text into content and OpenAI tool_calls; the
# same shape as its Qwen fallback, with Gemma's turn markers.
RESPONSE_TEMPLATE: dict[str, Any] = {
    "defaults": {"role": "assistant"},
    "start_anchor": GENERATION_PROMPT,
    "fields": {
        "tool_calls": {
            "open_pattern": r"\s*<tool_call>",
            "close": CALL_CLOSE,
            "repeats": True,
            "content": "json",
            "transform": {"type": "function", "function": "{content}"},
        },
        "content": {
            "close_pattern": r"\s*(?:<end_of_turn>|<eos>)",
            "content": "text",
        },
    },
}
