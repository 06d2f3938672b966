"""Kept episodes as SFT training data: OpenAI chat JSONL and ShareGPT-style JSONL.

``write_exports`` filters the records (``keep``), puts the kept ones in a canonical order
(the caller's task order, then trial), drops exact duplicates and writes one row per
episode to ``sft_openai.jsonl`` and ``sft_sharegpt.jsonl``, each replaced atomically.
The same set of records gives byte-identical files whatever order they arrive in (so
at any concurrency): rows are encoded by one msgspec encoder (compact, UTF-8 unescaped,
dict keys in insertion order), every row is built field by field in a fixed order, only
``axes`` (whose order means nothing) is sorted, and no timing, usage or token fields are
exported.

**OpenAI chat** (one row per episode)::

    {"messages": [{"role": "system", ...}, <to_openai(m) for each message>],
     "tools": [<the OpenAI tools shown to the agent>], "metadata": {...}}

The conversation is exported whole, as the agent saw it: the greeting, every turn, and
the user's closing ``###STOP###``.

**ShareGPT** follows LLaMA-Factory's ``sharegpt`` layout with tools (the columns
``conversations``, ``system``, ``tools``), whose loader accepts a conversation only if
``human``/``observation`` turns sit at even positions, ``gpt``/``function_call`` turns
at odd ones, and the count is even. To fit that, from the full conversation:

* the system prompt goes in the row's ``system`` field, not in ``conversations``;
* the conversation starts at the first user message (the agent's fixed greeting, which
  no user prompted, is left out) and ends at the agent's last turn (the user's closing
  ``###STOP###`` carries no training signal);
* an agent turn with several tool calls becomes one ``function_call`` per call, in call
  order, each followed by its ``observation`` (the tool result answering that call's id);
  a ``function_call`` value is the JSON text ``{"name": ..., "arguments": {...}}``;
* text that the agent sent together with tool calls is left out: tau2-bench treats such a
  message as a tool call, and the user never sees its text;
* ``tools`` is the JSON text of the bare function schemas (``[{"name", "description",
  "parameters"}]``), the form every LLaMA-Factory version reads.

Duplicates: two kept episodes whose OpenAI rows have byte-identical ``messages`` and
``tools`` are exported once, the first in canonical order, from both files alike (so the
two files always hold the same episodes, line for line).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from writ_async.conversation.messages import (
    AssistantMessage,
    Message,
    ToolMessage,
    UserMessage,
    reasoning_of,
)
from writ_async.conversation.records import EpisodeRecord
from writ_async.engine.rundir import file_mode
from writ_async.grading.grade import GRADED, INVALID_TASK
from writ_async.llm.protocol import THINK_CLOSE, THINK_OPEN
from writ_async.participants.prompts import to_openai

OPENAI_FILE = "sft_openai.jsonl"
SHAREGPT_FILE = "sft_sharegpt.jsonl"

_encoder = msgspec.json.Encoder()


class ExportFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which graded episodes become training data."""

    min_reward: float = 1.0
    terminations: list[str] = msgspec.field(default_factory=lambda: ["user_stop", "agent_stop"])
    require_evidence: bool = True
    dedupe: bool = True
    # Not a filter but how kept rows are written: with the agent's reasoning
    # (``[export] reasoning``; see ``openai_messages`` and ``sharegpt_conversation``).
    reasoning: bool = False


class ExportContext(msgspec.Struct, frozen=True, kw_only=True):
    """What the agent was shown besides the conversation, per domain: its system prompt
    (``prompts.agent_system_prompt(policy)``) and its OpenAI tools list."""

    system_prompt_by_domain: dict[str, str]
    tools_by_domain: dict[str, list[dict[str, Any]]]


class ExportReport(msgspec.Struct, frozen=True, kw_only=True):
    """What an export did. ``kept`` passed the filter; ``written`` = kept - duplicates.

    ``dropped`` counts the filter's reasons by kind (the reason up to its first colon,
    e.g. ``"reward 0.0 < 1.0"``, ``"termination max_steps"``, ``"evidence check
    failed"``, ``"write error"``, ``"unreadable tool call"``, ``"invalid task"``,
    ``"not graded"``, ``"ungraded"``);
    ``drop_reasons`` gives each dropped episode's full reason
    and ``duplicate_of`` each removed duplicate's exported twin, both in canonical order.
    """

    total: int
    kept: int
    written: int
    duplicates: int
    dropped: dict[str, int]
    drop_reasons: dict[str, str]
    duplicate_of: dict[str, str]
    openai_path: str
    sharegpt_path: str


# -- filter ------------------------------------------------------------------------------


