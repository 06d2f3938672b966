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
        "journal": "76834f803000abc91f9dd1f6e334bd52793d8d651f86b367509ea99d86520506",
        "results": "2f48500df0e4d8b718c5747352769cd5d334af46b806c1ab960bade60cac12f4",
        "tasks.json": _TASKS_20,
        "export/sft_openai.jsonl":
            "35247f815b7594dc70baa8bdc39884ba0027512c14349757abcc016b29133229",
        "export/sft_sharegpt.jsonl":
            "6260f8ce67d7b57f54a51192ce42e31e12af4e262b3e80656fa0e0fc1fcf6b48",
        "export/sft_trl.jsonl":
            "8a0f52bab7b2d051dc7d5d590b66d7c290ff9aed4f4328a4362d9a7bb2c17271",
        "export/stats.json": "fbd4f95ba936692d38554b7f8b7f7ddc0e52079c46edb9ae27026a23624d0e32",
    }),
    # the README's main command (config.toml: user behaviours), at 20 tasks
    "main-job": (["--config", "config.toml", "--task-count", "20"], {
        "journal": "2c5982ea83288c3a25f0abb502127ab49935abae40252938da57ec3532ea09d4",
        "results": "c51be21b886a6e01473a0f28e1452e9fd4cd65faebe814ad11ba9de22886e910",
        "tasks.json": _TASKS_20,
        "export/sft_openai.jsonl":
            "2e36e80acc7533f04a72c03744f51adaa561dc28d6e55f0709c7c1c5d7bcfc22",
        "export/sft_sharegpt.jsonl":
            "68b55cfeb5d58f81043c1c40f031fc870c443ab6f9214be86a3a75639417d4e1",
        "export/sft_trl.jsonl":
            "400ea78b4eaae46f14bd2a1f4685371d253ddaa2ece91f752883692985675ec6",
        "export/stats.json": "b1a4275d7718f325a68fd2a9245b25d1f97ddd5c4ac293b41a5fe339831e7807",
    }),
    # the same participants behind the mock server: pool and mock request seeds too
    "scripted-http": (["--config", "config.toml", "--task-count", "8", "--trials", "2",
                       "--mistake-rate", "0.3", "--agent", "scripted-http",
                       "--user", "scripted-http"], {
        "journal": "b306b1561d3b2e3d76495006de34f1b4afa00cad403e1a6bdb5701d2bc8bd75d",
        "results": "5f6b1feb2ca0701737693c06cffbd344ce7d000613923e54e5ad2326cf8d5ddf",
        "tasks.json": "cf945974a1a45ab353d328268e5a827f2cc01f6a8082695daea2a0a1eff1cc3d",
        "export/sft_openai.jsonl":
            "b311bdaabeb1b7f256dd9c500b6ea6b551537166a47c4674d32e32bc6c36a37b",
        "export/sft_sharegpt.jsonl":
            "85db2c20664ac8f422e0d1cd82ca77e80f47c170939fbc9da4b30e3b3df0e484",
        "export/sft_trl.jsonl":
            "9984e037244ee507f127afd617a563292cca464aecb25edc23d4c4d80ca1dd0b",
        "export/stats.json": "d93d482d125cc7dcfb1fbaa56d8b4e9e9125093963a5784e4a0fbcdeaf443853",
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
