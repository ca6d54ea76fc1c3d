"""The ``dataproduct.yaml`` format, version 1, as frozen pydantic models.

A spec says why a data product exists and what its outputs mean; specfleet re-implements the
product against it every week, so the format is strict: unknown keys are errors (a typo in a
key would otherwise silently drop a requirement), and every field carries a description that
``specfleet spec schema`` publishes as JSON Schema for editors.

Command templates (``implementation.build``) may use two placeholders, filled in by the
verifier: ``{inputs}``, a directory holding each input as ``<input name>.<format>`` (copied
from its fixture), and ``{outputs}``, the directory where every output must be written at its
``path``.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from specfleet.core.spec.types import (
    DECIMAL_TYPE,
    SIMPLE_COLUMN_TYPES,  # noqa: F401 - re-exported: the logical types live with the model
    UnknownColumnType,
    canonical_column_type,
)

SPEC_VERSION = 1

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
PRODUCT_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
CLAUSE_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
RUNTIME_PATTERN = r"^python3\.\d{1,2}$"

# Logical column types. Physical types (parquet, csv, DuckDB) are mapped onto these by the
# verifier; keeping the list short keeps "is this change breaking" decidable. SQL spellings
# (varchar, int, float, timestamptz, ...) are accepted and normalised by specfleet.core.spec.types.
NUMERIC_COLUMN_TYPES = ("integer", "bigint", "double")

NonEmptyText = Annotated[str, Field(min_length=1)]
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=128)]
ClauseId = Annotated[str, Field(pattern=CLAUSE_ID_PATTERN)]


def _repo_relative(value: str) -> str:
    """Paths in a spec are relative to the repository and never leave it."""
    if not value.strip():
        raise ValueError("must not be empty")
    if value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", value):
        raise ValueError(f"must be relative to the repository, not absolute: {value!r}")
    if ".." in re.split(r"[\\/]", value):
        raise ValueError(f"must stay inside the repository (no '..'): {value!r}")
    # one spelling per file, so "./x.duckdb" and "x.duckdb" are the same output path
    normalised = posixpath.normpath(value.strip().replace("\\", "/"))
    if normalised == ".":
        raise ValueError(f"must name a file or directory, not the repository itself: {value!r}")
    return normalised


RepoPath = Annotated[str, AfterValidator(_repo_relative)]


def is_numeric_type(column_type: str) -> bool:
    return column_type in NUMERIC_COLUMN_TYPES or DECIMAL_TYPE.match(column_type) is not None


class SpecModel(BaseModel):
    """Base of every spec section: strict keys, immutable values."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Implementation(SpecModel):
    """How the product is built and tested; the planner may change the code, not this contract."""

    runtime: str = Field(
        pattern=RUNTIME_PATTERN,
        description="Python runtime the product runs on, e.g. python3.11.",
        examples=["python3.11"],
    )
    dependencies: RepoPath = Field(
        description=(
            "Dependency file, relative to the repository: requirements.txt, pyproject.toml, "
            "or requirements.in (compiled to requirements.txt beside it)."
        ),
        examples=["requirements.txt"],
    )
    build: NonEmptyText = Field(
        description=(
            "Command that builds every output. {inputs} is a directory holding each input as "
            "<name>.<format>; {outputs} is the directory the outputs are written to."
        ),
        examples=["python -m pipeline.build --input {inputs} --output {outputs}"],
    )
    test: NonEmptyText | None = Field(
        default=None,
        description="Command that runs the product's own tests.",
        examples=["pytest -q"],
    )


class Input(SpecModel):
    """A dataset the product reads, with the small pinned sample used for verification."""

    name: Name = Field(description="Name of the input; {inputs}/<name>.<format> at build time.")
    format: Literal["csv", "parquet", "json"] = Field(description="File format of the input.")
    fixture: RepoPath = Field(
        description="Small pinned sample in the repository, used for verification."
    )
    description: str | None = Field(default=None, description="What the input holds.")
    expectations: list[NonEmptyText] = Field(
        default_factory=list, description="What the product assumes of the input, in words."
    )


class Column(SpecModel):
    """One output column: its type, and what it means and why it exists."""

    name: Name = Field(description="Column name as written to the output.")
    type: str = Field(
        description=(
            "Logical type: string, integer, bigint, double, boolean, date, timestamp, "
            "timestamp_tz, json, or decimal(precision,scale)."
        ),
        examples=["decimal(10,2)", "string", "timestamp_tz"],
    )
    required: bool = Field(default=False, description="True when the column may never be null.")
    description: str | None = Field(default=None, description="What a value of the column means.")
    why: str | None = Field(
        default=None, description="Why the column exists: the need or amendment it serves."
    )
    tolerance: float | None = Field(
        default=None,
        ge=0,
        description="Absolute difference tolerated between baseline and candidate values.",
    )
    pii: Literal["none", "direct", "indirect", "sensitive"] | None = Field(
        default=None, description="Personal-data classification of the column."
    )
    enum: list[str | int] | None = Field(
        default=None, description="The only values the column may hold, when it is an enumeration."
    )

    # The type as the author wrote it (``varchar``), when it differs from the logical one.
    _declared_type: str | None = PrivateAttr(default=None)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        try:
            return canonical_column_type(value)
        except UnknownColumnType as error:
            raise ValueError(str(error)) from None

    @model_validator(mode="wrap")
    @classmethod
    def _remember_declared_type(cls, data: object, handler: Any) -> Column:
        column: Column = handler(data)
        declared = data.get("type") if isinstance(data, dict) else None
        if isinstance(declared, str) and declared.strip() != column.type:
            column._declared_type = declared.strip()
        return column

    @property
    def declared_type(self) -> str:
        """The type as written in the spec (``varchar``); the logical one when no alias."""
        return self._declared_type or self.type

    @model_validator(mode="after")
    def _tolerance_is_numeric(self) -> Column:
        if self.tolerance is not None and not is_numeric_type(self.type):
            raise ValueError(f"tolerance applies to numeric columns, not to type {self.type}")
        return self