def keep(record: EpisodeRecord, filter: ExportFilter) -> tuple[bool, str]:
    """Whether ``record`` is training data under ``filter``, and if not, why not.

    This is the one definition of "kept": the export writes exactly these episodes (less
    exact duplicates) and the run summary counts them (``results.summary``).

    Checked in order: termination, grade present, verdict (a task that could not be
    graded, or does not fit the database, verifies nothing whatever ``min_reward`` says),
    reward, evidence, write errors (a refused write the gold does not expect teaches a
    wrong call, even when the episode recovered), unreadable tool calls (arguments that
    were not a JSON object the run could hold: no row may teach them, nor the answers
    given after a read that never ran).
    """
    if record.termination not in filter.terminations:
        return False, f"termination {record.termination}"
    info = record.reward_info
    if info is None:
        return False, "ungraded"
    if info.verdict == INVALID_TASK:
        return False, ("invalid task: its gold actions fail on this database, "
                       "which is not the one the task was written for")
    if info.verdict != GRADED:
        return False, ("not graded: the task has no evaluation criteria, or nothing in "
                       "its reward basis could be graded")
    if info.reward < filter.min_reward:
        return False, f"reward {float(info.reward)} < {float(filter.min_reward)}"
    if filter.require_evidence and not info.evidence_ok:
        failed = [f"{c.name}: {c.detail}" if c.detail else c.name
                  for c in info.evidence_checks if not c.passed]
        return False, "evidence check failed" + (f": {'; '.join(failed)}" if failed else "")
    if info.write_errors:
        return False, f"write error: {'; '.join(info.write_errors)}"
    unreadable = [c.name for m in record.messages if isinstance(m, AssistantMessage)
                  for c in m.tool_calls or () if c.raw_arguments is not None]
    if unreadable:
        return False, f"unreadable tool call: arguments of {', '.join(unreadable)}"
    return True, ""


def is_kept(record: EpisodeRecord, filter: ExportFilter | None = None) -> bool:
    """``keep``'s decision alone (``filter``: the default export filter if None)."""
    return keep(record, filter if filter is not None else ExportFilter())[0]


# -- rows --------------------------------------------------------------------------------


def metadata(record: EpisodeRecord) -> dict[str, Any]:
    """The row's metadata, in a fixed key order; never timing or usage."""
    return {
        "domain": record.domain,
        "task_id": record.task_id,
        "trial": record.trial,
        "episode_id": record.episode_id,
        "trajectory_type": record.trajectory_type,
        "axes": None if record.axes is None else dict(sorted(record.axes.items())),
        "reward": None if record.reward_info is None else record.reward_info.reward,
        "termination": record.termination,
        "seed": record.seed,
        "behaviours": list(record.behaviours),
    }


def openai_messages(system_prompt: str, messages: list[Message], *,
                    reasoning: bool = False) -> list[dict[str, Any]]:
    """The OpenAI rows' messages; with ``reasoning``, each assistant message that had
    reasoning carries it as ``reasoning_content``: the key the chat templates of thinking
    models (Qwen3, DeepSeek-R1) read, so TRL renders it from sft_trl.jsonl as is."""
    return [{"role": "system", "content": system_prompt},
            *(to_openai(m, reasoning=reasoning) for m in messages)]


def openai_row(record: EpisodeRecord, context: ExportContext) -> dict[str, Any]:
    """One episode as an OpenAI chat fine-tuning row."""
    system, tools = _domain_context(record, context)
    return {"messages": openai_messages(system, record.messages), "tools": tools,
            "metadata": metadata(record)}


def sharegpt_conversation(messages: list[Message], *,
                          reasoning: bool = False) -> list[dict[str, str]]:
    """The conversation as ShareGPT turns (see the module docstring for the rules).

    With ``reasoning``, a ``gpt`` turn's reasoning opens its value as a
    ``<think>...</think>`` block: LLaMA-Factory's data formats have no reasoning column,
    and its templates for thinking models split the thought from the content at those
    tags. A ``function_call`` value must stay a bare JSON object, so a tool call's
    reasoning is left out."""
    start = next((i for i, m in enumerate(messages) if isinstance(m, UserMessage)),
                 len(messages))
    turns: list[dict[str, str]] = []
    i = start
    while i < len(messages):
        m = messages[i]
        i += 1
        if isinstance(m, AssistantMessage) and m.tool_calls:
            results: dict[str, str] = {}
            while i < len(messages) and isinstance(messages[i], ToolMessage):
                result = messages[i]
                assert isinstance(result, ToolMessage)
                results[result.id] = result.content
                i += 1
            for call in m.tool_calls:
                if call.id not in results:
                    raise ValueError(f"tool call {call.id!r} ({call.name}) has no tool result")
                call_text = _encoder.encode({"name": call.name, "arguments": call.arguments})
                turns.append({"from": "function_call", "value": call_text.decode()})
                turns.append({"from": "observation", "value": results[call.id]})
        elif isinstance(m, AssistantMessage):
            value = m.content or ""
            thought = reasoning_of(m) if reasoning else None
            if thought is not None:
                value = f"{THINK_OPEN}\n{thought}\n{THINK_CLOSE}\n\n{value}"
            turns.append({"from": "gpt", "value": value})
        elif isinstance(m, ToolMessage):
            raise ValueError(f"tool result {m.id!r} answers no preceding tool call")
        else:
            turns.append({"from": "human", "value": m.content})
    while turns and turns[-1]["from"] in ("human", "observation"):
        turns.pop()
    return turns


