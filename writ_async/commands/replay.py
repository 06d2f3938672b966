"""``writ replay``: verify episodes from the journal, fork one from a step, or re-run a
run's failed episodes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from domains import get_domain
from writ_async.commands.args import EPISODE_HELP, positive, probability, run_async
from writ_async.errors import ReplayError
from writ_async.logs import configure_logging


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "replay", help="verify episodes from the journal, fork one from a step, or re-run "
        "a run's failed episodes")
    p.add_argument("run_dir", metavar="RUN", help="a run directory")
    p.add_argument("episode", nargs="?", metavar="EPISODE", help=EPISODE_HELP)
    what = p.add_mutually_exclusive_group()
    what.add_argument("--all", action="store_true", help="verify every finished episode")
    what.add_argument("--from", dest="from_step", type=int, metavar="STEP",
                      help="fork EPISODE: keep its first STEP messages, then go on live")
    what.add_argument("--failed", action="store_true",
                      help="re-run every failed or rejected episode into a new run")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--from-start", action="store_true",
                       help="with --failed: re-run from the start (default)")
    start.add_argument("--from-first-wrong-write", action="store_true",
                       help="with --failed: go on from the step before the first wrong write")
    p.add_argument("--full-hash", action="store_true",
                   help="verify: also compute each final tau2 DB hash (default: compare "
                        "delta hashes, equal iff the tau2 hashes are)")
    p.add_argument("--out", metavar="NEW_RUN", help="fork / --failed: the new run directory")
    p.add_argument("--seed", type=int, help="fork / --failed: derive episode seeds from N")
    p.add_argument("--agent", help="fork / --failed: scripted, scripted-http or a role")
    p.add_argument("--user", help="fork / --failed: scripted, scripted-http or a role")
    p.add_argument("--config", metavar="PATH",
                   help="fork / --failed: a config.toml whose [models] and [mock] to use")
    p.add_argument("--mistake-rate", type=probability, metavar="P",
                   help="fork / --failed: scripted agent's probability of a mistake, 0 to 1")
    p.add_argument("--behaviours", metavar="A+B",
                   help="fork / --failed: how the user behaves from here on ('' for none)")
    p.add_argument("--concurrency", type=positive(int), help="--failed: episodes in flight")
    p.set_defaults(run=cmd_replay)


def _behaviours_arg(value: str | None) -> tuple[str, ...] | None:
    """``a+b`` as checked behaviour names; None when not given."""
    if value is None:
        return None
    from writ_async.participants.behaviours.catalogue import canonical

    names = [n for n in value.split("+") if n]
    try:
        return canonical(names)
    except ValueError as exc:
        raise ReplayError(f"--behaviours: {exc}") from None


DIVERGED = 2  # exit status of `writ replay` when an episode does not reproduce


def cmd_replay(args: argparse.Namespace) -> int:
    from writ_async.engine.replay.continuation import (
        FROM_FIRST_WRONG_WRITE,
        FROM_START,
        Overrides,
        render_outcome,
    )
    from writ_async.engine.replay.fork import fork
    from writ_async.engine.replay.rerun import rerun_failed
    from writ_async.engine.replay.verify import render_verdict, verify_episode
    from writ_async.errors import ReplayError

    continuing = args.from_step is not None or args.failed
    if args.all or args.failed:
        if args.episode is not None:
            raise ReplayError(f"give an EPISODE or --{'all' if args.all else 'failed'}, "
                              "not both")
    elif args.episode is None:
        raise ReplayError("give an EPISODE, --all or --failed")
    if (args.from_start or args.from_first_wrong_write) and not args.failed:
        raise ReplayError("--from-start and --from-first-wrong-write go with --failed")
    if not continuing:
        given = [name for name, value in (
            ("--out", args.out), ("--seed", args.seed), ("--agent", args.agent),
            ("--user", args.user), ("--config", args.config),
            ("--mistake-rate", args.mistake_rate), ("--concurrency", args.concurrency),
            ("--behaviours", args.behaviours),
        ) if value is not None]
        if given:
            raise ReplayError(f"{', '.join(given)} only apply to a fork (--from) or --failed")
    elif args.full_hash:
        raise ReplayError("--full-hash applies to verification only")

    run = open_replay(args.run_dir)
    configure_logging(run.config.logging.level, run.config.logging.format)
    warn_if_corrupt(run)
    if not continuing:
        if args.all:
            return _verify_all(run, full_hash=args.full_hash)
        verdict = run_async(verify_episode(run, args.episode, full_hash=args.full_hash))
        print(render_verdict(verdict))
        return 0 if verdict.ok else DIVERGED

    overrides = Overrides(seed=args.seed, agent=args.agent, user=args.user,
                          config_path=args.config, mistake_rate=args.mistake_rate,
                          concurrency=args.concurrency,
                          behaviours=_behaviours_arg(args.behaviours))
    if args.out:
        out = Path(args.out)
        if out.is_dir() and any(out.iterdir()):
            # Checked here, not only by the run directory: its advice (`--resume`) is
            # for `writ simulate`, and `writ replay` has no way to continue a run.
            raise ReplayError(f"{out}: --out already exists and is not empty; give a new "
                              "directory, or leave --out out to write beside RUN (named "
                              "RUN-fork-TIME or RUN-failed-TIME)")
    else:
        kind = "fork" if args.from_step is not None else "failed"
        out = Path(args.run_dir).parent / f"{Path(args.run_dir).name}-{kind}-" \
            f"{time.strftime('%Y%m%d-%H%M%S')}"
    if args.from_step is not None:
        outcome = run_async(fork(run, args.episode, args.from_step, out=out,
                                  overrides=overrides, progress_stream=sys.stderr))
    else:
        mode = FROM_FIRST_WRONG_WRITE if args.from_first_wrong_write else FROM_START
        outcome = run_async(rerun_failed(run, mode=mode, out=out, overrides=overrides,
                                          progress_stream=sys.stderr))
    print(render_outcome(run, outcome))
    return 0


def open_replay(run_dir: str | Path) -> Any:
    """A run directory opened for replay, on the domain its manifest's config names: the
    registry is looked up here, the replay engine is given the ``Domain``."""
    from writ_async.engine.replay.run import open_run, run_config

    _, config = run_config(run_dir)
    return open_run(run_dir, get_domain(config.run.domain))


INCOMPLETE = 1  # exit status of `writ replay --all` when all verified but the run is not whole


def _verify_all(run: Any, *, full_hash: bool) -> int:
    """`writ replay --all`: verify every finished episode, then hold the journal against
    the manifest. Exit 0 only for a whole run that reproduces; DIVERGED wins over
    INCOMPLETE (a divergence is the worse news)."""
    from writ_async.engine.replay.completeness import completeness, render_completeness
    from writ_async.engine.replay.verify import render_table, verify_all

    start = time.perf_counter()
    verdicts = run_async(verify_all(run, full_hash=full_hash))
    print(render_table(verdicts, time.perf_counter() - start,
                       unfinished=len(run.contents.unfinished)))
    whole = completeness(run)
    print("\n".join(render_completeness(run, whole)))
    if not all(v.ok for v in verdicts):
        return DIVERGED
    return 0 if whole.complete else INCOMPLETE


def warn_if_corrupt(run: Any) -> None:
    """On stderr, before what is served: the journal is damaged and how to salvage it."""
    from writ_async.engine.replay.run import corruption_warning

    warning = corruption_warning(run)
    if warning is not None:
        print(f"writ: warning: {warning}", file=sys.stderr, flush=True)
