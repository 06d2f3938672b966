"""``writ tools list`` and ``writ tools call``: a domain's tool schemas, and JSON-lines
tool calls run on one episode's environment.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import IO, Any

from domains import get_domain
from writ_async.commands.args import add_database_args, add_domain_arg, open_database
from writ_async.environment.tau2.validation import strict_json_loads
from writ_async.errors import DataError, ToolCallFormatError, ToolError


def add_parser(commands: Any) -> None:
    tools = commands.add_parser("tools", help="list or execute a domain's tools")
    tool_commands = tools.add_subparsers(dest="tools_command", required=True, metavar="ACTION")
    p = tool_commands.add_parser("list", help="print the tool schemas as a JSON list")
    add_domain_arg(p)
    p.add_argument("--tools-json", metavar="PATH", help="show the schemas of this tools.json")
    p.set_defaults(run=cmd_tools_list)
    p = tool_commands.add_parser(
        "call", help="execute JSON-lines tool calls on one episode, print results"
    )
    add_database_args(p)
    p.add_argument("file", nargs="?", metavar="FILE", help="JSON lines (default: stdin)")
    p.set_defaults(run=cmd_tools_call)


def cmd_tools_list(args: argparse.Namespace) -> int:
    toolbox = get_domain(args.domain).toolbox_with_schemas(args.tools_json)
    print(json.dumps(toolbox.schemas(), indent=2))
    return 0


def cmd_tools_call(args: argparse.Namespace) -> int:
    domain = get_domain(args.domain)
    env = domain.environment(open_database(domain, args.db, args.seed, args.scale))
    source = args.file or "<stdin>"
    out = sys.stdout
    with _open_input(args.file) as stream:
        for name, arguments in read_tool_calls(stream, source):
            result = env.call(name, arguments)
            line = {"output": result.output, "error": result.error, "db_hash": env.db_hash()}
            out.write(json.dumps(line) + "\n")
            out.flush()  # a caller driving us line by line sees each result at once
    return 0


def _open_input(path: str | None) -> AbstractContextManager[IO[bytes]]:
    if path is None:
        return nullcontext(sys.stdin.buffer)  # stdin is not ours to close
    try:
        return open(path, "rb")  # closed by the caller's `with`
    except OSError as exc:
        raise DataError(path, f"cannot read tool calls: {exc.strerror or exc}") from None


def read_tool_calls(lines: Iterable[bytes], source: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(name, arguments)`` for each non-blank JSON line, lazily, in order.

    A malformed line raises ``ToolCallFormatError`` when it is reached, so the calls
    before it have already been run.
    """
    for line_no, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
        except UnicodeDecodeError:
            raise ToolCallFormatError(source, line_no, "not UTF-8 text") from None
        if not text.strip():
            continue
        try:
            call = strict_json_loads(text, _bounded_int)
        except json.JSONDecodeError as exc:
            raise ToolCallFormatError(source, line_no, f"not valid JSON: {exc.msg}") from None
        except ToolError as exc:  # a number JSON cannot carry
            raise ToolCallFormatError(source, line_no, str(exc)) from None
        except RecursionError:
            # The stdlib parser recurses once per array or object level.
            raise ToolCallFormatError(
                source, line_no, "arrays or objects nested too deeply to read (more than "
                f"about {sys.getrecursionlimit()} levels)") from None
        if not isinstance(call, dict):
            raise ToolCallFormatError(source, line_no, "expected a JSON object")
        if not isinstance(call.get("name"), str):
            raise ToolCallFormatError(source, line_no, 'expected a string "name"')
        arguments = call.get("arguments", {})
        if not isinstance(arguments, dict):
            raise ToolCallFormatError(source, line_no, '"arguments" must be a JSON object')
        yield call["name"], arguments


def _bounded_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # Python refuses to convert more than sys.get_int_max_str_digits()
        raise ToolError(f"integer of {len(text.lstrip('-'))} digits is too long to read "
                        f"(at most {sys.get_int_max_str_digits()} digits)") from None