def sharegpt_tools(tools: list[dict[str, Any]]) -> str:
    """JSON text of the bare function schemas of an OpenAI tools list."""
    bare = [t["function"] if t.get("type") == "function" and "function" in t else t
            for t in tools]
    return _encoder.encode(bare).decode()


def sharegpt_row(record: EpisodeRecord, context: ExportContext) -> dict[str, Any]:
    """One episode as a ShareGPT (LLaMA-Factory, with tools) row."""
    system, tools = _domain_context(record, context)
    return {"conversations": sharegpt_conversation(record.messages),
            "tools": sharegpt_tools(tools), "system": system, "metadata": metadata(record)}


def _domain_context(record: EpisodeRecord,
                    context: ExportContext) -> tuple[str, list[dict[str, Any]]]:
    try:
        return (context.system_prompt_by_domain[record.domain],
                context.tools_by_domain[record.domain])
    except KeyError:
        raise ValueError(f"export context has no system prompt or tools for domain "
                         f"{record.domain!r} (episode {record.episode_id})") from None


# -- writing -----------------------------------------------------------------------------


def canonical_order(records: Iterable[EpisodeRecord],
                    task_order: list[str]) -> list[EpisodeRecord]:
    """Records sorted by the caller's task order, then behaviours, then trial.

    Raises ValueError for a task not in ``task_order`` or an episode given twice: either
    would make the order depend on arrival, and both are bugs upstream."""
    index: dict[str, int] = {}
    for i, task_id in enumerate(task_order):
        index.setdefault(task_id, i)
    seen: set[str] = set()
    keyed: list[tuple[int, str, int, EpisodeRecord]] = []
    for record in records:
        position = index.get(record.task_id)
        if position is None:
            raise ValueError(f"episode {record.episode_id}: task {record.task_id!r} "
                             f"is not in the task order")
        if record.episode_id in seen:
            raise ValueError(f"episode {record.episode_id} given more than once")
        seen.add(record.episode_id)
        # a task told by several behaviour combinations: those ordered by name
        keyed.append((position, "+".join(record.behaviours), record.trial, record))
    keyed.sort(key=lambda item: item[:3])
    return [record for *_, record in keyed]


def write_exports(records: Iterable[EpisodeRecord], out_dir: Path, context: ExportContext,
                  filter: ExportFilter, task_order: list[str]) -> ExportReport:
    """Write ``out_dir/sft_openai.jsonl`` and ``out_dir/sft_sharegpt.jsonl``.

    Each file is written to a temporary file beside it and moved into place with
    ``os.replace``, so a reader sees the old file or the new one, never a part.
    """
    ordered = canonical_order(records, task_order)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    openai_path = out_dir / OPENAI_FILE
    sharegpt_path = out_dir / SHAREGPT_FILE
    dropped: Counter[str] = Counter()
    drop_reasons: dict[str, str] = {}
    duplicate_of: dict[str, str] = {}
    first_by_digest: dict[bytes, str] = {}
    tools_bytes: dict[str, bytes] = {}
    kept = written = 0
    with _atomic_file(openai_path) as openai_file, _atomic_file(sharegpt_path) as share_file:
        for record in ordered:
            ok, reason = keep(record, filter)
            if not ok:
                dropped[reason.split(":", 1)[0]] += 1
                drop_reasons[record.episode_id] = reason
                continue
            kept += 1
            system, tools = _domain_context(record, context)
            messages = openai_messages(system, record.messages, reasoning=filter.reasoning)
            if filter.dedupe:
                if record.domain not in tools_bytes:
                    tools_bytes[record.domain] = _encoder.encode(tools)
                digest = hashlib.blake2b(_encoder.encode(messages), digest_size=32)
                digest.update(b"\n" + tools_bytes[record.domain])
                twin = first_by_digest.setdefault(digest.digest(), record.episode_id)
                if twin != record.episode_id:
                    duplicate_of[record.episode_id] = twin
                    continue
            meta = metadata(record)
            openai_file.write(_encoder.encode(
                {"messages": messages, "tools": tools, "metadata": meta}) + b"\n")
            share_file.write(_encoder.encode(
                {"conversations": sharegpt_conversation(record.messages,
                                                        reasoning=filter.reasoning),
                 "tools": sharegpt_tools(tools), "system": system, "metadata": meta}) + b"\n")
            written += 1
    return ExportReport(
        total=len(ordered), kept=kept, written=written, duplicates=len(duplicate_of),
        dropped=dict(sorted(dropped.items())), drop_reasons=drop_reasons,
        duplicate_of=duplicate_of, openai_path=str(openai_path),
        sharegpt_path=str(sharegpt_path),
    )


@contextlib.contextmanager
def _atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file that replaces ``path`` when the block ends cleanly, else vanishes."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            # mkstemp's 0600 is for secrets: the export is data, moded as the run's files.
            os.fchmod(f.fileno(), file_mode())
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
