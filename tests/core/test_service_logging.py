"""Service logs: JSON lines carrying an evaluation's correlation fields, with no secret in them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from specfleet.core.db import make_engine, upgrade
from specfleet.core.log import (
    CORRELATION_FIELDS,
    bind_evaluation,
    bind_stage,
    configure_service_logging,
    get_logger,
    service_log_format,
)
from specfleet.core.settings import Settings

CANARY_GITLAB = "glpat-CANARYservice0123456789"
# configured but not shaped like any known token: only the settings-based redaction catches it
CANARY_LLM = "canary-llm-key-5e1f0c2d9b"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def fail_with_secret(url: str) -> None:
    raise ConnectionError(f"cannot reach {url} with key {CANARY_LLM}")


def run_evaluation(tmp_path: Path) -> None:
    """Log the way an evaluation does: several specfleet loggers, libraries, a failure."""
    get_logger("specfleet.worker.pipeline.fetch").info(
        "fetching", url=f"https://oauth2:{CANARY_GITLAB}@gitlab.example.com/data/orders.git"
    )
    get_logger("specfleet.agent.llm").info("calling llm", api_key=CANARY_LLM, model="m")
    # a library logging through the standard library, as Celery and httpx do
    logging.getLogger("celery.app.trace").info("Task %s received: token %s", "t1", CANARY_GITLAB)
    # Alembic logs its progress through the standard library too
    upgrade(make_engine(f"sqlite:///{tmp_path / 'migrated.db'}"), "0001")
    try:
        fail_with_secret(f"https://specfleet:{CANARY_GITLAB}@gitlab.example.com")
    except ConnectionError:
        get_logger("specfleet.worker").exception("stage failed", stage="fetch")
    try:
        fail_with_secret("https://gitlab.example.com")
    except ConnectionError:
        logging.getLogger("celery.worker").exception("unexpected failure")


def test_every_line_of_an_evaluation_is_json_with_correlation_fields(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, restore_logging: None
) -> None:
    """Inside bind_evaluation every line, from any module or library, carries the fields."""
    monkeypatch.setenv("SPECFLEET_GITLAB_TOKEN", CANARY_GITLAB)
    monkeypatch.setenv("SPECFLEET_LLM_API_KEY", CANARY_LLM)
    stream = io.StringIO()
    configure_service_logging(Settings(), service="worker", stream=stream)

    with (
        bind_evaluation("orders", 17, "2026-W48", task_id="3f1c-task", trigger="weekly"),
        bind_stage("assess"),
    ):
        run_evaluation(tmp_path)
    get_logger("specfleet.worker").info("idle")

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    inside, after = lines[:-1], lines[-1]
    assert len(inside) >= 6
    assert any(line.get("logger", "").startswith("alembic") for line in inside)
    for line in inside:
        assert {field: line.get(field) for field in CORRELATION_FIELDS if field != "stage"} == {
            "product": "orders",
            "evaluation_id": 17,
            "window": "2026-W48",
            "trigger": "weekly",
            "task_id": "3f1c-task",
        }, line
        # the bound stage, unless the line names one itself (a stage's own failure line)
        assert line["stage"] in ("assess", "fetch"), line
        assert line["service"] == "worker" and line["level"] and line["timestamp"]
    # the bindings end with the evaluation
    assert after["event"] == "idle" and "product" not in after and after["service"] == "worker"


def test_canary_secrets_never_reach_the_output(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, restore_logging: None
) -> None:
    """Configured secrets are absent from every line, exception tracebacks included."""
    monkeypatch.setenv("SPECFLEET_GITLAB_TOKEN", CANARY_GITLAB)
    monkeypatch.setenv("SPECFLEET_LLM_API_KEY", CANARY_LLM)
    stream = io.StringIO()
    configure_service_logging(Settings(), service="worker", stream=stream)

    with bind_evaluation("orders", 17, "2026-W48"):
        run_evaluation(tmp_path)

    output = stream.getvalue()
    assert CANARY_GITLAB not in output
    assert CANARY_LLM not in output
    records = [json.loads(line) for line in output.splitlines()]
    failures = [record for record in records if "exception" in record]
    # both tracebacks are there (the failure is visible), only the secrets are gone
    assert len(failures) == 2
    for record in failures:
        assert "fail_with_secret" in record["exception"]
        assert "[REDACTED]" in record["exception"]
    assert "oauth2:[REDACTED]@gitlab.example.com" in output


def test_services_write_json_unless_a_person_watches(
    monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    """Unconfigured, a service logs JSON to a pipe and console lines to a terminal."""
    assert service_log_format(Settings(), io.StringIO()) == "json"
    assert service_log_format(Settings(), Terminal()) == "console"
    monkeypatch.setenv("SPECFLEET_LOG_FORMAT", "console")
    assert service_log_format(Settings(), io.StringIO()) == "console"
    monkeypatch.setenv("SPECFLEET_LOG_FORMAT", "json")
    assert service_log_format(Settings(), Terminal()) == "json"

    terminal = Terminal()
    monkeypatch.delenv("SPECFLEET_LOG_FORMAT")
    configure_service_logging(Settings(), service="web", stream=terminal)
    get_logger("specfleet.web").info("listening", port=8000)
    assert "listening" in terminal.getvalue() and "port=8000" in terminal.getvalue()
    assert not terminal.getvalue().lstrip().startswith("{")


def test_configuring_twice_does_not_duplicate_lines(restore_logging: None) -> None:
    """Celery's signals may configure logging again; a library line still prints once."""
    stream = io.StringIO()
    configure_service_logging(Settings(), service="worker", stream=stream)
    configure_service_logging(Settings(), service="worker", stream=stream)
    logging.getLogger("kombu").warning("connection lost")
    assert stream.getvalue().count("connection lost") == 1


