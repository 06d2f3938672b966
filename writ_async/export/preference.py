"""Preference pairs for DPO from a run's trials: ``export/dpo.jsonl`` (off by default;
``[export] preference = true``).

A scenario (a task told by one set of user behaviours) run for several trials may have
trials that pass and trials that fail. Where a failing trial and a passing one show the
agent the same conversation up to some assistant turn and the agent then acted
differently, that turn is a preference: given the shared conversation, the passing
trial's turn is preferred to the failing trial's. One row per failing trial that has such
a partner, in TRL's conversational preference format::

    {"prompt": [system, ...the shared messages], "chosen": [the passing trial's turn],
     "rejected": [the failing trial's turn], "tools": [...], "metadata": {...}}

Rules, each a choice:

* **chosen** trials are those the SFT export keeps (``export.keep``: reward 1, a normal
  ending, writ's evidence checks). **rejected** trials are graded (reward present and
  verdict ``graded``), did not end in a failure of the infrastructure or of a participant
  (``episode.FAILURES``: timeout, agent/user/infrastructure error, context window), which
  says nothing about the agent's choice, and either have reward < 1 or failed writ's
  evidence checks (a write without its reads or without a "yes": reward 1 in tau2's
  terms, but not what the agent should do).
* **shared prefix**: the messages are compared exactly (as exported: OpenAI format,
  arguments decoded). The first message that differs must be an assistant message in both
  trials, else the pair is skipped (``"user or tool differs first"``): a different user
  line is not the agent's choice.
* **a choice must differ**: the two turns must differ in what they do, their tool calls
  (names and arguments, or one calls tools and the other does not), or, doing the same,
  say the same words with other values: their texts differ but are equal once
  ``datastats.mask_sentence`` masks ids, codes and numbers (a wrong argument shows first
  in the confirmation that describes it). Turns whose wording differs are skipped as
  ``"only the wording differs"``: the scripted agent phrases from a per-episode seeded
  bank, and a pair of two good sentences would teach that one of them is bad. A mistake
  told in other words than its partner's is left out with them.
* **the turn only**: ``chosen`` and ``rejected`` are the one diverging assistant message.
  What follows it is the user's, the tools' and later turns' doing; a DPO loss over it
  would credit or blame the agent for text it did not choose.
* the partner of a failing trial is the passing trial sharing the longest prefix with it
  (the lowest trial on a tie). Exact duplicate rows are written once.

**With the scripted agent** (``reference`` given: a mistake-free agent's ``reply`` for
the failing trial's task and seed) the chosen turn is not taken from another trial but
asked of that agent on the failing trial's own conversation: ``ScriptedAgent.reply`` is a
pure function of the messages, and its wording and its mistake draw from separate rngs,
so the mistake-free agent says byte for byte what the failing one said up to the
mistake. The first assistant turn (after the user first spoke) where the two differ, by
the rule above, is the divergence; the prompt is then exactly the failing trial's
conversation. Trials rarely share a prefix otherwise: the user and the agent phrase from
banks seeded per episode, so two trials differ from their first lines. The scenario must
still have a passing trial (the agent can pass it), and the failing trial's mistake must
show (``"the mistake-free agent agrees"`` where it does not).

The rows use the TRL layout of ``trl_format`` (tool-call arguments as objects). Same
records, same bytes: rows follow the export's canonical order and one encoder writes them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from writ_async.conversation.episode import FAILURES
from writ_async.conversation.messages import Message, UserMessage
from writ_async.conversation.records import EpisodeRecord
from writ_async.engine.rundir import atomic_write
from writ_async.export.datastats import mask_sentence
from writ_async.export.sft import (
    ExportContext,
    ExportFilter,
    canonical_order,
    keep,
    openai_messages,
)
from writ_async.export.trl_format import trl_message
from writ_async.participants.prompts import to_openai

PREFERENCE_FILE = "dpo.jsonl"
USER_FIRST = "user or tool differs first"
WORDING_ONLY = "only the wording differs"
NO_DIVERGENCE = "no message differs"
AGREES = "the mistake-free agent agrees"

# the mistake-free agent's reply for a failing trial's task and seed
Reply = Callable[[Sequence[Message]], Message]
Reference = Callable[[EpisodeRecord], Reply]

_encoder = msgspec.json.Encoder()


class PreferenceReport(msgspec.Struct, frozen=True, kw_only=True):
    """What a preference export did: ``rejected`` failing trials had a passing trial in
    their scenario; ``written`` of them gave a row, the others were ``skipped`` (by
    reason); ``scenarios`` had both a passing and a failing trial."""

    scenarios: int
    rejected: int
    written: int
    skipped: dict[str, int]
    path: str


def is_chosen(record: EpisodeRecord, filter: ExportFilter) -> bool:
    return keep(record, filter)[0]


def is_rejected(record: EpisodeRecord) -> bool:
    info = record.reward_info
    if info is None or record.termination in FAILURES:
        return False
    # `verdict` (graded / not_graded / invalid_task): only a graded reward says the agent
    # failed; journals written before the field have none and were all graded
    if getattr(info, "verdict", "graded") != "graded":
        return False
    return info.reward < 1.0 or not info.evidence_ok


def _action(message: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return [(c["function"]["name"], c["function"]["arguments"])
            for c in message.get("tool_calls") or ()]


def choice_differs(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two different assistant turns differ in what they do (see the module doc)."""
    if _action(a) != _action(b):
        return True
    return mask_sentence(a.get("content") or "") == mask_sentence(b.get("content") or "")


