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
from writ_async.overlay import BaseDB

DOMAINS = ("airline", "retail")


@cache
def base_db(domain: str) -> BaseDB:
    path = require(tau2_dir() / domain / "db.json", f"tau2-bench {domain} db.json")
    return get_domain(domain).load_db(path)


def episodes(domain: str, kind: str) -> list[dict]:
    path = require(conformance_dir() / f"{domain}_{kind}.jsonl", "conformance vectors")
    with path.open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


def same_output(got: str, want: str) -> bool:
    """Byte equality; for pydantic validation errors only the first line must match."""
    first = want.split("\n", 1)[0]
    if " validation error" in first and first.startswith("Error: "):
        return got.split("\n", 1)[0] == first
    return got == want


def replay(domain: str, calls: list[dict], hashes: list[str]) -> None:
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


@pytest.mark.parametrize("domain", DOMAINS)
def test_initial_hash(domain: str) -> None:
    path = require(conformance_dir() / f"{domain}_initial.json", "conformance vectors")
    want = json.loads(Path(path).read_text())["db_hash"]
    assert base_db(domain).db_hash() == want


@pytest.mark.parametrize("domain", DOMAINS)
def test_gold_sequences(domain: str) -> None:
    for ep in episodes(domain, "gold"):
        try:
            replay(domain, ep["calls"], ep["db_hash_after"])
        except AssertionError as exc:
            raise AssertionError(f"{domain} task {ep['task_id']}: {exc}") from None


@pytest.mark.parametrize("domain", DOMAINS)
def test_random_walks(domain: str) -> None:
    for ep in episodes(domain, "walks"):
        try:
            replay(domain, ep["calls"], [c["db_hash"] for c in ep["calls"]])
        except AssertionError as exc:
            raise AssertionError(f"{domain} walk seed {ep['seed']}: {exc}") from None


@pytest.mark.parametrize("domain", DOMAINS)
def test_base_never_mutated(domain: str) -> None:
    for kind in ("gold", "walks"):
        for ep in episodes(domain, kind):
            env = get_domain(domain).environment(base_db(domain))
            for call in ep["calls"]:
                env.call(call["name"], call["arguments"])
    assert base_db(domain).verify_unchanged()
