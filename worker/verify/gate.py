"""The verification gate: baseline and candidate built, tested and compared; a Verdict.

For each side (the default branch's code, and the proposal's), in a throwaway copy and the
sandbox: build the outputs from the spec's fixtures, run the product's tests, and provoke
every failure mode. Then compare: each output against the spec (its contract) and against
the baseline's (breaking changes), and the data row by row within the spec's tolerances.
Both sides always use the *baseline's* fixtures, so a candidate cannot pass by changing them.
"""

from __future__ import annotations

import datetime as dt
import shlex
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from specfleet.core.spec.model import FailureMode, Spec
from specfleet.core.windows import iso_week
from specfleet.policies.findings import Finding, unmatched
from specfleet.worker.verify.contract import check_against_baseline, check_against_spec, contract_ok
from specfleet.worker.verify.contract_data import null_and_enum_violations
from specfleet.worker.verify.data import data_ok, diff_output
from specfleet.worker.verify.environments import EnvironmentCache, ProductEnvironment
from specfleet.worker.verify.evidence import weaker_test_evidence
from specfleet.worker.verify.layout import (
    collect_outputs,
    existing_outputs,
    left_behind,
    missing_outputs_warning,
    stage_run,
)
from specfleet.worker.verify.model import (
    ContractDifference,
    DataDiff,
    FailureModeResult,
    SideResult,
)
from specfleet.worker.verify.results import SideResultCache, side_key, tree_digest
from specfleet.worker.verify.sandbox import run_sandboxed, sandbox_available
from specfleet.worker.verify.schemas import read_output_schema, unexpected_outputs

COPY_IGNORE = shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache", ".venv")


@dataclass(frozen=True)
class Verdict:
    """Everything the gate found; ``publishable`` only when every layer holds."""

    product_id: str
    baseline: SideResult
    candidate: SideResult
    contract: tuple[ContractDifference, ...]
    data: tuple[DataDiff, ...]
    findings_before: tuple[Finding, ...] = ()
    findings_after: tuple[Finding, ...] = ()
    claimed_resolved: tuple[str, ...] = ()  # rule ids the candidate says it fixes
    allowed_data_changes: tuple[str, ...] = ()  # columns an amendment may change
    # tests that must have run and passed on the candidate (an amendment: every test its
    # spec's requirements name, the new requirement's and all the earlier ones)
    required_tests: tuple[str, ...] = ()
    checked_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def resolved(self) -> tuple[Finding, ...]:
        return unmatched(self.findings_before, self.findings_after)

    @property
    def introduced(self) -> tuple[Finding, ...]:
        return unmatched(self.findings_after, self.findings_before)

    @property
    def reasons(self) -> list[str]:
        """Why the candidate cannot be published (empty when it can)."""
        reasons = []
        candidate = self.candidate
        if candidate.problem:
            reasons.append(f"candidate could not be verified: {candidate.problem}")
        elif not candidate.built:
            reasons.append("the candidate's build failed")
        if not candidate.tests_passed:
            reasons.append("the candidate's tests failed")
        reasons.extend(weaker_test_evidence(self.baseline, candidate))
        unproven = [
            test for test in self.required_tests if test_outcome(candidate, test) != "passed"
        ]
        if unproven:
            shown = ", ".join(f"{t} ({test_outcome(candidate, t)})" for t in unproven[:5])
            more = f" and {len(unproven) - 5} more" if len(unproven) > 5 else ""
            reasons.append(f"tests the requirements name did not pass: {shown}{more}")
        if not contract_ok(self.contract):
            reasons.append("an output breaks its contract")
        if not all(data_ok(diff, self.allowed_data_changes) for diff in self.data):
            reasons.append("output data changed beyond the spec's tolerances")
        failing_modes = [mode.id for mode in candidate.failure_modes if not mode.passed]
        if failing_modes:
            reasons.append(f"failure modes not honoured: {', '.join(failing_modes)}")
        if self.introduced:
            rules = sorted({finding.rule_id for finding in self.introduced})
            reasons.append(f"new policy findings: {', '.join(rules)}")
        unresolved = sorted(
            set(self.claimed_resolved)
            & {f.rule_id for f in self.findings_after if f.status == "fail"}
        )
        if unresolved:
            reasons.append(f"claims to resolve but still fails: {', '.join(unresolved)}")
        return reasons

    @property
    def publishable(self) -> bool:
        return not self.reasons

    @property
    def warnings(self) -> tuple[str, ...]:
        found: list[str] = []
        for side in (self.baseline, self.candidate):
            for run in (side.build, side.tests):
                if run is not None:
                    found.extend(w for w in run.warnings if w not in found)
        return tuple(found)


