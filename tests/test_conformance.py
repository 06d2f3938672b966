"""Every recorded tau2-bench call must give the same output, error flag and DB hash.

The vectors in ``../shared/conformance`` were produced by running tau2-bench itself; each
line starts from a fresh environment over tau2's own ``db.json``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
from conftest import conformance_dir, require, tau2_dir

from domains import get_domain
from writ_async.environment.overlay import BaseDB

DOMAINS = ("airline", "retail")
WALK_SEEDS = list(range(150))  # the vectors' README: seeds 0..149 in order


@cache
def base_db(domain: str) -> BaseDB:
    path = require(tau2_dir() / domain / "db.json", f"tau2-bench {domain} db.json")
    return get_domain(domain).load_db(path)


def episodes(domain: str, kind: str) -> list[dict]:
    path = require(conformance_dir() / f"{domain}_{kind}.jsonl", "conformance vectors")
    with path.open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


def gold_task_ids(domain: str) -> list[str]:
    """Ids of the tasks with gold actions, in tasks.json order: one gold line each."""
    path = require(tau2_dir() / domain / "tasks.json", f"tau2-bench {domain} tasks.json")
    tasks = json.loads(path.read_text())
    return [t["id"] for t in tasks if (t.get("evaluation_criteria") or {}).get("actions")]


def same_output(got: str, want: str) -> bool:
    """Byte equality; for pydantic validation errors only the first line must match."""
    first = want.split("\n", 1)[0]
    if " validation error" in first and first.startswith("Error: "):
        return got.split("\n", 1)[0] == first
    return got == want


def replay(domain: str, calls: list[dict], hashes: list[str]) -> int:
    """Replays ``calls`` on a fresh environment; returns how many calls were checked."""
    base = base_db(domain)
    env = get_domain(domain).environment(base)
    for i, (call, want_hash) in enumerate(zip(calls, hashes, strict=True)):
        result = env.call(call["name"], call["arguments"])
        where = f"call {i} {call['name']}({json.dumps(call['arguments'])[:300]})"
        assert same_output(result.output, call["output"]), (
            f"{where}\n got: {result.output[:600]!r}\nwant: {call['output'][:600]!r}"
        )
        assert result.error == call["error"], where
        assert env.db_hash() == want_hash, f"{where}: DB hash differs"
    return len(calls)


@pytest.mark.parametrize("domain", DOMAINS)
def test_initial_hash(domain: str) -> None:
    path = require(conformance_dir() / f"{domain}_initial.json", "conformance vectors")
    want = json.loads(Path(path).read_text())["db_hash"]
    assert base_db(domain).db_hash() == want


@pytest.mark.parametrize("domain", DOMAINS)
def test_gold_sequences(domain: str) -> None:
    eps = episodes(domain, "gold")
    # An empty or truncated vector file must fail, not pass with nothing compared.
    assert [ep["task_id"] for ep in eps] == gold_task_ids(domain)
    checked = 0
    for ep in eps:
        assert ep["calls"], f"{domain} task {ep['task_id']}: no gold calls"
        try:
            checked += replay(domain, ep["calls"], ep["db_hash_after"])
        except AssertionError as exc:
            raise AssertionError(f"{domain} task {ep['task_id']}: {exc}") from None
    assert checked == sum(len(ep["calls"]) for ep in eps) > 0


@pytest.mark.parametrize("domain", DOMAINS)
def test_random_walks(domain: str) -> None:
    eps = episodes(domain, "walks")
    assert [ep["seed"] for ep in eps] == WALK_SEEDS
    checked = 0
    for ep in eps:
        # The vectors' README: each walk is 8..40 calls.
        assert 8 <= len(ep["calls"]) <= 40, f"{domain} walk seed {ep['seed']}"
        try:
            checked += replay(domain, ep["calls"], [c["db_hash"] for c in ep["calls"]])
        except AssertionError as exc:
            raise AssertionError(f"{domain} walk seed {ep['seed']}: {exc}") from None
    assert checked == sum(len(ep["calls"]) for ep in eps) >= 8 * len(WALK_SEEDS)


@pytest.mark.parametrize("domain", DOMAINS)
def test_base_never_mutated(domain: str) -> None:
    runs = {"gold": 0, "walks": 0}
    changed = 0
    for kind in runs:
        for ep in episodes(domain, kind):
            env = get_domain(domain).environment(base_db(domain))
            before = env.db_hash()
            for call in ep["calls"]:
                env.call(call["name"], call["arguments"])
            runs[kind] += 1
            changed += env.db_hash() != before
    # verify_unchanged means something only if every vector ran and some wrote to an overlay.
    assert runs == {"gold": len(gold_task_ids(domain)), "walks": len(WALK_SEEDS)}
    assert changed > 0
    assert base_db(domain).verify_unchanged()
