"""What a domain is to the engine, and the environment an episode runs tools in.

A domain (``domains/airline``, ``domains/retail``) is data plus pure functions: a record
schema, a toolbox (whose tool kinds classify every call), a default policy text, a loader
for tau2-bench's ``db.json``, a seeded generator, its task synthesizers and what the
scripted participants say about it. ``Domain`` bundles them, so that the engine takes a
``Domain`` and never imports a domain or looks one up by name (only the commands use the
registry, ``domains.get_domain``); ``Environment`` (instance.py) is one episode's use
of a domain (its overlay and the toolbox).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from writ_async.environment.instance import Environment  # (also still importable from here)
from writ_async.environment.overlay import BaseDB, Copier, Overlay
from writ_async.environment.tools import Toolbox
from writ_async.errors import DataError
from writ_async.participants.phrasebank import DomainPhrases
from writ_async.synthesis.drafts import Synthesizer
from writ_async.synthesis.readheavy import ReadHeavySynthesizer

# Peak memory per unit of scale of a domain whose generator was never measured: the
# largest shipped figure, so that the estimate errs on the side of refusing.
UNMEASURED_BYTES_PER_SCALE = 18_000_000


@dataclass(frozen=True, slots=True)
class Domain:
    """A domain as the engine sees it.

    ``db_file_type`` is the msgspec Struct that a tau2-bench ``db.json`` decodes into; its
    fields are the tables. ``generate`` builds a database from ``(seed, scale)``.
    ``sample_call`` proposes a plausible tool call from an episode's live state (seeded
    walks, benchmarks, load generation); ``phrases`` is how the scripted agent describes
    the domain's writes, their outcomes and its reads.

    ``write_intensive`` and ``read_heavy`` prepare the domain's task synthesizers (WRIT
    stage 1, ``synthesis.driver``) for one base; a domain without a read-heavy synthesizer
    can only be asked for write-intensive tasks. ``forbidden_requests`` maps each request
    the policy refuses whatever the user's records are to the reason the agent gives;
    ``vague_openers`` are a user's first lines that say nothing yet (both for the user
    behaviours, ``behaviours``; empty: the generic ones). ``identity_lookups`` names the
    read tools whose arguments identify the user, each with what the scripted agent asks
    for to make it (None: the user id). ``bytes_per_scale`` is the generator's measured
    peak memory per unit of scale (``capacity``).
    """

    name: str
    toolbox: Toolbox
    db_file_type: type[msgspec.Struct]
    generate: Callable[[int, float], msgspec.Struct]
    policy_text: str
    copiers: Mapping[str, Copier]
    sample_call: Callable[[Overlay, random.Random], tuple[str, dict[str, Any]]]
    # How the scripted agent talks about this domain's tools (None: generic wording).
    phrases: DomainPhrases | None = None
    write_intensive: Callable[[BaseDB], Synthesizer] | None = None
    read_heavy: Callable[[BaseDB], ReadHeavySynthesizer] | None = None
    forbidden_requests: Mapping[str, str] = field(default_factory=dict)
    vague_openers: tuple[str, ...] = ()
    identity_lookups: Mapping[str, str | None] = field(default_factory=dict)
    bytes_per_scale: int = UNMEASURED_BYTES_PER_SCALE

    def tables_of(self, db: msgspec.Struct) -> BaseDB:
        tables = {f: getattr(db, f) for f in self.db_file_type.__struct_fields__}
        hints = msgspec.structs.fields(self.db_file_type)
        schema = {f.name: _value_type(f.type) for f in hints}
        return BaseDB(tables, schema, self.copiers)

    def load_db(self, path: Path | str) -> BaseDB:
        """Decode a tau2-bench ``db.json``; a bad file is a DataError naming the field."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise DataError(path, f"cannot read database: {exc.strerror or exc}") from None
        try:
            db = msgspec.json.decode(raw, type=self.db_file_type)
        except msgspec.ValidationError as exc:
            raise DataError(path, f"not a {self.name} database: {exc}") from None
        except msgspec.DecodeError as exc:
            raise DataError(path, f"malformed JSON: {exc}") from None
        return self.tables_of(db)

    def generate_db(self, seed: int = 0, scale: float = 1.0) -> BaseDB:
        """The embedded default: a seeded synthetic database (same seed, same bytes)."""
        return self.tables_of(self.generate(seed, scale))

    def base(self, db_path: Path | str | None = None, seed: int = 0, scale: float = 1.0) -> BaseDB:
        return self.load_db(db_path) if db_path is not None else self.generate_db(seed, scale)

    def policy(self, path: Path | str | None = None) -> str:
        if path is None:
            return self.policy_text
        try:
            return Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise DataError(path, f"cannot read policy: {exc.strerror or exc}") from None

    def toolbox_with_schemas(self, path: Path | str | None = None) -> Toolbox:
        """The toolbox, showing the schemas from a tools.json file when one is given."""
        if path is None:
            return self.toolbox
        shown = load_tool_schemas(path, self.toolbox)
        return self.toolbox.with_schemas(shown)

    def environment(self, base: BaseDB, toolbox: Toolbox | None = None) -> Environment:
        return Environment(base.overlay(), toolbox or self.toolbox)


def _value_type(table_type: Any) -> type:
    # dict[str, Record] -> Record
    args = getattr(table_type, "__args__", None)
    if not args or len(args) != 2:
        raise TypeError(f"table type {table_type!r} is not dict[str, Record]")
    return args[1]


def load_tool_schemas(path: Path | str, toolbox: Toolbox) -> list[dict[str, Any]]:
    """Read an OpenAI tools list and check it names exactly the toolbox's tools."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(path, f"cannot read tool schemas: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise DataError(path, f"malformed JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(data, list):
        raise DataError(path, "expected a JSON list of tool schemas")
    names = []
    for i, entry in enumerate(data):
        fn = entry.get("function") if isinstance(entry, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise DataError(path, f"entry {i} is not an OpenAI function tool")
        names.append(fn["name"])
    if sorted(names) != sorted(toolbox.names()):
        missing = sorted(set(toolbox.names()) - set(names))
        extra = sorted(set(names) - set(toolbox.names()))
        raise DataError(
            path, f"tool names differ from the domain: missing {missing}, extra {extra}"
        )
    return data
