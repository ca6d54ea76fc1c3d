"""structlog set-up: console lines for people, JSON lines for services, secrets redacted.

Redaction is a processor placed last before rendering, so nothing any other processor or
call site adds can slip past it: configured secrets (tokens, keys) are replaced by value,
common token shapes by pattern, and values under secret-looking keys wholesale.

Services (``specfleet web``, ``worker``, ``scheduler``) call :func:`configure_service_logging`:
JSON lines unless a person is watching a terminal, a ``service`` field on every line, and the
standard library's loggers (Celery, uvicorn, Alembic) rendered and redacted the same way.
:func:`bind_evaluation` puts the correlation fields (product, evaluation_id, window, task_id)
on every line logged while an evaluation runs, whichever module logs it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, Literal, TextIO

import structlog

from specfleet.core.secrets import REDACTED, is_secret_field, redact_text
from specfleet.core.settings import Settings


class RedactSecrets:
    """structlog processor that removes secrets from every value of an event."""

    def __init__(self, known_secrets: Iterable[str] = ()) -> None:
        self.known_secrets = tuple(secret for secret in known_secrets if secret)

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            event_dict[key] = self._clean(key, event_dict[key])
        return event_dict

    def _clean(self, key: str, value: Any) -> Any:
        if is_secret_field(key) and value not in (None, ""):
            return REDACTED
        if isinstance(value, str):
            return redact_text(value, self.known_secrets)
        if isinstance(value, dict):
            return {k: self._clean(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._clean(key, item) for item in value)
        if isinstance(value, int | float | bool) or value is None:
            return value
        return redact_text(str(value), self.known_secrets)


class _CurrentStderr:
    """A stream that writes to whatever ``sys.stderr`` is when a line is written.

    Binding the object ``sys.stderr`` was at configuration time breaks as soon as something
    swaps it (pytest's capture, a CLI runner, a daemon closing fds): later lines would go to
    a closed file and raise in the middle of unrelated work.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


CURRENT_STDERR: Any = _CurrentStderr()


def configure_logging(settings: Settings, stream: TextIO | None = None) -> None:
    """Configure structlog (and the stdlib root logger it feeds) for this process."""
    level = getattr(logging, settings.log_level.upper())
    renderer: Any
    if settings.log_format == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            RedactSecrets(settings.secret_values()),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(stream or CURRENT_STDERR),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name) if name else structlog.get_logger()


CORRELATION_FIELDS = ("product", "evaluation_id", "window", "trigger", "task_id", "stage")


class AddService:
    """structlog processor naming the process that wrote a line (web, worker, scheduler)."""

    def __init__(self, service: str) -> None:
        self.service = service

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event_dict.setdefault("service", self.service)
        return event_dict


def service_log_format(settings: Settings, stream: TextIO) -> Literal["console", "json"]:
    """The format a service writes: the one configured, else JSON unless on a terminal."""
    if "log_format" in settings.model_fields_set:
        return settings.log_format
    isatty = getattr(stream, "isatty", None)
    return "console" if callable(isatty) and isatty() else "json"


def configure_service_logging(
    settings: Settings, service: str, stream: TextIO | None = None
) -> None:
    """Configure a long-running process's logging: structlog and the stdlib root logger.

    Every line (specfleet's own and those of Celery, uvicorn, Alembic, httpx ...) goes through
    the same redaction and renderer, so an aggregator receives one JSON shape per line.
    """
    stream = stream or CURRENT_STDERR
    level = getattr(logging, settings.log_level.upper())
    renderer: Any
    if service_log_format(settings, stream) == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    redact = RedactSecrets(settings.secret_values())
    service_field = AddService(service)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            timestamper,
            service_field,
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # one write per line: redirected stderr is unbuffered and a worker's pool processes
        # share its file, so print()'s separate newline would let their lines interleave
        logger_factory=structlog.WriteLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.stdlib.add_logger_name,
                timestamper,
                service_field,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    # replace, not add: a second call (tests, Celery's signals) must not print lines twice
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # Python's warnings (DeprecationWarning from a library ...) become log lines of the same
    # shape instead of raw text on stderr
    logging.captureWarnings(True)
    _route_to_root(("celery", "kombu", "amqp", "billiard", "py.warnings"))


def _route_to_root(names: Iterable[str]) -> None:
    """Loggers that libraries configured with handlers of their own write through the root's.

    Celery attaches a plain-text handler to some of its loggers when a worker starts; a line
    through those would bypass the JSON renderer and the redaction.
    """
    for name in names:
        logger = logging.getLogger(name)
        for existing in list(logger.handlers):
            logger.removeHandler(existing)
        logger.propagate = True


@contextmanager
def bind_evaluation(
    product: str,
    evaluation_id: int | None,
    window: str | None,
    task_id: str | None = None,
    trigger: str | None = None,
) -> Iterator[None]:
    """Every line logged inside carries the evaluation's correlation fields.

    Built on structlog's context variables, so it holds across modules and threads started
    with ``contextvars.copy_context``; the previous bindings come back on exit.
    """
    fields: dict[str, Any] = {
        "product": product,
        "evaluation_id": evaluation_id,
        "window": window,
        "trigger": trigger,
    }
    if task_id is not None or "task_id" not in structlog.contextvars.get_contextvars():
        fields["task_id"] = task_id
    with structlog.contextvars.bound_contextvars(**fields):
        yield


@contextmanager
def bind_stage(stage: str) -> Iterator[None]:
    """Every line logged inside names the pipeline stage running (fetch, assess, verify ...)."""
    with structlog.contextvars.bound_contextvars(stage=stage):
        yield


class StdoutAsLogLines:
    """A text stream that turns each line written to it into an ``info`` log line.

    Celery prints its start banner and shutdown notices straight to ``sys.__stdout__``; a
    service logging JSON replaces stdout with this so an aggregator never sees raw text. Log
    lines themselves go to stderr, so nothing loops back here.
    """

    def __init__(self, logger_name: str = "specfleet.stdout") -> None:
        self.logger_name = logger_name
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if line.strip():
                get_logger(self.logger_name).info(line.rstrip())
        return len(text)

    def flush(self) -> None:
        """Lines are logged as they complete; a partial line waits for its end."""

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError("stdout is redirected into the log")


def stdout_into_log(settings: Settings, service: str) -> None:
    """For a JSON-logging service: raw prints (Celery's banner, shutdown notices) become lines."""
    if service_log_format(settings, CURRENT_STDERR) != "json":
        return
    if not isinstance(sys.stdout, StdoutAsLogLines):
        replacement = StdoutAsLogLines()
        sys.stdout = replacement
        # Celery writes its banner and shutdown notices to the original on purpose
        setattr(sys, "__stdout__", replacement)  # noqa: B010  (mypy: a "final" name)
