"""The ``writ`` command line.

    writ tools list --domain NAME [--tools-json PATH]
    writ tools call --domain NAME [--db PATH] [--seed N] [--scale X] [FILE]
    writ db hash --domain NAME [--db PATH] [--seed N] [--scale X]
    writ db generate --domain NAME [--seed N] [--scale X] --out PATH
    writ walk [--config PATH] [--domain NAME] [--episodes N] [--calls N] [--seed N]
    writ replay RUN EPISODE | RUN --all       verify episodes from the journal
    writ replay RUN EPISODE --from STEP       fork an episode, go on live
    writ replay RUN --failed                  re-run failed episodes
    writ show RUN EPISODE                     a readable transcript
    writ journal salvage RUN [--out NEW]      copy a corrupt run's intact part, resumable

Every operator-facing failure is a ``WritError``; ``main`` prints it as one line,
``writ: error: <message>``, and returns 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec

from domains import get_domain
from domains import names as domain_names
from writ_async.config import Config, check_domains, default_config, load_config
from writ_async.conversation.episode import Termination
from writ_async.environment.domain import Domain
from writ_async.environment.overlay import BaseDB
from writ_async.environment.tau2.validation import strict_json_loads
from writ_async.environment.tools import Toolbox
from writ_async.errors import (
    ConfigError,
    DataError,
    ReplayError,
    ToolCallFormatError,
    ToolError,
    WritError,
)
from writ_async.loadtest.cli import add_parser as add_loadtest
from writ_async.logs import configure_logging, get_logger
from writ_async.seeds import run_seed, walk_rng

Clock = Callable[[], float]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except WritError as exc:
        sys.stdout.flush()  # what was already produced comes out before the error
        print(f"writ: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`writ tools call ... | head`): not an error of ours.
        # Point stdout at devnull so the interpreter's final flush does not complain.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


# -- arguments ---------------------------------------------------------------------------


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        # `inf` (or 1e400) passes `> 0` but no size or count can be infinite
        if not value > 0 or (isinstance(value, float) and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be a positive finite number: {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _probability(text: str) -> float:
    """A probability flag: a finite number from 0 to 1, or argparse's usage error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:  # NaN fails both comparisons, so it is refused too
        raise argparse.ArgumentTypeError(f"must be a probability from 0 to 1: {text!r}")
    return value


_probability.__name__ = "probability"  # argparse names the type in its messages

# How `show` and `replay` name an episode: records.episode_id, results.json's `id`.
EPISODE_HELP = ("an episode id, TASK:TRIAL, or TASK@BEHAVIOURS:TRIAL when the run gives "
                "its users behaviours (e.g. airline-w-000000:0, "
                "airline-w-000000@one_fact_when_asked+out_of_order:1); a run's ids are "
                "the simulations' `id` fields in RUN/results.json")


def _add_domain_arg(parser: argparse.ArgumentParser, required: bool = True,
                    note: str = "") -> None:
    # Not argparse choices: a misspelt name gets the one-line `writ: error:` naming the
    # known domains (UnknownDomainError), or, where a config file also names a domain,
    # an error naming --domain (simulate_config).
    parser.add_argument("--domain", required=required, metavar="NAME",
                        help=" or ".join(domain_names()) + note)


