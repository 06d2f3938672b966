"""The airline domain: tau2-bench's airline tools over copy-on-write state."""

from __future__ import annotations

from importlib.resources import files

from writ_async.domain import Domain
from writ_async.tools import Toolbox

from .data_model import AirlineDB
from .generator import generate
from .phrases import PHRASES
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
)