def diverge(chosen: Sequence[Mapping[str, Any]],
            rejected: Sequence[Mapping[str, Any]]) -> tuple[int, str]:
    """The index of the first message that differs, and "" if it makes a pair, else why
    not (one of USER_FIRST, WORDING_ONLY, NO_DIVERGENCE)."""
    i = 0
    while i < len(chosen) and i < len(rejected) and chosen[i] == rejected[i]:
        i += 1
    if i == len(chosen) or i == len(rejected):
        return i, NO_DIVERGENCE
    a, b = chosen[i], rejected[i]
    if a.get("role") != "assistant" or b.get("role") != "assistant":
        return i, USER_FIRST
    return i, "" if choice_differs(a, b) else WORDING_ONLY


def counterfactual(record: EpisodeRecord, reply: Reply) -> tuple[int, dict[str, Any], str]:
    """The first assistant turn of ``record`` (after the user first spoke) at which
    ``reply`` answers differently: its index in the exported conversation (the system
    prompt is message 0), ``reply``'s turn there, and "" or why it makes no pair."""
    messages = record.messages
    first_user = next((i for i, m in enumerate(messages) if isinstance(m, UserMessage)),
                      len(messages))
    for i in range(first_user + 1, len(messages)):
        actual = trl_message(to_openai(messages[i]))
        if actual.get("role") != "assistant":
            continue
        wanted = trl_message(to_openai(reply(messages[:i])))
        if wanted != actual:
            return i + 1, wanted, "" if choice_differs(wanted, actual) else WORDING_ONLY
    return len(messages) + 1, {}, AGREES


def _conversation(record: EpisodeRecord, context: ExportContext) -> list[dict[str, Any]]:
    system = context.system_prompt_by_domain[record.domain]
    return [trl_message(m) for m in openai_messages(system, record.messages)]


def preference_rows(records: Iterable[EpisodeRecord], context: ExportContext,
                    filter: ExportFilter, task_order: list[str],
                    reference: Reference | None = None,
                    ) -> tuple[list[dict[str, Any]], Counter[str], int, int]:
    """The rows, the skip reasons, the scenarios with both outcomes and the failing
    trials that had a passing partner (``reference``: see the module doc)."""
    scenarios: dict[tuple[str, tuple[str, ...]], list[EpisodeRecord]] = {}
    for record in canonical_order(records, task_order):
        scenarios.setdefault((record.task_id, tuple(record.behaviours)), []).append(record)
    rows: list[dict[str, Any]] = []
    seen: set[bytes] = set()
    skipped: Counter[str] = Counter()
    both = rejected_count = 0
    for trials in scenarios.values():
        good = [r for r in trials if is_chosen(r, filter)]
        bad = [r for r in trials if is_rejected(r)]
        if not good or not bad:
            continue
        both += 1
        conversations = {r.episode_id: _conversation(r, context)
                         for r in (bad if reference is not None else good + bad)}
        for failing in bad:
            rejected_count += 1
            rejected_messages = conversations[failing.episode_id]
            chosen_from: str | None = None
            if reference is not None:
                index, chosen_turn, why = counterfactual(failing, reference(failing))
                if why:
                    skipped[why] += 1
                    continue
            else:
                best: tuple[int, EpisodeRecord] | None = None
                reasons = []
                for passing in good:
                    index, why = diverge(conversations[passing.episode_id], rejected_messages)
                    if why:
                        reasons.append(why)
                    elif best is None or index > best[0]:
                        best = (index, passing)
                if best is None:
                    skipped[min(reasons)] += 1  # a fixed choice among the partners' reasons
                    continue
                index, passing = best
                chosen_turn = conversations[passing.episode_id][index]
                chosen_from = passing.episode_id
            info = failing.reward_info
            assert info is not None
            row = {
                "prompt": rejected_messages[:index],
                "chosen": [chosen_turn],
                "rejected": [rejected_messages[index]],
                "tools": context.tools_by_domain[failing.domain],
                "metadata": {
                    "domain": failing.domain, "task_id": failing.task_id,
                    "behaviours": list(failing.behaviours),
                    # None: the turn of the mistake-free scripted agent on this prompt
                    "chosen_episode": chosen_from,
                    "rejected_episode": failing.episode_id,
                    "rejected_reward": info.reward,
                    "rejected_termination": failing.termination,
                    "divergence": index,
                },
            }
            key = _encoder.encode({k: row[k] for k in ("prompt", "chosen", "rejected")})
            if key in seen:
                skipped["duplicate"] += 1
                continue
            seen.add(key)
            rows.append(row)
    return rows, skipped, both, rejected_count


def write_preferences(records: Iterable[EpisodeRecord], out_dir: Path | str,
                      context: ExportContext, filter: ExportFilter,
                      task_order: list[str],
                      reference: Reference | None = None) -> PreferenceReport:
    """``out_dir/dpo.jsonl``, replaced atomically."""
    rows, skipped, both, rejected = preference_rows(records, context, filter, task_order,
                                                    reference)
    path = Path(out_dir) / PREFERENCE_FILE
    atomic_write(path, b"".join(_encoder.encode(row) + b"\n" for row in rows))
    return PreferenceReport(scenarios=both, rejected=rejected, written=len(rows),
                            skipped=dict(sorted(skipped.items())), path=str(path))
