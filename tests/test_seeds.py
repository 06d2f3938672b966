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

# The main job's outputs at commit 5e967e8 (before seeds.py), one dict per command.
CASES: dict[str, tuple[list[str], dict[str, str]]] = {
    # the embedded default (no config file), with trials and seeded mistakes
    "embedded-default": (["--task-count", "20", "--trials", "2", "--mistake-rate", "0.3"], {
        "journal": "f19dadb62a53107f86fa622e5dfca2ccd237bcd8ab8a2e0e5e083d2c757d4338",
        "results": "fbac548132bc32ba0c7fe58e20f1115d082abc08dbd8f9c6e238ee610fb0d651",
        "tasks.json": _TASKS_20,
        "export/sft_openai.jsonl":
            "6679d2c68e1de38ba74fde7ec7e48958c7fa427200ae9d886c1f8bbca79e35ee",
        "export/sft_sharegpt.jsonl":
            "103eff8fcf24b86ba3e9f2f4d57ccec0894b4ca2765b554dc2558f2e5427ae08",
        "export/sft_trl.jsonl":
            "5e52acd35fcd8d0c1910616820a7cf84af8dc354de049c9ff3e8ef22ceffeee8",
        "export/stats.json": "cc518a1d63553d9351da0ac89048470cd4b0d638b941d39316b3acdd3486e159",
    }),
    # the README's main command (config.toml: user behaviours), at 20 tasks
    "main-job": (["--config", "config.toml", "--task-count", "20"], {
        "journal": "b262619a4956946b10195045320a077fe892edfdaa6ea4c731bc8a32cac6fac1",
        "results": "8970eb98dcb474508b6ef617dce582ebb78373ca09a3d18d8382d6f7797543f6",
        "tasks.json": _TASKS_20,
        "export/sft_openai.jsonl":
            "a9ab5e58e4b949009c9be4e9f37acc8c9a31f3774dad09c07e6e3229163a959f",
        "export/sft_sharegpt.jsonl":
            "5137b8bde37f0544c3b6e96623d5739271ff22c3f184c9c8f6effea3cda97bc6",
        "export/sft_trl.jsonl":
            "c985b08e6e632f376fad54696bdb5fd9642900490e5d27b3219eb00c343438c9",
        "export/stats.json": "764c88e86b57f43f8fe1a3c6fce1557020045d0e75ea25c9a5de26cefc7e1b2c",
    }),
    # the same participants behind the mock server: pool and mock request seeds too
    "scripted-http": (["--config", "config.toml", "--task-count", "8", "--trials", "2",
                       "--mistake-rate", "0.3", "--agent", "scripted-http",
                       "--user", "scripted-http"], {
        "journal": "ac96039eed5fc4b8cf22be03d9bd8127b988f1ddc8ab31cd08818f7d4e30b6d5",
        "results": "7cfa193d7775ed4907793d120ba434f77ddf0b668a130de3a359b879f584f454",
        "tasks.json": "cf945974a1a45ab353d328268e5a827f2cc01f6a8082695daea2a0a1eff1cc3d",
        "export/sft_openai.jsonl":
            "52344f9549b4bd63d5f204cc5d41398d5301a54ba346c771cacd09c193f021ff",
        "export/sft_sharegpt.jsonl":
            "2acd60053f2c918a4fd4203f1d01afd382239cb72d8cc01984c3acb18d5fe221",
        "export/sft_trl.jsonl":
            "09cf9204d9fa2ca8cb509abfd1c850d6d17cd0ebfc8fc1e465268a545a17ff8b",
        "export/stats.json": "4b4d79f6b69df1e7b91642ca89cb713bdb0b4ce86e79c1cc03ddc1c65c199643",
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
