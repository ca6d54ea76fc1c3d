"""Cross-field rules of the spec format: what a per-field schema cannot say.

Pure functions over a validated :class:`Spec`; each problem is a field path and a message,
located in the source file by the loader.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from specfleet.core.spec.model import Output, Spec
from specfleet.core.spec.problems import FieldPath, render_path

PathProblem = tuple[FieldPath, str]


def cross_field_problems(spec: Spec) -> list[PathProblem]:
    return [
        *_duplicates((("inputs", i, "name"), item.name) for i, item in enumerate(spec.inputs)),
        *_duplicates((("outputs", i, "name"), item.name) for i, item in enumerate(spec.outputs)),
        *_duplicates(
            (("outputs", i, "path"), _output_location(item)) for i, item in enumerate(spec.outputs)
        ),
        *_duplicates(
            (("requirements", i, "id"), item.id) for i, item in enumerate(spec.requirements)
        ),
        *_duplicates((("amendments", i, "id"), item.id) for i, item in enumerate(spec.amendments)),
        *_duplicates(
            (("failure_modes", i, "id"), item.id) for i, item in enumerate(spec.failure_modes)
        ),
        *_output_problems(spec),
        *_failure_mode_problems(spec),
    ]


def _output_location(output: Output) -> str:
    """What two outputs may not share: a file, or a table in a DuckDB file (one per table)."""
    if output.format == "duckdb" and output.table is not None:
        return f"{output.path} table {output.table}"
    return output.path


def _duplicates(named: Iterable[tuple[FieldPath, str]]) -> Iterator[PathProblem]:
    first_seen: dict[str, FieldPath] = {}
    for path, value in named:
        if value in first_seen:
            yield path, f"duplicate {path[-1]} {value!r} (also at {render_path(first_seen[value])})"
        else:
            first_seen[value] = path


def _output_problems(spec: Spec) -> Iterator[PathProblem]:
    for index, output in enumerate(spec.outputs):
        base: FieldPath = ("outputs", index)
        yield from _duplicates(
            ((*base, "columns", i, "name"), column.name) for i, column in enumerate(output.columns)
        )
        names = {column.name for column in output.columns}
        for key_index, key in enumerate(output.primary_key):
            if key not in names:
                yield (
                    (*base, "primary_key", key_index),
                    f"primary key column {key!r} is not a column of output {output.name!r}",
                )
        if output.format == "duckdb" and output.table is None:
            yield (*base, "format"), "a duckdb output needs 'table': the table inside the file"
        if output.format != "duckdb" and output.table is not None:
            yield (*base, "table"), f"'table' applies to duckdb outputs, not {output.format}"


def _failure_mode_problems(spec: Spec) -> Iterator[PathProblem]:
    inputs = {item.name for item in spec.inputs}
    for index, mode in enumerate(spec.failure_modes):
        trigger = "input_missing" if mode.when.input_missing else "input_empty"
        if mode.when.input_name not in inputs:
            known = ", ".join(sorted(inputs)) or "none declared"
            yield (
                ("failure_modes", index, "when", trigger),
                f"names input {mode.when.input_name!r}, which the spec does not declare "
                f"(inputs: {known})",
            )
