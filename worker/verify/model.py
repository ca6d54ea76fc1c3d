"""Value types of verification: runs, tests, schemas, contract and data differences."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from specfleet.worker.verify.environments import ProductEnvironment

Level = Literal["error", "warning", "info"]
SandboxKind = Literal["bwrap", "subprocess"]
TestOutcome = Literal["passed", "failed", "skipped", "error"]


@dataclass(frozen=True)
class TestCase:
    name: str  # e.g. tests/test_orders.py::test_unpaid_order
    outcome: TestOutcome
    message: str = ""  # first lines of the failure, bounded


@dataclass(frozen=True)
class TestSummary:
    """What a JUnit XML report says."""

    total: int
    passed: int
    failed: int
    skipped: int
    errors: int
    cases: tuple[TestCase, ...] = ()


@dataclass(frozen=True)
class RunResult:
    """One command run in the sandbox."""

    command: str
    exit_code: int | None  # None when it was killed (time or memory limit)
    duration_seconds: float
    stdout: str  # bounded: the tail, with a note of how much was cut
    stderr: str
    sandbox: SandboxKind
    timed_out: bool = False
    killed_reason: str | None = None  # e.g. "exceeded 120 s", "exceeded 2048 MB"
    warnings: tuple[str, ...] = ()  # e.g. "bubblewrap unavailable: network not isolated"
    junit: TestSummary | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclass(frozen=True)
class ColumnSchema:
    name: str
    type: str  # logical type, as in the spec: string, bigint, decimal(10,2), timestamp_tz...
    nullable: bool = True
    physical: str = ""  # the file's own type name, for messages
    # Non-null values, counted for csv only: an all-empty csv column is read as VARCHAR whatever
    # the spec says, and the contract check must tell that apart from text in a number column.
    non_null: int | None = None


@dataclass(frozen=True)
class OutputSchema:
    """The schema of one produced output, read from the file."""

    output: str  # the spec's output name
    path: str
    columns: tuple[ColumnSchema, ...]
    rows: int
    primary_key: tuple[str, ...] = ()  # declared in the file (DuckDB tables); () when none
    problem: str | None = None  # why the file could not be read; columns are () then


ContractKind = Literal[
    "output-missing",
    "output-unexpected",
    "output-unreadable",
    "output-removed",
    "output-added",
    "location-changed",
    "column-missing",
    "column-removed",
    "column-added",
    "column-unexpected",
    "type-changed",
    "type-mismatch",
    "nullability-tightened",
    "nullability-loosened",
    "required-has-nulls",
    "enum-value-removed",
    "enum-value-added",
    "enum-violated",
    "primary-key-changed",
    "primary-key-mismatch",
    "primary-key-not-unique",
    "primary-key-has-nulls",
]


@dataclass(frozen=True)
class ContractDifference:
    """One difference between an output and its contract (the spec) or its baseline."""

    output: str
    kind: ContractKind
    level: Level
    message: str
    column: str | None = None
    baseline: str | None = None
    candidate: str | None = None


@dataclass(frozen=True)
class ValueChange:
    key: tuple[tuple[str, str], ...]  # the row's primary key, as (column, value) pairs
    column: str
    baseline: str
    candidate: str


@dataclass(frozen=True)
class DataDiff:
    """Baseline and candidate outputs joined on the primary key, compared column by column."""

    output: str
    baseline_rows: int
    candidate_rows: int
    only_in_baseline: int
    only_in_candidate: int
    changed_rows: int
    changed_columns: dict[str, int] = field(default_factory=dict)  # column -> rows beyond tolerance
    examples: tuple[ValueChange, ...] = ()  # bounded
    missing_keys: tuple[tuple[tuple[str, str], ...], ...] = ()  # bounded examples of each side
    extra_keys: tuple[tuple[tuple[str, str], ...], ...] = ()
    note: str = ""  # e.g. "no primary key: compared as multisets of rows"
    key: tuple[str, ...] = ()  # the columns rows were joined on; () for a multiset comparison
    compared_columns: tuple[str, ...] = ()  # columns both sides have, compared value by value

    @property
    def identical(self) -> bool:
        return not (self.only_in_baseline or self.only_in_candidate or self.changed_rows)


@dataclass(frozen=True)
class FailureModeResult:
    id: str
    provoked: str  # e.g. "raw_orders missing"
    expected: str  # e.g. "exit 2, stderr contains 'raw_orders', no outputs"
    run: RunResult
    left_behind: tuple[str, ...]
    problems: tuple[str, ...]  # empty when the expectation held

    @property
    def passed(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class SideResult:
    """One side (baseline or candidate) of a verification."""

    label: str
    commit: str | None
    environment: ProductEnvironment | None
    build: RunResult | None
    tests: RunResult | None
    schemas: dict[str, OutputSchema | None]
    unexpected_outputs: tuple[str, ...]
    failure_modes: tuple[FailureModeResult, ...]
    problem: str | None = None  # why the side could not be verified at all
    reused: bool = False  # the evidence of an identical earlier run (same code, env, fixtures)

    @property
    def built(self) -> bool:
        return self.build is not None and self.build.ok

    @property
    def tests_passed(self) -> bool:
        return self.tests is None or self.tests.ok
