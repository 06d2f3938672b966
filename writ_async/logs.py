"""Operator logs: structlog to stderr, human-readable on a terminal, JSON lines otherwise.

These logs are for people running the engine; the journal (what a run produced) is data
and never goes through here. Because endpoint configuration carries API keys, every
event passes a redaction step before it is rendered: values under secret-sounding keys
and anything in any string that looks like a credential become ``"[REDACTED]"``.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog

REDACTED = "[REDACTED]"

# Keys whose values are secrets whatever they look like (matched anywhere in the name,
# case-insensitively: api_key, x-api-key, access_token, Authorization, client_secret).
_SECRET_NAME = re.compile(r"key|token|secret|authorization|password|passwd|credential|cookie", re.I)
# Keys that name a digest: their long hex values are hashes we want to see, not secrets.
_DIGEST_NAME = re.compile(r"hash|digest|checksum|sha\d*", re.I)

# Credentials recognisable by their shape, wherever they appear in a string.
_SHAPED = re.compile(
    r"\bsk-[A-Za-z0-9_\-]{8,}"  # OpenAI / Anthropic style: sk-..., sk-proj-..., sk-ant-...
    r"|\bBearer\s+[A-Za-z0-9._~+/\-]+=*"  # an Authorization header value
    r"|\b(?:hf|ghp|gho|ghs|github_pat|xox[abpr])_[A-Za-z0-9_\-]{16,}"  # vendor tokens
    r"|\bAKIA[0-9A-Z]{16}\b",  # AWS access key id
    re.I,
)
_LONG_HEX = re.compile(r"\b[0-9a-fA-F]{32,}\b")
# A long run of base64/base64url characters; only redacted when it mixes upper case,
# lower case and digits, which random tokens do and words, ids and paths rarely do.
_LONG_B64 = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{32,}={0,2}")


def _looks_random(text: str) -> bool:
    return (
        not text.startswith("/")  # an absolute path, not a token
        and any(c.isupper() for c in text)
        and any(c.islower() for c in text)
        and any(c.isdigit() for c in text)
    )


def scrub_text(text: str, digest_ok: bool = False) -> str:
    """``text`` with every credential-shaped part replaced by ``[REDACTED]``."""
    text = _SHAPED.sub(REDACTED, text)
    if not digest_ok:
        text = _LONG_HEX.sub(REDACTED, text)
    return _LONG_B64.sub(lambda m: REDACTED if _looks_random(m[0]) else m[0], text)


def _scrub(value: Any, secret: bool, digest_ok: bool = False) -> Any:
    if isinstance(value, str):
        return REDACTED if secret else scrub_text(value, digest_ok)
    # Numbers, flags and None are never credentials; keeping them keeps fields such as
    # max_tokens or prompt_tokens readable although their names contain "token".
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {k: _scrub_item(k, v, secret) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v, secret, digest_ok) for v in value]
    if secret:
        return REDACTED
    return value


def _scrub_item(key: Any, value: Any, secret: bool) -> Any:
    name = str(key)
    secret = secret or bool(_SECRET_NAME.search(name))
    return _scrub(value, secret, digest_ok=bool(_DIGEST_NAME.search(name)))


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: replace secrets in the event with ``[REDACTED]``."""
    for key, value in list(event_dict.items()):
        event_dict[key] = _scrub_item(key, value, secret=False)
    return event_dict


class _Stderr:
    """``sys.stderr`` as it is at write time: tests and tools swap the stream."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


_configured: tuple[str, str, TextIO | None] | None = None


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog for the process; calling again with the same settings is a no-op.

    ``fmt`` is ``console``, ``json`` or ``auto`` (console when the stream is a terminal).
    ``stream`` defaults to stderr, looked up at every write.
    """
    global _configured
    target: Any = stream if stream is not None else _Stderr()
    key = (level.lower(), fmt, stream)
    if _configured is not None and _configured[:2] == key[:2] and _configured[2] is stream:
        return
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}")
    if fmt not in ("auto", "console", "json"):
        raise ValueError(f"unknown log format {fmt!r}")
    tty = target.isatty()
    console = fmt == "console" or (fmt == "auto" and tty)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if console:
        # The console renderer formats exceptions itself, from exc_info, so traceback
        # text is not scrubbed on a terminal; the JSON path formats them before redaction.
        processors += [redact_secrets, structlog.dev.ConsoleRenderer(colors=tty)]
    else:
        processors += [
            structlog.processors.format_exc_info,
            redact_secrets,
            structlog.processors.JSONRenderer(),
        ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=target),
        cache_logger_on_first_use=False,
    )
    _configured = key


def reset_logging() -> None:
    """Back to structlog's defaults and unconfigured (for tests)."""
    global _configured
    structlog.reset_defaults()
    _configured = None


def get_logger(**bind: Any) -> Any:
    """A logger with ``bind`` as context on every event it emits."""
    return structlog.get_logger().bind(**bind)


@contextmanager
def episode_context(episode_id: str, task_id: str, trial: int) -> Iterator[None]:
    """Inside, every event logged carries the episode's ``episode_id``, ``task_id`` and
    ``trial``, from whichever module logs it (a retry deep in the model pool included).

    The ids live in structlog's contextvars (merged by ``configure_logging``'s first
    processor): asyncio gives each task a copy of the context, so episodes running
    concurrently, one task each, never see each other's ids, and leaving restores what
    was bound before.
    """
    with structlog.contextvars.bound_contextvars(episode_id=episode_id, task_id=task_id,
                                                 trial=trial):
        yield
