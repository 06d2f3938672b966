"""The SFT study's three training arms, synthesized by ``writ simulate`` (issue 17, CPU side).

Every arm has the same budget (``--per-arm`` kept trajectories, split evenly between the
domains), the same seed, and is synthesized on tau2-bench's own airline and retail
databases, policies and tool schemas, never reproducing the gold writes of a tau2 test-split
task (``[synthesis] exclude``):

* ``write_only``     write-intensive tasks only, no user behaviours;
* ``writ_mix``       the WRIT mix of the base config (write-intensive + read-heavy + mixed);
* ``writ_mix_users`` the same mix, each task told by users of the base config's
                     ``[simulate.behaviours]`` (WRIT stage 2).

For each arm and domain it writes a config, runs ``python -m writ_async simulate``, and
takes the first N rows of the run's ``export/sft_trl.jsonl`` (the export keeps task order,
and task types are dealt so that every prefix keeps the mix); a run that kept fewer rows is
run again with more tasks. Then it synthesizes the held-out read-heavy evaluation tasks
(``writ tasks generate``, another seed, excluding every arm's tasks and the test split).

Outputs, under ``--out`` (default ``runs/train_effect``, which git ignores):

    arms/<arm>.jsonl          the arm's rows (TRL conversational rows with tools)
    manifest.json             counts per arm, domain, type and behaviour; runs; commands
    carry/                    what the GPU machine needs, in one folder to carry:
      arms/<arm>.jsonl.gz       the rows again, gzipped (the arms are ~35 MB each plain)
      heldout/<domain>_read_heavy.json
      tau2/<domain>/...         tau2's files the evaluation reads (../shared does not travel)
      manifest.json
    synth/, configs/          the writ runs and their configs

    python benchmarks/train_effect/arms.py [--tau2 ../shared/tau2] [--per-arm 1000]
        [--heldout 30] [--seed 0] [--out runs/train_effect] [--base-config config.toml]
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DOMAINS = ("airline", "retail")
TAU2_FILES = ("db.json", "tasks.json", "split_tasks.json", "policy.md", "tools.json")
TEST_SPLIT = "test"
WRITE_ONLY, WRIT_MIX, WRIT_MIX_USERS = "write_only", "writ_mix", "writ_mix_users"
ARMS = (WRITE_ONLY, WRIT_MIX, WRIT_MIX_USERS)
ATTEMPTS = 4  # runs per arm and domain before a shortfall is an error
HELDOUT_SEED_OFFSET = 1_000_003  # held-out tasks: another synthesis seed than the arms'


class ArmsError(RuntimeError):
    """A step of the synthesis failed (writ exited non-zero, or too few rows kept)."""


# -- config -------------------------------------------------------------------------------


def _toml(value: Any) -> str:
    """A TOML value (inline tables for mappings): enough for the keys written here."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml(v)}"
                                for k, v in value.items()) + " }"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"no TOML for {type(value).__name__}")


def _table(name: str, values: Mapping[str, Any]) -> str:
    return f"[{name}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in values.items()) + "\n"


def domain_table(domain: str, tau2: Path) -> dict[str, str]:
    """tau2-bench's own database, policy and tool schemas for ``domain``."""
    d = tau2.resolve() / domain
    return {"db_path": str(d / "db.json"), "policy_path": str(d / "policy.md"),
            "tools_path": str(d / "tools.json")}


def base_sections(base_config: Path) -> tuple[dict[str, float], dict[str, Any]]:
    """The WRIT mix and the user-behaviour table of the base config (the repo's
    config.toml by default), so the arms follow what the main job runs."""
    data = tomllib.loads(base_config.read_text(encoding="utf-8"))
    mix = data.get("synthesis", {}).get("mix")
    behaviours = data.get("simulate", {}).get("behaviours")
    if not mix or not behaviours:
        raise ArmsError(f"{base_config} has no [synthesis] mix or no [simulate.behaviours]")
    return dict(mix), dict(behaviours)


