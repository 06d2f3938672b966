"""seeds.py owns every seed derivation, and moving them there changed no output.

The pinned numbers and digests below were computed on the tree at commit 5e967e8, before
the derivations moved into writ_async/seeds.py (records.derive_seed, behaviours.scenario_seed,
synthesis.tasks._derive and the inline ``random.Random(f"...")`` keys): a derivation that
changes, even in its key format, changes every journal, results file and export.
"""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from writ_async import seeds

REPO = Path(__file__).resolve().parent.parent


def test_blake2b_derivations_are_the_ones_runs_were_made_with() -> None:
    # records.derive_seed, behaviours.scenario_seed and synthesis.tasks._derive at 5e967e8
    assert seeds.episode_seed(7, "wi_3@impatient", 2) == 7641326363909238706
    assert seeds.episode_seed(0, "t1", 0) == 5466799996827717405
    assert seeds.scenario_seed(7, "wi_3", 1) == 5115432412448920163
    assert seeds.synthesis_seed(7, 4, "shape") == 5340639371088277889
    assert seeds.synthesis_seed(7, 4, "shape", 2) == 5385879764413651011
    assert seeds.synthesis_seed(7, 4, 1) == 6827695279334888918


def test_rng_keys_are_the_ones_runs_were_made_with() -> None:
    # cli.walk, models.setup.open_pool, loadtest.run and the mock server at 5e967e8
    assert seeds.walk_rng(7, 3).random() == 0.7743612107349676
    assert seeds.pool_rng(7).random() == 0.48305795984741995
    assert seeds.loadtest_rng(7).random() == 0.18530106089744747
    assert seeds.arrivals_rng(7).random() == 0.16240901590818524
    assert seeds.mock_request_rng(7, 12345).random() == 0.09325724893493126


def test_the_old_names_are_the_seeds_functions() -> None:
    from writ_async.conversation.records import derive_seed
    from writ_async.participants.behaviours.scenarios import scenario_seed

    assert derive_seed is seeds.episode_seed
    assert scenario_seed is seeds.scenario_seed


def test_run_seed_is_the_override_when_given() -> None:
    from writ_async.config import default_config

    config = default_config()
    assert seeds.run_seed(config) == config.run.seed
    assert seeds.run_seed(config, 41) == 41
    assert seeds.run_seed(config, 0) == 0  # a zero override is an override


def test_no_module_derives_a_seed_itself() -> None:
    # The derivations, and the one read of the run seed (run_seed), live in seeds.py;
    # these spellings elsewhere would be a new one.
    # Content hashes (export dedupe, overlay hashes) use blake2b too, on bytes, not keys.
    # The scripted participants' per-episode streams, `random.Random(f"{seed}:...")`,
    # are draws within one episode from its seed (see seeds.py's docstring).
    spellings = ('.encode(), digest_size=8', 'Random(f"pool:', 'Random(f"loadtest:',
                 'Random(f"arrivals:', 'seed << 64', 'run.seed if ', 'config.run.seed')
    offenders = [
        f"{path.relative_to(REPO)}: {spelling}"
        for path in sorted((REPO / "writ_async").rglob("*.py")) if path.name != "seeds.py"
        for spelling in spellings if spelling in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


# -- the main job's outputs, before and after ---------------------------------------------
# Timestamps and measured durations differ between any two runs, so they are dropped
# before hashing (results.json's timestamp/start_time/end_time/duration/model_seconds, the
# journal's record timing and model-call latency/ttft); everything else is compared. The
# journal is decoded schema-free (so a refactor of the event classes cannot hide a
# change) and its events grouped by episode, keeping each episode's order: episodes that
# run concurrently may interleave differently, which is not a change of output. Exports
# embed no time and are compared byte for byte.

_TIMES = {"timestamp", "start_time", "end_time", "duration", "latency", "ttft", "timing",
          "model_seconds"}


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in _TIMES}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _journal_events(path: Path) -> list[Any]:
    buf = path.read_bytes()
    decoder = msgspec.msgpack.Decoder()
    events, offset = [], 0
    while offset < len(buf):
        length, _crc = struct.unpack_from("<II", buf, offset)
        events.append(decoder.decode(buf[offset + 8:offset + 8 + length]))
        offset += 8 + length
    events.sort(key=lambda event: event["episode_id"])  # stable: each episode's order kept
    return events


