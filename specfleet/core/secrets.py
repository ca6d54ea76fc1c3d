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


# A configured value shorter than this is not treated as a secret to redact: a test key such
# as "test" would otherwise be cut out of every word containing it (and the guard rails would
# refuse any content that mentions it).
MIN_SECRET_LENGTH = 8
# what may not touch a secret on either side for it to count as a whole token
_WORD_CHARS = r"A-Za-z0-9_\-"


def known_secret_pattern(known_secrets: Iterable[str]) -> re.Pattern[str] | None:
    """A pattern matching each configured secret of at least MIN_SECRET_LENGTH characters as a
    whole token (not inside a longer word); None when there is none to look for."""
    values = sorted(
        {secret for secret in known_secrets if secret and len(secret) >= MIN_SECRET_LENGTH},
        key=len,
        reverse=True,
    )
    if not values:
        return None
    alternatives = "|".join(re.escape(value) for value in values)
    return re.compile(f"(?<![{_WORD_CHARS}])(?:{alternatives})(?![{_WORD_CHARS}])")


def contains_known_secret(text: str, known_secrets: Iterable[str]) -> bool:
    pattern = known_secret_pattern(known_secrets)
    return pattern is not None and pattern.search(text) is not None


def redact_text(text: str, known_secrets: Iterable[str] = ()) -> str:
    """Replace every known secret (whole tokens of at least MIN_SECRET_LENGTH characters) and
    every token shape in ``text``."""
    pattern = known_secret_pattern(known_secrets)
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    for pattern in TOKEN_SHAPES.values():
        text = pattern.sub(REDACTED, text)
    return URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)


def is_secret_field(name: str) -> bool:
    """True for mapping keys whose values are secrets whatever they look like."""
    return bool(SECRET_FIELD_NAME.search(name))
