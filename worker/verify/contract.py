"""Contract compatibility: an output's schema against its spec and against the baseline's.

The rules follow dbt model contracts and datacontract-cli's ``breaking`` command. Every rule is
a pure function over :class:`OutputSchema` values and spec :class:`Output` models, except
:func:`specfleet.worker.verify.contract_data.null_and_enum_violations`, the one check that must read
the data itself.

Against the baseline (:func:`check_against_baseline`), what breaks a consumer is an error:

- the output removed, or moved (another format, path or table);
- a column removed; a type changed, unless it widens (below: a warning);
- nullability changed in the spec, either way (datacontract-cli's ``field_required_updated``):
  tightened fails rows the baseline accepted, loosened hands consumers nulls. In the files, only
  a DuckDB table's declared NOT NULL counts: parquet writers set REQUIRED by library (DuckDB
  infers it from the data), and csv has no such flag;
- an enum value removed (introducing an enum removes every other value); an added value, or a
  dropped enum, is a warning: exhaustive consumers may not handle the new values;
- the primary key changed (in the spec, or the key a DuckDB table declares).

A column or output added is info: nothing that read the baseline breaks.

Type changes (:func:`type_change_level`):

=========================  ============================================  =======
baseline                   candidate                                     level
=========================  ============================================  =======
integer                    bigint, double                                warning
integer                    decimal(p,s) with p - s >= 10                 warning
bigint                     decimal(p,s) with p - s >= 19                 warning
decimal(p1,s1)             decimal(p2,s2), s2 >= s1, p2 - s2 >= p1 - s1  warning
anything else that differs                                               error
=========================  ============================================  =======

A widening loses no value, so readers keep working, but typed readers still see a new type:
hence a warning rather than nothing. bigint to double and decimal to double are narrowing
(doubles hold 53 bits and no exact cents).

CSV outputs carry no types: DuckDB infers them from the text, so they are compared loosely.
Against the spec (:func:`csv_type_level`): integer and bigint are the same; a whole-number
column is a valid double or decimal column; decimal against double is a warning (the scale
cannot be checked); a column with no values (or a file with no rows) matches any type, since
nothing was there to infer from; a spec string or json column accepts whatever DuckDB
inferred, since every csv value is text. Anything else (text in a number column, times without
a UTC offset where the spec says timestamp_tz) is an error. Against the baseline, the same
holds, and a change between any two numeric types is a warning rather than an error: the text
``2`` after ``1.5`` changes the inference, not the contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from specfleet.core.spec.model import Column, Output, Spec
from specfleet.core.spec.types import DECIMAL_TYPE
from specfleet.worker.verify.contract_data import enum_text
from specfleet.worker.verify.model import (
    ColumnSchema,
    ContractDifference,
    ContractKind,
    Level,
    OutputSchema,
)

_INTEGERS = ("integer", "bigint")
# Integer digits a decimal needs to hold every value of an integer type.
_INTEGER_DIGITS = {"integer": 10, "bigint": 19}


def contract_ok(differences: Iterable[ContractDifference]) -> bool:
    """True when no difference is an error: warnings and infos do not block a proposal."""
    return all(difference.level != "error" for difference in differences)


def check_against_spec(
    spec_output: Output, schema: OutputSchema | None
) -> list[ContractDifference]:
    """What in the written output contradicts the spec's columns and types."""
    name = spec_output.name
    if schema is None:
        return [
            ContractDifference(
                name, "output-missing", "error", f"{spec_output.path} was not written"
            )
        ]
    if schema.problem is not None:
        return [ContractDifference(name, "output-unreadable", "error", schema.problem)]
    written = {column.name: column for column in schema.columns}
    differences: list[ContractDifference] = []
    for column in spec_output.columns:
        found = written.get(column.name)
        if found is None:
            differences.append(
                ContractDifference(
                    name,
                    "column-missing",
                    "error",
                    f"column {column.name} ({column.type}) is in the spec but not in the output",
                    column=column.name,
                    baseline=column.type,
                )
            )
            continue
        level = (
            csv_type_level(column.type, found)
            if spec_output.format == "csv"
            else (None if found.type == column.type else "error")
        )
        if level is not None:
            differences.append(
                ContractDifference(
                    name,
                    "type-mismatch",
                    level,
                    f"column {column.name}: the spec says {column.type}, "
                    f"the output has {found.type} ({found.physical or found.type})",
                    column=column.name,
                    baseline=column.type,
                    candidate=found.type,
                )
            )
    declared = {column.name for column in spec_output.columns}
    differences.extend(
        ContractDifference(
            name,
            "column-unexpected",
            "warning",
            f"column {extra.name} ({extra.type}) is in the output but not in the spec",
            column=extra.name,
            candidate=extra.type,
        )
        for extra in schema.columns
        if extra.name not in declared
    )
    if schema.primary_key and set(schema.primary_key) != set(spec_output.primary_key):
        differences.append(
            ContractDifference(
                name,
                "primary-key-mismatch",
                "warning",
                f"the table declares primary key ({', '.join(schema.primary_key)}), "
                f"the spec says ({', '.join(spec_output.primary_key)})",
                baseline=", ".join(spec_output.primary_key),
                candidate=", ".join(schema.primary_key),
            )
        )
    return differences


