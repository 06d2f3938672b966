"""``writ simulate``: one run of agent-user episodes over tasks, graded and exported, here
or on a Ray cluster, and its summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from domains import get_domain
from domains import names as domain_names
from writ_async.commands.args import add_domain_arg, positive, probability, run_async
from writ_async.config import check_domains, default_config, load_config
from writ_async.conversation.episode import Termination
from writ_async.errors import ConfigError
from writ_async.logs import configure_logging
from writ_async.seeds import run_seed


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "simulate", help="run agent-user episodes over tasks, grade them, export SFT data"
    )
    p.add_argument("--config", metavar="PATH", help="config.toml (default: built-in defaults)")
    add_domain_arg(p, required=False, note="; overrides [run] domain")
    p.add_argument("--db", metavar="PATH", help="a tau2-bench db.json (default: generated)")
    p.add_argument("--scale", type=positive(float),
                   help="overrides [domains.D] scale: the generated database's size")
    p.add_argument("--tasks", metavar="PATH", help="a tau2-bench tasks.json (default: "
                   "synthesize [simulate] task_count tasks)")
    p.add_argument("--split", help="with --tasks: a split of split_tasks.json beside the "
                   "tasks file")
    p.add_argument("--task-count", type=positive(int), help="tasks to synthesize")
    p.add_argument("--agent", help="scripted, scripted-http, or a role of [models.roles]")
    p.add_argument("--user", help="scripted, scripted-http, or a role of [models.roles]")
    p.add_argument("--trials", type=positive(int), help="trials per task")
    p.add_argument("--concurrency", type=positive(int), help="episodes in flight")
    p.add_argument("--seed", type=int, help="overrides [run] seed")
    p.add_argument("--mistake-rate", type=probability, metavar="P",
                   help="scripted agent: probability of a mistake per episode, 0 to 1")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", metavar="RUN", help="the new run directory")
    where.add_argument("--resume", metavar="RUN", help="continue a stopped or killed run")
    p.add_argument("--ray", metavar="ADDRESS", help="run the episodes in shards on this Ray "
                   "cluster (`auto`, host:port); needs pip install 'writ-async[ray]'")
    p.add_argument("--ray-workers", type=positive(int), metavar="N",
                   help="with --ray: shards running at once (default: the cluster's CPUs)")
    p.set_defaults(run=cmd_simulate)


def simulate_config(args: argparse.Namespace) -> Any:
    """The config file with the command line's overrides applied (and checked)."""
    if args.config:
        config = load_config(args.config, domains=domain_names())
    elif getattr(args, "resume", None):
        # A resumed run goes on with the configuration it started with; flags may still
        # change what cannot change results (the manifest check refuses the rest).
        from writ_async.engine.rundir import config_from_manifest, load_manifest

        config = config_from_manifest(args.resume, load_manifest(args.resume))
    else:
        config = default_config()
    replace = msgspec.structs.replace
    run = config.run
    known = domain_names()
    if args.domain is not None and args.domain not in known:
        # The flag is wrong, whatever the config file says: blame the flag.
        raise ConfigError("<command line>", f"unknown domain `{args.domain}`; known domains: "
                          f"{', '.join(known)}", "--domain")
    if args.domain is not None or args.seed is not None:
        run = replace(run, domain=args.domain or run.domain,
                      seed=run_seed(config, args.seed))
    if run.domain not in known:  # --domain was checked above: the file named it
        raise ConfigError(args.config or "<command line>", f"unknown domain `{run.domain}`; "
                          f"known domains: {', '.join(known)}", "run.domain")
    sim_overrides = {
        key: value for key, value in (
            ("tasks", args.tasks and str(Path(args.tasks).resolve())), ("split", args.split),
            ("task_count", args.task_count), ("agent", args.agent), ("user", args.user),
            ("trials", args.trials), ("concurrency", args.concurrency),
            ("mistake_rate", args.mistake_rate),
        ) if value is not None
    }
    sim = replace(config.simulate, **sim_overrides)
    if sim.split is not None and sim.tasks is None:
        # A split names tasks of a tau2 tasks file; without one it would be ignored and
        # the run would synthesize tasks instead of the split that was asked for.
        if args.split is not None:
            raise ConfigError("<command line>", "--split needs --tasks (or [simulate] tasks "
                              "in --config): it names a split of the split_tasks.json beside "
                              "that tasks file", "--split")
        raise ConfigError(args.config or "<command line>", "split is set but tasks is not: "
                          "a split names a split of the split_tasks.json beside the tasks "
                          "file", "simulate.split")
    config = replace(config, run=run, simulate=sim)
    if args.db is not None:
        config = config.with_domain(run.domain, db_path=str(Path(args.db).resolve()))
    if getattr(args, "scale", None) is not None:
        config = config.with_domain(run.domain, scale=args.scale)
    # Re-check what the overrides may have broken, the same way the file is checked.
    from writ_async.config import check_config

    check_config(config, args.config or "<command line>")
    # A section for every registered domain, as a config file's would be.
    config = check_domains(config, args.config or "<command line>", known)
    settings = config.domain_settings(run.domain)
    if settings.db_path is None:
        from writ_async.environment.capacity import check_scale

        resumed = getattr(args, "resume", None)
        source = args.config or (f"{resumed}/manifest.json" if resumed else "<defaults>")
        scale_from = ("<command line>", "--scale") if getattr(args, "scale", None) is not None \
            else (source, f"domains.{run.domain}.scale")
        check_scale(get_domain(run.domain), settings.scale, *scale_from)
    return config


