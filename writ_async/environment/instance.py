"""One episode's environment: its tools over its own overlay of a domain's database.

Kept apart from ``domain.py`` so that the synthesis kit (``synthesis.drafts``,
``synthesis.readheavy``), which runs tools on an environment, and ``Domain``, which
carries that kit's synthesizers, import each other in one direction only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from writ_async.environment.overlay import Overlay
from writ_async.environment.tools import Toolbox, ToolResult


class Environment:
    """One episode's tools over its own overlay."""

    __slots__ = ("overlay", "toolbox")

    def __init__(self, overlay: Overlay, toolbox: Toolbox) -> None:
        self.overlay = overlay
        self.toolbox = toolbox

    def call(self, name: Any, arguments: Mapping[str, Any]) -> ToolResult:
        return self.toolbox.call(self.overlay, name, arguments)

    def db_hash(self) -> str:
        return self.overlay.db_hash()

    def __repr__(self) -> str:
        return f"<Environment {self.toolbox.owner} {self.overlay!r}>"