def csv_type_level(spec_type: str, column: ColumnSchema) -> Level | None:
    """How far the type DuckDB inferred for a csv column is from the spec's; None when it fits."""
    inferred = column.type
    if inferred == spec_type or spec_type in ("string", "json") or _inferred_from_nothing(column):
        return None
    if inferred in _INTEGERS and (spec_type in _INTEGERS or _is_fractional(spec_type)):
        return None
    if _is_fractional(spec_type) and _is_fractional(inferred):
        return "warning"
    return "error"


def type_change_level(baseline: str, candidate: str) -> Level | None:
    """None when the logical type is unchanged, a warning for a widening, else an error."""
    if baseline == candidate:
        return None
    return "warning" if _widens(baseline, candidate) else "error"


def check_against_baseline(
    spec_output: Output,
    baseline: OutputSchema | None,
    candidate: OutputSchema | None,
    baseline_spec_output: Output | None = None,
) -> list[ContractDifference]:
    """What in the candidate's output would break a consumer of the baseline's.

    ``spec_output`` is the candidate's spec of the output; ``baseline_spec_output`` the
    baseline's, when the proposal changed the spec (by default the spec is unchanged).
    """
    old_spec = baseline_spec_output or spec_output
    name = spec_output.name
    differences = _spec_changes(old_spec, spec_output)
    if baseline is None and candidate is None:
        return differences
    if candidate is None:
        return [
            *differences,
            ContractDifference(
                name,
                "output-removed",
                "error",
                f"the baseline wrote {old_spec.path}, the candidate does not",
            ),
        ]
    if baseline is None:
        return [
            *differences,
            ContractDifference(
                name,
                "output-added",
                "info",
                f"{spec_output.path} is new: the baseline did not write it",
            ),
        ]
    if candidate.problem is not None:
        return [
            *differences,
            ContractDifference(name, "output-unreadable", "error", candidate.problem),
        ]
    if baseline.problem is not None:
        message = (
            f"the baseline's output cannot be read, so it was not compared: {baseline.problem}"
        )
        return [*differences, ContractDifference(name, "output-unreadable", "warning", message)]
    return [*differences, *_schema_changes(spec_output, baseline, candidate)]


def unexpected_output_differences(spec: Spec, paths: Sequence[str]) -> list[ContractDifference]:
    """Files the build wrote that the spec does not name: a warning each, named by path."""
    return [
        ContractDifference(
            path,
            "output-unexpected",
            "warning",
            f"{path} was written but no output of {spec.id} names it",
        )
        for path in paths
    ]


