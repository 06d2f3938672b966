"""``writ journal salvage``: copy a corrupt run's intact part to a run that resumes."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(commands: Any) -> None:
    journal = commands.add_parser("journal", help="repair a run's journal")
    actions = journal.add_subparsers(dest="journal_command", required=True, metavar="ACTION")
    p = actions.add_parser(
        "salvage", help="copy a run whose journal is corrupt, with the journal's intact "
        "part, to a new run that `writ simulate --resume NEW` finishes")
    p.add_argument("run_dir", metavar="RUN", help="a run directory")
    p.add_argument("--out", metavar="NEW", help="the new run directory (default: RUN-salvaged)")
    p.set_defaults(run=cmd_journal_salvage)


def cmd_journal_salvage(args: argparse.Namespace) -> int:
    import shlex

    from writ_async.engine.rundir import salvage_run

    report = salvage_run(args.run_dir, args.out)
    if report.corrupt_at is not None:
        print(f"journal corrupt at byte {report.corrupt_at}: {report.reason}")
    elif report.dropped_bytes:
        print(f"journal intact but for a torn last record ({report.dropped_bytes} bytes)")
    else:
        print("journal intact: copied whole")
    print(f"salvaged {report.kept_bytes} bytes ({report.finished} finished episodes, "
          f"{report.unfinished} started and not finished) into {report.out}; "
          f"{report.dropped_bytes} bytes dropped")
    print(f"finish it with: writ simulate --resume {shlex.quote(report.out)}")
    return 0