def verify(
    spec: Spec,
    baseline: Path,
    candidate: Path,
    environments: EnvironmentCache,
    *,
    baseline_commit: str | None = None,
    candidate_commit: str | None = None,
    baseline_spec: Spec | None = None,
    findings_before: Sequence[Finding] = (),
    findings_after: Sequence[Finding] = (),
    claimed_resolved: Sequence[str] = (),
    allowed_data_changes: Sequence[str] = (),
    required_tests: Sequence[str] = (),
    results: SideResultCache | None = None,
    window: str | None = None,
    parallel: bool = True,
) -> Verdict:
    """Run the whole gate on two checkouts of a product (the candidate's spec governs).

    With ``results``, a side whose code, environment, fixtures and spec equal an earlier
    run's in the same ``window`` (default: this ISO week) reuses that run's evidence.
    """
    with tempfile.TemporaryDirectory(prefix="specfleet-verify-") as scratch:
        root = Path(scratch)
        fixtures = _stage_fixtures(spec, baseline, root / "fixtures")
        reuse = (
            _Reuse(results, window or iso_week(dt.date.today()), tree_digest(fixtures))
            if results is not None
            else None
        )
        # The two sides share nothing but the read-only fixtures and wait on subprocesses, so
        # they run side by side. The baseline's failure modes are not the candidate's
        # evidence: only the candidate's are provoked.
        with ThreadPoolExecutor(max_workers=2 if parallel else 1) as pool:
            baseline_future = pool.submit(
                _side,
                "baseline",
                baseline_spec or spec,
                baseline,
                fixtures,
                root / "b",
                environments,
                baseline_commit,
                provoke=False,
                reuse=reuse,
            )
            candidate_future = pool.submit(
                _side,
                "candidate",
                spec,
                candidate,
                fixtures,
                root / "c",
                environments,
                candidate_commit,
                provoke=True,
                reuse=reuse,
            )
            baseline_side = baseline_future.result()
            candidate_side = candidate_future.result()
        contract: list[ContractDifference] = []
        data: list[DataDiff] = []
        old_outputs = {output.name: output for output in (baseline_spec or spec).outputs}
        for output in spec.outputs:
            schema = candidate_side.schemas.get(output.name)
            contract.extend(check_against_spec(output, schema))
            if schema is not None:
                contract.extend(null_and_enum_violations(root / "c" / "outputs", output))
            if baseline_side.built:
                contract.extend(
                    check_against_baseline(
                        output,
                        baseline_side.schemas.get(output.name),
                        schema,
                        old_outputs.get(output.name),
                    )
                )
                if schema is not None and baseline_side.schemas.get(output.name) is not None:
                    data.append(diff_output(root / "b" / "outputs", root / "c" / "outputs", output))
        for name in candidate_side.unexpected_outputs:
            contract.append(
                ContractDifference(
                    name,
                    "output-unexpected",
                    "warning",
                    f"the build wrote {name}, which the spec does not name",
                )
            )
    return Verdict(
        spec.id,
        baseline_side,
        candidate_side,
        tuple(contract),
        tuple(data),
        tuple(findings_before),
        tuple(findings_after),
        tuple(claimed_resolved),
        tuple(allowed_data_changes),
        tuple(required_tests),
    )


def test_outcome(side: SideResult, test: str) -> str:
    """What the side's JUnit report says of ``test`` (``path::name``): passed, failed,
    skipped, error, "not run" or "no test report". Parametrised cases count together."""
    run = side.tests
    if run is None or run.junit is None:
        return "no test report"
    outcomes = {
        case.outcome
        for case in run.junit.cases
        if case.name == test or case.name.startswith(test + "[")
    }
    if not outcomes:
        return "not run"
    for worst in ("error", "failed", "skipped"):
        if worst in outcomes:
            return worst
    return "passed"


def _stage_fixtures(spec: Spec, repo: Path, destination: Path) -> Path:
    """Each input's fixture as <name>.<format>, the layout {inputs} promises to builds."""
    destination.mkdir(parents=True)
    for item in spec.inputs:
        source = repo / item.fixture
        if source.is_file():
            shutil.copyfile(source, destination / f"{item.name}.{item.format}")
    return destination


def _side(
    label: str,
    spec: Spec,
    repo: Path,
    fixtures: Path,
    scratch: Path,
    environments: EnvironmentCache,
    commit: str | None,
    provoke: bool,
    reuse: _Reuse | None = None,
) -> SideResult:
    scratch.mkdir(parents=True)
    worktree = scratch / "worktree"
    shutil.copytree(repo, worktree, ignore=COPY_IGNORE, symlinks=True)
    try:
        environment = environments.ensure(worktree, spec)
    except Exception as error:
        return SideResult(label, commit, None, None, None, {}, (), (), problem=str(error)[-2000:])
    key = reuse.key(worktree, environment, spec, provoke) if reuse is not None else None
    if reuse is not None and key is not None:
        earlier = reuse.cache.get(key, scratch / "outputs")
        if earlier is not None:
            return replace(earlier, label=label, commit=commit, environment=environment)
    result = _run_side(
        label, spec, worktree, fixtures, scratch, environment, commit, provoke, source=repo
    )
    if reuse is not None and key is not None and _conclusive(result):
        reuse.cache.put(key, result, scratch / "outputs")
    return result


