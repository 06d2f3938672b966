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
        "journal": "b78aeef5cb47b39b27f97024cadcdd6b722c85e35ae43f44571096ebef15974c",
        "results": "f4ed4bf23e27b9275d20ff21f9cf78454e382d3d4b259f17767cb33ac6290da6",
        "tasks.json": _TASKS_20,
        "export/sft_openai.jsonl":
            "8f5027f380bc0cb319c1f143fe1e11229f7aa3eb9f1a42f5200cbe1a80e1c68a",
        "export/sft_sharegpt.jsonl":
            "e4fab0ee13d525b55401b672ffa93c285d26a79fdf06cd976f0fd335d9cb3b47",
        "export/sft_trl.jsonl":
            "f7e0ba1ae2947c848fea44032f89ace142d8fded536813ef87a02d8b53a6e24c",
        "export/stats.json": "52194fa0db252a17c3a698915bde1ad9cf57d9a8c94becb9d38592811c1f0c4e",
    }),
    # the README's main command (config.toml: user behaviours), at 20 tasks
    "main-job": (["--config", "config.toml", "--task-count", "20"], {
        "journal": "d1b7147bfa3317f98de7c30bd78bb5c34945b66214fdec509bfdda12c925698d",
        "results": "48d0b3b3c24d2bb76aa579b8da079e269ac58f7fed8e6e25115fc8d356672040",
        "tasks.json": _TASKS_20,
        "export/sft_openai.jsonl":
            "7803ab8b89b6bf6c324985af6f2728f218e8a098922a2a54f3643eaa1432774d",
        "export/sft_sharegpt.jsonl":
            "9529d433ec098be49f1ee8b7c7194935416d4c22bc4918ab697a8afa24824f59",
        "export/sft_trl.jsonl":
            "76109d7115d8350eb645e0f4ea93d0411428aff141a4a914cedd9d19681c11a9",
        "export/stats.json": "005da74d4bd9eecaa75030b95979458db4fca396d1b88703fcb88d0fd18a946c",
    }),
    # the same participants behind the mock server: pool and mock request seeds too
    "scripted-http": (["--config", "config.toml", "--task-count", "8", "--trials", "2",
                       "--mistake-rate", "0.3", "--agent", "scripted-http",
                       "--user", "scripted-http"], {
        "journal": "435c7e7164a804807f71c728a02eb0183ac2b4ce7d2aecd500458f4cec1c6ca8",
        "results": "1a66f23ad96d7bf12077eb55d0c42695dea7cb58f255afd718a65f0d8de25dbb",
        "tasks.json": "cf945974a1a45ab353d328268e5a827f2cc01f6a8082695daea2a0a1eff1cc3d",
        "export/sft_openai.jsonl":
            "dc20c34e41ccbd218da0c3d92e93ac7e7780843d9738b87fd15d858a753b2d0a",
        "export/sft_sharegpt.jsonl":
            "1523bf42bec32c0572b6cd6acb7b8cb1ac91aa783b3305608040567769e8c6b4",
        "export/sft_trl.jsonl":
            "4042b4ee9d21847d4a78a18ad768955d3468df23d0053e338e2b55fa3066fbba",
        "export/stats.json": "b6e343946981a2a39a829feed75d3ccb0b38f5396b4e3af9261f374280d08c87",
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
