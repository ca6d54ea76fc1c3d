"""Settings from SPECFLEET_* variables, and log output that never carries a secret."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import structlog

from specfleet.core.log import configure_logging, get_logger
from specfleet.core.secrets import find_secret_shapes, redact_text
from specfleet.core.settings import Settings

CANARY_TOKEN = "glpat-CANARYcanary1234567890"
CANARY_KEY = "not-a-shaped-key-but-configured-4242"


def test_home_and_database_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without settings, home is ./.specfleet and the database is SQLite inside it."""
    monkeypatch.delenv("SPECFLEET_HOME")
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.home == tmp_path / ".specfleet"
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / '.specfleet' / 'specfleet.db'}"


def test_settings_read_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """SPECFLEET_* variables configure specfleet; secrets stay hidden in reprs."""
    monkeypatch.setenv("SPECFLEET_DATABASE_URL", "postgresql+psycopg://u@db/specfleet")
    monkeypatch.setenv("SPECFLEET_LLM_API_KEY", CANARY_KEY)
    settings = Settings()
    assert settings.resolved_database_url == "postgresql+psycopg://u@db/specfleet"
    assert CANARY_KEY not in repr(settings)
    assert settings.secret_values() == [CANARY_KEY]


def test_bad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A malformed value is rejected naming the setting."""
    monkeypatch.setenv("SPECFLEET_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        Settings()


def log_lines(settings: Settings, emit) -> str:  # type: ignore[no-untyped-def]
    stream = io.StringIO()
    configure_logging(settings, stream=stream)
    try:
        emit(get_logger("test"))
    finally:
        structlog.reset_defaults()
    return stream.getvalue()


def test_json_logs_redact_configured_and_shaped_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Configured secrets, token shapes, URL passwords and secret-named fields never print."""
    monkeypatch.setenv("SPECFLEET_LOG_FORMAT", "json")
    monkeypatch.setenv("SPECFLEET_GITLAB_TOKEN", CANARY_TOKEN)
    monkeypatch.setenv("SPECFLEET_LLM_API_KEY", CANARY_KEY)
    settings = Settings()

    def emit(log) -> None:  # type: ignore[no-untyped-def]
        log.info("fetch", url=f"https://oauth2:{CANARY_TOKEN}@gitlab.example.com/x.git")
        log.info("call", headers={"Authorization": f"Bearer {CANARY_KEY}"}, note=CANARY_KEY)
        log.warning("leak", detail=["sk-proj-abcdefghijklmnopqrstuvwxyz123456"], password="hunter2")
        log.info("ok", product="orders", count=3)

    output = log_lines(settings, emit)
    records = [json.loads(line) for line in output.splitlines()]
    assert len(records) == 4
    for secret in (CANARY_TOKEN, CANARY_KEY, "sk-proj-abcdefghijklmnopqrstuvwxyz123456", "hunter2"):
        assert secret not in output
    assert records[0]["url"] == "https://oauth2:[REDACTED]@gitlab.example.com/x.git"
    assert records[3] == {**records[3], "product": "orders", "count": 3, "level": "info"}


def test_console_logs_are_for_people(monkeypatch: pytest.MonkeyPatch) -> None:
    """The console format prints the event and its fields on one line, redacted too."""
    monkeypatch.setenv("SPECFLEET_GITLAB_TOKEN", CANARY_TOKEN)
    output = log_lines(
        Settings(), lambda log: log.info("registered", product="orders", token=CANARY_TOKEN)
    )
    assert "registered" in output and "product=orders" in output
    assert CANARY_TOKEN not in output


@pytest.mark.parametrize(
    "text",
    [
        "glpat-abcdefghijklmnopqrst12",
        "ghp_" + "a" * 36,
        "AKIAABCDEFGHIJKLMNOP",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
        "xoxb-1234567890-abcdefghij",
    ],
)
def test_token_shapes_are_found_and_redacted(text: str) -> None:
    """Common token shapes are recognised and removed from text."""
    assert find_secret_shapes(text)
    assert redact_text(f"before {text} after") == "before [REDACTED] after"


def test_ordinary_text_is_left_alone() -> None:
    """Words, hashes and paths that are not secrets pass through unchanged."""
    text = "commit 3ccb612573e2511ab5cad7dafecd838605c80cda in /srv/repos/orders.git (sk-short)"
    assert find_secret_shapes(text) == []
    assert redact_text(text) == text
