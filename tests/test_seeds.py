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
        "journal": "978e6fc78f1194cf170fe536351c4ed91cb8733892251a3bd4d59cf79ed400b3",
        "results": "5aaff2016c976367c162d8062178c7c8f8d13b24b46f4a1ec6f46deabcf45b37",
        "tasks.json": _TASKS_20,
        "export/sft_openai.jsonl":
            "ea7faab75b4e130c877c53990512589a761b32f0614caed0df1b1b7c92d0d4c8",
        "export/sft_sharegpt.jsonl":
            "146467210499f4a20d0a86cea6b186f161ac0cbd13cc6913d9e31d65fbb63a60",
        "export/sft_trl.jsonl":
            "cef165360a6633134d2f4abf6186fc25c7e2110f492984ef07435cde84e37bb8",
        "export/stats.json": "857a15643dfc14563b80f0683b053c7e4c2e0651e554f465a29a541b7c6603cf",
    }),
    # the README's main command (config.toml: user behaviours), at 20 tasks
    "main-job": (["--config", "config.toml", "--task-count", "20"], {
        "journal": "f729b39d8f7011c6ff225618626a174c27c8f38d17b5b2c2f31ef772ecc8c549",
        "results": "6501e59a8bb7f7416108422f4c3eda5f497897b9afcf6f89a6435d372f0852c3",
        "tasks.json": _TASKS_20,
        "export/sft_openai.jsonl":
            "a8f6fa3735a681baeb72a5d4aca44109f5660fb0134de6417a935ee530be25ac",
        "export/sft_sharegpt.jsonl":
            "ca1c70a48e01ea89cbe110a7a8e8e06b2a88be0adb822181409cabc649811250",
        "export/sft_trl.jsonl":
            "4d0079337caef25f92d0263c480e717c8894047d64ed168089c8bfd1d922311b",
        "export/stats.json": "02cb168aa95d0d69d78a60ab7a89712c8f90f49c653ac9d211da4b168b9c354d",
    }),
    # the same participants behind the mock server: pool and mock request seeds too
    "scripted-http": (["--config", "config.toml", "--task-count", "8", "--trials", "2",
                       "--mistake-rate", "0.3", "--agent", "scripted-http",
                       "--user", "scripted-http"], {
        "journal": "bd27ba9086721617aeeef047e0ca0d061fdc9f5353b93d24870136b8ed213b58",
        "results": "c4a29d44a73e0b99f7d69b288af93e7fa2aa60274e6d5d41505da0a247be172c",
        "tasks.json": "cf945974a1a45ab353d328268e5a827f2cc01f6a8082695daea2a0a1eff1cc3d",
        "export/sft_openai.jsonl":
            "55b04282060b46cc9dc484388f66df59a4b21f9e616a0f1ced3b5bc39bafca1e",
        "export/sft_sharegpt.jsonl":
            "5e829876725ee46f9b487d7ffc97f6c46542b98bab29563308187ee6db266aca",
        "export/sft_trl.jsonl":
            "92beb7d88eb4a052a1d065e71d4fc00a3b315e32c3b18ce586a700519f3aadb1",
        "export/stats.json": "85daa04aca73c67dd9af205f06afee689fa663a4f79f4e88195c888c78952748",
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
