from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from writ_async.logs import (
    REDACTED,
    configure_logging,
    get_logger,
    redact_secrets,
    reset_logging,
    scrub_text,
)


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    reset_logging()
    yield
    reset_logging()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_with_timestamp_level_and_context() -> None:
    out = io.StringIO()
    configure_logging("info", "json", out)
    get_logger(episode=3).info("tool.called", tool="get_user_details")
    (event,) = json_lines(out)
    assert event["event"] == "tool.called"
    assert event["level"] == "info"
    assert event["episode"] == 3
    assert event["tool"] == "get_user_details"
    assert event["timestamp"].endswith("Z")


def test_level_filters() -> None:
    out = io.StringIO()
    configure_logging("warning", "json", out)
    log = get_logger()
    log.info("quiet")
    log.warning("loud")
    assert [e["event"] for e in json_lines(out)] == ["loud"]


def test_auto_is_json_off_a_terminal_and_console_on_one() -> None:
    out = io.StringIO()
    configure_logging("info", "auto", out)
    get_logger().info("hello")
    assert json.loads(out.getvalue())["event"] == "hello"

    tty = Terminal()
    configure_logging("info", "auto", tty)
    get_logger().info("hello", api_key="sk-abcdefghijklmnopqrst")
    text = tty.getvalue()
    assert "hello" in text and not text.startswith("{")
    assert "sk-abc" not in text and REDACTED in text


def test_console_format_is_forced() -> None:
    out = io.StringIO()
    configure_logging("info", "console", out)
    get_logger().info("hello", password="hunter2")
    text = out.getvalue()
    assert "hello" in text and "hunter2" not in text


def test_default_stream_is_stderr_at_write_time(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    get_logger().info("to.stderr")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert json.loads(captured.err)["event"] == "to.stderr"


def test_configuring_again_with_the_same_settings_is_a_no_op() -> None:
    out = io.StringIO()
    configure_logging("info", "json", out)
    first = structlog.get_config()["processors"]
    configure_logging("info", "json", out)
    assert structlog.get_config()["processors"] is first
    configure_logging("debug", "json", out)
    assert structlog.get_config()["processors"] is not first


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="log level"):
        configure_logging("loud", "json", io.StringIO())
    with pytest.raises(ValueError, match="log format"):
        configure_logging("info", "xml", io.StringIO())


# -- redaction -----------------------------------------------------------------------------


def redact(**event: Any) -> dict[str, Any]:
    return dict(redact_secrets(None, "info", dict(event)))


@pytest.mark.parametrize(
    "key", ["api_key", "OPENAI_API_KEY", "x-api-key", "access_token", "Authorization",
            "client_secret", "password", "key"],
)
def test_values_under_secret_names_are_redacted(key: str) -> None:
    assert redact(**{key: "plain"})[key] == REDACTED


def test_numbers_under_token_names_stay() -> None:
    event = redact(max_tokens=512, prompt_tokens=10, token_budget=1.5, api_key=None)
    assert event == {"max_tokens": 512, "prompt_tokens": 10, "token_budget": 1.5, "api_key": None}


def test_nested_values_are_redacted() -> None:
    event = redact(
        endpoint={"url": "http://localhost:8000/v1", "headers": {"Authorization": "Basic xyz"}},
        keys=["one", "two"],
        calls=[{"name": "get_user_details", "arguments": {"user_id": "mia_li_3668"}}],
    )
    assert event["endpoint"] == {
        "url": "http://localhost:8000/v1",
        "headers": {"Authorization": REDACTED},
    }
    assert event["keys"] == [REDACTED, REDACTED]
    assert event["calls"][0]["arguments"] == {"user_id": "mia_li_3668"}


@pytest.mark.parametrize(
    "secret",
    [
        "sk-proj-AbCdEf0123456789xyz",
        "sk-ant-api03-abcdefghijklmnop",
        "Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
        "hf_AbCdEfGhIjKlMnOpQrStUv",
        "ghp_AbCdEfGhIjKlMnOpQrStUvWxYz012345",
        "AKIAIOSFODNN7EXAMPLE",
        "0123456789abcdef0123456789abcdef",
        "Zm9vYmFyYmF6cXV4cXV1eDEyMzQ1Njc4OTBBQkNE",
    ],
)
def test_credential_shaped_strings_are_redacted_anywhere(secret: str) -> None:
    text = f"calling with {secret} now"
    assert scrub_text(text) == f"calling with {REDACTED} now"
    assert redact(event=text)["event"] == f"calling with {REDACTED} now"


@pytest.mark.parametrize(
    "text",
    [
        "reservation HATHAT booked for mia_li_3668",
        "/work/shared/tau2/airline/very_long_directory_name_for_data/db.json",
        "episode 123e4567-e89b-12d3-a456-426614174000",
        "task-management and disk-12345678",
        "Qwen/Qwen2.5-72B-Instruct",
    ],
)
def test_ordinary_text_is_kept(text: str) -> None:
    assert scrub_text(text) == text


def test_hashes_under_hash_names_are_kept() -> None:
    digest = "a3" * 32
    event = redact(db_hash=digest, final_hashes=[digest], note=f"hash {digest}")
    assert event["db_hash"] == digest
    assert event["final_hashes"] == [digest]
    assert event["note"] == f"hash {REDACTED}"


def test_exception_text_is_redacted_in_json() -> None:
    out = io.StringIO()
    configure_logging("info", "json", out)
    try:
        raise RuntimeError("rejected key sk-live0123456789abcdef")
    except RuntimeError:
        get_logger().exception("request.failed")
    (event,) = json_lines(out)
    assert "RuntimeError" in event["exception"]
    assert "sk-live" not in event["exception"]
