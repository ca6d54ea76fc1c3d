"""Hostile or broken candidate builds end in a clear verdict, never a hung gate: a build that
never ends, one that writes nothing, one that writes files the spec does not name."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from specfleet.core.spec import load_spec
from specfleet.worker.report import render_verdict
from specfleet.worker.verify.environments import EnvironmentCache
from specfleet.worker.verify.gate import Verdict, verify
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.network
MAIN = "    args = parser.parse_args(argv)\n"


@pytest.fixture(scope="module")
def environments(tmp_path_factory: pytest.TempPathFactory) -> EnvironmentCache:
    return EnvironmentCache(tmp_path_factory.mktemp("environments"))


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(shutil.copytree(EXAMPLES / "store_footfall", tmp_path_factory.mktemp("b") / "s"))


def _candidate(
    baseline: Path, tmp_path: Path, inserted: str, build_seconds: int = 30, after: str = MAIN
) -> Path:
    repo = Path(shutil.copytree(baseline, tmp_path / "candidate"))
    build = repo / "footfall" / "build.py"
    assert after in build.read_text(), "the example changed"
    build.write_text(build.read_text().replace(after, after + inserted, 1))
    spec = repo / "dataproduct.yaml"
    spec.write_text(
        spec.read_text().replace("max_build_seconds: 30", f"max_build_seconds: {build_seconds}")
    )
    return repo


def _gate(baseline: Path, candidate: Path, environments: EnvironmentCache) -> Verdict:
    return verify(load_spec(candidate / "dataproduct.yaml"), baseline, candidate, environments)


def test_a_build_that_never_ends_is_killed_and_reported(
    baseline: Path, environments: EnvironmentCache, tmp_path: Path
) -> None:
    """A build sleeping forever is killed at the spec's limit; the verdict says the build failed."""
    repo = _candidate(
        baseline, tmp_path, "    import time\n    time.sleep(3600)\n", build_seconds=3
    )
    verdict = _gate(baseline, repo, environments)
    build = verdict.candidate.build
    assert build is not None and build.timed_out and build.exit_code is None
    assert "the candidate's build failed" in verdict.reasons
    assert "3 s" in (build.killed_reason or "")
    assert "killed" in render_verdict(verdict).lower()


def test_a_build_that_writes_nothing_breaks_the_contract(
    baseline: Path, environments: EnvironmentCache, tmp_path: Path
) -> None:
    """Exit 0 with no output file: the contract names the missing output."""
    repo = _candidate(baseline, tmp_path, "    return EXIT_OK\n")
    verdict = _gate(baseline, repo, environments)
    assert verdict.candidate.built
    kinds = {(d.output, d.kind) for d in verdict.contract if d.level == "error"}
    assert ("daily_footfall", "output-missing") in kinds
    assert "an output breaks its contract" in verdict.reasons


def test_outputs_the_spec_does_not_name_are_a_warning(
    baseline: Path, environments: EnvironmentCache, tmp_path: Path
) -> None:
    """An extra file beside the outputs is reported by name without failing the candidate."""
    repo = _candidate(
        baseline,
        tmp_path,
        '    (args.output / "debug_dump.txt").write_text("tmp")\n',
        after="    write_csv_atomically(rows, args.output / OUTPUT_FILE)\n",
    )
    verdict = _gate(baseline, repo, environments)
    assert ("debug_dump.txt", "output-unexpected") in {(d.output, d.kind) for d in verdict.contract}
    assert verdict.publishable, verdict.reasons
    assert "debug_dump.txt" in render_verdict(verdict)
