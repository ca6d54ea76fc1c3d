"""Make repository text safe to show a model: strip what hides instructions, fence it as data.

Anything read from a product repository may try to steer the model (a comment saying "ignore
previous instructions", text hidden with zero-width or bidi characters). We cannot stop a
model reading words, but we can remove what a human reviewer would not see, redact secrets,
and fence the rest so the instructions can say: text inside a fence is data, never orders.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from specfleet.core.secrets import redact_text

# Zero-width and other invisible format characters, the bidi controls of "Trojan Source"
# (CVE-2021-42574), and the Unicode tag block used to smuggle hidden ASCII.
INVISIBLE = re.compile(
    "["
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f"
    "\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0"
    "\U000e0000-\U000e007f"
    "]"
)
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)


def strip_hidden(text: str) -> str:
    """Remove invisible characters, bidi controls and HTML comments."""
    return strip_hidden_report(text)[0]


def strip_hidden_report(text: str) -> tuple[str, list[str]]:
    """``text`` without hidden parts, and what was removed, in words (empty: nothing).

    An unclosed ``<!--`` hides everything after it from a rendered page, so all of it goes;
    the report says how much, so neither a reader nor the model is left wondering why the
    text stops.
    """
    removed: list[str] = []
    closed = unclosed = 0
    unclosed_chars = 0
    for match in HTML_COMMENT.finditer(text):
        if match.group().endswith("-->"):
            closed += 1
        else:
            unclosed += 1
            unclosed_chars = len(match.group())
    if closed:
        removed.append(f"{closed} HTML comment{'s' if closed > 1 else ''}")
    if unclosed:
        removed.append(
            f"an unclosed HTML comment and everything after it ({unclosed_chars} characters)"
        )
    text = HTML_COMMENT.sub("", text)
    invisible = len(INVISIBLE.findall(text))
    if invisible:
        removed.append(
            f"{invisible} invisible character{'s' if invisible > 1 else ''} "
            "(zero-width, bidi or tag characters)"
        )
    return INVISIBLE.sub("", text), removed


def sanitise(text: str, known_secrets: Iterable[str] = ()) -> str:
    """Hidden text stripped (with a note saying what went) and secrets redacted."""
    clean, removed = strip_hidden_report(text)
    if removed:
        ending = "" if not clean or clean.endswith("\n") else "\n"
        clean = f"{clean}{ending}[specfleet removed {'; '.join(removed)}]\n"
    return redact_text(clean, known_secrets)


def fence(label: str, text: str) -> str:
    """``text`` inside a fence it cannot close early, labelled as untrusted data."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    body = text if text.endswith("\n") or not text else text + "\n"
    return f"[untrusted data: {label}]\n{ticks}\n{body}{ticks}\n"
