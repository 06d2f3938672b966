"""The run configuration: ``config.toml`` decoded into typed, frozen msgspec Structs.

Every section is a Struct whose fields all have defaults, so an empty file is a valid
run and a new section is one Struct plus one field on ``Config``. Unknown keys are
refused (a typo must not silently fall back to a default), and every problem becomes a
``ConfigError`` naming the file and the dotted key path, never a traceback.

Relative paths in the file (database, policy, tool schemas, output directory) are
resolved against the directory of the config file, so a run does not depend on the
directory it is started from.
"""

from __future__ import annotations

import re
import tomllib
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from writ_async.errors import ConfigError
from writ_async.llm.protocol import Api, ModelParams
from writ_async.mock.config import MockConfig
from writ_async.participants.behaviours.scenarios import BehaviourMix

LogFormat = Literal["auto", "console", "json"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
Range = Annotated[list[PositiveInt], msgspec.Meta(min_length=2, max_length=2)]


class Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Base of every section: unknown keys are errors, fields are keyword-only."""


class RunConfig(Section):
    seed: int = 0
    domain: str = "airline"  # a registered domain (``check_domains``)
    out_dir: str = "runs"


class DomainConfig(Section):
    """Where one domain's data comes from; ``None`` means the embedded default."""

    db_path: str | None = None  # tau2-bench db.json; None: the seeded generator
    scale: PositiveFloat = 1.0  # size of the generated database (ignored with db_path)
    policy_path: str | None = None  # policy text shown to the agent
    tools_path: str | None = None  # tau2-bench tools.json: the schemas shown to models


# ``[domains.<name>]`` tables by domain name. Which names exist is the registry's to say,
# not this module's: ``check_domains`` refuses a name that is not registered.
DomainsConfig = dict[str, DomainConfig]


class WalkConfig(Section):
    episodes: PositiveInt = 200
    calls_per_episode: PositiveInt = 20


class LoggingConfig(Section):
    level: LogLevel = "info"
    format: LogFormat = "auto"  # auto: console on a terminal, JSON lines otherwise


class TimeoutsConfig(Section):
    """Seconds per phase of one model call; ``total`` caps the others."""

    connect: PositiveFloat = 10.0
    first_token: PositiveFloat = 120.0
    idle: PositiveFloat = 60.0  # longest gap between two streamed chunks
    total: PositiveFloat = 600.0


class EndpointConfig(Section):
    """One OpenAI-compatible endpoint. ``base_url = "mock"`` is the embedded mock server."""

    base_url: str = "mock"
    model: str = "writ-mock"
    # "chat": /v1/chat/completions; "responses": OpenAI's Responses API, /v1/responses
    api: Api = "chat"
    api_key_env: str | None = None  # name of the environment variable holding the key
    requests_per_minute: PositiveFloat | None = None
    tokens_per_minute: PositiveFloat | None = None
    initial_concurrency: PositiveInt = 64
    max_concurrency: PositiveInt = 1024
    stream: bool = False
    # Refuse answers without token usage. llama-cpp-python's server never reports usage
    # in a stream (it ignores stream_options.include_usage): set false to stream from it.
    require_usage: bool = True
    timeouts: TimeoutsConfig = msgspec.field(default_factory=TimeoutsConfig)
    # request parameters for this endpoint, over its roles' [models.params.<role>]
    params: ModelParams | None = None


class RetryConfig(Section):
    max_attempts: PositiveInt = 5
    deadline_s: PositiveFloat = 300.0
    backoff_base_s: PositiveFloat = 0.5
    backoff_cap_s: PositiveFloat = 8.0


def _default_endpoints() -> dict[str, EndpointConfig]:
    return {"mock": EndpointConfig()}


def _default_roles() -> dict[str, list[str]]:
    return {"agent": ["mock"], "user": ["mock"], "judge": ["mock"]}


class ModelsConfig(Section):
    """Named endpoints, and the roles (agent, user, judge) each is used for."""

    endpoints: dict[str, EndpointConfig] = msgspec.field(default_factory=_default_endpoints)
    roles: dict[str, list[str]] = msgspec.field(default_factory=_default_roles)
    retry: RetryConfig = msgspec.field(default_factory=RetryConfig)
    # request parameters per role ([models.params.agent]); protocol.ModelParams
    params: dict[str, ModelParams] = msgspec.field(default_factory=dict)


Participant = str  # "scripted", "scripted-http", or a role of [models.roles]


class SimulateConfig(Section):
    """`writ simulate`: which tasks, who plays agent and user, how many at once."""

    tasks: str | None = None  # a tau2-bench tasks.json; None: synthesize tasks
    split: str | None = None  # a split of split_tasks.json beside the tasks file
    task_count: PositiveInt = 200  # synthesized tasks per run when `tasks` is unset
    trials: PositiveInt = 1
    concurrency: PositiveInt = 256
    agent: Participant = "scripted"
    user: Participant = "scripted"
    judge: str | None = None  # role grading NL assertions; unset: reported as not graded
    max_steps: PositiveInt = 200
    max_errors: PositiveInt = 10
    greeting: str | None = "Hi! How can I help you today?"
    episode_timeout_s: PositiveFloat | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    max_tokens: PositiveInt | None = None
    agent_instructions_path: str | None = None  # default: writ's own instructions
    user_guidelines_path: str | None = None  # default: writ's own simulator guidelines
    mistake_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0  # scripted agent only
    mistakes: list[str] | None = None  # allowed kinds; unset: all
    # WRIT stage 2: each task told by sampled user behaviours; unset: the plain scenario
    behaviours: BehaviourMix | None = None


class ExportConfig(Section):
    """Which episodes become SFT data."""

    min_reward: float = 1.0
    terminations: list[str] = msgspec.field(default_factory=lambda: ["user_stop", "agent_stop"])
    require_evidence: bool = True
    dedupe: bool = True
    # a task file (e.g. tau2's tasks.json) whose gold writes no exported row should equal:
    # export/stats.json and the run summary count the rows that do
    contamination_tasks: str | None = None
    contamination_split: str | None = None  # a split of split_tasks.json beside that file
    # DPO pairs from trials of one scenario that passed and failed (export/dpo.jsonl)
    preference: bool = False
    # the agent's reasoning in the SFT rows: `reasoning_content` on assistant messages
    # (sft_openai/sft_trl), a <think> block opening `gpt` turns (sft_sharegpt)
    reasoning: bool = False


def _default_mix() -> dict[str, float]:
    return {"write_intensive": 0.5, "read_heavy": 0.35, "mixed": 0.15}


class SynthesisConfig(Section):
    """WRIT stage 1: how synthesized tasks are drawn (`writ tasks generate`, and
    `writ simulate` when no tasks file is given)."""

    mix: dict[str, Annotated[float, msgspec.Meta(ge=0)]] = msgspec.field(
        default_factory=_default_mix)  # shares of write_intensive / read_heavy / mixed
    # [low, high] ranges; lists, not tuples, so that a manifest's JSON round trip is exact
    writes: Range = msgspec.field(default_factory=lambda: [2, 6])  # writes per task
    evidence: Range = msgspec.field(default_factory=lambda: [3, 20])  # reads per decision
    exclude: list[str] = msgspec.field(default_factory=list)  # task files never reproduced
    seed: int | None = None  # None: [run] seed


class Config(Section):
    run: RunConfig = msgspec.field(default_factory=RunConfig)
    domains: DomainsConfig = msgspec.field(default_factory=dict)
    walk: WalkConfig = msgspec.field(default_factory=WalkConfig)
    logging: LoggingConfig = msgspec.field(default_factory=LoggingConfig)
    models: ModelsConfig = msgspec.field(default_factory=ModelsConfig)
    mock: MockConfig = msgspec.field(default_factory=MockConfig)  # the embedded endpoint
    simulate: SimulateConfig = msgspec.field(default_factory=SimulateConfig)
    synthesis: SynthesisConfig = msgspec.field(default_factory=SynthesisConfig)
    export: ExportConfig = msgspec.field(default_factory=ExportConfig)

    def domain_settings(self, name: str) -> DomainConfig:
        """The ``[domains.<name>]`` section, or the defaults for a domain without one."""
        return self.domains.get(name) or DomainConfig()

    def with_domain(self, name: str, **changes: Any) -> Config:
        """This config with ``changes`` to the ``[domains.<name>]`` section."""
        settings = msgspec.structs.replace(self.domain_settings(name), **changes)
        return msgspec.structs.replace(self, domains={**self.domains, name: settings})


def default_config() -> Config:
    """The configuration of an empty file: the embedded airline default."""
    return Config()


def check_domains(config: Config, path: Path | str, known: Sequence[str]) -> Config:
    """``config`` checked against the registered domains ``known``: ``[run] domain`` and
    every ``[domains.<name>]`` must be one of them (else a ConfigError naming the key).
    Returns it with a section for each of them, the defaults where the file has none, in
    registry order (so that a manifest records every domain's settings)."""
    listed = ", ".join(known)
    for name in config.domains:
        if name not in known:
            raise ConfigError(path, f"unknown domain `{name}`; known domains: {listed}",
                              f"domains.{name}")
    if config.run.domain not in known:
        raise ConfigError(path, f"unknown domain `{config.run.domain}`; known domains: "
                          f"{listed}", "run.domain")
    return msgspec.structs.replace(
        config, domains={name: config.domain_settings(name) for name in known})


def load_config(path: Path | str, *, domains: Sequence[str] | None = None) -> Config:
    """Read, decode and check a config file; any problem is a ``ConfigError``.

    ``domains``: the registered domain names the file is checked against
    (``check_domains``); the commands always pass them. None leaves the names unchecked,
    for a caller that takes only other sections from the file (a replay's ``--config``)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(path, f"cannot read config: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(path, f"not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, f"invalid TOML: {exc}") from None
    try:
        config = msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        message, key_path = explain(str(exc))
        if key_path and "[...]" in key_path:
            key_path = _name_dict_keys(data, key_path)
        raise ConfigError(path, message, key_path) from None
    check_config(config, path)
    if domains is not None:
        config = check_domains(config, path, domains)
    return _resolve_paths(config, path.parent)


def check_config(config: Config, path: Path | str) -> None:
    """The checks that span sections (run after decoding, and after CLI overrides)."""
    _check_roles(config.models, Path(path))
    _check_participants(config, Path(path))
    _check_synthesis(config.synthesis, Path(path))


TRAJECTORY_TYPES = ("write_intensive", "read_heavy", "mixed")


def _check_synthesis(synthesis: SynthesisConfig, path: Path) -> None:
    for name in synthesis.mix:
        if name not in TRAJECTORY_TYPES:
            raise ConfigError(path, f"unknown trajectory type `{name}` (types: "
                              f"{', '.join(TRAJECTORY_TYPES)})", f"synthesis.mix.{name}")
    if not any(synthesis.mix.values()):
        raise ConfigError(path, "the mix gives every type a share of 0", "synthesis.mix")
    for key in ("writes", "evidence"):
        low, high = getattr(synthesis, key)
        if low > high:
            raise ConfigError(path, f"range [{low}, {high}] is empty", f"synthesis.{key}")


SCRIPTED = ("scripted", "scripted-http")


def _check_participants(config: Config, path: Path) -> None:
    """Agent and user are scripted or a configured role; the judge is a role."""
    roles = config.models.roles
    known = ", ".join(roles) or "none"
    sim = config.simulate
    for key in ("agent", "user"):
        value = getattr(sim, key)
        if value not in SCRIPTED and value not in roles:
            raise ConfigError(path, f"`{value}` is neither scripted, scripted-http nor a role "
                              f"of [models.roles] (roles: {known})", f"simulate.{key}")
    if sim.judge is not None and sim.judge not in roles:
        raise ConfigError(path, f"`{sim.judge}` is not a role of [models.roles] (roles: {known})",
                          "simulate.judge")


def _check_roles(models: ModelsConfig, path: Path) -> None:
    """Every role names at least one endpoint, and only endpoints that exist; parameters
    are given only for roles that exist."""
    for role in models.params:
        if role not in models.roles:
            known = ", ".join(models.roles) or "none"
            raise ConfigError(path, f"parameters for `{role}`, which is not a role of "
                              f"[models.roles] (roles: {known})", f"models.params.{role}")
    for role, names in models.roles.items():
        if not names:
            raise ConfigError(path, "a role needs at least one endpoint", f"models.roles.{role}")
        for i, name in enumerate(names):
            if name not in models.endpoints:
                known = ", ".join(models.endpoints) or "none"
                raise ConfigError(path, f"unknown endpoint `{name}` (endpoints: {known})",
                                  f"models.roles.{role}[{i}]")


# -- error messages ----------------------------------------------------------------------

_AT = re.compile(r"^(?P<message>.*?) - at `\$(?P<path>[^`]*)`$", re.DOTALL)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<key>[^`]*)`$")


def explain(error: str) -> tuple[str, str | None]:
    """A msgspec validation message as ``(message, dotted key path)`` for a person.

    ``Expected `int` - at `$.walk.episodes``` becomes ``("expected `int`", "walk.episodes")``;
    an unknown key is named in the path itself and listed against the keys that exist,
    and a value outside a fixed set of choices is shown with the choices.
    """
    m = _AT.match(error)
    message, key_path = (m["message"], m["path"].lstrip(".")) if m else (error, "")
    unknown = _UNKNOWN.match(message)
    if unknown:
        key = unknown["key"]
        known = list(_fields(_type_at(key_path)))
        key_path = f"{key_path}.{key}" if key_path else key
        message = f"unknown key `{key}`"
        if known:
            message += f" (known keys: {', '.join(known)})"
        return message, key_path
    if message[:1].isupper() and not message[1:2].isupper():
        message = message[0].lower() + message[1:]
    message = message.replace("`object`", "`table`")  # say it in TOML's words
    if message.startswith("invalid enum value"):
        choices = _choices(_type_at(key_path))
        if choices:
            message += f" (expected one of: {', '.join(map(str, choices))})"
    return message, key_path or None


def _choices(declared: Any) -> list[Any]:
    """The values of a ``Literal``, also inside an optional one (``Literal[...] | None``)."""
    if typing.get_origin(declared) is Literal:
        return list(typing.get_args(declared))
    return [value for arg in typing.get_args(declared)
            if typing.get_origin(arg) is Literal for value in typing.get_args(arg)]


def _type_at(key_path: str) -> Any:
    """The declared type at ``key_path`` (``a.b[0].c``) below ``Config``, or None."""
    current: Any = Config
    for part in re.findall(r"[^.\[\]]+|\[\d+\]|\[\.\.\.\]", key_path):
        if part == "[...]":  # a table's entry (msgspec names no key): its value type
            args = typing.get_args(current)
            current = args[-1] if args else None
        elif part.startswith("["):  # a list element: step into the item type
            args = typing.get_args(current)
            current = args[0] if args else None
        else:
            current = _fields(current).get(part)
        if current is None:
            return None
    return current


def _name_dict_keys(data: Any, key_path: str) -> str:
    """Replace msgspec's ``[...]`` (an unnamed table key) with the key that fails.

    msgspec does not name the key of a ``dict`` entry in its error path; the failing
    entry is found by converting each entry of that table on its own.
    """
    current: Any = Config
    out: list[str] = []
    for part in re.findall(r"[^.\[\]]+|\[\.\.\.\]|\[\d+\]", key_path):
        if part == "[...]" and isinstance(data, dict):
            value_type = (typing.get_args(current) or (Any, Any))[-1]
            for key, value in data.items():
                try:
                    msgspec.convert(value, value_type)
                except msgspec.ValidationError:
                    out.append(f".{key}")
                    data, current = value, value_type
                    break
            else:
                out.append(part)
            continue
        if part.startswith("["):
            index = int(part[1:-1])
            data = data[index] if isinstance(data, list) and index < len(data) else None
            args = typing.get_args(current)
            current = args[0] if args else None
            out.append(part)
            continue
        data = data.get(part) if isinstance(data, dict) else None
        current = _fields(current).get(part)
        out.append(f".{part}")
    return "".join(out).lstrip(".")


def _fields(struct_type: Any) -> dict[str, Any]:
    # an optional section (``ModelParams | None``): the section's fields
    structs = [t for t in typing.get_args(struct_type)
               if isinstance(t, type) and issubclass(t, msgspec.Struct)]
    if len(structs) == 1:
        struct_type = structs[0]
    if isinstance(struct_type, type) and issubclass(struct_type, msgspec.Struct):
        return {f.name: f.type for f in msgspec.structs.fields(struct_type)}
    return {}


# -- paths -------------------------------------------------------------------------------


def _resolve(value: str | None, base_dir: Path) -> str | None:
    if value is None:
        return None
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else base_dir / p)


def _resolve_domain(d: DomainConfig, base_dir: Path) -> DomainConfig:
    return msgspec.structs.replace(
        d,
        db_path=_resolve(d.db_path, base_dir),
        policy_path=_resolve(d.policy_path, base_dir),
        tools_path=_resolve(d.tools_path, base_dir),
    )


def _resolve_paths(config: Config, base_dir: Path) -> Config:
    replace = msgspec.structs.replace
    domains = {name: _resolve_domain(d, base_dir) for name, d in config.domains.items()}
    run = replace(config.run, out_dir=_resolve(config.run.out_dir, base_dir) or "")
    sim = config.simulate
    sim = replace(
        sim, tasks=_resolve(sim.tasks, base_dir),
        agent_instructions_path=_resolve(sim.agent_instructions_path, base_dir),
        user_guidelines_path=_resolve(sim.user_guidelines_path, base_dir),
    )
    synthesis = replace(config.synthesis, exclude=[
        _resolve(p, base_dir) or p for p in config.synthesis.exclude])
    export = replace(config.export,
                     contamination_tasks=_resolve(config.export.contamination_tasks, base_dir))
    return replace(config, run=run, domains=domains, simulate=sim,
                   synthesis=synthesis, export=export)
