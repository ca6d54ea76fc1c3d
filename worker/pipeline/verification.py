"""Stage 7, verify: the gate (build, tests, contract, data, failure modes, policy re-scan) on
the baseline and the candidate, with the candidate re-assessed for the re-scan."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from specfleet.core.spec import Spec, load_spec
from specfleet.policies.store import PolicySet
from specfleet.worker.pipeline.apply import Candidate
from specfleet.worker.pipeline.assess import Assessment, assess_checkout
from specfleet.worker.pipeline.deps import PipelineDeps
from specfleet.worker.verify.diagnosis import broken_build_reason
from specfleet.worker.verify.gate import Verdict, verify


def verify_candidate(
    *,
    deps: PipelineDeps,
    spec: Spec,
    spec_path: str,
    baseline: Path,
    baseline_commit: str,
    baseline_assessment: Assessment,
    candidate: Candidate,
    policies: PolicySet | None,
    now: dt.datetime,
    window: str,
) -> tuple[Verdict, Assessment]:
    candidate_spec = load_spec(candidate.worktree / spec_path)
    # The re-scan (semgrep, dependency health) only reads the candidate, and the gate spends
    # most of its time waiting on sandboxed subprocesses: run them side by side.
    with ThreadPoolExecutor(max_workers=1) as pool:
        rescan = pool.submit(
            assess_checkout, candidate.worktree, candidate_spec, spec_path, deps, policies, now
        )
        verdict = _gate(
            deps,
            spec,
            baseline,
            baseline_commit,
            baseline_assessment,
            candidate,
            candidate_spec,
            window,
        )
        after = rescan.result()
    return replace(verdict, findings_after=tuple(after.findings)), after


def _gate(
    deps: PipelineDeps,
    spec: Spec,
    baseline: Path,
    baseline_commit: str,
    baseline_assessment: Assessment,
    candidate: Candidate,
    candidate_spec: Spec,
    window: str,
) -> Verdict:
    return verify(
        candidate_spec,
        baseline,
        candidate.worktree,
        deps.environments,
        baseline_commit=baseline_commit,
        candidate_commit=candidate.commit,
        baseline_spec=spec,
        findings_before=baseline_assessment.findings,
        claimed_resolved=candidate.claimed_rules,
        results=deps.results,
        window=window,
    )


def baseline_build_broken(verdict: Verdict) -> str | None:
    """The baseline's build ended by itself with an error: the owner's to fix (dbt: the
    failing model is named). Kills and environment problems stay ``baseline_problem``'s."""
    side = verdict.baseline
    if side.problem or side.build is None:
        return None
    return broken_build_reason(side.build)


def baseline_problem(verdict: Verdict) -> str | None:
    """Why the current implementation itself cannot be verified, if it cannot."""
    side = verdict.baseline
    if side.problem:
        return f"the current implementation cannot be verified: {side.problem}"
    if side.build is None:
        return None
    if not side.build.ok:
        run = side.build
        if run.timed_out or run.exit_code is None:
            how = f"killed ({run.killed_reason or 'time or memory limit'})"
        else:
            how = f"exit {run.exit_code}"
        tail = (run.stderr or "").strip().splitlines()[-3:]
        detail = f": {' / '.join(tail)}" if tail else ""
        return f"the current implementation does not build ({how}){detail}"
    return None
