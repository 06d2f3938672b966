"""Byte-exact text the way tau2-bench (Python ``json`` over pydantic dumps) writes it.

Tool outputs are ``json.dumps(value)`` with the standard library's defaults, and the DB
hash is ``json.dumps(..., sort_keys=True)``; the stdlib encoder (C-accelerated) is the
one implementation guaranteed to agree on separators, ``ensure_ascii`` escaping and the
shortest-repr float format, so it is used for exactly those two purposes. msgspec is used
everywhere else (snapshots, deltas, journals) because it is several times faster.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

_to_builtins = msgspec.to_builtins


def to_plain(value: Any) -> Any:
    """Structs to dicts in field declaration order, as pydantic's ``model_dump`` gives."""
    return _to_builtins(value)


def dump_output(value: Any) -> str:
    """The content string of a successful tool result, exactly as tau2-bench renders it."""
    if isinstance(value, str):
        return value
    return json.dumps(_to_builtins(value))


def dump_sorted(value: Any) -> str:
    """Canonical JSON for hashing: stdlib defaults with keys sorted at every level."""
    return json.dumps(_to_builtins(value), sort_keys=True)
