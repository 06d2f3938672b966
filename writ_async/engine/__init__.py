"""Many episodes: the run plan, the driver, runner, scheduler, journal, replay."""
