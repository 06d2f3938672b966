"""Every error type the engine raises, in one place.

Two kinds of failure exist (DESIGN principle 4):

* ``ToolError`` is *data*: a tool call the model made was refused (unknown reservation,
  bad arguments, ...). The environment turns it into an error tool result that the model
  sees; it never escapes a tool call.
* Everything under ``WritError`` is an operator-facing fault: bad configuration, a bad
  data file, a broken journal. Each carries enough context (file, key path, line) to be
  fixed without a traceback.

Anything else that escapes is a bug and is allowed to crash loudly.
"""

from __future__ import annotations

from pathlib import Path


class ToolError(Exception):
    """A tool refused a call; ``str(self)`` is the text after ``"Error: "``."""


class WritError(Exception):
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