def _spec_changes(old: Output, new: Output) -> list[ContractDifference]:
    """Changes of the contract itself: where the output is, its key, nullability and enums."""
    name = new.name
    differences: list[ContractDifference] = []
    old_location = (old.format, old.path, old.table)
    new_location = (new.format, new.path, new.table)
    if old_location != new_location:
        differences.append(
            ContractDifference(
                name,
                "location-changed",
                "error",
                f"the output moved from {_location_text(old)} to {_location_text(new)}",
                baseline=_location_text(old),
                candidate=_location_text(new),
            )
        )
    # The order of a composite key does not change which rows it identifies.
    if set(old.primary_key) != set(new.primary_key):
        differences.append(_key_changed(name, old.primary_key, new.primary_key, "error"))
    new_columns = {column.name: column for column in new.columns}
    for old_column in old.columns:
        new_column = new_columns.get(old_column.name)
        if new_column is None:
            continue  # the schema comparison reports a removed column once, from the files
        differences.extend(_column_spec_changes(name, old_column, new_column))
    return differences


def _column_spec_changes(output: str, old: Column, new: Column) -> list[ContractDifference]:
    differences: list[ContractDifference] = []
    if not old.required and new.required:
        differences.append(
            ContractDifference(
                output,
                "nullability-tightened",
                "error",
                f"column {new.name} became required: a null the baseline allowed now fails",
                column=new.name,
                baseline="nullable",
                candidate="required",
            )
        )
    elif old.required and not new.required:
        differences.append(
            ContractDifference(
                output,
                "nullability-loosened",
                "error",
                f"column {new.name} is no longer required: consumers relying on it get nulls",
                column=new.name,
                baseline="required",
                candidate="nullable",
            )
        )
    return [*differences, *_enum_changes(output, old, new)]


def _enum_changes(output: str, old: Column, new: Column) -> list[ContractDifference]:
    # No enum is the set of every value: introducing one removes values, dropping one adds them.
    old_values = None if old.enum is None else [str(value) for value in old.enum]
    new_values = None if new.enum is None else [str(value) for value in new.enum]
    changes: list[tuple[ContractKind, Level, str]] = []
    if new_values is not None and old_values is None:
        changes.append(("enum-value-removed", "error", f"now only allows {enum_text(new)}"))
    elif new_values is not None and old_values is not None:
        removed = [value for value in old_values if value not in new_values]
        added = [value for value in new_values if value not in old_values]
        if removed:
            changes.append(
                ("enum-value-removed", "error", f"no longer allows {', '.join(removed)}")
            )
        if added:
            changes.append(("enum-value-added", "warning", f"now also allows {', '.join(added)}"))
    elif old_values is not None:
        changes.append(
            ("enum-value-added", "warning", "no longer has an enum: any value may appear")
        )
    return [
        ContractDifference(
            output,
            kind,
            level,
            f"column {new.name} {what}",
            column=new.name,
            baseline=enum_text(old),
            candidate=enum_text(new),
        )
        for kind, level, what in changes
    ]


def _schema_changes(
    spec_output: Output, baseline: OutputSchema, candidate: OutputSchema
) -> list[ContractDifference]:
    """Changes between the files: columns removed, added and retyped, constraints changed."""
    name = spec_output.name
    spec_columns = {column.name: column for column in spec_output.columns}
    written = {column.name: column for column in candidate.columns}
    differences: list[ContractDifference] = []
    for old in baseline.columns:
        new = written.get(old.name)
        if new is None:
            differences.append(
                ContractDifference(
                    name,
                    "column-removed",
                    "error",
                    f"column {old.name} ({old.type}) was removed",
                    column=old.name,
                    baseline=old.type,
                )
            )
            continue
        spec_column = spec_columns.get(old.name)
        level = _retype_level(spec_output, spec_column, old, new)
        if level is not None:
            widening = " (a widening)" if level == "warning" else ""
            differences.append(
                ContractDifference(
                    name,
                    "type-changed",
                    level,
                    f"column {old.name} changed type from {old.type} to {new.type}{widening}",
                    column=old.name,
                    baseline=old.type,
                    candidate=new.type,
                )
            )
        nullability = _physical_nullability(spec_output, spec_column, old, new)
        if nullability is not None:
            differences.append(nullability)
    known = {column.name for column in baseline.columns}
    differences.extend(
        ContractDifference(
            name,
            "column-added",
            "info",
            f"column {column.name} ({column.type}) was added",
            column=column.name,
            candidate=column.type,
        )
        for column in candidate.columns
        if column.name not in known
    )
    if baseline.primary_key and set(baseline.primary_key) != set(candidate.primary_key):
        # A dropped key constraint loosens the table; the data check still tests uniqueness.
        key_level: Level = "error" if candidate.primary_key else "warning"
        differences.append(
            _key_changed(name, baseline.primary_key, candidate.primary_key, key_level)
        )
    return differences


