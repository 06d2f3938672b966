"""Statistics of exported SFT rows: size, shape and how varied the assistant's language is.

The core (``compute_stats``, ``contamination``) is pure: it takes OpenAI-format rows (the
dicts of ``export/sft_openai.jsonl``) and returns plain JSON-ready dicts; ``load_rows``
and ``write_stats`` are the only functions that touch files. Same rows, same bytes.

Definitions (each is printed with the figures, so a reader of ``stats.json`` needs no code):

* **tokens**: a tokenizer-free estimate, the number of regex pieces ``\\w+`` (a run of
  letters, digits or underscores) or one other non-space character. It is deterministic
  and model independent; a BPE tokenizer typically gives 1.2-1.5x as many on this text.
  An assistant message's tokens include its tool calls' names and argument text.
* **turns**: user and assistant messages (system prompt and tool results are not turns).
* **read/write mix**: each tool call classified by the row's domain's toolbox
  (``ToolKind``); a name the toolbox does not know counts as ``unknown``.
* **assistant text**: the non-empty ``content`` of assistant messages, without the
  **greeting** (a conversation's first assistant message when no user message precedes it:
  it is fixed by configuration, not written by the agent).
* **distinct-n**: unique n-grams / all n-grams of lowercased ``\\w+`` words, n-grams taken
  within one message, over all the rows' assistant text.
  ``distinct_2_masked`` is distinct-2 of the same text masked as sentences are (below):
  it counts variety of wording, where plain distinct-n also counts every new id or price.
* **sentences**: assistant text split after ``.``, ``!`` or ``?`` followed by whitespace,
  and at line breaks. Before counting, a sentence is **masked**: lowercased; every word
  holding a digit or an underscore (ids, flight numbers, dates, prices, payment ids)
  becomes ``<id>``; every all-capitals word of 2+ letters (airport codes, reservation codes
  without digits, ``YOU ARE ...``) becomes ``<code>``; runs of spaces become one. So two
  sentences that differ only in such values count as one template.
* **top sentence share**: for each masked sentence, the share of rows (conversations)
  whose assistant text holds it at least once; the goal of issue 13 is at most 5 %.
* **duplicate share**: assistant text messages whose exact text equals that of another
  assistant text message anywhere in the set, over all assistant text messages.

**Contamination** (``contamination``): a row matches a task when its writes, the multiset
of its write tool calls as (name, arguments), equal the task's gold writes, the same rule
``writ tasks generate --exclude`` uses to keep synthesized tasks apart from a task file.
Rows without writes and tasks without gold writes are not compared (a read-only
conversation has no gold plan to leak). Integral floats compare equal to integers, as a
JSON reader may give either.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from writ_async.engine.rundir import atomic_write
from writ_async.errors import DataError
from writ_async.export.sft import OPENAI_FILE

if TYPE_CHECKING:
    from writ_async.environment.domain import Domain

STATS_FILE = "stats.json"
ROLES = ("system", "user", "assistant", "tool")
TOP_SENTENCES = 5
SENTENCE_GOAL = 0.05  # issue 13: no assistant sentence in more than 5 % of conversations

TOKEN_RULE = ("estimate: regex pieces \\w+ or one other non-space character "
              "(no model tokenizer)")
SENTENCE_RULE = ("split after . ! ? + whitespace and at line breaks; masked: lowercased, "
                 "words with a digit or _ -> <id>, ALL-CAPS words -> <code>")

_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORD = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_ID_WORD = re.compile(r"\b\w*[\d_]\w*\b")
_CODE_WORD = re.compile(r"\b[A-Z]{2,}\b")
_SPACES = re.compile(r"\s+")

# Classifies a tool call: (domain, tool name) -> "read" / "write" / "generic" / None.
KindOf = Callable[[str, str], str | None]


def toolbox_kinds(domains: Mapping[str, Domain]) -> KindOf:
    """Classifies a tool call by its row's domain's toolbox, among ``domains`` (by name):
    None for a tool the domain does not have, or a domain not among them. The commands
    pass every registered domain; a run passes its own."""
    def kind_of(domain: str, tool: str) -> str | None:
        found = domains.get(domain)
        kind = found.toolbox.kind(tool) if found is not None else None
        return None if kind is None else str(kind)

    return kind_of


# -- text rules --------------------------------------------------------------------------


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` by the module's tokenizer-free rule."""
    return len(_TOKEN.findall(text))


