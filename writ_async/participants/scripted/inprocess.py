"""A whole scripted episode in-process, through the one episode driver.
"""

from __future__ import annotations

from collections.abc import Sequence

from writ_async.conversation.episode import DEFAULT_GREETING, Episode, Limits
from writ_async.conversation.task import Task
from writ_async.engine.drive import drive, finish_now, on
from writ_async.environment.domain import Domain
from writ_async.environment.overlay import BaseDB
from writ_async.participants.base import InProcess
from writ_async.participants.scripted.agent import ScriptedAgent
from writ_async.participants.scripted.mistakes import MistakeConfig
from writ_async.participants.scripted.user import ScriptedUser


def run_scripted_episode(
    domain: Domain,
    base: BaseDB,
    task: Task,
    seed: int,
    mistakes: MistakeConfig | None = None,
    limits: Limits | None = None,
    *,
    greeting: str | None = DEFAULT_GREETING,
    behaviours: Sequence[str] = (),
) -> tuple[Episode, str, ScriptedAgent]:
    """Drive one episode with the scripted agent and user (telling the task with
    ``behaviours``), tools run on a fresh overlay of ``base``. Returns the episode, its
    final DB hash and the agent (whose ``mistake`` tells what went wrong on purpose). The
    one episode driver runs it, with no event loop: the scripted pair never waits."""
    env = domain.environment(base)
    agent = ScriptedAgent(task, domain, seed, mistakes)
    user = ScriptedUser(task, seed, behaviours=behaviours, domain=domain)
    episode = Episode(limits, greeting)
    finish_now(drive(episode, episode.start(), InProcess(agent.reply), InProcess(user.reply),
                     on(env)))
    return episode, env.db_hash(), agent