def _retype_level(
    spec_output: Output, spec_column: Column | None, old: ColumnSchema, new: ColumnSchema
) -> Level | None:
    if spec_output.format != "csv":
        return type_change_level(old.type, new.type)
    # Both csv types were inferred from text: where the spec says text any inference will do,
    # and otherwise only a change the loose rules would reject against a spec counts.
    if old.type == new.type or _inferred_from_nothing(old) or _inferred_from_nothing(new):
        return None
    if spec_column is not None and spec_column.type in ("string", "json"):
        return None
    if old.type in _INTEGERS and new.type in _INTEGERS:
        return None
    numeric = (*_INTEGERS, "double")
    if (old.type in numeric or _is_fractional(old.type)) and (
        new.type in numeric or _is_fractional(new.type)
    ):
        return "warning"
    return "error"


def _physical_nullability(
    spec_output: Output, spec_column: Column | None, old: ColumnSchema, new: ColumnSchema
) -> ContractDifference | None:
    # Only DuckDB tables declare NOT NULL on purpose: a parquet writer's REQUIRED flag depends
    # on the library (DuckDB infers it from the data), and csv has none. A column the spec
    # requires is governed by the spec and the null check, whatever the file declares.
    if spec_output.format != "duckdb" or old.nullable == new.nullable:
        return None
    if spec_column is not None and spec_column.required:
        return None
    if old.nullable:
        return ContractDifference(
            spec_output.name,
            "nullability-tightened",
            "error",
            f"column {new.name} is now NOT NULL in the table, though the spec allows nulls",
            column=new.name,
            baseline="nullable",
            candidate="not null",
        )
    return ContractDifference(
        spec_output.name,
        "nullability-loosened",
        "warning",
        f"column {new.name} lost its NOT NULL constraint",
        column=new.name,
        baseline="not null",
        candidate="nullable",
    )


def _widens(baseline: str, candidate: str) -> bool:
    if baseline == "integer" and candidate in ("bigint", "double"):
        return True
    new = DECIMAL_TYPE.match(candidate)
    if new is None:
        return False
    precision, scale = int(new.group(1)), int(new.group(2))
    if baseline in _INTEGER_DIGITS:
        return precision - scale >= _INTEGER_DIGITS[baseline]
    old = DECIMAL_TYPE.match(baseline)
    if old is None:
        return False
    old_precision, old_scale = int(old.group(1)), int(old.group(2))
    return scale >= old_scale and precision - scale >= old_precision - old_scale


def _inferred_from_nothing(column: ColumnSchema) -> bool:
    """A csv column without a single value: DuckDB calls it VARCHAR for want of evidence."""
    return column.type == "string" and column.non_null == 0


def _is_fractional(logical: str) -> bool:
    return logical == "double" or DECIMAL_TYPE.match(logical) is not None


def _key_changed(
    output: str, old: Sequence[str], new: Sequence[str], level: Level
) -> ContractDifference:
    old_text, new_text = ", ".join(old), ", ".join(new)
    return ContractDifference(
        output,
        "primary-key-changed",
        level,
        f"primary key changed from ({old_text}) to ({new_text})",
        baseline=old_text,
        candidate=new_text,
    )


def _location_text(output: Output) -> str:
    table = f" table {output.table}" if output.table else ""
    return f"{output.format} {output.path}{table}"
