"""What a finished episode leaves behind: its record and its grade.

``EpisodeRecord`` is written to the journal when an episode finishes and is the single
source for results.json (tau2-bench's format) and for SFT export. Timing fields are
kept apart (``timing``) so that two runs with the same seed compare equal on the rest.
"""

from __future__ import annotations

from typing import Any

import msgspec

from writ_async.conversation.messages import Message
from writ_async.seeds import episode_seed


class Check(msgspec.Struct, frozen=True, kw_only=True):
    """One graded item: what was checked, whether it held, and why not."""

    name: str
    passed: bool
    detail: str = ""


class RewardInfo(msgspec.Struct, frozen=True, kw_only=True):
    """tau2-bench's reward and its components, plus writ's evidence check.

    ``reward`` is the product over ``reward_basis`` of the graded components, zero unless
    the user or the agent ended the episode. Components listed in ``not_graded`` (NL
    assertions without a judge) are left out of the product and said so.

    ``verdict`` says whether the reward means anything: ``"graded"``; ``"not_graded"``
    (the task has no criteria, or none of its basis could be graded: reward 0, where
    tau2-bench would give 1); ``"invalid_task"`` (the task was written for another
    database and its own gold actions fail on this one: reward 0). Only a graded episode
    can be exported. ``write_errors`` lists the agent's write calls that returned an error
    the gold does not expect (``tool(args): output``); such an episode is not exported.
    Both default so that journals written before them still decode.
    """

    reward: float
    reward_basis: list[str]
    db_match: bool | None = None
    gold_db_hash: str | None = None
    final_db_hash: str | None = None
    communicate_checks: list[Check] = msgspec.field(default_factory=list)
    action_checks: list[Check] = msgspec.field(default_factory=list)
    nl_assertions: list[Check] = msgspec.field(default_factory=list)
    breakdown: dict[str, float] = msgspec.field(default_factory=dict)
    not_graded: list[str] = msgspec.field(default_factory=list)
    evidence_checks: list[Check] = msgspec.field(default_factory=list)
    evidence_ok: bool = True
    note: str = ""
    verdict: str = "graded"
    write_errors: list[str] = msgspec.field(default_factory=list)


class Timing(msgspec.Struct, frozen=True, kw_only=True):
    """Wall-clock facts, excluded from determinism comparisons."""

    start_time: float = 0.0
    end_time: float = 0.0
    duration: float = 0.0
    model_seconds: float = 0.0


class Lineage(msgspec.Struct, frozen=True, kw_only=True):
    """Where a replayed episode comes from (``writ replay``): the parent run and episode,
    and the step up to which the parent's recorded messages were kept before the episode
    went on live (0: re-run from the start). ``mode`` is ``fork``, ``from_start`` or
    ``from_first_wrong_write``."""

    parent_run: str  # the parent's run id
    parent_dir: str  # the parent run directory, as it was given
    parent_episode: str
    parent_attempt: int
    fork_step: int
    mode: str = "fork"


class EpisodeRecord(msgspec.Struct, frozen=True, kw_only=True):
    episode_id: str  # f"{task_id}:{trial}"
    task_id: str
    trial: int
    seed: int
    domain: str
    termination: str
    messages: list[Message]
    final_db_hash: str
    reward_info: RewardInfo | None = None
    agent: str = ""  # "scripted" or a role name
    user: str = ""
    model_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    trajectory_type: str | None = None
    axes: dict[str, int] | None = None
    error: str | None = None  # the failure that ended it, for failed episodes
    timing: Timing = msgspec.field(default_factory=Timing)
    behaviours: list[str] = msgspec.field(default_factory=list)  # WRIT stage 2 user behaviours
    extra: dict[str, Any] = msgspec.field(default_factory=dict)
    # the overlay's delta hash at the end (equal iff final_db_hash is): replay compares it
    # and computes the tau2 hash only when it differs
    final_delta_hash: str | None = None
    not_judged: str = ""  # why NL assertions were not graded although a judge was set
    lineage: Lineage | None = None  # set for episodes made by `writ replay`


def episode_id(task_id: str, trial: int) -> str:
    return f"{task_id}:{trial}"


# The episode's seed, by its old name (seeds.py owns the derivation); tests still use it.
derive_seed = episode_seed