def cmd_simulate(args: argparse.Namespace) -> int:
    from writ_async.engine.plan import resolve_plan
    from writ_async.engine.simulate import simulate

    config = simulate_config(args)
    configure_logging(config.logging.level, config.logging.format)
    # The one lookup of the configured domain: the engine is given the resolved plan.
    plan = resolve_plan(config, get_domain(config.run.domain))
    if args.resume:
        out, resume = Path(args.resume), True
    elif args.out:
        out, resume = Path(args.out), False
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out, resume = Path(config.run.out_dir) / f"{config.run.domain}-{stamp}", False
    if args.ray:
        from writ_async.cluster.ray_run import RayOptions, simulate_on_ray

        options = RayOptions(address=args.ray, workers=args.ray_workers)
        cluster = run_async(simulate_on_ray(plan, out=out, resume=resume, options=options,
                                             progress_stream=sys.stderr))
        print(render_summary(cluster.run))
        print(f"ray: {cluster.shards} shards on {cluster.workers} workers, "
              f"{len(cluster.lost)} workers lost, {cluster.merged} episodes merged"
              + (f"; resume with --ray {args.ray}" if cluster.run.stopped_early else ""))
        return 0
    from writ_async.engine.scheduler import StopRequest

    stop = StopRequest()
    outcome = run_async(simulate(plan, out=out, resume=resume, progress_stream=sys.stderr,
                                  stop=stop))
    print(render_summary(outcome))
    # A run a signal stopped exits as the shell expects of a process that signal stopped,
    # so that scripts (and CI) never take a partial run for a finished one.
    if outcome.stopped_early and stop.requests:
        return stop.exit_status()
    cause = nothing_ran(outcome.records)
    if cause is not None:
        print(f"writ: error: no episode could run: {cause}", file=sys.stderr)
        return 1
    return 0


_INFRA = Termination.INFRASTRUCTURE_ERROR.value


def nothing_ran(records: Sequence[Any]) -> str | None:
    """Why no episode of a run could run, in one line (None if any could): each failed
    on the infrastructure, so the run produced no data at all; the most frequent cause is
    named with its count."""
    if not records or any(r.termination != _INFRA for r in records):
        return None
    causes = Counter(r.error or "no error recorded" for r in records)
    cause, count = causes.most_common(1)[0]
    role, _, what = cause.partition(" role: ")
    if not what:
        role, what = "", cause
    others = f" ({len(causes) - 1} other causes)" if len(causes) > 1 else ""
    lead = f"{role} role: " if role else ""
    return (f"{lead}{count} of {len(records)} episodes ended {_INFRA}: "
            f"{what}{others}")


def render_summary(outcome: Any) -> str:
    s = outcome.summary
    lines = [f"run: {outcome.run_dir}"]
    for key, value in s.items():
        if isinstance(value, float):
            value = f"{value:.4f}"
        lines.append(f"  {key:<24} {value}")
    report = outcome.export
    dropped = ", ".join(f"{why}: {n}" for why, n in sorted(report.dropped.items())) or "none"
    # "kept" is one decision (export.keep): the summary's `kept` above counts the same
    lines.append(f"export: {report.kept} of {report.total} episodes kept, {report.written} "
                 f"written ({report.duplicates} exact duplicates removed); "
                 f"dropped: {dropped}")
    lines.append(f"  {report.openai_path}")
    lines.append(f"  {report.sharegpt_path}")
    lines.extend(_data_stats_lines(Path(outcome.run_dir)))
    for warning in getattr(outcome, "warnings", ()):
        lines.append(f"warning: {warning}")
    if outcome.stopped_early:
        lines.append(f"partial run: {len(outcome.records)} of {outcome.expected} episodes "
                     f"done; resume with `writ simulate --resume {outcome.run_dir}`")
    return "\n".join(lines)


def _data_stats_lines(run_dir: Path) -> list[str]:
    """The headline figures of the run's export/stats.json (written with the export)."""
    from writ_async.export import datastats

    path = run_dir / "export" / datastats.STATS_FILE
    if not path.exists():
        return []
    stats = json.loads(path.read_text(encoding="utf-8"))
    lines = [f"data: {datastats.headline(stats)}", f"  {path}"]
    if "contamination" in stats:
        lines.append(datastats.render_contamination(stats["contamination"]))
    return lines