def split_sentences(text: str) -> list[str]:
    """``text`` split into sentences by the module's rule, stripped, empty ones dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def mask_sentence(sentence: str) -> str:
    """A sentence with its identifiers, codes and numbers masked, lowercased."""
    masked = _ID_WORD.sub("<id>", sentence)
    masked = _CODE_WORD.sub("<code>", masked)
    return _SPACES.sub(" ", masked).strip().lower()


def ngrams(words: Sequence[str], n: int) -> Iterable[tuple[str, ...]]:
    return (tuple(words[i:i + n]) for i in range(len(words) - n + 1))


# -- row access --------------------------------------------------------------------------


def _messages(row: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    messages = row.get("messages")
    if not isinstance(messages, list):
        raise ValueError("row has no `messages` list")
    return messages


def _domain(row: Mapping[str, Any]) -> str:
    meta = row.get("metadata")
    domain = meta.get("domain") if isinstance(meta, Mapping) else None
    if not isinstance(domain, str):
        raise ValueError("row has no `metadata.domain`")
    return domain


def _calls(message: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """A message's tool calls as (name, arguments), the arguments decoded when they are
    OpenAI's JSON text (a row may also carry them as objects)."""
    out = []
    for call in message.get("tool_calls") or ():
        function = call["function"]
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            arguments = json.loads(arguments) if arguments else {}
        out.append((function["name"], arguments))
    return out


def _call_text(message: Mapping[str, Any]) -> str:
    parts = []
    for call in message.get("tool_calls") or ():
        function = call["function"]
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, separators=(",", ":"))
        parts.append(f"{function['name']} {arguments}")
    return " ".join(parts)


def assistant_texts(row: Mapping[str, Any]) -> list[str]:
    """The row's assistant text messages, the greeting left out (see the module doc)."""
    texts = []
    seen_user = False
    greeting_done = False
    for message in _messages(row):
        role = message.get("role")
        if role == "user":
            seen_user = True
        elif role == "assistant":
            first = not greeting_done
            greeting_done = True
            content = message.get("content")
            if not content or (first and not seen_user):
                continue
            texts.append(content)
    return texts


# -- statistics --------------------------------------------------------------------------


def _r(value: float) -> float:
    return round(value, 4)