def _conclusive(result: SideResult) -> bool:
    """Worth reusing: every run ended by itself (a kill may be the machine's load, not the code)."""
    runs = [result.build, result.tests, *(mode.run for mode in result.failure_modes)]
    return result.problem is None and all(
        run.killed_reason is None and not run.timed_out for run in runs if run is not None
    )


@dataclass(frozen=True)
class _Reuse:
    """What the gate needs to look up and store side results."""

    cache: SideResultCache
    window: str
    fixtures: str

    def key(
        self, worktree: Path, environment: ProductEnvironment, spec: Spec, provoke: bool
    ) -> str:
        return side_key(
            checkout=tree_digest(worktree),
            environment=environment.key,
            fixtures=self.fixtures,
            spec=spec.model_dump_json(),
            provoked=provoke,
            sandbox="bwrap" if sandbox_available() else "subprocess",
            window=self.window,
        )


def _run_side(
    label: str,
    spec: Spec,
    worktree: Path,
    fixtures: Path,
    scratch: Path,
    environment: ProductEnvironment,
    commit: str | None,
    provoke: bool,
    source: Path | None = None,
) -> SideResult:
    limits = {
        "timeout_seconds": float(spec.constraints.max_build_seconds),
        "memory_mb": spec.constraints.max_memory_mb,
    }
    staged = stage_run(spec, worktree, fixtures, scratch, worktree=worktree)
    outputs = staged.outputs
    build = run_sandboxed(
        staged.command,
        worktree,
        environment,
        writable=staged.writable,
        **limits,  # type: ignore[arg-type]
    )
    collect_outputs(spec, staged)
    if staged.in_checkout and build.ok:
        warning = missing_outputs_warning(spec, outputs)
        if warning is not None:
            build = replace(build, warnings=(*build.warnings, warning))
    schemas = {output.name: read_output_schema(outputs, output) for output in spec.outputs}
    unexpected = tuple(unexpected_outputs(outputs, spec)) if build.ok else ()
    # The tests and the provoked failure modes are independent sandboxed runs (each mode
    # builds into its own directory), so they overlap instead of queueing behind each other.
    with ThreadPoolExecutor(max_workers=2) as pool:
        modes_future = pool.submit(
            lambda: tuple(
                _failure_mode(
                    mode,
                    spec,
                    source or worktree,
                    environment,
                    fixtures,
                    scratch / f"mode-{index}",
                    limits,
                )
                for index, mode in enumerate(spec.failure_modes if provoke else ())
            )
        )
        tests = None
        if spec.implementation.test:
            junit = scratch / "junit.xml"
            tests = run_sandboxed(
                _with_junit(spec.implementation.test, junit),
                worktree,
                environment,
                writable=(scratch,),
                junit_xml=junit,
                **limits,  # type: ignore[arg-type]
            )
        modes = modes_future.result()
    return SideResult(label, commit, environment, build, tests, schemas, unexpected, modes)


def _with_junit(command: str, junit: Path) -> str:
    """Ask pytest for a JUnit report, so the MR can show per-test results."""
    words = shlex.split(command)
    if words[:1] == ["pytest"] or words[:3] == ["python", "-m", "pytest"]:
        return f"{command} --junitxml={shlex.quote(str(junit))}"
    return command


def _failure_mode(
    mode: FailureMode,
    spec: Spec,
    worktree: Path,
    environment: ProductEnvironment,
    fixtures: Path,
    scratch: Path,
    limits: dict[str, float | int],
) -> FailureModeResult:
    # its own copy of the checkout: the tests run beside it in the side's worktree
    staged = stage_run(
        spec,
        worktree,
        fixtures,
        scratch,
        missing=mode.when.input_missing,
        empty=mode.when.input_empty,
    )
    before = existing_outputs(spec, staged.worktree)
    run = run_sandboxed(
        staged.command,
        staged.worktree,
        environment,
        writable=staged.writable,
        **limits,  # type: ignore[arg-type]
    )
    expect = mode.expect
    left = left_behind(spec, staged, before)
    problems = []
    if run.exit_code != expect.exit_code:
        got = (
            "killed: " + (run.killed_reason or "")
            if run.exit_code is None
            else f"exit {run.exit_code}"
        )
        problems.append(f"expected exit {expect.exit_code}, got {got}")
    if expect.stderr_contains and expect.stderr_contains not in run.stderr:
        problems.append(f"stderr does not contain {expect.stderr_contains!r}")
    if expect.no_outputs and left:
        problems.append(f"left outputs behind: {', '.join(left[:5])}")
    trigger = "missing" if mode.when.input_missing else "empty"
    expected = f"exit {expect.exit_code}"
    if expect.stderr_contains:
        expected += f", stderr contains {expect.stderr_contains!r}"
    if expect.no_outputs:
        expected += ", no outputs"
    return FailureModeResult(
        mode.id, f"{mode.when.input_name} {trigger}", expected, run, left, tuple(problems)
    )
