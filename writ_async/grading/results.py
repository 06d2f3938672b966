"""A run's results in tau2-bench's ``results.json`` format, and its summary.

``to_tau2_results`` writes what tau2-bench's ``Results`` model reads (``tau2
evaluate-trajs`` re-grades it with tau2's own evaluator): ``timestamp``, ``info``,
``tasks`` and ``simulations``, each simulation with its messages as tau2 records them and
its ``reward_info``. Writ's additions ride in the free-form ``info`` dicts.

The output is deterministic: simulations in task order then trial, keys in a fixed order,
ids derived from (task, trial). Two runs with the same seed differ only in the timing
fields (``TIMING_FIELDS``) and the top-level ``timestamp``, which is injectable.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from writ_async.conversation.messages import AssistantMessage, Message, ToolMessage
from writ_async.conversation.records import Check, EpisodeRecord, RewardInfo
from writ_async.conversation.task import Action, Task
from writ_async.environment.domain import Domain
from writ_async.export.sft import ExportFilter, keep
from writ_async.grading.evidence import check_kind
from writ_async.grading.grade import NL_ASSERTION, average_reward, pass_hat_k

TIMING_FIELDS = ("timestamp", "start_time", "end_time", "duration", "model_seconds")
NOT_EVALUABLE = frozenset({"infrastructure_error"})  # left out of rewards and pass^k

DEFAULT_MAX_STEPS = 200
DEFAULT_MAX_ERRORS = 10


def to_tau2_results(records: Sequence[EpisodeRecord], tasks: Sequence[Task],
                    info: Mapping[str, Any], *, domain: Domain | None,
                    timestamp: str | None = None) -> bytes:
    """results.json bytes for ``records`` (each must name one of ``tasks``).

    ``domain`` is the run's: its toolbox gives each gold action's ``tool_type`` (None for
    an episode of another domain, or with no domain given).

    ``info`` may hold tau2's Info fields (``git_commit``, ``num_trials``, ``max_steps``,
    ``max_errors``, ``seed``, ``agent_info``, ``user_info``, ``environment_info``) and,
    as shorthands, ``agent``, ``user`` (implementation names), ``agent_llm``,
    ``user_llm``, ``domain`` and ``policy``. Missing fields get defaults (the three
    ``*_info`` dicts are laid over defaults that hold tau2's required keys). Other keys
    are kept after them, sorted. ``timestamp`` (else ``info["timestamp"]``, else now) is the
    run's, in ISO format.
    """
    order = {task.id: i for i, task in enumerate(tasks)}
    by_id = {task.id: task for task in tasks}
    for record in records:
        if record.task_id not in order:
            raise ValueError(f"episode {record.episode_id} is of task {record.task_id!r}, "
                             "which is not among the tasks given")
    ordered = sorted(records, key=lambda r: (order[r.task_id], "+".join(r.behaviours), r.trial))
    if timestamp is None:
        timestamp = info.get("timestamp") or datetime.now(UTC).isoformat()
    document = {
        "timestamp": timestamp,
        "info": _info(info, ordered),
        "tasks": [_task(task) for task in tasks],
        "simulations": [_simulation(r, by_id[r.task_id], domain) for r in ordered],
    }
    return msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n"


# -- info ----------------------------------------------------------------------------------


def _info(info: Mapping[str, Any], records: Sequence[EpisodeRecord]) -> dict[str, Any]:
    domain = info.get("domain") or (records[0].domain if records else "")
    trials = max((r.trial for r in records), default=-1) + 1
    agent = info.get("agent") or (records[0].agent if records else "") or "writ"
    user = info.get("user") or (records[0].user if records else "") or "writ"
    known = {"git_commit", "num_trials", "max_steps", "max_errors", "seed", "agent_info",
             "user_info", "environment_info", "timestamp", "agent", "user", "agent_llm",
             "user_llm", "domain", "policy"}
    out: dict[str, Any] = {
        "git_commit": info.get("git_commit", ""),
        "num_trials": info.get("num_trials", trials),
        "max_steps": info.get("max_steps", DEFAULT_MAX_STEPS),
        "max_errors": info.get("max_errors", DEFAULT_MAX_ERRORS),
        "user_info": {
            "implementation": user, "llm": info.get("user_llm"), "llm_args": None,
            "global_simulation_guidelines": None, **info.get("user_info", {}),
        },
        "agent_info": {
            "implementation": agent, "llm": info.get("agent_llm"), "llm_args": None,
            **info.get("agent_info", {}),
        },
        "environment_info": {
            "domain_name": domain, "policy": info.get("policy", ""), "tool_defs": None,
            **info.get("environment_info", {}),
        },
        "seed": info.get("seed"),
    }
    for key in sorted(set(info) - known):
        out[key] = info[key]
    return out


def _task(task: Task) -> dict[str, Any]:
    plain = msgspec.to_builtins(task)
    for writ_only in ("axes", "trajectory_type", "synthesis"):  # absent from tau2's Task
        if plain.get(writ_only) is None:
            plain.pop(writ_only, None)
    return plain


# -- simulations ---------------------------------------------------------------------------


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat()


def _simulation(record: EpisodeRecord, task: Task, domain: Domain | None) -> dict[str, Any]:
    timing = record.timing
    return {
        "id": record.episode_id,
        "task_id": record.task_id,
        "timestamp": _iso(timing.start_time),
        "start_time": _iso(timing.start_time),
        "end_time": _iso(timing.end_time),
        "duration": timing.duration,
        "termination_reason": record.termination,
        "agent_cost": None,
        "user_cost": None,
        "reward_info": (_reward_info(record.reward_info, task,
                                     domain if domain is not None
                                     and domain.name == record.domain else None)
                        if record.reward_info is not None else None),
        "messages": [message_to_tau2(m) for m in record.messages],
        "trial": record.trial,
        "seed": record.seed,
        "info": {"writ": {
            "episode_id": record.episode_id,
            "domain": record.domain,
            "agent": record.agent,
            "user": record.user,
            "final_db_hash": record.final_db_hash,
            "model_calls": record.model_calls,
            "prompt_tokens": record.prompt_tokens,
            "completion_tokens": record.completion_tokens,
            "trajectory_type": record.trajectory_type,
            "axes": record.axes,
            "error": record.error,
            "model_seconds": timing.model_seconds,
            "extra": record.extra,
        }},
    }


def message_to_tau2(message: Message) -> dict[str, Any]:
    """One message as tau2-bench writes it (no per-message timestamps or costs: null)."""
    if isinstance(message, ToolMessage):
        return {
            "role": "tool", "id": message.id, "content": message.content,
            "requestor": message.requestor, "error": message.error,
            "turn_idx": message.turn_idx, "timestamp": None,
        }
    calls = message.tool_calls if isinstance(message, AssistantMessage) else None
    usage = message.usage
    return {
        "role": "assistant" if isinstance(message, AssistantMessage) else "user",
        "content": message.content,
        "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments,
                        "requestor": c.requestor} for c in calls] if calls else None,
        "turn_idx": message.turn_idx,
        "timestamp": None,
        "cost": None,
        "usage": ({"prompt_tokens": usage.prompt_tokens,
                   "completion_tokens": usage.completion_tokens} if usage else None),
    }


def _action(action: Action) -> dict[str, Any]:
    return {
        "action_id": action.action_id, "requestor": action.requestor, "name": action.name,
        "arguments": action.arguments, "info": action.info,
        "compare_args": action.compare_args,
    }


def _tool_type(domain: Domain | None, name: str) -> str | None:
    kind = domain.toolbox.kind(name) if domain is not None else None
    return str(kind) if kind is not None else None


def _reward_info(info: RewardInfo, task: Task, domain: Domain | None) -> dict[str, Any]:
    gold = task.gold_actions
    if len(gold) != len(info.action_checks):
        raise ValueError(f"task {task.id} has {len(gold)} gold actions but its grade has "
                         f"{len(info.action_checks)} action checks")
    nl_graded = NL_ASSERTION not in info.not_graded
    return {
        "reward": info.reward,
        "db_check": ({"db_match": info.db_match, "db_reward": 1.0 if info.db_match else 0.0}
                     if info.db_match is not None else None),
        "env_assertions": [],
        "action_checks": [
            {"action": _action(action), "action_match": check.passed,
             "action_reward": 1.0 if check.passed else 0.0,
             "tool_type": _tool_type(domain, action.name)}
            for action, check in zip(gold, info.action_checks, strict=True)
        ],
        "nl_assertions": ([{"nl_assertion": c.name, "met": c.passed, "justification": c.detail}
                           for c in info.nl_assertions] if nl_graded else None),
        "communicate_checks": [{"info": c.name, "met": c.passed, "justification": c.detail}
                               for c in info.communicate_checks],
        "reward_basis": info.reward_basis,
        "reward_breakdown": dict(info.breakdown) or None,
        "info": {
            "note": info.note or None,
            "not_graded": info.not_graded,
            "gold_db_hash": info.gold_db_hash,
            "final_db_hash": info.final_db_hash,
            "writ_evidence_ok": info.evidence_ok,
            "writ_evidence_checks": [_evidence(c) for c in info.evidence_checks],
            "writ_verdict": info.verdict,
            "writ_write_errors": info.write_errors,
        },
    }


def _evidence(check: Check) -> dict[str, Any]:
    return {"kind": check_kind(check), "name": check.name, "passed": check.passed,
            "detail": check.detail}


# -- summary -------------------------------------------------------------------------------


def rewards_per_task(records: Sequence[EpisodeRecord],
                     tasks: Sequence[Task]) -> dict[str, list[float]]:
    """Task id -> rewards in trial order, over evaluable episodes (an ungraded one: 0)."""
    order = {task.id: i for i, task in enumerate(tasks)}
    found: dict[str, list[tuple[int, float]]] = {}
    for record in records:
        if record.termination in NOT_EVALUABLE:
            continue
        reward = record.reward_info.reward if record.reward_info is not None else 0.0
        found.setdefault(record.task_id, []).append((record.trial, reward))
    ordered = sorted(found, key=lambda t: (order.get(t, len(order)), t))
    return {t: [r for _, r in sorted(found[t])] for t in ordered}


def summary(records: Sequence[EpisodeRecord], tasks: Sequence[Task],
            filter: ExportFilter | None = None) -> dict[str, Any]:
    """Average reward, pass^1..k (k up to the most trials any task has), episodes per
    termination reason and per verdict, and how many are kept.

    "Kept" is the export's decision (``export.keep`` under ``filter``, the default export
    filter if None), so the summary and the export line count the same episodes; the
    export then writes them less exact duplicates.
    """
    rewards = rewards_per_task(records, tasks)
    most = max((len(r) for r in rewards.values()), default=0)
    export_filter = filter if filter is not None else ExportFilter()
    kept = [r for r in records if keep(r, export_filter)[0]]
    out: dict[str, Any] = {
        "episodes": len(records),
        "evaluated": sum(len(r) for r in rewards.values()),
        "tasks": len(rewards),
        "average_reward": _number(average_reward(rewards)),
    }
    for k in range(1, most + 1):
        out[f"pass_hat_{k}"] = _number(pass_hat_k(rewards, k))
    out["termination_reasons"] = dict(sorted(Counter(r.termination for r in records).items()))
    out["verdicts"] = dict(sorted(Counter(
        r.reward_info.verdict if r.reward_info is not None else "none" for r in records
    ).items()))
    failures = tool_call_parse_failures(records)
    if failures:  # absent when none, so a clean run's summary reads as before
        out["tool_call_parse_failures"] = failures
    out["kept"] = len(kept)
    kept_ids = {r.episode_id for r in kept}
    for label, key in (("type", lambda r: r.trajectory_type or "tau2"),
                       ("writes", lambda r: (r.axes or {}).get("writes")),
                       ("burden", lambda r: (r.axes or {}).get("evidence")),
                       ("behaviour", lambda r: "+".join(r.behaviours) or "none")):
        out[f"kept_by_{label}"] = kept_rates(records, kept_ids, key)
    return out


def tool_call_parse_failures(records: Sequence[EpisodeRecord]) -> dict[str, int]:
    """``{kind: n}``: the agent's tool calls that servers passed through as text, over
    the records' messages (each names the failures met while it was made: retried calls,
    and a call kept and answered with an error result)."""
    counts: Counter[str] = Counter()
    for record in records:
        for message in record.messages:
            if isinstance(message, AssistantMessage) and message.parse_failures:
                counts.update(message.parse_failures)
    return dict(sorted(counts.items()))


def kept_rates(records: Sequence[EpisodeRecord], kept_ids: set[str],
               key: Any) -> dict[str, str]:
    """``{group: "kept/episodes"}`` for the groups ``key`` puts records in (sorted)."""
    totals: Counter[Any] = Counter()
    kept: Counter[Any] = Counter()
    for record in records:
        group = key(record)
        totals[group] += 1
        kept[group] += record.episode_id in kept_ids
    ordered = sorted(totals, key=lambda g: (g is None, str(type(g)), g if g is not None else 0))
    return {str(g): f"{kept[g]}/{totals[g]}" for g in ordered}


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value
