"""The airline domain: tau2-bench's airline tools over copy-on-write state."""

from __future__ import annotations

from importlib.resources import files

from writ_async.environment.domain import Domain
from writ_async.environment.tools import Toolbox

from .data_model import AirlineDB
from .generator import generate
from .phrases import FORBIDDEN_REQUESTS, IDENTITY_LOOKUPS, PHRASES, VAGUE_OPENERS
from .readheavy import read_heavy
from .tasks import write_intensive
from .tools import TOOLS, copy_flight
from .walk import sample_call

DOMAIN = Domain(
    name="airline",
    toolbox=Toolbox("AirlineTools", TOOLS),
    db_file_type=AirlineDB,
    generate=generate,
    policy_text=files(__package__).joinpath("policy.md").read_text(encoding="utf-8"),
    copiers={"flights": copy_flight},
    sample_call=sample_call,
    phrases=PHRASES,
    write_intensive=write_intensive,
    read_heavy=read_heavy,
    forbidden_requests=FORBIDDEN_REQUESTS,
    vague_openers=VAGUE_OPENERS,
    identity_lookups=IDENTITY_LOOKUPS,
    # Peak RSS while generating, indexing and encoding, measured at scales 1, 4 and 16
    # (linear growth, ~17 MB per unit), rounded up so that a scale that barely fits is
    # refused rather than swapped.
    bytes_per_scale=18_000_000,
)
