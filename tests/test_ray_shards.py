"""Sharding without Ray: every episode in exactly one shard, shards run by the ordinary
engine in-process and merged into a run equal to a single-process one."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from planning import plan_of
from test_simulate import results_without_timing

from writ_async.cluster.shards import (
    load_or_save_plan,
    merge_shards,
    plan_shards,
    run_order,
    run_shard,
    shard_path,
)
from writ_async.config import default_config
from writ_async.engine.journal import read_journal
from writ_async.engine.rundir import create_run, load_manifest
from writ_async.engine.simulate import simulate


@given(st.lists(st.text(min_size=1), unique=True), st.integers(1, 9))
def test_every_episode_is_in_exactly_one_nonempty_shard(ids: list[str], shards: int) -> None:
    plan = plan_shards(ids, shards)
    assert sorted(e for shard in plan for e in shard) == sorted(ids)
    assert all(plan) or not ids
    assert len(plan) == max(1, min(shards, len(ids)))


@pytest.mark.asyncio
async def test_shards_run_in_process_merge_into_the_single_process_run(tmp_path) -> None:
    config = default_config()
    replace = msgspec.structs.replace
    config = replace(config, simulate=replace(config.simulate, task_count=12, trials=2,
                                              mistake_rate=0.3, concurrency=4))
    single = await simulate(plan_of(config), out=tmp_path / "single")
    manifest = load_manifest(tmp_path / "single")
    plan = plan_of(config)
    order = run_order(plan)
    run = create_run(tmp_path / "sharded", manifest)
    shards = load_or_save_plan(run.path, plan_shards(order, 3))
    assert load_or_save_plan(run.path, [order]) == shards  # a resumed run keeps its plan
    for index, ids in enumerate(shards):
        last = await run_shard(plan, manifest, shard_path(run.path, index), ids, shard=index,
                               attempt=0, worker=f"w{index}", pid=0, concurrency=2)
        assert last.finished and last.done == last.total == len(ids)
    assert merge_shards(run, shards, order) == 24
    assert merge_shards(run, shards, order) == 0  # merging again adds nothing
    from writ_async.engine.outputs import records_in_run_order, write_outputs

    records = records_in_run_order(read_journal(run.journal_path).finished, plan)
    write_outputs(run, plan, records, plan.tasks)
    assert results_without_timing(run.path) == results_without_timing(single.run_dir)
    for name in ("sft_openai.jsonl", "sft_sharegpt.jsonl"):
        assert (run.export_dir / name).read_bytes() == (
            single.run_dir / "export" / name).read_bytes()