def arm_config(arm: str, domain: str, *, tau2: Path, seed: int, task_count: int,
               exclude: Sequence[Path], mix: Mapping[str, float],
               behaviours: Mapping[str, Any], concurrency: int) -> str:
    """The config.toml text of one arm's run on one domain."""
    arm_mix = {"write_intensive": 1.0} if arm == WRITE_ONLY else dict(mix)
    text = _table("run", {"seed": seed, "domain": domain})
    text += _table(f"domains.{domain}", domain_table(domain, tau2))
    text += _table("logging", {"level": "warning"})
    text += _table("simulate", {"task_count": task_count, "concurrency": concurrency,
                                "agent": "scripted", "user": "scripted"})
    if arm == WRIT_MIX_USERS:
        weights = behaviours.get("weights", {})
        text += _table("simulate.behaviours", {k: v for k, v in behaviours.items()
                                               if k != "weights"})
        if weights:
            text += _table("simulate.behaviours.weights", weights)
    text += _table("synthesis", {"mix": arm_mix, "exclude": [str(p) for p in exclude]})
    text += _table("export", {"contamination_tasks": str(tau2.resolve() / domain / "tasks.json"),
                              "contamination_split": TEST_SPLIT})
    return text


def test_split_file(tau2: Path, domain: str, out: Path) -> Path:
    """tau2's test-split tasks of ``domain`` as a tasks file (what synthesis excludes)."""
    tasks = json.loads((tau2 / domain / "tasks.json").read_text(encoding="utf-8"))
    split = json.loads((tau2 / domain / "split_tasks.json").read_text(encoding="utf-8"))
    test_ids = {str(i) for i in split[TEST_SPLIT]}
    path = out / "exclude" / f"{domain}_{TEST_SPLIT}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([t for t in tasks if str(t["id"]) in test_ids]))
    return path


# -- running writ -------------------------------------------------------------------------


def writ(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "writ_async", *args]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise ArmsError(f"`{' '.join(command)}` exited {done.returncode}:\n"
                        f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done


def read_rows(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def synthesize(arm: str, domain: str, want: int, *, out: Path, seed: int,
               concurrency: int, **config: Any) -> tuple[list[dict[str, Any]], list[dict]]:
    """The first ``want`` kept rows of ``arm`` on ``domain``, and the runs made for them."""
    count = max(want, 1)
    runs: list[dict[str, Any]] = []
    for attempt in range(ATTEMPTS):
        name = f"{arm}_{domain}" + (f"_try{attempt}" if attempt else "")
        config_path = out / "configs" / f"{name}.toml"
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(arm_config(arm, domain, seed=seed, task_count=count,
                                          concurrency=concurrency, **config))
        run = out / "synth" / name
        if run.exists():  # a fresh run every time: the same seed gives the same rows
            shutil.rmtree(run)
        writ("simulate", "--config", str(config_path), "--out", str(run))
        rows = read_rows(run / "export" / "sft_trl.jsonl")
        stats = json.loads((run / "export" / "stats.json").read_text(encoding="utf-8"))
        # rows whose writes equal a tau2 test task's gold writes (writ's own check)
        matching = (stats.get("contamination") or {}).get("rows_matching")
        runs.append({"run": str(run), "config": str(config_path), "tasks": count,
                     "kept": len(rows), "test_split_matches": matching})
        if len(rows) >= want:
            return rows[:want], runs
        # more tasks, in proportion to the rate kept, plus a margin
        count = math.ceil(count * want / max(len(rows), 1) * 1.1) + 2
    raise ArmsError(f"{arm} on {domain}: {runs[-1]['kept']} rows kept of {want} wanted "
                    f"after {ATTEMPTS} runs (last: {runs[-1]['run']})")


def split_budget(total: int, domains: Sequence[str]) -> dict[str, int]:
    """``total`` rows dealt evenly over ``domains`` (the first ones get the remainder)."""
    base, extra = divmod(total, len(domains))
    return {d: base + (1 if i < extra else 0) for i, d in enumerate(domains)}


def counts(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    meta = [r.get("metadata", {}) for r in rows]
    return {
        "rows": len(rows),
        "by_domain": dict(sorted(Counter(m.get("domain") for m in meta).items())),
        "by_type": dict(sorted(Counter(m.get("trajectory_type") for m in meta).items())),
        "by_domain_type": dict(sorted(Counter(
            f"{m.get('domain')}/{m.get('trajectory_type')}" for m in meta).items())),
        "by_behaviour": dict(sorted(Counter(
            "+".join(m.get("behaviours") or []) or "none" for m in meta).items())),
    }


def write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]], *, compress: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    if compress:
        # mtime 0: the same rows give the same bytes
        with gzip.GzipFile(path, "wb", mtime=0) as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def heldout(domain: str, count: int, *, out: Path, tau2: Path, seed: int,
            exclude: Sequence[Path]) -> Path:
    """``count`` read-heavy tasks on tau2's ``domain`` database that no arm trained on."""
    config = out / "configs" / f"heldout_{domain}.toml"
    config.write_text(_table("synthesis", {"mix": {"read_heavy": 1.0}}))
    path = out / "carry" / "heldout" / f"{domain}_read_heavy.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    args = ["tasks", "generate", "--domain", domain, "--db", str(tau2 / domain / "db.json"),
            "--config", str(config), "--count", str(count),
            "--task-seed", str(seed + HELDOUT_SEED_OFFSET), "--out", str(path)]
    for p in exclude:
        args += ["--exclude", str(p)]
    writ(*args)
    return path