def _add_database_args(parser: argparse.ArgumentParser, with_db: bool = True,
                       domain_required: bool = True) -> None:
    if domain_required:
        _add_domain_arg(parser)
    else:
        _add_domain_arg(parser, required=False, note=" (default: [run] domain of --config)")
    if with_db:
        parser.add_argument("--db", metavar="PATH", help="a tau2-bench db.json (default: generate)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument(
        "--scale", type=_positive(float), default=1.0,
        help="generated size, 1.0 = tau2-bench's (default 1.0); refused up front when the "
             "database would not fit in the available memory"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="writ", description="Synthesize verified tool-use trajectories (WRIT)."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tools = commands.add_parser("tools", help="list or execute a domain's tools")
    tool_commands = tools.add_subparsers(dest="tools_command", required=True, metavar="ACTION")
    p = tool_commands.add_parser("list", help="print the tool schemas as a JSON list")
    _add_domain_arg(p)
    p.add_argument("--tools-json", metavar="PATH", help="show the schemas of this tools.json")
    p.set_defaults(run=cmd_tools_list)
    p = tool_commands.add_parser(
        "call", help="execute JSON-lines tool calls on one episode, print results"
    )
    _add_database_args(p)
    p.add_argument("file", nargs="?", metavar="FILE", help="JSON lines (default: stdin)")
    p.set_defaults(run=cmd_tools_call)

    db = commands.add_parser("db", help="inspect or generate a domain database")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    p = db_commands.add_parser("hash", help="print the tau2 DB hash and table sizes")
    _add_database_args(p)
    p.set_defaults(run=cmd_db_hash)
    p = db_commands.add_parser("generate", help="write a generated database as db.json")
    _add_database_args(p, with_db=False)
    p.add_argument("--out", required=True, metavar="PATH", help="where to write db.json")
    p.set_defaults(run=cmd_db_generate)

    p = commands.add_parser("walk", help="run seeded random tool-call episodes, print a summary")
    p.add_argument("--config", metavar="PATH", help="config.toml (default: built-in defaults)")
    _add_domain_arg(p, required=False, note="; overrides [run] domain")
    p.add_argument("--episodes", type=_positive(int), help="overrides [walk] episodes")
    p.add_argument("--calls", type=_positive(int), help="overrides [walk] calls_per_episode")
    p.add_argument("--seed", type=int, help="overrides [run] seed")
    p.set_defaults(run=cmd_walk)

    tasks = commands.add_parser("tasks", help="synthesize tasks (WRIT stage 1)")
    task_commands = tasks.add_subparsers(dest="tasks_command", required=True, metavar="ACTION")
    p = task_commands.add_parser("generate", help="write a tau2-format task file")
    _add_database_args(p, domain_required=False)
    p.add_argument("--count", type=_positive(int), required=True, help="tasks to produce")
    p.add_argument("--task-seed", type=int, default=None,
                   help="synthesis seed (default: the same as --seed)")
    p.add_argument("--exclude", metavar="PATH", action="append", default=[],
                   help="a task file whose gold writes must never be reproduced (repeatable)")
    p.add_argument("--config", metavar="PATH",
                   help="config.toml whose [synthesis] section sets the mix and ranges")
    p.add_argument("--rewrite", metavar="ROLE",
                   help="rewrite each task's instructions through this role of "
                        "[models.roles]; rewrites that lose a fact are not used")
    p.add_argument("--out", required=True, metavar="PATH", help="where to write tasks.json")
    p.set_defaults(run=cmd_tasks_generate)

    p = commands.add_parser(
        "simulate", help="run agent-user episodes over tasks, grade them, export SFT data"
    )
    p.add_argument("--config", metavar="PATH", help="config.toml (default: built-in defaults)")
    _add_domain_arg(p, required=False, note="; overrides [run] domain")
    p.add_argument("--db", metavar="PATH", help="a tau2-bench db.json (default: generated)")
    p.add_argument("--scale", type=_positive(float),
                   help="overrides [domains.D] scale: the generated database's size")
    p.add_argument("--tasks", metavar="PATH", help="a tau2-bench tasks.json (default: "
                   "synthesize [simulate] task_count tasks)")
    p.add_argument("--split", help="with --tasks: a split of split_tasks.json beside the "
                   "tasks file")
    p.add_argument("--task-count", type=_positive(int), help="tasks to synthesize")
    p.add_argument("--agent", help="scripted, scripted-http, or a role of [models.roles]")
    p.add_argument("--user", help="scripted, scripted-http, or a role of [models.roles]")
    p.add_argument("--trials", type=_positive(int), help="trials per task")
    p.add_argument("--concurrency", type=_positive(int), help="episodes in flight")
    p.add_argument("--seed", type=int, help="overrides [run] seed")
    p.add_argument("--mistake-rate", type=_probability, metavar="P",
                   help="scripted agent: probability of a mistake per episode, 0 to 1")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", metavar="RUN", help="the new run directory")
    where.add_argument("--resume", metavar="RUN", help="continue a stopped or killed run")
    p.add_argument("--ray", metavar="ADDRESS", help="run the episodes in shards on this Ray "
                   "cluster (`auto`, host:port); needs pip install 'writ-async[ray]'")
    p.add_argument("--ray-workers", type=_positive(int), metavar="N",
                   help="with --ray: shards running at once (default: the cluster's CPUs)")
    p.set_defaults(run=cmd_simulate)

    p = commands.add_parser(
        "mock-server", help="serve the mock OpenAI-compatible endpoint until interrupted",
        description="Serve the mock OpenAI-compatible endpoint (/v1/chat/completions, "
                    "/v1/models, /stats) until interrupted.",
        epilog=MOCK_SERVER_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="PATH", help="config.toml whose [mock] section to use")
    p.add_argument("--host", help="overrides [mock] host (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="overrides [mock] port (0: pick a free one)")
    p.add_argument("--ttft-ms", type=float, help="time to first token, milliseconds")
    p.add_argument("--tpot-ms", type=float, help="time per output token, milliseconds")
    p.add_argument("--jitter-ms", type=float, help="uniform jitter on each delay, milliseconds")
    p.add_argument("--seed", type=int, help="overrides [mock] seed")
    p.add_argument("--policy", choices=["plausible", "shape"],
                   help="overrides [mock] policy (default plausible; see policies below)")
    p.set_defaults(run=cmd_mock_server)

    add_loadtest(commands)

    p = commands.add_parser(
        "replay", help="verify episodes from the journal, fork one from a step, or re-run "
        "a run's failed episodes")
    p.add_argument("run_dir", metavar="RUN", help="a run directory")
    p.add_argument("episode", nargs="?", metavar="EPISODE", help=EPISODE_HELP)
    what = p.add_mutually_exclusive_group()
    what.add_argument("--all", action="store_true", help="verify every finished episode")
    what.add_argument("--from", dest="from_step", type=int, metavar="STEP",
                      help="fork EPISODE: keep its first STEP messages, then go on live")
    what.add_argument("--failed", action="store_true",
                      help="re-run every failed or rejected episode into a new run")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--from-start", action="store_true",
                       help="with --failed: re-run from the start (default)")
    start.add_argument("--from-first-wrong-write", action="store_true",
                       help="with --failed: go on from the step before the first wrong write")
    p.add_argument("--full-hash", action="store_true",
                   help="verify: also compute each final tau2 DB hash (default: compare "
                        "delta hashes, equal iff the tau2 hashes are)")
    p.add_argument("--out", metavar="NEW_RUN", help="fork / --failed: the new run directory")
    p.add_argument("--seed", type=int, help="fork / --failed: derive episode seeds from N")
    p.add_argument("--agent", help="fork / --failed: scripted, scripted-http or a role")
    p.add_argument("--user", help="fork / --failed: scripted, scripted-http or a role")
    p.add_argument("--config", metavar="PATH",
                   help="fork / --failed: a config.toml whose [models] and [mock] to use")
    p.add_argument("--mistake-rate", type=_probability, metavar="P",
                   help="fork / --failed: scripted agent's probability of a mistake, 0 to 1")
    p.add_argument("--behaviours", metavar="A+B",
                   help="fork / --failed: how the user behaves from here on ('' for none)")
    p.add_argument("--concurrency", type=_positive(int), help="--failed: episodes in flight")
    p.set_defaults(run=cmd_replay)

    p = commands.add_parser("show", help="print an episode as a readable transcript")
    p.add_argument("run_dir", metavar="RUN", help="a run directory")
    p.add_argument("episode", metavar="EPISODE", help=EPISODE_HELP)
    p.add_argument("--full", action="store_true", help="do not shorten long tool outputs")
    p.set_defaults(run=cmd_show)

    _add_journal_parser(commands)

    data = commands.add_parser("data", help="inspect exported training data")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    p = data_commands.add_parser(
        "stats", help="rows, tokens, turns, tool calls and the variety of the assistant's text")
    p.add_argument("run_dir", metavar="RUN",
                   help="a run directory (its export/sft_openai.jsonl) or an OpenAI JSONL file")
    p.add_argument("--against", metavar="TASKS",
                   help="a tasks.json: count rows whose writes equal a task's gold writes")
    p.add_argument("--split", help="with --against: a split of split_tasks.json beside it")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.set_defaults(run=cmd_data_stats)
    return parser


# What `writ mock-server --help` lists; the mock's FaultRates and MockConfig.policy are
# the source (tests/test_cli_input.py checks that every fault and policy is named here).
# Written out rather than imported, so that `writ --help` does not load aiohttp.
MOCK_SERVER_EPILOG = """\
faults: per-request probabilities from 0 to 1, set in [mock.faults] of --config
(e.g. error_5xx = 0.01); all 0 by default:
  stall              wait [mock] stall_s (or until the client leaves), then answer
  reset              drop the connection, before any byte or after a chunk of a stream
  error_5xx          500, 502 or 503 with an error JSON body
  error_object_200   200 whose body is {"error": ...}
  malformed_json     200 with cut-off JSON or an HTML page
  truncated_stream   a stream that ends early: no finish_reason, no [DONE]
  invalid_tool_args  tool-call arguments that are not valid JSON
  unholdable_tool_args tool-call arguments holding NaN, 1e400, a 400-digit integer
                     or arrays nested 100,000 deep
  no_usage           usage left out of the answer

refusals, set in [mock]: 401 without api_key/api_key_env's key, 404 for a model not in
models (when set), 400 past max_context_tokens, 429 past rpm_limit/tpm_limit.

policies (--policy, or [mock] policy):
  plausible          text, and schema-valid tool calls when the conversation calls for
                     one (default)
  shape              a fixed conversation shape, [mock] shape_tool_calls tool calls per
                     agent turn and shape_user_turns user turns, for comparing runners

GET /v1/models lists [mock] models, or else the model of each endpoint of [models]
whose base_url is "mock" (writ-mock by default).
"""


# -- tools -------------------------------------------------------------------------------


def cmd_tools_list(args: argparse.Namespace) -> int:
    toolbox = get_domain(args.domain).toolbox_with_schemas(args.tools_json)
    print(json.dumps(toolbox.schemas(), indent=2))
    return 0


def _config(path: str | None) -> Config:
    """The config file (or the defaults), checked against the registered domains."""
    if path:
        return load_config(path, domains=domain_names())
    return check_domains(default_config(), "<defaults>", domain_names())


def _database(domain: Domain, db: str | None, seed: int, scale: float) -> BaseDB:
    """The domain's base database: loaded from ``db``, or generated once the scale is
    known to fit in memory."""
    if db is None:
        from writ_async.environment.capacity import check_scale

        check_scale(domain, scale, "<command line>", "--scale")
    return domain.base(db, seed, scale)


def cmd_tools_call(args: argparse.Namespace) -> int:
    domain = get_domain(args.domain)
    env = domain.environment(_database(domain, args.db, args.seed, args.scale))
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


# -- db ----------------------------------------------------------------------------------


def describe_db(base: BaseDB) -> str:
    rows = [("db_hash", base.db_hash())]
    rows += [(name, str(len(table))) for name, table in base.tables.items()]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def cmd_db_hash(args: argparse.Namespace) -> int:
    print(describe_db(_database(get_domain(args.domain), args.db, args.seed, args.scale)))
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


# -- walk --------------------------------------------------------------------------------


@dataclass(slots=True)
class ToolCounts:
    calls: int = 0
    errors: int = 0

    @property
    def ok(self) -> int:
        return self.calls - self.errors


@dataclass(slots=True)
class WalkStats:
    episodes: int = 0
    calls: int = 0
    seconds: float = 0.0
    per_tool: dict[str, ToolCounts] = field(default_factory=dict)
    final_hashes: set[str] = field(default_factory=set)


def walk(
    domain: Domain,
    base: BaseDB,
    toolbox: Toolbox,
    *,
    episodes: int,
    calls: int,
    seed: int,
    clock: Clock = time.perf_counter,
) -> WalkStats:
    """Run independent seeded episodes, each on a fresh overlay, and count the outcomes."""
    stats = WalkStats(per_tool={name: ToolCounts() for name in toolbox.names()})
    start = clock()
    for episode in range(episodes):
        rng = walk_rng(seed, episode)
        env = domain.environment(base, toolbox)
        for _ in range(calls):
            name, arguments = domain.sample_call(env.overlay, rng)
            result = env.call(name, arguments)
            counts = stats.per_tool.setdefault(name, ToolCounts())
            counts.calls += 1
            counts.errors += result.error
        stats.final_hashes.add(env.db_hash())
        stats.episodes += 1
        stats.calls += calls
    stats.seconds = clock() - start
    return stats


def render_walk(stats: WalkStats, load_seconds: float, base_unchanged: bool) -> str:
    width = max([len("tool"), *(len(n) for n in stats.per_tool)])
    lines = [f"{'tool':<{width}}  {'calls':>8}  {'ok':>8}  {'errors':>8}"]
    for name, c in stats.per_tool.items():
        lines.append(f"{name:<{width}}  {c.calls:>8}  {c.ok:>8}  {c.errors:>8}")
    errors = sum(c.errors for c in stats.per_tool.values())
    lines.append(f"{'total':<{width}}  {stats.calls:>8}  {stats.calls - errors:>8}  {errors:>8}")
    rate = f"{stats.calls / stats.seconds:.0f}" if stats.seconds > 0 else "-"
    lines += [
        "",
        f"load time                 {load_seconds:.3f} s",
        f"walk time                 {stats.seconds:.3f} s",
        f"calls/s                   {rate}",
        f"distinct final DB hashes  {len(stats.final_hashes)} of {stats.episodes} episodes",
        f"base DB unchanged         {'yes' if base_unchanged else 'NO (a tool mutated it)'}",
    ]
    return "\n".join(lines)


def cmd_walk(args: argparse.Namespace, clock: Clock = time.perf_counter) -> int:
    config = _config(args.config)
    configure_logging(config.logging.level, config.logging.format)
    name = args.domain or config.run.domain
    seed = run_seed(config, args.seed)
    episodes = args.episodes or config.walk.episodes
    calls = args.calls or config.walk.calls_per_episode
    settings = config.domain_settings(name)
    log = get_logger(domain=name, seed=seed)

    domain = get_domain(name)
    if settings.db_path is None:
        from writ_async.environment.capacity import check_scale

        check_scale(domain, settings.scale, args.config or "<defaults>",
                    f"domains.{name}.scale")
    start = clock()
    base = domain.base(settings.db_path, seed, settings.scale)
    base_hash = base.db_hash()  # builds the hash index, so the walk times only the calls
    toolbox = domain.toolbox_with_schemas(settings.tools_path)
    domain.policy(settings.policy_path)  # a bad policy path fails now, not mid-run
    load_seconds = clock() - start
    sizes = {table: len(records) for table, records in base.tables.items()}
    log.info("walk.loaded", db_hash=base_hash, tables=sizes, seconds=round(load_seconds, 3))

    stats = walk(domain, base, toolbox, episodes=episodes, calls=calls, seed=seed, clock=clock)
    # Episodes must only ever change their overlays; recomputing the base text proves it.
    unchanged = base.verify_unchanged()
    log.info("walk.done", calls=stats.calls, seconds=round(stats.seconds, 3))
    print(f"walk {name}: seed {seed}, {episodes} episodes x {calls} calls, base DB {base_hash}")
    print(render_walk(stats, load_seconds, unchanged))
    return 0 if unchanged else 1


# -- mock server -------------------------------------------------------------------------


def cmd_mock_server(args: argparse.Namespace) -> int:
    from writ_async.models.mock_server import MockServer, serve_forever
    from writ_async.models.setup import mock_model_names

    config = _config(args.config)
    configure_logging(config.logging.level, config.logging.format)
    overrides = {
        name: value
        for name, value in (("host", args.host), ("port", args.port), ("ttft_ms", args.ttft_ms),
                            ("tpot_ms", args.tpot_ms), ("jitter_ms", args.jitter_ms),
                            ("seed", args.seed), ("policy", args.policy))
        if value is not None
    }
    try:
        mock = msgspec.convert({**msgspec.to_builtins(config.mock), **overrides},
                               type(config.mock))
    except msgspec.ValidationError as exc:
        raise ConfigError(args.config or "<command line>", str(exc), "mock") from None

    def ready(server: MockServer) -> None:
        print(f"mock server listening on {server.url}", flush=True)

    # Clients configured from this file ask for their endpoint's model name: list it.
    listed = mock_model_names(config.models)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it is meant to stop
        _run_async(serve_forever(mock, on_ready=ready, listed_models=listed))
    return 0


def _run_async(coro: Any) -> Any:
    """Run on uvloop where it is installed, else on the default asyncio loop."""
    try:
        import uvloop
    except ImportError:  # uvloop is not built for this platform
        import asyncio

        return asyncio.run(coro)
    return uvloop.run(coro)


def _behaviours_arg(value: str | None) -> tuple[str, ...] | None:
    """``a+b`` as checked behaviour names; None when not given."""
    if value is None:
        return None
    from writ_async.participants.behaviours import canonical

    names = [n for n in value.split("+") if n]
    try:
        return canonical(names)
    except ValueError as exc:
        raise ReplayError(f"--behaviours: {exc}") from None


# -- tasks -------------------------------------------------------------------------------


def cmd_tasks_generate(args: argparse.Namespace) -> int:
    from writ_async.conversation.task import load_tasks
    from writ_async.synthesis.driver import format_distribution, tasks_from_config

    config = _config(args.config)
    if args.domain is None and not args.config:
        raise ConfigError("<command line>", "give --domain, or a --config whose [run] domain "
                          "to use", "--domain")
    name = args.domain or config.run.domain
    if name not in domain_names():
        raise ConfigError(args.config, f"unknown domain `{name}`; known domains: "
                          f"{', '.join(domain_names())}", "run.domain")
    domain = get_domain(name)
    synthesis = config.synthesis
    if args.task_seed is not None:
        synthesis = msgspec.structs.replace(synthesis, seed=args.task_seed)
    base = _database(domain, args.db, args.seed, args.scale)
    exclude = [t for path in args.exclude for t in load_tasks(path)]
    start = time.perf_counter()
    tasks = tasks_from_config(domain, base, args.count, args.seed, synthesis, exclude)
    if args.rewrite is not None:
        tasks = _rewrite(config, tasks, args.rewrite, args.config or "<defaults>", args.seed)
    elapsed = time.perf_counter() - start
    out = Path(args.out)
    text = msgspec.json.format(msgspec.json.encode(tasks), indent=2) + b"\n"
    tmp = out.with_name(out.name + ".tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(text)
        tmp.replace(out)
    except OSError as exc:
        raise DataError(out, f"cannot write tasks: {exc.strerror or exc}") from None
    print(f"wrote {len(tasks)} {name} tasks to {out} in {elapsed:.2f} s")
    print("tasks by writes (rows) and evidence reads (columns):")
    print(format_distribution(tasks))
    return 0


def _rewrite(config: Any, tasks: list[Any], role: str, source: str, seed: int) -> list[Any]:
    from writ_async.models.setup import open_pool
    from writ_async.synthesis.rewrite import rewrite_tasks

    if role not in config.models.roles:
        raise ConfigError(source, f"`{role}` is not a role of [models.roles]", "--rewrite")

    async def run() -> tuple[list[Any], Any]:
        async with open_pool(config.models, mock_config=config.mock, seed=seed) as pool:
            return await rewrite_tasks(tasks, pool, role, seed=seed)

    rewritten, report = _run_async(run())
    print(f"rewrote {report.rewritten} of {report.tasks} instructions; "
          f"{len(report.kept_original)} kept their template wording")
    for task_id, why in list(report.kept_original.items())[:5]:
        print(f"  {task_id}: {why}")
    return rewritten


# -- simulate ----------------------------------------------------------------------------


def simulate_config(args: argparse.Namespace) -> Any:
    """The config file with the command line's overrides applied (and checked)."""
    if args.config:
        config = load_config(args.config, domains=domain_names())
    elif getattr(args, "resume", None):
        # A resumed run goes on with the configuration it started with; flags may still
        # change what cannot change results (the manifest check refuses the rest).
        from writ_async.engine.rundir import config_from_manifest, load_manifest

        config = config_from_manifest(args.resume, load_manifest(args.resume))
    else:
        config = default_config()
    replace = msgspec.structs.replace
    run = config.run
    known = domain_names()
    if args.domain is not None and args.domain not in known:
        # The flag is wrong, whatever the config file says: blame the flag.
        raise ConfigError("<command line>", f"unknown domain `{args.domain}`; known domains: "
                          f"{', '.join(known)}", "--domain")
    if args.domain is not None or args.seed is not None:
        run = replace(run, domain=args.domain or run.domain,
                      seed=run_seed(config, args.seed))
    if run.domain not in known:  # --domain was checked above: the file named it
        raise ConfigError(args.config or "<command line>", f"unknown domain `{run.domain}`; "
                          f"known domains: {', '.join(known)}", "run.domain")
    sim_overrides = {
        key: value for key, value in (
            ("tasks", args.tasks and str(Path(args.tasks).resolve())), ("split", args.split),
            ("task_count", args.task_count), ("agent", args.agent), ("user", args.user),
            ("trials", args.trials), ("concurrency", args.concurrency),
            ("mistake_rate", args.mistake_rate),
        ) if value is not None
    }
    sim = replace(config.simulate, **sim_overrides)
    if sim.split is not None and sim.tasks is None:
        # A split names tasks of a tau2 tasks file; without one it would be ignored and
        # the run would synthesize tasks instead of the split that was asked for.
        if args.split is not None:
            raise ConfigError("<command line>", "--split needs --tasks (or [simulate] tasks "
                              "in --config): it names a split of the split_tasks.json beside "
                              "that tasks file", "--split")
        raise ConfigError(args.config or "<command line>", "split is set but tasks is not: "
                          "a split names a split of the split_tasks.json beside the tasks "
                          "file", "simulate.split")
    config = replace(config, run=run, simulate=sim)
    if args.db is not None:
        config = config.with_domain(run.domain, db_path=str(Path(args.db).resolve()))
    if getattr(args, "scale", None) is not None:
        config = config.with_domain(run.domain, scale=args.scale)
    # Re-check what the overrides may have broken, the same way the file is checked.
    from writ_async.config import check_config

    check_config(config, args.config or "<command line>")
    # A section for every registered domain, as a config file's would be.
    config = check_domains(config, args.config or "<command line>", known)
    settings = config.domain_settings(run.domain)
    if settings.db_path is None:
        from writ_async.environment.capacity import check_scale

        resumed = getattr(args, "resume", None)
        source = args.config or (f"{resumed}/manifest.json" if resumed else "<defaults>")
        scale_from = ("<command line>", "--scale") if getattr(args, "scale", None) is not None \
            else (source, f"domains.{run.domain}.scale")
        check_scale(get_domain(run.domain), settings.scale, *scale_from)
    return config


def cmd_simulate(args: argparse.Namespace) -> int:
    from writ_async.engine.plan import resolve_plan
    from writ_async.engine.simulate import simulate

    config = simulate_config(args)
    configure_logging(config.logging.level, config.logging.format)
    # The one lookup of the configured domain: the engine is given the resolved plan.
    plan = resolve_plan(config, get_domain(config.run.domain))
    if args.resume:
        out, resume = Path(args.resume), True
    elif args.out:
        out, resume = Path(args.out), False
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out, resume = Path(config.run.out_dir) / f"{config.run.domain}-{stamp}", False
    if args.ray:
        from writ_async.cluster.ray_run import RayOptions, simulate_on_ray

        options = RayOptions(address=args.ray, workers=args.ray_workers)
        cluster = _run_async(simulate_on_ray(plan, out=out, resume=resume, options=options,
                                             progress_stream=sys.stderr))
        print(render_summary(cluster.run))
        print(f"ray: {cluster.shards} shards on {cluster.workers} workers, "
              f"{len(cluster.lost)} workers lost, {cluster.merged} episodes merged"
              + (f"; resume with --ray {args.ray}" if cluster.run.stopped_early else ""))
        return 0
    from writ_async.engine.scheduler import StopRequest

    stop = StopRequest()
    outcome = _run_async(simulate(plan, out=out, resume=resume, progress_stream=sys.stderr,
                                  stop=stop))
    print(render_summary(outcome))
    # A run a signal stopped exits as the shell expects of a process that signal stopped,
    # so that scripts (and CI) never take a partial run for a finished one.
    if outcome.stopped_early and stop.requests:
        return stop.exit_status()
    cause = nothing_ran(outcome.records)
    if cause is not None:
        print(f"writ: error: no episode could run: {cause}", file=sys.stderr)
        return 1
    return 0


_INFRA = Termination.INFRASTRUCTURE_ERROR.value


def nothing_ran(records: Sequence[Any]) -> str | None:
    """Why no episode of a run could run, in one line (None if any could): each failed
    on the infrastructure, so the run produced no data at all; the most frequent cause is
    named with its count."""
    if not records or any(r.termination != _INFRA for r in records):
        return None
    causes = Counter(r.error or "no error recorded" for r in records)
    cause, count = causes.most_common(1)[0]
    role, _, what = cause.partition(" role: ")
    if not what:
        role, what = "", cause
    others = f" ({len(causes) - 1} other causes)" if len(causes) > 1 else ""
    lead = f"{role} role: " if role else ""
    return (f"{lead}{count} of {len(records)} episodes ended {_INFRA}: "
            f"{what}{others}")


def render_summary(outcome: Any) -> str:
    s = outcome.summary
    lines = [f"run: {outcome.run_dir}"]
    for key, value in s.items():
        if isinstance(value, float):
            value = f"{value:.4f}"
        lines.append(f"  {key:<24} {value}")
    report = outcome.export
    dropped = ", ".join(f"{why}: {n}" for why, n in sorted(report.dropped.items())) or "none"
    # "kept" is one decision (export.keep): the summary's `kept` above counts the same
    lines.append(f"export: {report.kept} of {report.total} episodes kept, {report.written} "
                 f"written ({report.duplicates} exact duplicates removed); "
                 f"dropped: {dropped}")
    lines.append(f"  {report.openai_path}")
    lines.append(f"  {report.sharegpt_path}")
    lines.extend(_data_stats_lines(Path(outcome.run_dir)))
    for warning in getattr(outcome, "warnings", ()):
        lines.append(f"warning: {warning}")
    if outcome.stopped_early:
        lines.append(f"partial run: {len(outcome.records)} of {outcome.expected} episodes "
                     f"done; resume with `writ simulate --resume {outcome.run_dir}`")
    return "\n".join(lines)


def _data_stats_lines(run_dir: Path) -> list[str]:
    """The headline figures of the run's export/stats.json (written with the export)."""
    from writ_async.export import datastats

    path = run_dir / "export" / datastats.STATS_FILE
    if not path.exists():
        return []
    stats = json.loads(path.read_text(encoding="utf-8"))
    lines = [f"data: {datastats.headline(stats)}", f"  {path}"]
    if "contamination" in stats:
        lines.append(datastats.render_contamination(stats["contamination"]))
    return lines


# -- replay and show -----------------------------------------------------------------------

DIVERGED = 2  # exit status of `writ replay` when an episode does not reproduce


def cmd_replay(args: argparse.Namespace) -> int:
    from writ_async.engine import replay
    from writ_async.errors import ReplayError

    continuing = args.from_step is not None or args.failed
    if args.all or args.failed:
        if args.episode is not None:
            raise ReplayError(f"give an EPISODE or --{'all' if args.all else 'failed'}, "
                              "not both")
    elif args.episode is None:
        raise ReplayError("give an EPISODE, --all or --failed")
    if (args.from_start or args.from_first_wrong_write) and not args.failed:
        raise ReplayError("--from-start and --from-first-wrong-write go with --failed")
    if not continuing:
        given = [name for name, value in (
            ("--out", args.out), ("--seed", args.seed), ("--agent", args.agent),
            ("--user", args.user), ("--config", args.config),
            ("--mistake-rate", args.mistake_rate), ("--concurrency", args.concurrency),
            ("--behaviours", args.behaviours),
        ) if value is not None]
        if given:
            raise ReplayError(f"{', '.join(given)} only apply to a fork (--from) or --failed")
    elif args.full_hash:
        raise ReplayError("--full-hash applies to verification only")

    run = open_replay(args.run_dir)
    configure_logging(run.config.logging.level, run.config.logging.format)
    _warn_if_corrupt(run)
    if not continuing:
        if args.all:
            return _verify_all(run, full_hash=args.full_hash)
        verdict = _run_async(replay.verify_episode(run, args.episode, full_hash=args.full_hash))
        print(replay.render_verdict(verdict))
        return 0 if verdict.ok else DIVERGED

    overrides = replay.Overrides(seed=args.seed, agent=args.agent, user=args.user,
                                 config_path=args.config, mistake_rate=args.mistake_rate,
                                 concurrency=args.concurrency,
                                 behaviours=_behaviours_arg(args.behaviours))
    if args.out:
        out = Path(args.out)
        if out.is_dir() and any(out.iterdir()):
            # Checked here, not only by the run directory: its advice (`--resume`) is
            # for `writ simulate`, and `writ replay` has no way to continue a run.
            raise ReplayError(f"{out}: --out already exists and is not empty; give a new "
                              "directory, or leave --out out to write beside RUN (named "
                              "RUN-fork-TIME or RUN-failed-TIME)")
    else:
        kind = "fork" if args.from_step is not None else "failed"
        out = Path(args.run_dir).parent / f"{Path(args.run_dir).name}-{kind}-" \
            f"{time.strftime('%Y%m%d-%H%M%S')}"
    if args.from_step is not None:
        outcome = _run_async(replay.fork(run, args.episode, args.from_step, out=out,
                                         overrides=overrides, progress_stream=sys.stderr))
    else:
        mode = replay.FROM_FIRST_WRONG_WRITE if args.from_first_wrong_write else \
            replay.FROM_START
        outcome = _run_async(replay.rerun_failed(run, mode=mode, out=out, overrides=overrides,
                                                 progress_stream=sys.stderr))
    print(replay.render_outcome(run, outcome))
    return 0


def open_replay(run_dir: str | Path) -> Any:
    """A run directory opened for replay, on the domain its manifest's config names: the
    registry is looked up here, the replay engine is given the ``Domain``."""
    from writ_async.engine import replay

    _, config = replay.run_config(run_dir)
    return replay.open_run(run_dir, get_domain(config.run.domain))


def cmd_show(args: argparse.Namespace) -> int:
    from writ_async.engine import show

    run = open_replay(args.run_dir)
    _warn_if_corrupt(run)
    print(show.render_episode(run, args.episode, full=args.full))
    return 0


INCOMPLETE = 1  # exit status of `writ replay --all` when all verified but the run is not whole


def _verify_all(run: Any, *, full_hash: bool) -> int:
    """`writ replay --all`: verify every finished episode, then hold the journal against
    the manifest. Exit 0 only for a whole run that reproduces; DIVERGED wins over
    INCOMPLETE (a divergence is the worse news)."""
    from writ_async.engine import replay

    start = time.perf_counter()
    verdicts = _run_async(replay.verify_all(run, full_hash=full_hash))
    print(replay.render_table(verdicts, time.perf_counter() - start,
                              unfinished=len(run.contents.unfinished)))
    whole = replay.completeness(run)
    print("\n".join(replay.render_completeness(run, whole)))
    if not all(v.ok for v in verdicts):
        return DIVERGED
    return 0 if whole.complete else INCOMPLETE


def _warn_if_corrupt(run: Any) -> None:
    """On stderr, before what is served: the journal is damaged and how to salvage it."""
    from writ_async.engine import replay

    warning = replay.corruption_warning(run)
    if warning is not None:
        print(f"writ: warning: {warning}", file=sys.stderr, flush=True)


# -- journal -------------------------------------------------------------------------------


def _add_journal_parser(commands: Any) -> None:
    journal = commands.add_parser("journal", help="repair a run's journal")
    actions = journal.add_subparsers(dest="journal_command", required=True, metavar="ACTION")
    p = actions.add_parser(
        "salvage", help="copy a run whose journal is corrupt, with the journal's intact "
        "part, to a new run that `writ simulate --resume NEW` finishes")
    p.add_argument("run_dir", metavar="RUN", help="a run directory")
    p.add_argument("--out", metavar="NEW", help="the new run directory (default: RUN-salvaged)")
    p.set_defaults(run=cmd_journal_salvage)


def cmd_journal_salvage(args: argparse.Namespace) -> int:
    import shlex

    from writ_async.engine.rundir import salvage_run

    report = salvage_run(args.run_dir, args.out)
    if report.corrupt_at is not None:
        print(f"journal corrupt at byte {report.corrupt_at}: {report.reason}")
    elif report.dropped_bytes:
        print(f"journal intact but for a torn last record ({report.dropped_bytes} bytes)")
    else:
        print("journal intact: copied whole")
    print(f"salvaged {report.kept_bytes} bytes ({report.finished} finished episodes, "
          f"{report.unfinished} started and not finished) into {report.out}; "
          f"{report.dropped_bytes} bytes dropped")
    print(f"finish it with: writ simulate --resume {shlex.quote(report.out)}")
    return 0


# -- data ----------------------------------------------------------------------------------


def cmd_data_stats(args: argparse.Namespace) -> int:
    from writ_async.export import datastats

    if args.split and not args.against:
        raise ConfigError("<command line>", "--split goes with --against")
    # An export may hold rows of any registered domain: each is classified by its own.
    kinds = datastats.toolbox_kinds({name: get_domain(name) for name in domain_names()})
    stats = datastats.stats_of(args.run_dir, kind_of=kinds, against=args.against,
                               split=args.split)
    if args.json:
        sys.stdout.write(datastats.encode(stats).decode())
    else:
        print(datastats.render(stats))
    return 0
