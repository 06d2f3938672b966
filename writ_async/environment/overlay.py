"""Per-episode copy-on-write state over a frozen base database.

The base database (``BaseDB``) is a set of named tables, each a ``dict`` of records
(msgspec Structs), loaded once per process and never mutated. An ``Overlay`` is one
episode's view of it: reads fall through to the base, and a record is copied into the
overlay the first time the episode edits it. Ten thousand live episodes therefore cost
their edited records, not ten thousand databases.

Hashing. tau2-bench's DB hash is sha256 over ``json.dumps(db, sort_keys=True)``. With
keys sorted at every level, that text is a fixed sequence of per-record entries, so the
base text is built once (lazily) with the byte span of every entry, and the hash of an
overlay streams the base bytes, splicing in the re-encoded entries of edited records and
inserting new ones at their sorted position. No materialised copy of the database is
ever made.

Rules for tools: read with ``get``/``items``; before mutating anything, obtain the record
with ``edit`` *in the same call* (it bumps the version that caches the hash, and it is
what makes the record private to this overlay).
"""

from __future__ import annotations

import bisect
import copy
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import msgspec

from writ_async.environment.tau2.canonical import dump_sorted
from writ_async.environment.tau2.pyops import require_hashable
from writ_async.errors import ToolError

Copier = Callable[[Any], Any]

_sorted_encoder = msgspec.json.Encoder(order="sorted")
_plain_encoder = msgspec.json.Encoder()


def deep_copy(record: Any) -> Any:
    """Default copier: a private deep copy of the record."""
    return copy.deepcopy(record)


class _TableSpans:
    __slots__ = ("close", "keys", "open", "spans")

    def __init__(self, open_pos: int) -> None:
        self.open = open_pos
        self.close = open_pos
        self.keys: list[str] = []
        self.spans: dict[str, tuple[int, int]] = {}


class _HashIndex:
    """The canonical text of the base DB and where each record's entry sits in it."""

    __slots__ = ("blob", "digest", "tables")

    def __init__(self, tables: Mapping[str, Mapping[str, Any]]) -> None:
        parts: list[bytes] = [b"{"]
        pos = 1
        self.tables: dict[str, _TableSpans] = {}
        for t_i, name in enumerate(sorted(tables)):
            head = (", " if t_i else "") + json.dumps(name) + ": {"
            head_b = head.encode()
            parts.append(head_b)
            pos += len(head_b)
            spans = _TableSpans(pos)
            for k_i, key in enumerate(sorted(tables[name])):
                if k_i:
                    parts.append(b", ")
                    pos += 2
                entry = entry_bytes(key, tables[name][key])
                parts.append(entry)
                spans.spans[key] = (pos, pos + len(entry))
                spans.keys.append(key)
                pos += len(entry)
            spans.close = pos
            parts.append(b"}")
            pos += 1
            self.tables[name] = spans
        parts.append(b"}")
        self.blob = b"".join(parts)
        self.digest = hashlib.sha256(self.blob).hexdigest()


def entry_bytes(key: str, record: Any) -> bytes:
    """``"key": <record>`` as it appears inside the sorted canonical text."""
    return (json.dumps(key) + ": " + dump_sorted(record)).encode()


