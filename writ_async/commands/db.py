"""``writ db hash`` and ``writ db generate``: a domain database's tau2 hash and table sizes,
and a generated database written as tau2-bench's db.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import msgspec

from domains import get_domain
from writ_async.commands.args import add_database_args, open_database
from writ_async.environment.overlay import BaseDB
from writ_async.errors import DataError


def add_parser(commands: Any) -> None:
    db = commands.add_parser("db", help="inspect or generate a domain database")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    p = db_commands.add_parser("hash", help="print the tau2 DB hash and table sizes")
    add_database_args(p)
    p.set_defaults(run=cmd_db_hash)
    p = db_commands.add_parser("generate", help="write a generated database as db.json")
    add_database_args(p, with_db=False)
    p.add_argument("--out", required=True, metavar="PATH", help="where to write db.json")
    p.set_defaults(run=cmd_db_generate)


def describe_db(base: BaseDB) -> str:
    rows = [("db_hash", base.db_hash())]
    rows += [(name, str(len(table))) for name, table in base.tables.items()]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def cmd_db_hash(args: argparse.Namespace) -> int:
    print(describe_db(open_database(get_domain(args.domain), args.db, args.seed, args.scale)))
    return 0


def cmd_db_generate(args: argparse.Namespace) -> int:
    from writ_async.environment.capacity import check_scale

    domain = get_domain(args.domain)
    check_scale(domain, args.scale, "<command line>", "--scale")
    db = domain.generate(args.seed, args.scale)
    # tau2-bench's db.json layout: one JSON object of tables, fields in model order.
    text = msgspec.json.format(msgspec.json.encode(db), indent=4) + b"\n"
    out = Path(args.out)
    tmp = out.with_name(out.name + ".tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(text)
        tmp.replace(out)  # never leave a half-written db.json behind
    except OSError as exc:
        raise DataError(out, f"cannot write database: {exc.strerror or exc}") from None
    print(f"wrote {out}")
    print(describe_db(domain.tables_of(db)))
    return 0
