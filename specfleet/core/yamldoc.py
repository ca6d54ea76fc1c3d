"""YAML documents checked against a pydantic model, every problem located by file and line.

Checking runs in three passes so a user sees all problems at once, each located:
1. bytes -> text: size limit, binary content, encoding;
2. text -> YAML node tree: syntax errors and duplicate keys, with a map from field paths to
   source positions;
3. values -> model: pydantic validation (unknown keys get a did-you-mean), then any
   cross-field rules the caller passes.

Used for ``dataproduct.yaml`` specs and for policy rule files alike.

Every YAML read in specfleet (specs, policy packs, registry files, plans, edited files) goes
through :func:`alias_bomb` or :func:`safe_load_bounded` first: a few hundred bytes of nested
anchors (``&a [*b, *b, ...]``) expand to billions of values, so aliases may add at most
:data:`MAX_ALIAS_EXPANSION` values to a document, counted on the parser's events before any
value is built, and the offending alias is named by its line.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from specfleet.core.spec.problems import FieldPath, Problem

try:  # libyaml's parser is ~10x faster; the pure-Python one gives identical marks
    from yaml import CSafeLoader as _YamlLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _YamlLoader  # type: ignore[assignment]

Position = tuple[int, int]  # 1-based line, column
# Values aliases may add to one document. A spec repeating a column list via anchors adds
# hundreds; an alias bomb adds billions. The check is on parser events, so it costs one
# extra pass over the text and only runs when the text has both an anchor and an alias.
MAX_ALIAS_EXPANSION = 100_000
DEFAULT_MAX_YAML_BYTES = 4 * 1024 * 1024
Model = TypeVar("Model", bound=BaseModel)
CrossFieldRules = Callable[[Any], Sequence[tuple[FieldPath, str]]]


@dataclass(frozen=True)
class Checked(Generic[Model]):
    """A document checked against a model: the value when valid, otherwise the problems."""

    value: Model | None
    problems: tuple[Problem, ...]


def check_yaml(
    data: bytes,
    source: str,
    model: type[Model],
    *,
    max_bytes: int,
    cross_field: CrossFieldRules | None = None,
    what: str = "a mapping",
) -> Checked[Model]:
    """Check raw bytes against ``model``; pure (no I/O)."""
    text_or_problem = _decode(data, source, max_bytes)
    if isinstance(text_or_problem, Problem):
        return Checked(None, (text_or_problem,))
    tree = _parse(text_or_problem, source)
    if isinstance(tree, Problem):
        return Checked(None, (tree,))
    document, positions, duplicate_problems = tree
    if document is None:
        return Checked(None, (Problem(source, "the file is empty", line=1),))
    if not isinstance(document, dict):
        kind = type(document).__name__
        return Checked(None, (Problem(source, f"expected {what}, found a {kind}", line=1),))
    locate = Locator(source, positions)
    problems = list(duplicate_problems)
    try:
        value = model.model_validate(document)
    except ValidationError as error:
        problems.extend(_validation_problems(error, model, locate))
        return Checked(None, tuple(problems))
    if cross_field is not None:
        problems.extend(locate(path, message) for path, message in cross_field(value))
    if problems:
        return Checked(None, tuple(problems))
    return Checked(value, ())


def oversize_problem(source: str, size: int, max_bytes: int) -> Problem:
    return Problem(
        source,
        f"the file is {size / 1024 / 1024:.1f} MB; it may be at most {max_bytes // 1024} KB",
    )


def _decode(data: bytes, source: str, max_bytes: int) -> str | Problem:
    if len(data) > max_bytes:
        return oversize_problem(source, len(data), max_bytes)
    if not data.strip():
        return Problem(source, "the file is empty", line=1)
    if b"\x00" in data[:8192]:
        return Problem(source, "the file is binary, not YAML text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        return Problem(source, f"the file is not UTF-8 text (byte {error.start})", line=line)


class YamlTooLarge(ValueError):
    """A YAML document refused before loading: too many bytes, or aliases expanding too far."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.render())
        self.problem = problem