class BaseDB:
    """Frozen tables shared by every episode of a process.

    ``schema`` maps each table name to its record type (used to decode deltas);
    ``copiers`` lets a domain replace the deep copy of a table's records with a cheaper
    path copy (the domain's tools then copy what they change below the top level).
    """

    __slots__ = ("_by", "_index", "_keys", "copiers", "schema", "tables")

    def __init__(
        self,
        tables: dict[str, dict[str, Any]],
        schema: Mapping[str, type],
        copiers: Mapping[str, Copier] | None = None,
    ) -> None:
        if set(tables) != set(schema):
            raise ValueError(f"tables {sorted(tables)} do not match schema {sorted(schema)}")
        self.tables = tables
        self.schema = dict(schema)
        self.copiers = {name: (copiers or {}).get(name, deep_copy) for name in tables}
        self._index: _HashIndex | None = None
        self._keys: dict[str, tuple[Any, ...]] = {}
        self._by: dict[tuple[str, str], dict[Any, tuple[Any, ...]]] = {}

    def index(self, table: str, attr: str) -> dict[Any, tuple[Any, ...]]:
        """Keys of the base records grouped by ``record.<attr>``, in table order (cached)."""
        found = self._by.get((table, attr))
        if found is None:
            groups: dict[Any, list[Any]] = {}
            for key, record in self.tables[table].items():
                groups.setdefault(getattr(record, attr), []).append(key)
            found = self._by[(table, attr)] = {v: tuple(ks) for v, ks in groups.items()}
        return found

    def keys(self, table: str) -> tuple[Any, ...]:
        """The base keys of a table, in order (cached: the base never changes)."""
        found = self._keys.get(table)
        if found is None:
            found = self._keys[table] = tuple(self.tables[table])
        return found

    @property
    def hash_index(self) -> _HashIndex:
        if self._index is None:
            self._index = _HashIndex(self.tables)
        return self._index

    def db_hash(self) -> str:
        """tau2-compatible hash of the base database."""
        return self.hash_index.digest

    def verify_unchanged(self) -> bool:
        """Recompute the base text and compare: False means some code mutated the base."""
        return _HashIndex(self.tables).blob == self.hash_index.blob

    def overlay(self) -> Overlay:
        return Overlay(self)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{n}={len(t)}" for n, t in self.tables.items())
        return f"<BaseDB {sizes}>"


class Overlay:
    """One episode's copy-on-write view of a ``BaseDB``."""

    __slots__ = ("_cache", "_changed", "_version", "base")

    def __init__(self, base: BaseDB) -> None:
        self.base = base
        self._changed: dict[str, dict[Any, Any]] = {}
        self._version = 0
        self._cache: tuple[int, str] | None = None

    # -- reads -------------------------------------------------------------------------

    def get(self, table: str, key: Any) -> Any | None:
        """The record under ``key``, or None. The result must not be mutated."""
        require_hashable(key)  # ids come from models
        changed = self._changed.get(table)
        if changed is not None and key in changed:
            return changed[key]
        return self.base.tables[table].get(key)

    def fetch(self, table: str, key: Any, missing: str, *, edit: bool = False) -> Any:
        """The record under ``key`` (private and mutable with ``edit``), or the tool
        error ``missing`` that the model sees."""
        record = self.edit(table, key) if edit else self.get(table, key)
        if record is None:
            raise ToolError(missing)
        return record

    def contains(self, table: str, key: Any) -> bool:
        require_hashable(key)  # ids come from models
        changed = self._changed.get(table)
        return (changed is not None and key in changed) or key in self.base.tables[table]

    def items(self, table: str) -> Iterable[tuple[Any, Any]]:
        """All records in tau2's dict order: base order, then new records as inserted."""
        base = self.base.tables[table]
        changed = self._changed.get(table)
        if not changed:
            return base.items()  # the common case costs no generator
        return self._merged(base, changed)

    @staticmethod
    def _merged(base: Mapping[Any, Any], changed: Mapping[Any, Any]) -> Iterator[tuple[Any, Any]]:
        for key, record in base.items():
            yield key, changed.get(key, record)
        for key, record in changed.items():
            if key not in base:
                yield key, record

    def values(self, table: str) -> Iterable[Any]:
        base = self.base.tables[table]
        changed = self._changed.get(table)
        if not changed:
            return base.values()
        return (record for _, record in self._merged(base, changed))

    def select(self, table: str, attr: str, value: Any) -> Iterable[Any]:
        """The records whose ``attr`` equals ``value``, in table order, via the base index.

        Falls back to a scan when this overlay added records or changed ``attr`` on one,
        so the answer is always what a scan would give. ``value`` must be hashable.
        """
        base = self.base.tables[table]
        changed = self._changed.get(table)
        if changed and any(
            key not in base or getattr(record, attr) != getattr(base[key], attr)
            for key, record in changed.items()
        ):
            return [r for r in self.values(table) if getattr(r, attr) == value]
        keys = self.base.index(table, attr).get(value, ())
        if not changed:
            return [base[k] for k in keys]
        return [changed.get(k, base[k]) for k in keys]

    def size(self, table: str) -> int:
        changed = self._changed.get(table, {})
        base = self.base.tables[table]
        return len(base) + sum(1 for k in changed if k not in base)

    # -- writes ------------------------------------------------------------------------

    def edit(self, table: str, key: Any) -> Any | None:
        """The record under ``key``, private to this overlay and safe to mutate."""
        require_hashable(key)  # ids come from models
        self._version += 1
        changed = self._changed.setdefault(table, {})
        record = changed.get(key)
        if record is not None:
            return record
        base_record = self.base.tables[table].get(key)
        if base_record is None:
            return None
        record = self.base.copiers[table](base_record)
        changed[key] = record
        return record

    def insert(self, table: str, key: Any, record: Any) -> None:
        """Add or replace a whole record."""
        require_hashable(key)  # ids come from models
        self._version += 1
        self._changed.setdefault(table, {})[key] = record

    def reset(self) -> None:
        """Forget every change: the overlay sees the base again."""
        self._changed.clear()
        self._version += 1

    # -- deltas and hashes -------------------------------------------------------------

    def delta(self) -> dict[str, dict[Any, Any]]:
        """The records that differ from the base (new or changed), per table.

        Records that were edited but are byte-equal to the base again are left out, so
        two overlays that reach the same state have equal deltas whatever their path.
        """
        out: dict[str, dict[Any, Any]] = {}
        for table in sorted(self._changed):
            base = self.base.tables[table]
            kept = {}
            for key, record in self._changed[table].items():
                old = base.get(key)
                if old is None or _sorted_encoder.encode(old) != _sorted_encoder.encode(record):
                    kept[key] = record
            if kept:
                out[table] = kept
        return out

    def encode_delta(self) -> bytes:
        """The delta as msgspec JSON, keeping insertion order so it restores exactly."""
        return _plain_encoder.encode(self.delta())

    def load_delta(self, data: bytes) -> None:
        """Replace this overlay's changes with a delta from ``encode_delta``."""
        tables = msgspec.json.decode(data, type=dict[str, dict[str, Any]])
        changed: dict[str, dict[Any, Any]] = {}
        for table, records in tables.items():
            if table not in self.base.schema:
                raise ValueError(f"delta names unknown table {table!r}")
            record_type = self.base.schema[table]
            changed[table] = {
                key: msgspec.convert(value, record_type) for key, value in records.items()
            }
        self._changed = changed
        self._version += 1

    def delta_hash(self) -> str:
        """Cheap content hash of the delta; equal iff the full DB hashes are equal."""
        return hashlib.blake2b(_sorted_encoder.encode(self.delta()), digest_size=16).hexdigest()

    def db_hash(self) -> str:
        """tau2-compatible sha256 of the whole materialised database."""
        cached = self._cache
        if cached is not None and cached[0] == self._version:
            return cached[1]
        index = self.base.hash_index
        if not any(self._changed.values()):
            digest = index.digest
        else:
            digest = _splice_hash(index, self._changed, self.base.tables)
        self._cache = (self._version, digest)
        return digest

    def __repr__(self) -> str:
        counts = {t: len(r) for t, r in self._changed.items() if r}
        return f"<Overlay changed={counts} version={self._version}>"


