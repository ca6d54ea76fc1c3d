"""structlog set-up: console lines for people, JSON lines for services, secrets redacted.

Redaction is a processor placed last before rendering, so nothing any other processor or
call site adds can slip past it: configured secrets (tokens, keys) are replaced by value,
common token shapes by pattern, and values under secret-looking keys wholesale.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

from core.secrets import REDACTED, is_secret_field, redact_text
from core.settings import Settings


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
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name) if name else structlog.get_logger()
