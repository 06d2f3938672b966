from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from domains import names as domain_names
from writ_async.config import (
    Config,
    DomainConfig,
    check_domains,
    default_config,
    explain,
    load_config,
)
from writ_async.errors import ConfigError, WritError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    config = default_config()
    assert config.run.seed == 0
    assert config.run.domain == "airline"
    assert config.run.out_dir == "runs"
    assert config.domain_settings("airline") == DomainConfig()
    assert config.domain_settings("retail").db_path is None
    assert config.domain_settings("retail").scale == 1.0
    # As the commands see it: a section for every registered domain, in registry order.
    shown = check_domains(config, "<defaults>", domain_names()).domains
    assert shown == {"airline": DomainConfig(), "retail": DomainConfig()}
    assert config.walk.episodes == 200
    assert config.walk.calls_per_episode == 20
    assert (config.logging.level, config.logging.format) == ("info", "auto")


def test_empty_file_is_the_default_run(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    default = default_config()
    assert (config.domains, config.walk, config.logging) == (
        default.domains,
        default.walk,
        default.logging,
    )
    assert config.run.out_dir == str(tmp_path / "runs")


def test_repo_config_is_a_working_default_run() -> None:
    config = load_config(REPO / "config.toml")
    assert config.run.domain in ("airline", "retail")
    assert config.domain_settings(config.run.domain).db_path is None  # embedded default
    assert config.walk.episodes > 0


def test_values_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[run]
seed = 7
domain = "retail"
[domains.retail]
scale = 2          # an integer is a fine float
db_path = "data/db.json"
tools_path = "/abs/tools.json"
[walk]
episodes = 3
calls_per_episode = 5
[logging]
level = "debug"
format = "json"
""",
    )
    config = load_config(path)
    assert (config.run.seed, config.run.domain) == (7, "retail")
    retail = config.domain_settings("retail")
    assert retail.scale == 2.0 and isinstance(retail.scale, float)
    assert retail.db_path == str(tmp_path / "data" / "db.json")  # relative to the file
    assert retail.tools_path == "/abs/tools.json"
    assert retail.policy_path is None
    assert (config.walk.episodes, config.walk.calls_per_episode) == (3, 5)
    assert (config.logging.level, config.logging.format) == ("debug", "json")


def test_domain_settings_of_an_unconfigured_domain_are_defaults() -> None:
    assert default_config().domain_settings("somewhere") == DomainConfig()


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        default_config().walk.episodes = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "key_path", "fragment"),
    [
        ("[walk]\nepisodes = 0", "walk.episodes", ">= 1"),
        ("[walk]\ncalls_per_episode = -2", "walk.calls_per_episode", ">= 1"),
        ("[walk]\nepisodes = '3'", "walk.episodes", "expected `int`, got `str`"),
        ("[walk]\nepisodes = 2.5", "walk.episodes", "expected `int`"),
        ("[walk]\nepisode = 3", "walk.episode", "unknown key `episode`"),
        ("[walk]\nepisode = 3", "walk.episode", "known keys: episodes, calls_per_episode"),
        ("colour = 1", "colour", "unknown key `colour`"),
        ("[domains.airline]\nscale = 0.0", "domains.airline.scale", "> 0.0"),
        ("[domains.airline]\nscale = true", "domains.airline.scale", "got `bool`"),
        ("[domains.airline]\ndb_path = 3", "domains.airline.db_path", "expected `str | null`"),
        ("[domains.mail]\nscale = 1.0", "domains.mail",
         "unknown domain `mail`; known domains: airline, retail"),
        ("[run]\ndomain = 'mail'", "run.domain",
         "unknown domain `mail`; known domains: airline, retail"),
        ("[run]\nseed = 'x'", "run.seed", "expected `int`"),
        ("[logging]\nlevel = 'loud'", "logging.level", "debug, info, warning, error, critical"),
        ("[logging]\nformat = 'xml'", "logging.format", "auto, console, json"),
        ("walk = 3", "walk", "expected `table`, got `int`"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, key_path: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, domains=domain_names())
    err = info.value
    assert err.key_path == key_path
    assert err.path == str(path)
    assert fragment in str(err)
    assert str(err).startswith(f"{path} at `{key_path}`: ")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config: No such file"):
        load_config(tmp_path / "absent.toml")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path)


def test_bad_toml_syntax(tmp_path: Path) -> None:
    path = write(tmp_path, "[walk\nepisodes = 3\n")
    with pytest.raises(ConfigError, match=r"invalid TOML: .*line 1") as info:
        load_config(path)
    assert info.value.key_path is None
    assert isinstance(info.value, WritError)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b"[run]\nout_dir = '\xff'\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_explain_turns_msgspec_paths_into_key_paths() -> None:
    assert explain("Expected `int`, got `str` - at `$.a.b[0].c`") == (
        "expected `int`, got `str`",
        "a.b[0].c",
    )
    assert explain("Object contains unknown field `x`") == (
        "unknown key `x` (known keys: run, domains, walk, logging, models, mock, simulate, "
        "synthesis, export)",
        "x",
    )
    assert explain("Something odd") == ("something odd", None)


def test_every_section_forbids_unknown_keys() -> None:
    # A new section that forgot to inherit the strict base would accept typos silently.
    import msgspec

    def sections(t: type) -> list[type]:
        found = [t]
        for f in msgspec.structs.fields(t):
            if isinstance(f.type, type) and issubclass(f.type, msgspec.Struct):
                found += sections(f.type)
        return found

    for section in sections(Config):
        assert section.__struct_config__.forbid_unknown_fields, section
        assert section.__struct_config__.frozen, section


def test_roles_must_name_known_endpoints(tmp_path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[models.roles]\nagent = ["mock", "gpt"]\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key_path == "models.roles.agent[1]"
    assert "unknown endpoint `gpt`" in str(info.value)


def test_endpoint_settings_are_typed(tmp_path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[models.endpoints.a]\nbase_url = "http://127.0.0.1:9/v1"\n'
                    'requests_per_minute = "fast"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key_path == "models.endpoints.a.requests_per_minute"


def test_simulate_participants_must_be_scripted_or_a_role(tmp_path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[simulate]\nagent = "gpt-5"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key_path == "simulate.agent"
    assert "neither scripted" in str(info.value)
    path.write_text('[simulate]\nagent = "agent"\nuser = "scripted-http"\n')
    config = load_config(path)
    assert (config.simulate.agent, config.simulate.user) == ("agent", "scripted-http")


def test_synthesis_mix_and_ranges_are_checked(tmp_path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[synthesis]\nmix = {read_heavy = 1.0, chatty = 2.0}\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key_path == "synthesis.mix.chatty"
    path.write_text('[synthesis]\nevidence = [9, 3]\n')
    with pytest.raises(ConfigError, match="empty") as info:
        load_config(path)
    assert info.value.key_path == "synthesis.evidence"
    path.write_text('[synthesis]\nmix = {read_heavy = 1}\nexclude = ["t.json"]\n')
    config = load_config(path)
    assert config.synthesis.mix == {"read_heavy": 1.0}
    assert config.synthesis.exclude == [str(tmp_path / "t.json")]


def test_repo_config_shows_the_defaults_except_behaviours() -> None:
    """config.toml's first lines promise that every key it sets is the default, except
    [simulate.behaviours]: the file without that table is the default run."""
    shown = msgspec.to_builtins(load_config(REPO / "config.toml"))
    # The defaults as the commands see them (every registered domain's section).
    default = msgspec.to_builtins(check_domains(default_config(), "<defaults>", domain_names()))
    assert shown["simulate"].pop("behaviours") is not None
    assert default["simulate"].pop("behaviours") is None
    shown["run"]["out_dir"] = default["run"]["out_dir"]  # resolved against the file's folder
    assert shown == default
    assert "except [simulate.behaviours]" in (REPO / "config.toml").read_text()
