"""Every error type the engine raises, in one place, under one root: ``WritException``.

Three kinds of failure exist (DESIGN principle 4):

* ``ToolError`` is *data*: a tool call the model made was refused (unknown reservation,
  bad arguments, ...). The environment turns it into an error tool result that the model
  sees; it never escapes a tool call.
* Everything under ``WritError`` is an operator-facing fault: bad configuration, a bad
  data file, a broken journal. Each carries enough context (file, key path, line) to be
  fixed without a traceback; the CLI prints it and exits non-zero.
* Everything under ``InternalError`` is raised and handled inside the engine (a
  participant's reply that ends an episode, a load-test request withdrawn), or, escaping,
  is a bug (the Episode fed out of turn, a gold action that fails). It is kept off
  ``WritError`` so that the CLI never turns a bug into a one-line message.

Anything else that escapes is a bug and is allowed to crash loudly. The only exception
classes defined elsewhere are private control flow of one module (``_Stopped`` and the
like, never raised past it); tests/test_errors_tree.py holds the list.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # episode.py imports this module: the type is for annotations only
    from writ_async.conversation.episode import Termination


class WritException(Exception):
    """The root of every error type writ_async defines."""


class ToolError(WritException):
    """A tool refused a call; ``str(self)`` is the text after ``"Error: "``."""


class WritError(WritException):
    """Base of every operator-facing error the engine raises on purpose."""


class ConfigError(WritError):
    """A configuration file is missing, malformed, or has a wrong key or type."""

    def __init__(self, path: Path | str, message: str, key_path: str | None = None) -> None:
        self.path = str(path)
        self.key_path = key_path
        self.detail = message
        where = f"{self.path}" + (f" at `{key_path}`" if key_path else "")
        super().__init__(f"{where}: {message}")


class DataError(WritError):
    """A data file (database, tasks, tool schemas, policy) cannot be used."""

    def __init__(self, path: Path | str, message: str) -> None:
        self.path = str(path)
        self.detail = message
        super().__init__(f"{self.path}: {message}")


class UnknownDomainError(WritError):
    """A domain name that no shipped domain answers to."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        super().__init__(f"unknown domain {name!r}; known domains: {', '.join(known)}")


class ToolCallFormatError(WritError):
    """A line of tool-call input is not a ``{"name": ..., "arguments": {...}}`` object."""

    def __init__(self, source: str, line: int, message: str) -> None:
        self.source = source
        self.line = line
        super().__init__(f"{source}:{line}: {message}")


class SynthesisError(WritError):
    """The database cannot yield the tasks asked for (too small, or too few users that
    fit the requested number of writes or reads)."""


# -- model calls ---------------------------------------------------------------------------
# Retry decisions are made on these kinds (see writ_async/llm/retry.py): rate limits
# shrink concurrency and wait as told, transient faults back off with jitter, permanent
# ones fail fast and trip the endpoint's circuit breaker.


class ModelCallError(WritError):
    """A chat-completion call failed; ``endpoint`` names where, ``status`` the HTTP code."""

    def __init__(self, message: str, *, endpoint: str = "", status: int | None = None) -> None:
        self.endpoint = endpoint
        self.status = status
        self.detail = message
        where = f"{endpoint}: " if endpoint else ""
        code = f"HTTP {status}: " if status is not None else ""
        super().__init__(f"{where}{code}{message}")


class RateLimited(ModelCallError):
    """429 (or 503 with retry-after): wait ``retry_after`` seconds if the server said."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class TransientError(ModelCallError):
    """5xx, 408, a reset connection: worth retrying after a backoff."""


class StaleConnection(TransientError):
    """A kept-alive connection the server had closed: the request sent on it got no byte
    back. The server never saw the request (as HTTP clients do, it is sent again once on
    a new connection)."""


class CallTimeout(TransientError):
    """A timeout; ``phase`` is connect, first_token, idle (gap between chunks) or total."""

    def __init__(self, phase: str, seconds: float, **kw: object) -> None:
        super().__init__(f"{phase} timeout after {seconds:g} s", **kw)  # type: ignore[arg-type]
        self.phase = phase
        self.seconds = seconds


class PermanentError(ModelCallError):
    """400, 401, 403, 404, 422: retrying cannot help."""


class ContextLengthExceeded(PermanentError):
    """The prompt does not fit the model's context window."""


class MalformedResponse(ModelCallError):
    """A 2xx whose body is not a usable completion (error object, HTML, bad JSON, no
    choices, no usage, truncated by length or content filter, invalid tool arguments)."""

    def __init__(self, reason: str, message: str, **kw: object) -> None:
        super().__init__(f"{reason}: {message}", **kw)  # type: ignore[arg-type]
        self.reason = reason
        # The decoded completion when there was one (e.g. tool arguments that are not
        # JSON): the model's own answer, which a participant may still turn into data.
        self.completion: object | None = None
        self.call: object | None = None  # the CallResult (client.py) that brought it


# A model's tool call that the server failed to parse and passed through as text, by kind:
# what an error tool result says of it (``episode.refusal``), completing "Error: ...".
TOOL_CALL_PARSE_PROBLEMS = {
    "markup_in_content": "this tool call was written as a <tool_call> block in the message "
                         "text, which the server did not parse into a tool call",
    "json_in_content": "this tool call was written as a JSON object in the message text, "
                       "which the server did not parse into a tool call",
    "empty_tool_calls": "the message ended as a tool call (finish_reason \"tool_calls\") "
                        "but the server returned no tool call",
    "trailing_data": "the arguments of this tool call have extra data after the JSON object",
}


