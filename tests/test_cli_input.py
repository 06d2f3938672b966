"""Bad input and help texts over the real CLI (issue 14: "no traceback for bad input",
"help and messages"): every test runs ``python -m writ_async`` in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import typing
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from domains import get_domain
from writ_async.loadtest.cli import add_parser as add_loadtest
from writ_async.mock.config import FaultRates, MockConfig

REPO = Path(__file__).resolve().parents[1]
SMALL = "0.05"  # a generated database this small keeps each command well under a second


def writ(*args: str | Path, stdin: str | None = None,
         cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "writ_async", *map(str, args)], cwd=cwd,
                          input=stdin, capture_output=True, text=True, timeout=120,
                          check=False)


def assert_clean_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit status 2, no traceback, and the message names what is wrong."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


# -- probabilities -------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["2", "nan", "-0.1", "inf"])
@pytest.mark.parametrize("command", [["simulate"], ["replay", "RUN", "EP", "--from", "2"]])
def test_mistake_rate_outside_0_1_is_a_usage_error(command: list[str], value: str,
                                                   tmp_path: Path) -> None:
    proc = writ(*command, "--mistake-rate", value, "--out", tmp_path / "run")
    assert_clean_error(proc, "usage:", "argument --mistake-rate")
    assert not (tmp_path / "run").exists()


# -- tools call input ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def user_id() -> str:
    base = get_domain("airline").base(None, 0, float(SMALL))
    return next(iter(base.tables["users"]))


def certificate(user: str, amount: str) -> str:
    return json.dumps({"name": "send_certificate", "arguments": {"user_id": user}})[:-2] \
        + f', "amount": {amount}}}}}\n'


def tools_call(lines: str) -> subprocess.CompletedProcess[str]:
    return writ("tools", "call", "--domain", "airline", "--scale", SMALL, stdin=lines)


def test_a_400_digit_amount_is_the_validation_error_tau2_gives(user_id: str) -> None:
    proc = tools_call(certificate(user_id, "9" * 400))
    assert proc.returncode == 0, proc.stderr  # a refused tool call is data, not a fault
    result = json.loads(proc.stdout)
    assert result["error"] is True
    assert result["output"].startswith("Error: 1 validation error for Certificate\namount\n"
                                       "  Input should be a valid number [type=float_type, ")


@pytest.mark.parametrize("amount, needle", [
    ("NaN", "NaN is not a JSON number"),
    ("Infinity", "Infinity is not a JSON number"),
    ("-Infinity", "-Infinity is not a JSON number"),
    ("1e400", "number 1e400 is too large"),
    ("-1e400", "number -1e400 is too large"),
])
def test_non_finite_amounts_are_refused_not_stored(user_id: str, amount: str,
                                                   needle: str) -> None:
    first = json.dumps({"name": "get_user_details", "arguments": {"user_id": user_id}}) + "\n"
    proc = tools_call(first + certificate(user_id, amount))
    assert_clean_error(proc, f"writ: error: <stdin>:2: {needle}")
    assert len(proc.stderr.splitlines()) == 1
    assert len(proc.stdout.splitlines()) == 1  # the line before it ran; this one did not


def test_an_integer_too_long_to_read_is_refused(user_id: str) -> None:
    proc = tools_call(certificate(user_id, "9" * 5000))
    assert_clean_error(proc, "<stdin>:1: integer of 5000 digits is too long to read")


def test_arrays_nested_100000_deep_are_refused() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    proc = tools_call('{"name": "get_user_details", "arguments": {"user_id": ' + deep + "}}\n")
    assert_clean_error(proc, "<stdin>:1: arrays or objects nested too deeply to read")
    assert len(proc.stderr.splitlines()) == 1


# -- --scale beyond memory -----------------------------------------------------------------


def test_db_generate_refuses_a_scale_that_cannot_fit(tmp_path: Path) -> None:
    out = tmp_path / "db.json"
    proc = writ("db", "generate", "--domain", "airline", "--scale", "1e6", "--out", out)
    assert_clean_error(proc, "at `--scale`: scale 1e+06 needs about 18.0 TB of memory",
                       "is available", "the largest scale that fits")
    assert not out.exists()


@pytest.mark.parametrize("command", [["tools", "call", "--domain", "retail"],
                                     ["db", "hash", "--domain", "retail"]])
def test_other_generating_commands_refuse_it_too(command: list[str]) -> None:
    assert_clean_error(writ(*command, "--scale", "1e7", stdin=""), "at `--scale`",
                       "of memory for the generated retail database")


def test_simulate_refuses_it_from_the_flag_and_from_the_config(tmp_path: Path) -> None:
    proc = writ("simulate", "--scale", "1e6", "--out", tmp_path / "a")
    assert_clean_error(proc, "<command line> at `--scale`: scale 1e+06 needs about")
    config = tmp_path / "big.toml"
    config.write_text("[domains.airline]\nscale = 1e6\n", encoding="utf-8")
    proc = writ("simulate", "--config", config, "--out", tmp_path / "b")
    assert_clean_error(proc, f"{config} at `domains.airline.scale`: scale 1e+06 needs")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_an_infinite_scale_is_a_usage_error(tmp_path: Path) -> None:
    proc = writ("db", "generate", "--domain", "airline", "--scale", "inf",
                "--out", tmp_path / "db.json")
    assert_clean_error(proc, "argument --scale: must be a positive finite number: 'inf'")


# -- help and messages ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    run = tmp_path_factory.mktemp("runs") / "run"
    proc = writ("simulate", "--task-count", "1", "--trials", "1", "--scale", SMALL,
                "--out", run)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    return run, results["simulations"][0]["id"]


@pytest.mark.parametrize("command", ["show", "replay"])
def test_show_and_replay_help_name_the_real_episode_id_form(
        command: str, small_run: tuple[Path, str]) -> None:
    run, episode = small_run
    text = " ".join(writ(command, "--help").stdout.split())
    assert "TASK@BEHAVIOURS:TRIAL" in text and "TASK:TRIAL" in text
    assert "`id` fields in RUN/results.json" in text
    # the id the help points to is one `writ show` accepts
    assert writ("show", run, episode).returncode == 0


def test_every_loadtest_flag_has_help_that_states_its_default() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_loadtest(parser.add_subparsers())
    loadtest = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub = loadtest.choices["loadtest"]
    flags = [a for a in sub._actions if a.option_strings and "--help" not in a.option_strings]
    assert len(flags) > 25
    for action in flags:
        assert action.help, action.option_strings
        assert "(default" in action.help or "(required)" in action.help, action.option_strings
    text = " ".join(writ("loadtest", "--help").stdout.split())
    assert "(default: 60.0)" in text  # --drain: the real default, filled in by argparse
    assert "(default: 30 unless --requests is given)" in text


def test_mock_server_help_lists_every_fault_and_policy() -> None:
    text = writ("mock-server", "--help").stdout
    for fault in FaultRates.__struct_fields__:
        assert f"\n  {fault} " in text, fault
    hints = typing.get_type_hints(MockConfig)
    for policy in typing.get_args(hints["policy"]):
        assert f"\n  {policy} " in text, policy
    assert "[mock.faults]" in text


def test_tasks_generate_takes_the_domain_from_the_config(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[run]\ndomain = "retail"\n', encoding="utf-8")
    out = tmp_path / "tasks.json"
    proc = writ("tasks", "generate", "--config", config, "--count", "2", "--scale", SMALL,
                "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"wrote 2 retail tasks to {out}")
    tasks = json.loads(out.read_text(encoding="utf-8"))
    assert all(t["id"].startswith("retail-") for t in tasks)
    assert_clean_error(writ("tasks", "generate", "--count", "2", "--out", out), "--domain")


def test_split_without_tasks_is_an_error(tmp_path: Path) -> None:
    proc = writ("simulate", "--split", "test", "--out", tmp_path / "run")
    assert_clean_error(proc, "at `--split`: --split needs --tasks")
    assert not (tmp_path / "run").exists()


def test_a_bad_domain_is_blamed_on_the_flag_not_the_config(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[run]\ndomain = "airline"\n', encoding="utf-8")
    proc = writ("simulate", "--config", config, "--domain", "mail", "--out", tmp_path / "r")
    assert_clean_error(proc, "<command line> at `--domain`: unknown domain `mail`",
                       "known domains: airline, retail")
    assert str(config) not in proc.stderr


def test_replay_out_existing_suggests_a_command_that_exists(
        small_run: tuple[Path, str], tmp_path: Path) -> None:
    run, episode = small_run
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "something").write_text("x", encoding="utf-8")
    proc = writ("replay", run, episode, "--from", "2", "--out", taken)
    assert_clean_error(proc, f"{taken}: --out already exists", "leave --out out")
    assert "--resume" not in proc.stderr  # `writ replay` has no --resume
    assert len(proc.stderr.splitlines()) == 1


@pytest.fixture()
def mock_server(tmp_path: Path) -> Iterator[typing.Callable[..., str]]:
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str | Path) -> str:
        proc = subprocess.Popen([sys.executable, "-m", "writ_async", "mock-server",
                                 "--port", "0", *map(str, args)], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("mock server listening on "), proc.stderr
        return line.split()[-1]

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGINT)  # how it is meant to stop
        _, err = proc.communicate(timeout=30)  # also closes the pipes
        assert proc.returncode == 0, err


def listed_models(url: str) -> list[str]:
    with urllib.request.urlopen(url + "/models", timeout=10) as resp:
        return [card["id"] for card in json.loads(resp.read())["data"]]


def test_mock_server_lists_the_configured_model_name(
        mock_server: typing.Callable[..., str], tmp_path: Path) -> None:
    assert listed_models(mock_server()) == ["writ-mock"]  # [models.endpoints.mock] default
    config = tmp_path / "config.toml"
    config.write_text('[models.endpoints.mock]\nbase_url = "mock"\nmodel = "tiny-7b"\n',
                      encoding="utf-8")
    assert listed_models(mock_server("--config", config)) == ["tiny-7b"]
    config.write_text('[mock]\nmodels = ["a", "b"]\n', encoding="utf-8")
    assert listed_models(mock_server("--config", config)) == ["a", "b"]  # the allow-list
