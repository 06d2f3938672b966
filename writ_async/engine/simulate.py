"""`writ simulate`: a whole run, from a resolved plan to results and SFT export.

The command resolves the configuration into a ``plan.RunPlan`` (the domain and its base
database, the tasks, the scenarios and seeds); this creates the run directory with its
manifest (or reopens it to resume), starts the model pool when a participant needs one,
runs every (task, trial) episode not yet finished through the scheduler, and finally
derives ``results.json`` (tau2-bench's format) and the SFT export from the journal
(``outputs``), so that what is reported is exactly what was committed.

On resume, an episode that a crash cut short goes on from the messages its last attempt
journaled (``runner.restore``, the code path of a fork), not from the start. The run's
tasks are kept in the run directory (``tasks.json``) for ``writ replay``.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

from writ_async.engine.outputs import RunOutcome, open_run_dir, records_in_run_order, write_outputs
from writ_async.engine.plan import RunPlan, episode_specs
from writ_async.engine.run_participants import open_participants
from writ_async.engine.scheduler import Progress, StopRequest, run_many
from writ_async.grading.results import summary
from writ_async.logs import get_logger


async def simulate(
    plan: RunPlan,
    *,
    out: Path,
    resume: bool = False,
    progress_stream: IO[str] | None = None,
    stop: StopRequest | None = None,
) -> RunOutcome:
    sim = plan.config.simulate
    run = open_run_dir(plan, out, resume=resume)
    for warning in plan.warnings:
        get_logger(component="simulate").warning("tasks.foreign_database", detail=warning)
        if progress_stream is not None:
            print(f"writ: warning: {warning}", file=progress_stream, flush=True)
    previous = run.read_journal()  # empty for a new run
    setup = plan.episode_setup()
    specs = episode_specs(plan, setup, previous)

    progress = Progress(total=len(specs), export_filter=plan.export_filter)
    async with open_participants(plan, setup) as participants:
        journal = run.open_journal()  # cuts a torn tail left by a crash, then appends
        try:
            if specs:
                _, progress = await run_many(
                    setup, specs, participants, journal,
                    concurrency=sim.concurrency, stop=stop, progress_stream=progress_stream,
                    progress=progress,
                )
        finally:
            journal.close()

    records = records_in_run_order(run.read_journal().finished, plan)
    tasks = list(plan.tasks)
    report = write_outputs(run, plan, records, tasks)
    expected = len(plan.episodes)
    return RunOutcome(run_dir=run.path, records=records, progress=progress if specs else None,
                      summary=summary(records, tasks, plan.export_filter), export=report,
                      stopped_early=len(records) < expected, expected=expected,
                      warnings=plan.warnings)