def alias_bomb(text: str, source: str, limit: int = MAX_ALIAS_EXPANSION) -> Problem | None:
    """A problem at the alias whose expansion takes the document past ``limit`` values.

    Walks parser events only (no values built): each anchored node's expanded size is known
    when it ends, and each alias adds that size. Syntax errors are left to the real parse.
    """
    if "&" not in text or "*" not in text:
        return None
    sizes: dict[str, int] = {}
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, expanded size so far)
    added = 0
    try:
        for event in yaml.parse(text, Loader=_YamlLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                open_nodes.append((event.anchor, 1))
                continue
            if isinstance(event, yaml.CollectionEndEvent):
                anchor, size = open_nodes.pop()
            elif isinstance(event, yaml.AliasEvent):
                anchor, size = None, sizes.get(event.anchor or "", 1)
                added += size
                if added > limit:
                    mark = event.start_mark
                    return Problem(
                        source,
                        f"YAML aliases expand to more than {limit} values (alias *{event.anchor}); "
                        "refused as an alias bomb",
                        line=mark.line + 1 if mark else None,
                        column=mark.column + 1 if mark else None,
                    )
            elif isinstance(event, yaml.ScalarEvent):
                anchor, size = event.anchor, 1
            else:
                continue
            if anchor is not None:
                sizes[anchor] = size
            if open_nodes:
                parent_anchor, parent_size = open_nodes[-1]
                open_nodes[-1] = (parent_anchor, parent_size + size)
    except yaml.YAMLError:
        return None
    return None


def safe_load_bounded(
    text: str | bytes, source: str, max_bytes: int = DEFAULT_MAX_YAML_BYTES
) -> Any:
    """``yaml.safe_load`` refusing oversized documents and alias bombs (YamlTooLarge)."""
    size = len(text.encode() if isinstance(text, str) else text)
    if size > max_bytes:
        raise YamlTooLarge(oversize_problem(source, size, max_bytes))
    decoded = text.decode("utf-8-sig") if isinstance(text, bytes) else text
    problem = alias_bomb(decoded, source)
    if problem is not None:
        raise YamlTooLarge(problem)
    return yaml.load(decoded, Loader=_YamlLoader)


def safe_load_all_bounded(
    text: str, source: str, max_bytes: int = DEFAULT_MAX_YAML_BYTES
) -> list[Any]:
    """``yaml.safe_load_all`` with the bounds of :func:`safe_load_bounded`."""
    size = len(text.encode())
    if size > max_bytes:
        raise YamlTooLarge(oversize_problem(source, size, max_bytes))
    problem = alias_bomb(text, source)
    if problem is not None:
        raise YamlTooLarge(problem)
    return list(yaml.load_all(text, Loader=_YamlLoader))


def _parse(
    text: str, source: str
) -> tuple[Any, dict[FieldPath, Position], list[Problem]] | Problem:
    bomb = alias_bomb(text, source)
    if bomb is not None:
        return bomb
    loader = _YamlLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}, []
        tree = _Tree(loader, source)
        document = tree.convert(node, ())
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        message = " ".join(part for part in (error.context, error.problem) if part)
        return Problem(
            source,
            f"invalid YAML: {message or error}",
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        )
    except yaml.YAMLError as error:
        return Problem(source, f"invalid YAML: {error}")
    finally:
        loader.dispose()
    return document, tree.positions, tree.duplicates


_STR_TAG = "tag:yaml.org,2002:str"