def distribution(values: Sequence[int]) -> dict[str, float]:
    """mean, min, median (the lower middle value), max; zeros for no values."""
    if not values:
        return {"mean": 0.0, "min": 0, "p50": 0, "max": 0}
    ordered = sorted(values)
    return {"mean": _r(sum(ordered) / len(ordered)), "min": ordered[0],
            "p50": ordered[(len(ordered) - 1) // 2], "max": ordered[-1]}


def compute_stats(rows: Sequence[Mapping[str, Any]], *,
                  kind_of: KindOf) -> dict[str, Any]:
    """The statistics of ``rows`` (OpenAI-format SFT rows) as a JSON-ready dict."""
    tokens: dict[str, list[int]] = {role: [] for role in (*ROLES, "total")}
    turns: list[int] = []
    calls_per_row: list[int] = []
    mix: Counter[str] = Counter()
    ngram_counts: dict[int, Counter[tuple[str, ...]]] = {n: Counter() for n in (1, 2, 3)}
    masked_bigrams: Counter[tuple[str, ...]] = Counter()
    sentence_rows: Counter[str] = Counter()
    sentence_example: dict[str, str] = {}
    text_counts: Counter[str] = Counter()
    domains: Counter[str] = Counter()
    kind_cache: dict[tuple[str, str], str] = {}

    for row in rows:
        domain = _domain(row)
        domains[domain] += 1
        by_role = dict.fromkeys(ROLES, 0)
        row_turns = row_calls = 0
        for message in _messages(row):
            role = message.get("role")
            text = message.get("content") or ""
            if role == "assistant":
                text = f"{text} {_call_text(message)}"
                for name, _ in _calls(message):
                    row_calls += 1
                    key = (domain, name)
                    if key not in kind_cache:
                        kind_cache[key] = kind_of(domain, name) or "unknown"
                    mix[kind_cache[key]] += 1
            if role in ("user", "assistant"):
                row_turns += 1
            if role in by_role:
                by_role[role] += estimate_tokens(text)
        for role in ROLES:
            tokens[role].append(by_role[role])
        tokens["total"].append(sum(by_role.values()))
        turns.append(row_turns)
        calls_per_row.append(row_calls)

        row_sentences: set[str] = set()
        for text in assistant_texts(row):
            text_counts[text] += 1
            words = _WORD.findall(text.lower())
            for n, counter in ngram_counts.items():
                counter.update(ngrams(words, n))
            masked_bigrams.update(ngrams(_WORD.findall(mask_sentence(text)), 2))
            for sentence in split_sentences(text):
                masked = mask_sentence(sentence)
                row_sentences.add(masked)
                sentence_example.setdefault(masked, sentence)
        sentence_rows.update(row_sentences)

    n_rows = len(rows)
    n_texts = sum(text_counts.values())
    duplicates = sum(c for c in text_counts.values() if c > 1)
    total_calls = sum(mix.values())
    # most frequent first; ties broken by the masked text, so the order is fixed
    top = sorted(sentence_rows.items(), key=lambda item: (-item[1], item[0]))[:TOP_SENTENCES]
    top_share = _r(top[0][1] / n_rows) if top and n_rows else 0.0
    return {
        "rows": n_rows,
        "domains": dict(sorted(domains.items())),
        "tokens_rule": TOKEN_RULE,
        "tokens_per_row": {role: distribution(values) for role, values in tokens.items()},
        "turns_per_row": distribution(turns),
        "tool_calls_per_row": distribution(calls_per_row),
        "tool_calls": {"total": total_calls, **dict(sorted(mix.items())),
                       "write_share": _r(mix["write"] / total_calls) if total_calls else 0.0},
        "assistant_text": {
            "messages": n_texts,
            "distinct_1": _distinct(ngram_counts[1]),
            "distinct_2": _distinct(ngram_counts[2]),
            "distinct_3": _distinct(ngram_counts[3]),
            "distinct_2_masked": _distinct(masked_bigrams),
            "duplicate_messages": duplicates,
            "duplicate_share": _r(duplicates / n_texts) if n_texts else 0.0,
            "distinct_sentences": len(sentence_rows),
            "sentence_rule": SENTENCE_RULE,
            "top_sentence_share": top_share,
            "sentence_goal": SENTENCE_GOAL,
            "sentence_goal_met": top_share <= SENTENCE_GOAL,
            "top_sentences": [
                {"sentence": masked, "example": sentence_example[masked], "rows": count,
                 "share": _r(count / n_rows)}
                for masked, count in top
            ],
        },
    }


def _distinct(counter: Counter[tuple[str, ...]]) -> float:
    total = sum(counter.values())
    return _r(len(counter) / total) if total else 0.0


# -- contamination -----------------------------------------------------------------------


def _normal(value: Any) -> Any:
    """Integral floats as ints, recursively, so 50.0 and 50 compare equal."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def write_key(calls: Iterable[tuple[str, Any]], domain: str,
              kind_of: KindOf) -> tuple[str, ...]:
    """The sorted canonical (name, arguments) texts of the write calls among ``calls``."""
    return tuple(sorted(
        json.dumps([name, _normal(arguments)], sort_keys=True, separators=(",", ":"))
        for name, arguments in calls if kind_of(domain, name) == "write"
    ))


def row_write_key(row: Mapping[str, Any], kind_of: KindOf) -> tuple[str, ...]:
    calls = [call for message in _messages(row) if message.get("role") == "assistant"
             for call in _calls(message)]
    return write_key(calls, _domain(row), kind_of)


def contamination(rows: Sequence[Mapping[str, Any]], tasks: Sequence[Any], *,
                  source: str, kind_of: KindOf) -> dict[str, Any]:
    """How many ``rows`` reproduce the gold writes of one of ``tasks``
    (``writ_async.conversation.task.Task`` objects; ``source`` names where they came from). A task's
    writes are read with the toolbox of the row it is compared with."""
    keys_by_domain: dict[str, dict[tuple[str, ...], list[str]]] = {}
    compared = 0
    matches: list[dict[str, Any]] = []
    for row in rows:
        domain = _domain(row)
        if domain not in keys_by_domain:
            by_key: dict[tuple[str, ...], list[str]] = {}
            for task in tasks:
                key = write_key(((a.name, a.arguments) for a in task.gold_actions), domain,
                                kind_of)
                if key:
                    by_key.setdefault(key, []).append(task.id)
            keys_by_domain[domain] = by_key
        key = row_write_key(row, kind_of)
        if not key:
            continue
        compared += 1
        if key in keys_by_domain[domain]:
            meta = row.get("metadata") or {}
            matches.append({"episode_id": meta.get("episode_id"),
                            "task_ids": keys_by_domain[domain][key]})
    with_writes = max((sum(len(ids) for ids in by_key.values())
                       for by_key in keys_by_domain.values()), default=0)
    return {
        "tasks_file": source,
        "rule": "multiset of write calls (name, arguments) equal to a task's gold writes",
        "tasks": len(tasks),
        "tasks_with_writes": with_writes,
        "rows_compared": compared,
        "rows_matching": len(matches),
        "share": _r(len(matches) / compared) if compared else 0.0,
        "matches": matches,
    }


# -- files and text ------------------------------------------------------------------------


def load_rows(path: Path | str) -> list[dict[str, Any]]:
    """The rows of an OpenAI-format JSONL export; a bad line is a ``DataError``."""
    path = Path(path)
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise DataError(path, f"cannot read export: {exc.strerror or exc}") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"line {number}: malformed JSON: {exc.msg}") from None
        if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
            raise DataError(path, f"line {number}: not an OpenAI chat row (no `messages`)")
        rows.append(row)
    return rows


def export_path(run_or_file: Path | str) -> Path:
    """A run directory's OpenAI export, or the given file itself."""
    path = Path(run_or_file)
    return path if path.is_file() or path.suffix == ".jsonl" else path / "export" / OPENAI_FILE


def stats_of(path: Path | str, *, kind_of: KindOf, against: str | None = None,
             split: str | None = None) -> dict[str, Any]:
    """The statistics of a run's (or a file's) OpenAI export, tool calls classified by
    ``kind_of``, with the contamination report against the task file ``against`` (its
    ``split`` only, if given)."""
    from writ_async.conversation.task import load_tasks

    rows = load_rows(export_path(path))
    stats = compute_stats(rows, kind_of=kind_of)
    if against is not None:
        tasks = load_tasks(against, split=split)
        source = against + (f" (split {split})" if split else "")
        stats["contamination"] = contamination(rows, tasks, source=source, kind_of=kind_of)
    return stats


def write_export_stats(export_dir: Path | str, *, kind_of: KindOf,
                       against: str | None = None,
                       split: str | None = None,
                       extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Compute the statistics of ``export_dir``'s OpenAI file and write them beside it
    (``stats.json``), with ``extra`` sections (e.g. the preference export's report); what
    ``writ simulate`` does after its export."""
    stats = stats_of(Path(export_dir) / OPENAI_FILE, kind_of=kind_of, against=against,
                     split=split)
    stats.update(extra or {})
    write_stats(stats, Path(export_dir))
    return stats


def encode(stats: Mapping[str, Any]) -> bytes:
    return (json.dumps(stats, indent=2, ensure_ascii=False) + "\n").encode()


def write_stats(stats: Mapping[str, Any], out_dir: Path) -> Path:
    """``out_dir/stats.json``, replaced atomically."""
    path = Path(out_dir) / STATS_FILE
    atomic_write(path, encode(stats))
    return path


def headline(stats: Mapping[str, Any]) -> str:
    """One line of the figures a run summary shows."""
    text = stats["assistant_text"]
    tokens = stats["tokens_per_row"]["total"]["mean"]
    return (f"{stats['rows']} rows, ~{tokens:.0f} tokens/row (estimate), "
            f"{stats['turns_per_row']['mean']:.1f} turns/row, "
            f"{stats['tool_calls_per_row']['mean']:.1f} tool calls/row "
            f"({stats['tool_calls']['write_share']:.0%} writes); assistant distinct-2 "
            f"{text['distinct_2']:.3f}, top sentence in {text['top_sentence_share']:.1%} of "
            f"rows, {text['duplicate_share']:.1%} duplicate messages")


def render(stats: Mapping[str, Any]) -> str:
    """The statistics as a readable table."""
    domains = ", ".join(f"{d}: {n}" for d, n in stats["domains"].items())
    lines = [f"rows: {stats['rows']}  ({domains})"]
    lines.append(f"tokens per row ({stats['tokens_rule']}):")
    lines.append(f"  {'role':<10} {'mean':>9} {'min':>7} {'p50':>7} {'max':>7}")
    for role, d in stats["tokens_per_row"].items():
        lines.append(f"  {role:<10} {d['mean']:>9.1f} {d['min']:>7} {d['p50']:>7} {d['max']:>7}")
    for label, key in (("turns per row", "turns_per_row"),
                       ("tool calls per row", "tool_calls_per_row")):
        d = stats[key]
        lines.append(f"{label + ':':<20} mean {d['mean']:.1f}, min {d['min']}, "
                     f"p50 {d['p50']}, max {d['max']}")
    calls = stats["tool_calls"]
    kinds = ", ".join(f"{k} {v}" for k, v in calls.items() if k not in ("total", "write_share"))
    lines.append(f"tool calls: {calls['total']} ({kinds}; write share "
                 f"{calls['write_share']:.1%})")
    text = stats["assistant_text"]
    lines.append(f"assistant text (greeting excluded): {text['messages']} messages")
    lines.append(f"  distinct-1/2/3:       {text['distinct_1']:.4f} / {text['distinct_2']:.4f}"
                 f" / {text['distinct_3']:.4f}  (distinct-2, values masked: "
                 f"{text['distinct_2_masked']:.4f})")
    lines.append(f"  exact duplicates:     {text['duplicate_messages']} messages "
                 f"({text['duplicate_share']:.1%})")
    goal = "met" if text["sentence_goal_met"] else "NOT met"
    lines.append(f"  top sentence share:   {text['top_sentence_share']:.1%} of rows "
                 f"(goal <= {text['sentence_goal']:.0%}: {goal}); "
                 f"{text['distinct_sentences']} distinct masked sentences")
    lines.append(f"  sentences: {text['sentence_rule']}")
    for top in text["top_sentences"]:
        lines.append(f"  {top['share']:>6.1%}  {_clip(top['sentence'], 90)}")
    contamination_report = stats.get("contamination")
    if contamination_report:
        lines.append(render_contamination(contamination_report))
    return "\n".join(lines)


def render_contamination(report: Mapping[str, Any]) -> str:
    line = (f"contamination vs {report['tasks_file']}: {report['rows_matching']} of "
            f"{report['rows_compared']} rows with writes reproduce a task's gold writes "
            f"({report['share']:.1%}; {report['tasks_with_writes']} of {report['tasks']} tasks "
            f"have writes)")
    shown = [f"  {m['episode_id']} = {', '.join(m['task_ids'])}" for m in report["matches"][:5]]
    return "\n".join([line, *shown])


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."
