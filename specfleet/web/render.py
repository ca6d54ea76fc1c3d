"""Turning stored text into safe HTML: Markdown descriptions, highlighted diffs, durations.

Descriptions and diffs come from the database and from product repositories: untrusted. The
Markdown renderer has raw HTML switched off (tags show as text) and refuses ``javascript:``
links; the diff is escaped by Pygments. Both are bounded before rendering.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache

from markdown_it import MarkdownIt
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer

MAX_MARKDOWN_CHARS = 200_000
MAX_DIFF_CHARS = 1_000_000


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # commonmark with html off: a <script> in a description is shown, never run
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


# Descriptions written before the footer became plain Markdown end in <sub>…</sub>, which the
# renderer (html off) escapes; that one escaped pair becomes <small> again. Everything between
# the pair is already escaped, so nothing a repository wrote can turn into markup here.
_ESCAPED_SUB = re.compile(r"&lt;sub&gt;(.*?)&lt;/sub&gt;", re.DOTALL)
# tables with an all-blank header row (older "Why now" tables): drop the empty header
_EMPTY_THEAD = re.compile(r"<thead>\s*<tr>\s*(?:<th>\s*</th>\s*)+</tr>\s*</thead>\s*")


def markdown(text: str | None) -> Markup:
    if not text:
        return Markup("")
    shown = text[:MAX_MARKDOWN_CHARS]
    html = _markdown().render(shown)
    html = _EMPTY_THEAD.sub("", _ESCAPED_SUB.sub(r"<small>\1</small>", html))
    if len(text) > MAX_MARKDOWN_CHARS:
        html += "<p><em>(cut: the description is longer than the console shows)</em></p>"
    return Markup(html)  # noqa: S704 - markdown-it escaped every raw tag (html disabled)


def highlighted_diff(diff: str) -> Markup:
    if not diff.strip():
        return Markup("<p class='muted'>No changes.</p>")
    shown = diff[:MAX_DIFF_CHARS]
    html = highlight(shown, DiffLexer(), HtmlFormatter(cssclass="highlight"))
    if len(diff) > MAX_DIFF_CHARS:
        html += "<p><em>(cut: the diff is longer than the console shows)</em></p>"
    return Markup(html)  # noqa: S704 - Pygments escapes the source it highlights


@lru_cache(maxsize=1)
def pygments_css() -> str:
    return str(HtmlFormatter(cssclass="highlight").get_style_defs(".highlight"))


def when(moment: dt.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def milliseconds(value: int | None) -> str:
    return duration(value / 1000 if value is not None else None)


def http_url(url: str | None) -> str:
    """The URL when it is http(s), else a harmless '#': a stored URL never runs script."""
    if url and url.lower().startswith(("https://", "http://")):
        return url
    return "#"