def build(args: argparse.Namespace) -> dict[str, Any]:
    out: Path = args.out.resolve()
    tau2: Path = args.tau2.resolve()
    domains = [d for d in args.domains.split(",") if d]
    for d in domains:
        if d not in DOMAINS:
            raise ArmsError(f"unknown domain {d!r} (known: {', '.join(DOMAINS)})")
        missing = [f for f in TAU2_FILES if not (tau2 / d / f).is_file()]
        if missing:
            raise ArmsError(f"{tau2 / d} lacks {', '.join(missing)}")
    mix, behaviours = base_sections(args.base_config)
    excludes = {d: test_split_file(tau2, d, out) for d in domains}
    budget = split_budget(args.per_arm, domains)
    manifest: dict[str, Any] = {
        "per_arm": args.per_arm, "seed": args.seed, "domains": domains, "tau2": str(tau2),
        "base_config": str(args.base_config), "mix": mix, "behaviours": behaviours,
        "excluded_split": TEST_SPLIT, "arms": {},
    }
    arm_tasks: dict[str, list[Path]] = {d: [] for d in domains}
    for arm in ARMS:
        rows: list[dict[str, Any]] = []
        runs: list[dict[str, Any]] = []
        for d in domains:
            got, made = synthesize(arm, d, budget[d], out=out, seed=args.seed,
                                   concurrency=args.concurrency, tau2=tau2,
                                   exclude=[excludes[d]], mix=mix, behaviours=behaviours)
            rows += got
            runs += made
            arm_tasks[d] += [Path(r["run"]) / "tasks.json" for r in made]
        write_jsonl(out / "arms" / f"{arm}.jsonl", rows, compress=False)
        write_jsonl(out / "carry" / "arms" / f"{arm}.jsonl.gz", rows, compress=True)
        manifest["arms"][arm] = {**counts(rows), "runs": runs}
        print(f"{arm}: {len(rows)} rows {manifest['arms'][arm]['by_domain_type']}", flush=True)
    manifest["heldout"] = {}
    for d in domains:
        if args.heldout:
            path = heldout(d, args.heldout, out=out, tau2=tau2, seed=args.seed,
                           exclude=[excludes[d], *arm_tasks[d]])
            manifest["heldout"][d] = {"tasks": args.heldout,
                                      "path": str(path.relative_to(out / "carry"))}
        for name in TAU2_FILES:
            target = out / "carry" / "tau2" / d / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tau2 / d / name, target)
    text = json.dumps(manifest, indent=2) + "\n"
    (out / "manifest.json").write_text(text)
    (out / "carry" / "manifest.json").write_text(text)
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tau2", type=Path, default=REPO.parent / "shared" / "tau2",
                        help="tau2-bench's data: DOMAIN/{db,tasks,split_tasks,tools}.json, "
                             "policy.md (default ../shared/tau2)")
    parser.add_argument("--per-arm", type=int, default=1000,
                        help="kept trajectories per arm, split evenly over the domains "
                             "(default 1000)")
    parser.add_argument("--heldout", type=int, default=30,
                        help="held-out read-heavy evaluation tasks per domain (default 30; "
                             "0: none)")
    parser.add_argument("--seed", type=int, default=0, help="the run seed of every arm")
    parser.add_argument("--domains", default=",".join(DOMAINS))
    parser.add_argument("--concurrency", type=int, default=64, help="episodes in flight")
    parser.add_argument("--base-config", type=Path, default=REPO / "config.toml",
                        help="where the WRIT mix and the user behaviours are read from")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "train_effect")
    args = parser.parse_args(argv)
    if args.per_arm < len(args.domains.split(",")) or args.heldout < 0:
        parser.error("--per-arm must give each domain a row; --heldout must be >= 0")
    try:
        manifest = build(args)
    except ArmsError as exc:
        print(f"arms: error: {exc}", file=sys.stderr)
        return 1
    print(f"manifest: {args.out / 'manifest.json'}; heldout: {manifest['heldout']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