class Output(SpecModel):
    """A dataset the product produces: its location, key and columns (its contract)."""

    name: Name = Field(description="Name of the output.")
    format: Literal["parquet", "csv", "duckdb"] = Field(description="File format of the output.")
    path: RepoPath = Field(description="Where the output is written, relative to {outputs}.")
    table: Name | None = Field(
        default=None, description="Table name inside the file; required for the duckdb format."
    )
    description: str | None = Field(default=None, description="What one row of the output is.")
    primary_key: list[Name] = Field(
        default_factory=list,
        description="Columns that identify a row; used to compare baseline and candidate data.",
    )
    columns: list[Column] = Field(min_length=1, description="The output's columns, in order.")


class Constraints(SpecModel):
    """Operational limits the implementation must respect."""

    max_build_seconds: int = Field(default=600, gt=0, le=86400, description="Build time limit.")
    max_memory_mb: int = Field(
        default=2048, gt=0, description="Memory limit of the build and tests."
    )
    freshness: Literal["hourly", "daily", "weekly", "monthly"] | None = Field(
        default=None, description="How fresh consumers need the outputs."
    )


class FailureTrigger(SpecModel):
    """How the verifier provokes a failure mode; exactly one key."""

    input_missing: Name | None = Field(default=None, description="Build without this input's file.")
    input_empty: Name | None = Field(
        default=None, description="Build with this input's file present but empty."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> FailureTrigger:
        chosen = [key for key in ("input_missing", "input_empty") if getattr(self, key) is not None]
        if len(chosen) != 1:
            raise ValueError("give exactly one of input_missing, input_empty")
        return self

    @property
    def input_name(self) -> str:
        return self.input_missing or self.input_empty or ""


class FailureExpectation(SpecModel):
    """What the build must do when the failure is provoked."""

    exit_code: int = Field(description="Exit code the build must end with.")
    stderr_contains: str | None = Field(
        default=None, description="Text the build's standard error must contain."
    )
    no_outputs: bool = Field(
        default=True, description="True when no output may be left behind (nothing half-written)."
    )


class FailureMode(SpecModel):
    """A way the product must fail, loudly and cleanly, rather than produce wrong data."""

    id: ClauseId = Field(description="Stable id, e.g. F1.")
    description: str | None = Field(default=None, description="Why this failure matters.")
    when: FailureTrigger
    expect: FailureExpectation


class Requirement(SpecModel):
    """A requirement with a stable id, in EARS wording, and the tests that prove it."""

    id: ClauseId = Field(description="Stable id, e.g. R1; never reused.")
    text: NonEmptyText = Field(
        description="The requirement, ideally in EARS form: WHEN ... THE SYSTEM SHALL ..."
    )
    tests: list[NonEmptyText] = Field(
        default_factory=list, description="Tests that prove it, e.g. tests/test_x.py::test_y."
    )


class Amendment(SpecModel):
    """One change to the spec: what was asked, what changed, and why."""

    id: ClauseId = Field(description="Stable id, e.g. A2.")
    date: dt.date = Field(description="When the amendment was accepted (YYYY-MM-DD).")
    requirement: NonEmptyText = Field(description="What was asked for, in the requester's words.")
    change: NonEmptyText = Field(description="What changed in the spec and the product.")
    why: NonEmptyText = Field(description="Why it changed; the reason later readers need.")
    requirements: list[ClauseId] = Field(
        default_factory=list, description="Requirement ids this amendment added or changed."
    )


class Spec(SpecModel):
    """A data product's spec: ``dataproduct.yaml``, format version 1."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="specfleet dataproduct.yaml (spec_version 1)",
    )

    spec_version: Literal[1] = Field(description="Version of this format; always 1.")
    id: str = Field(
        pattern=PRODUCT_ID_PATTERN,
        description="Stable id, unique in the registry: lower case letters, digits, - and _.",
    )
    name: NonEmptyText = Field(description="Human name of the product.")
    owners: list[Annotated[str, Field(pattern=EMAIL_PATTERN)]] = Field(
        min_length=1, description="E-mail addresses of the product owners who approve changes."
    )
    tags: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]] = Field(
        default_factory=list, description="Tags used to scope policies and filter the fleet."
    )
    purpose: NonEmptyText = Field(description="Why the product exists and who uses it.")
    implementation: Implementation
    inputs: list[Input] = Field(default_factory=list)
    outputs: list[Output] = Field(min_length=1)
    constraints: Constraints = Field(default_factory=Constraints)
    failure_modes: list[FailureMode] = Field(default_factory=list)
    requirements: list[Requirement] = Field(default_factory=list)
    amendments: list[Amendment] = Field(default_factory=list)
    automerge: Literal["security-patch", "deterministic", "never"] | None = Field(
        default=None,
        description="The owners' automerge opt-in, bounded by the policy set: security-patch "
        "(verified patch-level security fixes), deterministic (any verified change of the "
        "deterministic remediators) or never. Unset: never (the registry may opt in).",
    )

    def output(self, name: str) -> Output:
        return next(output for output in self.outputs if output.name == name)

    def next_amendment_id(self) -> str:
        """The id the next amendment gets: A<highest numbered one + 1> (A1 for the first)."""
        numbers = [int(m.group(1)) for a in self.amendments if (m := re.fullmatch(r"A(\d+)", a.id))]
        return f"A{max(numbers, default=0) + 1}"
