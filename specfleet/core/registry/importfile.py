"""Registration files: YAML or CSV rows of products to register, each labelled file:line."""

from __future__ import annotations

import csv
from pathlib import Path

import yaml
from pydantic import ValidationError

from specfleet.core.errors import ImportFileError
from specfleet.core.registry.decisions import Registration
from specfleet.core.registry.store import ImportRow
from specfleet.core.yamldoc import alias_bomb

try:  # libyaml is ~10x faster on files of thousands of rows
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

IMPORT_COLUMNS = tuple(Registration.model_fields)


def read_import_file(path: Path) -> list[ImportRow]:
    """Rows of a YAML or CSV registration file, each labelled ``file:line``.

    A file that cannot be read at all raises :class:`ImportFileError`; a bad row becomes an
    :class:`ImportRow` with its error, so the rest can still be imported.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as error:
        raise ImportFileError(f"{path}: no such file") from error
    except UnicodeDecodeError as error:
        raise ImportFileError(f"{path}: not UTF-8 text") from error
    except OSError as error:
        raise ImportFileError(f"{path}: cannot be read ({error.strerror or error})") from error
    if path.suffix.lower() == ".csv":
        return _csv_rows(path, text)
    if path.suffix.lower() in (".yaml", ".yml"):
        return _yaml_rows(path, text)
    raise ImportFileError(f"{path}: expected a .csv, .yaml or .yml file")


def _csv_rows(path: Path, text: str) -> list[ImportRow]:
    reader = csv.DictReader(text.splitlines(keepends=True))
    header = [name.strip() for name in reader.fieldnames or []]
    if not header:
        raise ImportFileError(
            f"{path}:1: empty file; expected a header row ({', '.join(IMPORT_COLUMNS)})"
        )
    unknown = [name for name in header if name not in IMPORT_COLUMNS]
    if unknown:
        raise ImportFileError(
            f"{path}:1: unknown column(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(IMPORT_COLUMNS)}"
        )
    if "repo" not in header:
        raise ImportFileError(f"{path}:1: the header needs a 'repo' column")
    reader.fieldnames = header
    rows = []
    for record in reader:
        label = f"{path}:{reader.line_num}"
        if None in record:
            rows.append(ImportRow(label, None, f"{len(record[None])} more value(s) than columns"))
            continue
        rows.append(
            registration_from_mapping(label, {k: (v or "").strip() for k, v in record.items()})
        )
    return rows


def _yaml_rows(path: Path, text: str) -> list[ImportRow]:
    bomb = alias_bomb(text, str(path))
    if bomb is not None:
        raise ImportFileError(bomb.render())
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ImportFileError(f"{where}: invalid YAML: {error.problem}") from error
    if root is None:
        return []
    if isinstance(root, yaml.MappingNode):
        items = {str(key.value): value for key, value in root.value}
        if set(items) != {"products"}:
            raise ImportFileError(f"{path}:1: expected a list of products or a 'products:' key")
        root = items["products"]
    if not isinstance(root, yaml.SequenceNode):
        raise ImportFileError(f"{path}:{root.start_mark.line + 1}: expected a list of products")
    constructor = _Loader("")
    rows = []
    for node in root.value:
        label = f"{path}:{node.start_mark.line + 1}"
        if not isinstance(node, yaml.MappingNode):
            rows.append(ImportRow(label, None, "expected a mapping with at least 'repo'"))
            continue
        values = constructor.construct_mapping(node, deep=True)
        rows.append(registration_from_mapping(label, {str(k): v for k, v in values.items()}))
    return rows


def registration_from_mapping(label: str, values: dict[str, object]) -> ImportRow:
    """Build a registration from a row's mapping, reporting problems against the row."""
    cleaned = {key: value for key, value in values.items() if value not in (None, "")}
    for key in ("owners", "tags"):
        if isinstance(cleaned.get(key), str):
            cleaned[key] = tuple(
                part
                for part in str(cleaned[key]).replace(";", " ").replace(",", " ").split()
                if part
            )
    try:
        return ImportRow(label, Registration.model_validate(cleaned))
    except ValidationError as error:
        reasons = []
        for item in error.errors(include_url=False):
            where = ".".join(str(part) for part in item["loc"])
            message = str(item["msg"]).removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = f"unknown column (known: {', '.join(Registration.model_fields)})"
            reasons.append(f"{where}: {message}" if where else message)
        return ImportRow(label, None, "; ".join(reasons))
