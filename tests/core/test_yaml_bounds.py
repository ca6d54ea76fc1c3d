"""YAML alias bombs are refused, with the offending alias's line, by every YAML read."""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from specfleet.agent.guards import syntax_problem
from specfleet.core.errors import ImportFileError
from specfleet.core.registry.importfile import read_import_file
from specfleet.core.spec import check_spec_bytes
from specfleet.core.yamldoc import YamlTooLarge, safe_load_bounded
from tests.conftest import RepoFactory

Cli = Callable[..., CompletedProcess[str]]
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "specs"
VALID = (FIXTURES / "valid.yaml").read_text()


def bomb(prefix: str = "") -> str:
    """A few hundred bytes expanding to 9**9 (387 million) values."""
    lines = [prefix + "l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 10):
        refs = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"{prefix}l{level}: &l{level} [{refs}]")
    return "\n".join(lines) + "\n"


BOMB = bomb()
# the first alias that takes the expansion past the limit is on this line (1-based)
FIRST_TOO_FAR = 6


def test_spec_with_an_alias_bomb_is_refused_quickly_at_the_alias() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    check = check_spec_bytes(("spec_version: 1\n" + BOMB).encode(), "dataproduct.yaml")
    assert time.monotonic() - started < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KB
    (problem,) = check.problems
    assert "alias bomb" in problem.render()
    assert problem.line == FIRST_TOO_FAR + 1


def test_anchors_people_use_still_load() -> None:
    """A spec reusing a column via an anchor is valid: aliases are bounded, not banned."""
    text = VALID.replace(
        "      - name: customer_email\n        type: string",
        "      - &email\n        name: customer_email\n        type: string",
    )
    assert check_spec_bytes(text.encode(), "dataproduct.yaml").valid
    assert safe_load_bounded("a: &a [1, 2]\nb: *a\n", "x.yaml") == {"a": [1, 2], "b": [1, 2]}


def test_bounded_load_refuses_bombs_and_oversized_documents() -> None:
    with pytest.raises(YamlTooLarge, match=f"plan.yaml:{FIRST_TOO_FAR}:"):
        safe_load_bounded(BOMB, "plan.yaml")
    with pytest.raises(YamlTooLarge, match="at most"):
        safe_load_bounded("x: " + "y" * 2048, "plan.yaml", max_bytes=1024)


def test_edited_yaml_file_with_a_bomb_is_refused() -> None:
    reason = syntax_problem("config.yaml", BOMB)
    assert reason is not None and "alias bomb" in reason and f":{FIRST_TOO_FAR}:" in reason


def test_registry_import_file_with_a_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "products.yaml"
    path.write_text(BOMB + "products: [*l9]\n")
    with pytest.raises(ImportFileError, match="alias bomb"):
        read_import_file(path)


def test_cli_validate_and_product_add_refuse_a_bomb(
    cli: Cli, make_repo: RepoFactory, tmp_path: Path
) -> None:
    spec = tmp_path / "dataproduct.yaml"
    spec.write_text(VALID + "x-anchors:\n" + bomb("  "))
    result = cli("spec", "validate", "--json", str(spec))
    assert result.returncode == 1
    (report,) = json.loads(result.stdout)
    assert any("alias bomb" in problem["message"] for problem in report["problems"])
    repo = make_repo({"dataproduct.yaml": spec.read_text()})
    added = cli("product", "add", "--repo", str(repo))
    assert added.returncode == 1 and "alias bomb" in added.stderr
