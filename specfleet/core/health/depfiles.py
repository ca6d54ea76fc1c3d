"""The syntax of dependency files, kept apart from what their requirements mean.

:mod:`specfleet.core.health.pins` reads and rewrites a product's pins through these pure helpers:

* requirements files as pip reads them: physical lines with their line endings, logical lines
  (continuations joined, comments removed, numbered by their first physical line), and the
  options a line carries (``-r``, ``-c``, ``--hash``, index options);
* ``pyproject.toml`` string literals inside arrays, located by offset and line, which
  :mod:`tomllib` cannot report;
* where the version specifier sits inside a requirement string, so a rewrite can replace it
  and leave every other character as it was.

Nothing here imports the pin types; the functions return plain tuples and small dataclasses.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass

# pip's own rules (pip/_internal/req/req_file.py): a comment starts at a "#" that begins the
# line or follows whitespace, so "pkg @ https://host/x.zip#egg=pkg" keeps its fragment.
COMMENT = re.compile(r"(^|\s+)#.*$")

# the options pip accepts in a requirements file; True when the option takes a value
LINE_OPTIONS: dict[str, bool] = {
    "--index-url": True,
    "--extra-index-url": True,
    "--no-index": False,
    "--constraint": True,
    "--requirement": True,
    "--editable": True,
    "--find-links": True,
    "--no-binary": True,
    "--only-binary": True,
    "--prefer-binary": False,
    "--require-hashes": False,
    "--pre": False,
    "--trusted-host": True,
    "--use-feature": True,
}
# the options pip accepts after a requirement, applying to it alone
REQUIREMENT_OPTIONS: dict[str, bool] = {
    "--hash": True,
    "--config-settings": True,
    "--global-option": True,
}
SHORT_OPTIONS = {
    "-i": "--index-url",
    "-c": "--constraint",
    "-r": "--requirement",
    "-e": "--editable",
    "-f": "--find-links",
}


@dataclass(frozen=True)
class PhysicalLine:
    """One line of a file as stored: its content and the line ending that followed it."""

    content: str
    ending: str  # "\n", "\r\n", "\r" or "" on a last line without one


@dataclass(frozen=True)
class LogicalLine:
    """One pip requirements-file line: continuations joined, comments removed, stripped."""

    first: int  # 0-based index of its first physical line
    last: int  # 0-based index of its last physical line (inclusive)
    text: str

    @property
    def number(self) -> int:
        """The 1-based line number pip reports: that of the first physical line."""
        return self.first + 1


@dataclass(frozen=True)
class Option:
    """One option on a requirements-file line, with the tokens it was written as."""

    name: str  # the long form, e.g. --requirement for -r
    value: str | None
    tokens: tuple[str, ...]


class OptionSyntaxError(ValueError):
    """An options part pip would refuse; the message says why."""


def physical_lines(text: str) -> list[PhysicalLine]:
    """Split text into lines that join back into it exactly (``str.splitlines`` boundaries)."""
    lines = []
    for chunk in text.splitlines(keepends=True):
        parts = chunk.splitlines()
        content = parts[0] if parts else ""
        lines.append(PhysicalLine(content, chunk[len(content) :]))
    return lines


def logical_lines(lines: list[PhysicalLine]) -> list[LogicalLine]:
    """Join continuations and drop comments as pip does; blank results are left out."""
    joined: list[tuple[int, int, str]] = []
    pending: list[str] = []
    start = 0
    for index, line in enumerate(lines):
        content = line.content
        # a comment line ending in a backslash does not continue (pip's join_lines)
        if not content.endswith("\\") or COMMENT.match(content):
            if COMMENT.match(content):
                content = " " + content
            if pending:
                pending.append(content)
                joined.append((start, index, "".join(pending)))
                pending = []
            else:
                joined.append((index, index, content))
        else:
            if not pending:
                start = index
            pending.append(content.strip("\\"))
    if pending:
        joined.append((start, len(lines) - 1, "".join(pending)))
    result = []
    for first, last, content in joined:
        if first == 0:
            content = content.lstrip("\ufeff")  # a byte-order mark is not part of the line
        text = COMMENT.sub("", content).strip()
        if text:
            result.append(LogicalLine(first, last, text))
    return result


def split_arguments(text: str) -> tuple[str, str]:
    """Split a logical line into its requirement part and its options part, as pip does."""
    tokens = text.split(" ")
    for index, token in enumerate(tokens):
        if token.startswith("-"):
            # runs of spaces leave empty tokens; the requirement part ends at its last character
            return " ".join(tokens[:index]).rstrip(), " ".join(tokens[index:])
    return text, ""


def parse_options(text: str, *, after_requirement: bool) -> list[Option]:
    """Parse the options part of a line; raises :class:`OptionSyntaxError` on what pip refuses."""
    known = REQUIREMENT_OPTIONS if after_requirement else LINE_OPTIONS
    try:
        tokens = shlex.split(text, comments=False, posix=True)
    except ValueError as error:
        raise OptionSyntaxError(f"cannot split the options: {error}") from error
    options: list[Option] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        name, value, used = _option(token, tokens[index + 1 : index + 2])
        if name not in known:
            where = "after a requirement" if after_requirement else "in a requirements file"
            raise OptionSyntaxError(f"option {token.split('=')[0]} is not supported {where}")
        if known[name] and value is None:
            raise OptionSyntaxError(f"option {name} needs a value")
        if not known[name] and value is not None and used == 1:
            raise OptionSyntaxError(f"option {name} takes no value")
        if not known[name] and used == 2:
            used, value = 1, None
        options.append(Option(name, value, tuple(tokens[index : index + used])))
        index += used
    return options


def _option(token: str, following: list[str]) -> tuple[str, str | None, int]:
    """(long name, value, tokens used) for one option token and the token after it."""
    if token.startswith("--"):
        name, equals, value = token.partition("=")
        if equals:
            return name, value, 1
        return name, (following[0] if following else None), 1 + len(following)
    short, glued = token[:2], token[2:]
    name = SHORT_OPTIONS.get(short, short)
    if glued:
        return name, glued, 1
    return name, (following[0] if following else None), 1 + len(following)


def looks_like_path_or_url(requirement: str) -> bool:
    """True for what pip installs from a location rather than an index (paths, URLs, archives)."""
    text = requirement.strip()
    lowered = text.lower()
    if "://" in text or lowered.startswith("file:"):
        return True
    if text.startswith((".", "/", "~")) or "\\" in text:
        return True
    if "/" in text.split(";")[0].split("@")[0]:
        return True
    return lowered.endswith((".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar"))


# name, then optional extras; PEP 508 names start and end with a letter or digit
_NAME_AND_EXTRAS = re.compile(r"\s*[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?(?:\s*\[[^\]]*\])?")
# one == or === clause, optionally in parentheses, and nothing else
_EXACT = re.compile(r"^(\s*\(?\s*===?\s*)([^\s,;()]+)(\s*\)?\s*)$")


def specifier_span(requirement: str) -> tuple[int, int] | None:
    """Offsets of the version specifier in a requirement string (may be empty), or None."""
    match = _NAME_AND_EXTRAS.match(requirement)
    if match is None:
        return None
    start = match.end()
    end = requirement.find(";", start)
    return start, (len(requirement) if end == -1 else end)


def replace_exact_version(requirement: str, version: str) -> str | None:
    """The requirement with its single ``==``/``===`` version replaced, or None if it has none."""
    span = specifier_span(requirement)
    if span is None:
        return None
    start, end = span
    match = _EXACT.match(requirement[start:end])
    if match is None:
        return None
    return requirement[: start + match.start(2)] + version + requirement[start + match.end(2) :]


def replace_specifier(requirement: str, specifier: str) -> str | None:
    """The requirement with its whole specifier replaced, whitespace around it kept."""
    span = specifier_span(requirement)
    if span is None:
        return None
    start, end = span
    region = requirement[start:end]
    if region.lstrip().startswith("@"):
        return None
    stripped = region.strip()
    if not stripped:
        # an unversioned requirement: the specifier goes right after the name and extras
        return requirement[:start] + specifier + requirement[start:]
    lead = len(region) - len(region.lstrip())
    return requirement[: start + lead] + specifier + requirement[start + lead + len(stripped) :]


@dataclass(frozen=True)
class TomlString:
    """A string literal inside an array of a TOML document, located in the text."""

    key: tuple[str, ...]  # the array's full dotted key, e.g. ("project", "dependencies")
    index: int  # its position in that array
    start: int  # offset of the opening quote
    end: int  # offset just past the closing quote
    line: int  # 1-based line of the opening quote
    value: str
    quote: str  # '"', "'", '\"\"\"' or "'''"
    plain: bool  # single-line and without escapes: the content can be replaced in place


class _TomlScanner:
    """Walks a TOML document just far enough to find the strings of top-level arrays.

    It trusts that :mod:`tomllib` has accepted the text; its results are checked against
    tomllib's values by the caller, so a construct it does not follow costs a line number,
    never a wrong rewrite.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.found: list[TomlString] = []

    def scan(self) -> list[TomlString]:
        table: tuple[str, ...] = ()
        text = self.text
        while self.pos < len(text):
            self._skip_space(newlines=True)
            if self.pos >= len(text):
                break
            char = text[self.pos]
            if char == "#":
                self._skip_comment()
            elif text.startswith("[[", self.pos):
                self.pos += 2
                # an array of tables: none of the arrays we locate live there
                table = (*self._key("]"), "[]")
                self._skip_comment()
            elif char == "[":
                self.pos += 1
                table = self._key("]")
                self._skip_comment()
            else:
                key = self._key("=")
                self.pos += 1  # the "="
                self._skip_space(newlines=False)
                self._value((*table, *key), collect=True)
        return self.found

    def _key(self, stop: str) -> tuple[str, ...]:
        parts: list[str] = []
        current = ""
        text = self.text
        while self.pos < len(text) and text[self.pos] != stop:
            char = text[self.pos]
            if char in "\"'":
                start = self.pos
                self._string()
                current += _decode_toml_string(text[start : self.pos])
                continue
            if char == ".":
                parts.append(current.strip())
                current = ""
            elif char == "\n":
                break
            else:
                current += char
            self.pos += 1
        parts.append(current.strip())
        return tuple(parts)

    def _value(self, key: tuple[str, ...], *, collect: bool) -> None:
        text = self.text
        if self.pos >= len(text):
            return
        char = text[self.pos]
        if char in "\"'":
            self._string()
        elif char == "[":
            self._array(key if collect else None)
        elif char == "{":
            self._inline_table()
        else:
            while self.pos < len(text) and text[self.pos] not in ",]}\n#":
                self.pos += 1

    def _array(self, key: tuple[str, ...] | None) -> None:
        text = self.text
        self.pos += 1
        index = 0
        while self.pos < len(text):
            self._skip_space(newlines=True)
            if self.pos >= len(text):
                return
            char = text[self.pos]
            if char == "#":
                self._skip_comment()
            elif char == ",":
                self.pos += 1
            elif char == "]":
                self.pos += 1
                return
            elif char in "\"'" and key is not None:
                start = self.pos
                quote = self._string()
                literal = text[start : self.pos]
                plain = "\n" not in literal and len(quote) == 1
                if quote == '"' and "\\" in literal:
                    plain = False
                self.found.append(
                    TomlString(
                        key=key,
                        index=index,
                        start=start,
                        end=self.pos,
                        line=text.count("\n", 0, start) + 1,
                        value=_decode_toml_string(literal),
                        quote=quote,
                        plain=plain,
                    )
                )
                index += 1
            else:
                self._value((), collect=False)
                index += 1

    def _inline_table(self) -> None:
        text = self.text
        self.pos += 1
        while self.pos < len(text):
            self._skip_space(newlines=True)
            if self.pos >= len(text) or text[self.pos] == "}":
                self.pos += 1
                return
            if text[self.pos] == ",":
                self.pos += 1
                continue
            self._key("=")
            self.pos += 1
            self._skip_space(newlines=False)
            self._value((), collect=False)

    def _string(self) -> str:
        """Move past the string literal at pos; return its quote."""
        text = self.text
        for quote in ('"""', "'''", '"', "'"):
            if text.startswith(quote, self.pos):
                break
        self.pos += len(quote)
        while self.pos < len(text):
            if quote[0] == '"' and text[self.pos] == "\\":
                self.pos += 2
                continue
            if text.startswith(quote, self.pos):
                self.pos += len(quote)
                # a multi-line string may end with up to two extra quote characters
                while len(quote) == 3 and text.startswith(quote[0], self.pos):
                    self.pos += 1
                return quote
            self.pos += 1
        return quote

    def _skip_space(self, *, newlines: bool) -> None:
        text = self.text
        spaces = " \t\r\n" if newlines else " \t"
        while self.pos < len(text) and text[self.pos] in spaces:
            self.pos += 1

    def _skip_comment(self) -> None:
        end = self.text.find("\n", self.pos)
        self.pos = len(self.text) if end == -1 else end


def _decode_toml_string(literal: str) -> str:
    try:
        value = tomllib.loads(f"v = {literal}")["v"]
    except tomllib.TOMLDecodeError:
        return literal.strip("\"'")
    return value if isinstance(value, str) else literal


def toml_array_strings(text: str) -> list[TomlString]:
    """Every string directly inside an array value, with its dotted key and position."""
    return _TomlScanner(text).scan()
