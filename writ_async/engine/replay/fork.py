"""Fork one episode: restore the state at a step (``runner.restore``: the recorded messages
up to it, their tool calls run live and checked) and go on live with the configured
participants, as a new episode in a new run directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

from writ_async.conversation.episode import Finished
from writ_async.engine.replay.continuation import (
    FORK,
    Overrides,
    ReplayOutcome,
    continuation_config,
    continuation_spec,
    continue_live,
)
from writ_async.engine.replay.run import RecordedEpisode, ReplayRun
from writ_async.engine.runner import restore
from writ_async.engine.scheduler import StopRequest
from writ_async.errors import ReplayDivergence, ReplayError


def check_fork(run: ReplayRun, ep: RecordedEpisode, step: int) -> None:
    """Refuse a fork that cannot be made: a step outside the conversation, a recorded
    prefix that does not reproduce, or a step at which the episode had already ended."""
    messages = ep.messages
    if not 0 <= step <= len(messages):
        raise ReplayError(f"episode {ep.episode_id!r} has {len(messages)} messages: a step "
                          f"must be within 0..{len(messages)}, not {step}")
    try:
        restored = restore(run.setup, messages[:step])
    except ReplayDivergence as divergence:
        raise ReplayError(f"cannot fork episode {ep.episode_id!r} at step {step}: the "
                          f"recorded episode does not reproduce up to it: {divergence}"
                          ) from None
    if isinstance(restored.action, Finished):
        raise ReplayError(f"episode {ep.episode_id!r} ended at step {step} "
                          f"({restored.action.reason}): fork from an earlier step")


async def fork(run: ReplayRun, episode: str, step: int, *, out: Path,
               overrides: Overrides | None = None, progress_stream: IO[str] | None = None,
               stop: StopRequest | None = None) -> ReplayOutcome:
    """Restore ``episode`` at message ``step`` and go on live, in a new run at ``out``."""
    overrides = overrides or Overrides()
    ep = run.recorded(episode)
    check_fork(run, ep, step)
    config = continuation_config(run.config, overrides)
    spec = continuation_spec(run, ep, step, FORK, overrides)
    return await continue_live(run, config, [spec], out, FORK, progress_stream, stop)