def _digests(run: Path) -> dict[str, str]:
    def sha(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    out = {"journal": sha(msgspec.json.encode(_strip(_journal_events(run / "journal.bin")))),
           "results": sha(msgspec.json.encode(_strip(results))),
           "tasks.json": sha((run / "tasks.json").read_bytes())}
    for path in sorted((run / "export").iterdir()):
        out[f"export/{path.name}"] = sha(path.read_bytes())
    return out


_TASKS_20 = "6e3bed0ac631d101a8f33fa1d2005a4d4c97020d193488ca9faec63c69cb1abd"

# The main job's outputs, one dict per command: first pinned at 5e967e8 (before seeds.py)
# and re-pinned only where a commit changes the agent's or user's wording on purpose.
CASES: dict[str, tuple[list[str], dict[str, str]]] = {
    # the embedded default (no config file), with trials and seeded mistakes
    "embedded-default": (["--task-count", "20", "--trials", "2", "--mistake-rate", "0.3"], {
        "journal": "4ccd32595965f9d1ceb1d8740a1d0d492f44541d5772c23a582b086f731bc404",
        "results": "8265824dd37c2e4b8501cc95ffcce79acca7388099f23f4002ddcb37dfd88c4a",
        "tasks.json": _TASKS_20,
        "export/sft_openai.jsonl":
            "85b371543385ebbcdb2b46b7b9663edf6de56a8a80a3b6676085b475ec482c2f",
        "export/sft_sharegpt.jsonl":
            "90757e770b4ad791b7de174c7739de810cf96240e54ac8f94869e663caf09144",
        "export/sft_trl.jsonl":
            "97bce5056f93fb815f5d7788c832c70276fd87a12968bab83fd6febefd857725",
        "export/stats.json": "c595ca8402d3639cfcae0362019f3ba26bf789f684b68cba9bca5f22b2c063c1",
    }),
    # the README's main command (config.toml: user behaviours), at 20 tasks
    "main-job": (["--config", "config.toml", "--task-count", "20"], {
        "journal": "62838c6890d2d4346c4543666ab388c702b3f83718a192c698bdec6f0c12b396",
        "results": "a746c0ec97305747f0727e46d8c2f960f4437069974624ded054f221aca1aeee",
        "tasks.json": _TASKS_20,
        "export/sft_openai.jsonl":
            "a3eda15e7e436911fbf6cfaf74c39f3db4a6fb6b175b7f2588797acdb38d3caf",
        "export/sft_sharegpt.jsonl":
            "f4d4d1fa7e353a36d04f411c0857698317d3d95240ca5bb0efc82c03f1d8414f",
        "export/sft_trl.jsonl":
            "5fb1769f5b761be21374e08991456760a6ed012bd4ebd62356e0ae586e46a642",
        "export/stats.json": "4160b57284fa845352aeb03ac78c0426c955ff7c41e10973d5c7ad4fd2fe98a3",
    }),
    # the same participants behind the mock server: pool and mock request seeds too
    "scripted-http": (["--config", "config.toml", "--task-count", "8", "--trials", "2",
                       "--mistake-rate", "0.3", "--agent", "scripted-http",
                       "--user", "scripted-http"], {
        "journal": "81252f3a219c9cf955203d47d9f12a7ff4b4fb5a63301c0e657b89659d527869",
        "results": "a87cb262539bfc568e08b2df0fb49a5589e734cda45a05879efa6594e374f3c3",
        "tasks.json": "cf945974a1a45ab353d328268e5a827f2cc01f6a8082695daea2a0a1eff1cc3d",
        "export/sft_openai.jsonl":
            "e94f10a21dbd22fe8d392d24db0d3f4758eddcc18e6063a1e1c6138f7f12a9fa",
        "export/sft_sharegpt.jsonl":
            "e1c302b212ae19117f1728c6c129d767f0c8d54533cdc3586e85c83e0bce30f6",
        "export/sft_trl.jsonl":
            "e6d6d542cc501b986fee9e44c83d229964410d69109f39d7763a4b05a6c0c1fb",
        "export/stats.json": "f6abe08510ba915065d38100f3a21421cfdc1fb3e844c892a6555e0c1b300758",
    }),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_main_job_outputs_are_unchanged(case: str, tmp_path: Path) -> None:
    flags, expected = CASES[case]
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "writ_async", "simulate", *flags,
                           "--out", str(run)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert _digests(run) == expected