def _splice_hash(
    index: _HashIndex, changed: Mapping[str, Mapping[Any, Any]], base: Mapping[str, Mapping]
) -> str:
    edits: list[tuple[int, int, bytes]] = []
    for table, records in changed.items():
        if not records:
            continue
        spans = index.tables[table]
        new_keys: list[str] = []
        for key, record in records.items():
            if key in base[table]:
                start, end = spans.spans[key]
                edits.append((start, end, entry_bytes(key, record)))
            else:
                new_keys.append(key)
        if not new_keys:
            continue
        new_keys.sort()
        if not spans.keys:
            joined = b", ".join(entry_bytes(k, records[k]) for k in new_keys)
            edits.append((spans.open, spans.open, joined))
            continue
        for key in new_keys:
            entry = entry_bytes(key, records[key])
            at = bisect.bisect_left(spans.keys, key)
            if at < len(spans.keys):
                pos = spans.spans[spans.keys[at]][0]
                edits.append((pos, pos, entry + b", "))
            else:
                pos = spans.close
                edits.append((pos, pos, b", " + entry))
    # Insertions sort before a replacement starting at the same byte (end == start), and
    # the sort is stable, so several insertions at one position keep their key order.
    edits.sort(key=lambda e: (e[0], e[1]))
    blob = memoryview(index.blob)
    h = hashlib.sha256()
    prev = 0
    for start, end, text in edits:
        h.update(blob[prev:start])
        h.update(text)
        prev = end
    h.update(blob[prev:])
    return h.hexdigest()
