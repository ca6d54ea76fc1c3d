"""What a secret looks like: known token shapes, and redaction of them from text.

Used by the log processor (nothing secret reaches a log line) and, later, by the guard rails
that refuse edits carrying credentials. Shapes follow the public formats of the tokens
specfleet's users hold (GitLab, GitHub, OpenAI, AWS, Slack, JWTs, PEM private keys).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[REDACTED]"

TOKEN_SHAPES: dict[str, re.Pattern[str]] = {
    "gitlab token": re.compile(
        r"\bgl(?:pat|oas|dt|rt|cbt|ptt|ft|imt|agent|soat)-[A-Za-z0-9_\-]{20,}"
    ),
    "github token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})"),
    "openai key": re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"),
    "aws access key": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),
    "json web token": re.compile(
        r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"
    ),
    "private key": re.compile(
        r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----[\s\S]*?"
        r"(?:-----END (?:[A-Z]+ )?PRIVATE KEY-----|$)"
    ),
    "bearer token": re.compile(r"(?i)\bbearer\s+[A-Za-z0-9_\-\.=:/+]{16,}"),
}

# user:password@ in a URL; the user name stays, it helps to know whose credential leaked
URL_CREDENTIALS = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<user>[^:/@\s]+):(?P<password>[^@/\s]+)@"
)

SECRET_FIELD_NAME = re.compile(
    r"(?i)(^|_|-)(token|secret|password|passwd|api_?key|private_?key|authorization|credentials?)($|_|-)"
)


def find_secret_shapes(text: str) -> list[str]:
    """Names of the token shapes found in ``text`` (empty when it looks clean)."""
    found = [name for name, pattern in TOKEN_SHAPES.items() if pattern.search(text)]
    if URL_CREDENTIALS.search(text):
        found.append("credentials in a URL")
    return found


def redact_text(text: str, known_secrets: Iterable[str] = ()) -> str:
    """Replace every known secret value and every token shape in ``text``."""
    for secret in known_secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    for pattern in TOKEN_SHAPES.values():
        text = pattern.sub(REDACTED, text)
    return URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)


def is_secret_field(name: str) -> bool:
    """True for mapping keys whose values are secrets whatever they look like."""
    return bool(SECRET_FIELD_NAME.search(name))