class ToolCallParseFailure(MalformedResponse):
    """A tool call the server did not parse, passed through as text: ``kind`` is
    ``markup_in_content`` (a hermes/Qwen ``<tool_call>`` block left in the content),
    ``json_in_content`` (a bare ``{"name": ..., "arguments": ...}`` as the content),
    ``empty_tool_calls`` (finish_reason ``tool_calls`` with no call: SGLang's ``[]``) or
    ``trailing_data`` (arguments with text after the JSON object). Never a final answer:
    the agent retries the turn or answers it with an error result (participants/llm.py)."""

    REASON = "tool_call_parse_failure"

    def __init__(self, kind: str, message: str, **kw: object) -> None:
        super().__init__(self.REASON, f"{kind}: {message}", **kw)
        self.kind = kind


class CircuitOpen(ModelCallError):
    """Every endpoint of a role is refusing calls after permanent failures."""


class RetriesExhausted(ModelCallError):
    """The retry budget (attempts or deadline) ran out; ``last`` is the final failure."""

    def __init__(self, last: ModelCallError, attempts: int, why: str) -> None:
        super().__init__(f"gave up after {attempts} attempt(s) ({why}): {last}",
                         endpoint=last.endpoint, status=last.status)
        self.last = last
        self.attempts = attempts


# -- journal -------------------------------------------------------------------------------
# The run directory and its journal (writ_async/engine/journal.py, writ_async/engine/rundir.py).
# A torn last record after a crash is expected and dropped silently; these are the faults a
# person must look at before a run can continue.


class JournalCorrupt(WritError):
    """A journal record that is damaged and is not the torn tail of a crash.

    ``offset`` is where the bad record's header starts: everything before it is intact.
    """

    def __init__(self, path: Path | str, offset: int, reason: str) -> None:
        self.path = str(path)
        self.offset = offset
        self.reason = reason
        super().__init__(f"{self.path}: corrupt journal record at byte {offset}: {reason}")


class JournalBusy(WritError):
    """Another process holds the journal open for writing (two writers would interleave)."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: journal is being written by another process")


class RunDirError(WritError):
    """A run directory cannot be created or resumed (exists, no manifest, other run)."""

    def __init__(self, path: Path | str, message: str) -> None:
        self.path = str(path)
        self.detail = message
        super().__init__(f"{self.path}: {message}")


# -- cluster -------------------------------------------------------------------------------
# `writ simulate --ray` (writ_async/cluster/): the cluster cannot be used, or a shard keeps
# losing its worker.


class ClusterError(WritError):
    """A run on a Ray cluster cannot go on: Ray is not installed, the cluster cannot be
    reached, or a shard lost its worker more often than allowed (``shard`` names it)."""

    def __init__(self, message: str, *, shard: int | None = None) -> None:
        self.shard = shard
        super().__init__(message if shard is None else f"shard {shard}: {message}")


# -- replay --------------------------------------------------------------------------------
# `writ replay` and `writ show` (writ_async/engine/replay/): a run or episode that cannot be
# replayed, and a recorded episode that the environment does not reproduce.


class ReplayError(WritError):
    """A run, an episode or a step that cannot be replayed as asked (unknown episode id,
    an episode that never finished, a step outside the conversation, changed data)."""


class ReplayDivergence(WritError):
    """Re-executing a recorded episode gave something else than the record: the first
    difference, at message index ``step``, in event ``event`` (``message``, ``tool``,
    ``snapshot``, ``finished``, ...), field ``field`` (a path such as
    ``record.reward_info.reward``)."""

    def __init__(self, step: int, event: str, field: str, recorded: object,
                 replayed: object, note: str = "") -> None:
        self.step = step
        self.event = event
        self.field = field
        self.recorded = recorded
        self.replayed = replayed
        self.note = note
        text = (f"step {step}, {event} event, {field}: recorded {_short(recorded)} "
                f"!= replayed {_short(replayed)}")
        super().__init__(f"{text} ({note})" if note else text)

    @property
    def reason(self) -> str:
        """``event: field`` without list indices: what ``--all`` counts by."""
        return f"{self.event}: {_INDEX.sub('', self.field)}"


# -- internal ------------------------------------------------------------------------------
# Raised and caught inside the engine; one that escapes is a bug (see the module docstring).
# Those that were a builtin kind before keep it as a second base, so that existing
# ``except RuntimeError`` / ``AssertionError`` / ``ValueError`` handlers (and tests)
# still see them.


class InternalError(WritException):
    """Base of the errors the engine raises for itself, never for an operator."""


class ProtocolError(InternalError, RuntimeError):
    """The shell fed an event the episode was not waiting for: a bug in the caller."""


class ParticipantError(InternalError):
    """A participant's reply could not be used; ``reason`` is the episode's ending."""

    def __init__(self, reason: Termination, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class GoldActionError(InternalError, AssertionError):
    """A gold action failed, or the gold does not replay to the simulated end state: a
    bug in a domain's synthesizer, never a property of the data."""


class ScriptedRequestError(InternalError, ValueError):
    """A request the scripted policy cannot answer: no or a malformed tag, an unknown
    task or domain. A client bug, not a model's output."""


class NotSent(InternalError):
    """A gated load-test request was withdrawn before its time (the run stopped)."""


_INDEX = re.compile(r"\[[^\]]*\]")


def _short(value: object, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
