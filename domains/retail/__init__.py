"""The retail domain of tau2-bench: an online store's orders, users and products."""

from __future__ import annotations

from importlib.resources import files

from domains.retail.data_model import RetailDB
from domains.retail.generator import generate
from domains.retail.phrases import FORBIDDEN_REQUESTS, IDENTITY_LOOKUPS, PHRASES, VAGUE_OPENERS
from domains.retail.readheavy import read_heavy
from domains.retail.tasks import write_intensive
from domains.retail.tools import TOOLS
from domains.retail.walk import sample_call
from writ_async.environment.domain import Domain
from writ_async.environment.tools import Toolbox

POLICY_TEXT = files(__package__).joinpath("policy.md").read_text(encoding="utf-8")

DOMAIN = Domain(
    name="retail",
    toolbox=Toolbox(owner="RetailTools", functions=TOOLS),
    db_file_type=RetailDB,
    generate=generate,
    policy_text=POLICY_TEXT,
    copiers={},
    sample_call=sample_call,
    phrases=PHRASES,
    write_intensive=write_intensive,
    read_heavy=read_heavy,
    forbidden_requests=FORBIDDEN_REQUESTS,
    vague_openers=VAGUE_OPENERS,
    identity_lookups=IDENTITY_LOOKUPS,
    # Peak RSS while generating, indexing and encoding, measured at scales 1, 4 and 16
    # (linear growth, ~6.5 MB per unit), rounded up.
    bytes_per_scale=7_000_000,
)
