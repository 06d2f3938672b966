"""Every seed the engine derives, in one place: one named function per purpose.

A run has one seed (``[run] seed``, or ``--seed``): ``run_seed`` resolves it, and every
other seed of the run is a function of it and of *what* it seeds (a task, a scenario, an
episode), never of the order or concurrency in which things happen to run.

Two ways of deriving appear below, and each stays as it was first written, because a
derivation's output is in every journal, results file and export already made: changing
one would change those runs' replays. So the key formats differ by purpose and must not
be "harmonised":

* ``blake2b`` seeds (``episode_seed``, ``scenario_seed``, ``synthesis_seed``): the key is
  the parts joined with ``":"``, hashed with an 8-byte blake2b, shifted right by one so the
  value fits a signed 64-bit field (journals and tau2's results store seeds as int64).
* ``random.Random`` string seeds (``pool_rng``, ``walk_rng``, ``loadtest_rng``,
  ``arrivals_rng``): ``random`` hashes a ``str`` seed with SHA-512, which is stable across
  processes and Python versions; the key is a purpose prefix and the seed.

The scripted agent and user draw their own choices from the episode seed
(``random.Random(f"{seed}:<purpose>")``, in participants/scripted/ and
participants/behaviours/); those are streams *within* one episode rather than seeds of the run.
"""

from __future__ import annotations

import hashlib
import random
from typing import Protocol


class _RunSection(Protocol):
    seed: int


class _HasRun(Protocol):
    @property
    def run(self) -> _RunSection: ...


def run_seed(config: _HasRun, override: int | None = None) -> int:
    """The run's seed: ``override`` (a ``--seed`` flag) when given, else ``[run] seed``.
    Also the domain generator's seed: a generated database is ``generate(run_seed, scale)``."""
    return config.run.seed if override is None else override


def _blake64(*parts: object) -> int:
    text = ":".join(str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> 1


def episode_seed(run: int, scenario_id: str, trial: int) -> int:
    """An episode's seed, from ``"{run}:{scenario_id}:{trial}"``. ``scenario_id`` is the
    task id for a task told without behaviours (so tau2 tasks and loadtest traffic, which
    pass a task id, get the seeds a scenario-less run gives them)."""
    return _blake64(run, scenario_id, trial)


def scenario_seed(run: int, task_id: str, index: int) -> int:
    """The seed that draws a task's ``index``-th behaviour composition (WRIT stage 2),
    from ``"{run}:{task_id}:behaviours:{index}"``; the word keeps it apart from
    ``episode_seed`` of a scenario whose id happens to equal ``task_id``."""
    return _blake64(run, task_id, "behaviours", index)


def synthesis_seed(seed: int, *parts: object) -> int:
    """A seed of task synthesis, from ``"{seed}:{part}:{part}..."``: ``(index, "shape")``
    (and ``attempt`` after the first) draws task ``index``'s shape, ``(index, attempt)``
    the task itself. ``seed`` is ``[synthesis] seed`` or, unset, the run seed."""
    return _blake64(seed, *parts)


def parse_retry_seed(seed: int, retry: int) -> int:
    """The request seed of the agent's ``retry``-th fresh call after a tool call the
    server passed through as text, from ``"{seed}:tool_call_retry:{retry}"``: the same
    seed would draw the same answer again."""
    return _blake64(seed, "tool_call_retry", retry)


def pool_rng(run: int) -> random.Random:
    """The model pool's rng (the jitter of retry back-offs), from ``"pool:{run}"``."""
    return random.Random(f"pool:{run}")


def walk_rng(seed: int, episode: int) -> random.Random:
    """``writ walk``'s rng for one episode, from ``"{seed}:{episode}"``: one episode
    replays without the others."""
    return random.Random(f"{seed}:{episode}")


def loadtest_rng(seed: int) -> random.Random:
    """A load test's retry back-off jitter, from ``"loadtest:{seed}"``."""
    return random.Random(f"loadtest:{seed}")


def arrivals_rng(seed: int) -> random.Random:
    """A load test's arrival times, from ``"arrivals:{seed}"``: a stream apart from
    ``loadtest_rng`` so the schedule does not shift when a request is retried."""
    return random.Random(f"arrivals:{seed}")


def mock_request_rng(mock_seed: int, request_seed: int) -> random.Random:
    """The mock server's rng for one request that carries a ``seed``, from the integer
    ``(mock_seed << 64) ^ request_seed``: the same request gets the same answer whatever
    else the server was asked before."""
    return random.Random((mock_seed << 64) ^ request_seed)
