"""Column type names as people write them, mapped onto the spec's few logical types.

Spec authors copy types from wherever the data lives: DuckDB (``VARCHAR``, ``INT8``), dbt
model contracts (``text``, ``int``), Spark (``STRING``, ``LONG``), PostgreSQL
(``character varying(20)``, ``timestamptz``). The spec keeps a short list of logical types so
"is this change breaking" stays decidable; this module is the one place that says which
logical type each spelling means. Pure functions, no I/O.
"""

from __future__ import annotations

import re

SIMPLE_COLUMN_TYPES = (
    "string",
    "integer",
    "bigint",
    "double",
    "boolean",
    "date",
    "timestamp",
    "timestamp_tz",
    "json",
)
DECIMAL_TYPE = re.compile(r"^decimal\((\d{1,2}),\s*(\d{1,2})\)$")

# Spelling (lower case, single spaces, length/precision arguments removed) -> logical type.
# Small integers widen to integer and float4/real to double: the spec states meaning, and a
# narrower physical type of the same meaning must not read as a contract change.
TYPE_ALIASES: dict[str, str] = {
    **{
        name: "string"
        for name in (
            "string",
            "varchar",
            "text",
            "char",
            "character",
            "character varying",
            "nvarchar",
            "nchar",
            "bpchar",
            "clob",
            "uuid",
            "enum",
        )
    },
    **{
        name: "integer"
        for name in (
            "integer",
            "int",
            "int4",
            "int32",
            "signed",
            "smallint",
            "int2",
            "int16",
            "short",
            "tinyint",
            "int1",
            "mediumint",
            "serial",
            "usmallint",
            "utinyint",
        )
    },
    **{
        name: "bigint"
        for name in (
            "bigint",
            "int8",
            "int64",
            "long",
            "bigserial",
            "uinteger",
            "uint32",
        )
    },
    **{
        name: "double"
        for name in (
            "double",
            "double precision",
            "float",
            "float8",
            "float64",
            "float4",
            "float32",
            "real",
        )
    },
    **{name: "boolean" for name in ("boolean", "bool", "logical")},
    **{name: "date" for name in ("date",)},
    **{
        name: "timestamp"
        for name in (
            "timestamp",
            "datetime",
            "timestamp without time zone",
            "timestamp_ntz",
            "timestamp_us",
            "timestamp_ms",
            "timestamp_s",
            "timestamp_ns",
            "datetime2",
        )
    },
    **{
        name: "timestamp_tz"
        for name in (
            "timestamp_tz",
            "timestamptz",
            "timestamp with time zone",
            "timestamp_ltz",
            "datetimeoffset",
        )
    },
    **{name: "json" for name in ("json", "jsonb", "variant")},
}
# Types that carry a length or precision argument that does not change the logical type.
_SIZED = re.compile(r"^([a-z_ ]+?)\s*\(\s*\d+\s*\)$")
_DECIMAL_ALIAS = re.compile(
    r"^(?:decimal|numeric|number|dec)\s*\(\s*(\d{1,2})\s*(?:,\s*(\d{1,2})\s*)?\)$"
)
_UNSIZED_DECIMAL = {"decimal", "numeric", "number", "dec"}


class UnknownColumnType(ValueError):
    """A type name the spec cannot map onto a logical type; the message says why."""


def canonical_column_type(declared: str) -> str:
    """The logical type a declared column type means: ``VARCHAR(20)`` -> ``string``."""
    spelling = re.sub(r"\s+", " ", declared.strip().lower())
    if spelling in TYPE_ALIASES:
        return TYPE_ALIASES[spelling]
    decimal = _DECIMAL_ALIAS.match(spelling)
    if decimal:
        precision, scale = int(decimal.group(1)), int(decimal.group(2) or 0)
        if not 1 <= precision <= 38 or scale > precision:
            raise UnknownColumnType(
                f"decimal({precision},{scale}) needs a precision from 1 to 38 "
                "and a scale no larger than the precision"
            )
        return f"decimal({precision},{scale})"
    if spelling in _UNSIZED_DECIMAL:
        raise UnknownColumnType(
            f"{declared!r} has no precision, and engines disagree on the default "
            "(DuckDB 18,3; Spark 10,0); write decimal(precision,scale)"
        )
    sized = _SIZED.match(spelling)
    if sized and sized.group(1).strip() in TYPE_ALIASES:
        return TYPE_ALIASES[sized.group(1).strip()]
    allowed = ", ".join((*SIMPLE_COLUMN_TYPES, "decimal(p,s)"))
    raise UnknownColumnType(
        f"unknown column type {declared!r}; expected one of {allowed} "
        "(or a SQL name for one, such as varchar, text, int, float, timestamptz)"
    )