CELERY_WORKER_SCRIPT = """
import logging, os, signal, sys
from celery import Celery, signals
from specfleet.core.log import bind_evaluation, configure_service_logging, get_logger
from specfleet.core.settings import Settings

home = sys.argv[1]
app = Celery("t", broker=f"sqla+sqlite:///{home}/broker.sqlite",
             backend=f"db+sqlite:///{home}/results.sqlite")
app.conf.update(task_default_queue="t")

# a receiver on setup_logging is what keeps Celery from installing its own log format
@signals.setup_logging.connect
def _logging(**_):
    configure_service_logging(Settings(), service="worker")

@app.task(bind=True)
def evaluate(self, product):
    with bind_evaluation(product, 7, "2026-W48", task_id=self.request.id):
        get_logger("specfleet.worker.pipeline").info("stage done", stage="fetch")
        logging.getLogger("celery.app.trace").warning(
            "retrying with %s", os.environ["SPECFLEET_GITLAB_TOKEN"])
    os.kill(os.getpid(), signal.SIGTERM)  # the worker shuts down warm once the task is done

evaluate.delay("orders")
app.worker_main(["worker", "--pool=solo", "--loglevel=INFO", "--without-gossip",
                 "--without-mingle", "--without-heartbeat", "-Q", "t"])
"""


def test_a_celery_worker_logs_json_through_the_same_pipeline(tmp_path: Path) -> None:
    """Celery's own lines and a task's lines are JSON, correlated, and free of the canary."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("SPECFLEET_") or key.startswith("SPECFLEET_TEST_")
    }
    env.update(SPECFLEET_GITLAB_TOKEN=CANARY_GITLAB, SPECFLEET_HOME=str(tmp_path / "home"))
    result = subprocess.run(
        [sys.executable, "-c", CELERY_WORKER_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert CANARY_GITLAB not in output
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    loggers = {record.get("logger", "") for record in records}
    assert any(name.startswith("celery.") for name in loggers)
    task_lines = [
        r for r in records if r.get("event") in ("stage done", "retrying with [REDACTED]")
    ]
    assert len(task_lines) == 2
    for record in task_lines:
        assert (record["product"], record["evaluation_id"], record["window"]) == (
            "orders",
            7,
            "2026-W48",
        )
        assert record["task_id"] and record["service"] == "worker"
    # Celery's own task bookkeeping comes through as records too
    assert any("succeeded" in record["event"] for record in records)


WRITER = """
import sys
from specfleet.core.log import configure_service_logging, get_logger
from specfleet.core.settings import Settings

configure_service_logging(Settings(log_format="json"), "worker")
log = get_logger()
for number in range(1000):
    log.info("stage finished", writer=sys.argv[1], number=number, padding="x" * 200)
"""


def test_processes_sharing_a_log_file_never_split_each_others_lines(tmp_path: Path) -> None:
    """A worker's pool processes write to one inherited file: every line stays whole JSON."""
    import subprocess
    import sys

    log_file = tmp_path / "worker.log"
    with log_file.open("ab") as handle:
        writers = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(index)], stdout=handle, stderr=handle
            )
            for index in range(3)
        ]
        for writer in writers:
            assert writer.wait(timeout=120) == 0
    lines = log_file.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # a split line would not parse
    assert len(records) == 3 * 1000
    assert {record["writer"] for record in records} == {"0", "1", "2"}