class _Tree:
    """Converts a YAML node tree to Python values in one pass, noting where each field is.

    Strings (nearly every scalar of a spec) are taken straight from their nodes; other
    scalars go through PyYAML's constructor, so values match ``yaml.safe_load`` while a
    fleet import of thousands of specs avoids the generic constructor's overhead.
    """

    def __init__(self, loader: Any, source: str) -> None:
        self.loader = loader
        self.source = source
        self.positions: dict[FieldPath, Position] = {}
        self.duplicates: list[Problem] = []

    def convert(self, node: yaml.Node, path: FieldPath) -> Any:
        mark = node.start_mark
        self.positions[path] = (mark.line + 1, mark.column + 1)
        if isinstance(node, yaml.ScalarNode):
            return node.value if node.tag == _STR_TAG else self.loader.construct_object(node)
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, (*path, index)) for index, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        return self.loader.construct_object(node, deep=True)  # pragma: no cover - no other kinds

    def _mapping(self, node: yaml.MappingNode, path: FieldPath) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = (
                self.convert(key_node, (*path, "<key>"))
                if not isinstance(key_node, yaml.ScalarNode)
                else (
                    key_node.value
                    if key_node.tag == _STR_TAG
                    else self.loader.construct_object(key_node)
                )
            )
            key_mark = key_node.start_mark
            if not isinstance(key, str | int | float | bool) and key is not None:
                key = str(key)
            if key in first_line:
                self.duplicates.append(
                    Problem(
                        self.source,
                        f"duplicate key {key!r} (first at line {first_line[key]})",
                        path=(*path, str(key)),
                        line=key_mark.line + 1,
                        column=key_mark.column + 1,
                    )
                )
                continue
            first_line[key] = key_mark.line + 1
            # the key's own position, for "unknown key" problems that point at the key itself
            self.positions[(*path, str(key), "<key>")] = (key_mark.line + 1, key_mark.column + 1)
            result[key] = self.convert(value_node, (*path, str(key)))
        return result


class Locator:
    """Turns a field path into a :class:`Problem` at the nearest known source position."""

    def __init__(self, source: str, positions: dict[FieldPath, Position]) -> None:
        self.source = source
        self.positions = positions

    def __call__(
        self, path: FieldPath, message: str, hints: tuple[str, ...] = (), at_key: bool = False
    ) -> Problem:
        lookup = (*path, "<key>") if at_key else path
        for cut in range(len(lookup), -1, -1):
            position = self.positions.get(lookup[:cut])
            if position is not None:
                return Problem(self.source, message, path, position[0], position[1], hints)
        return Problem(self.source, message, path, hints=hints)


def _validation_problems(
    error: ValidationError, model: type[BaseModel], locate: Locator
) -> list[Problem]:
    problems: list[Problem] = []
    for item in error.errors(include_url=False):
        path: FieldPath = tuple(item["loc"])
        kind = item["type"]
        if kind == "extra_forbidden":
            key = str(path[-1])
            known = _known_fields(model, path[:-1])
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hints = (f"did you mean {close[0]!r}?",) if close else ()
            allowed = f"; allowed here: {', '.join(known)}" if known and not close else ""
            problems.append(locate(path, f"unknown key {key!r}{allowed}", hints, at_key=True))
        elif kind == "missing":
            problems.append(locate(path[:-1], f"missing required key {str(path[-1])!r}"))
        else:
            message = str(item["msg"])
            if message.startswith("Value error, "):
                message = message[len("Value error, ") :]
            if kind in {
                "literal_error",
                "string_pattern_mismatch",
                "string_type",
                "int_type",
                "int_parsing",
                "bool_type",
                "bool_parsing",
                "float_parsing",
                "date_from_datetime_parsing",
                "date_parsing",
                "list_type",
                "model_type",
                "model_attributes_type",
                "dict_type",
                "too_short",
            }:
                message = f"{message} (got {_short(item.get('input'))})"
            problems.append(locate(path, message))
    return problems


def _known_fields(model: type[BaseModel], path: FieldPath) -> list[str]:
    """The keys a model accepts at ``path``, following list items and nested models."""
    current: type[BaseModel] | None = model
    for part in path:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if current is not None else None
        if field is None:
            return []
        current = _model_in(field.annotation)
    return list(current.model_fields) if current is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def field_positions(data: bytes) -> dict[FieldPath, Position]:
    """Where each field of a (valid) YAML document is, for findings that point at a line."""
    try:
        parsed = _parse(data.decode("utf-8-sig"), "")
    except UnicodeDecodeError:
        return {}
    return {} if isinstance(parsed, Problem) else parsed[1]
