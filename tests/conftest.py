"""Shared fixtures: where tau2-bench's reference data and conformance vectors live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def conformance_dir() -> Path:
    return Path(os.environ.get("WRIT_CONFORMANCE_DIR", SHARED / "conformance"))


def tau2_dir() -> Path:
    return Path(os.environ.get("WRIT_TAU2_DIR", SHARED / "tau2"))


def require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (set WRIT_CONFORMANCE_DIR / WRIT_TAU2_DIR)")
    return path
