"""The distribution: our top-level packages are ours, the console script is installed."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
OUR_PACKAGES = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]


def test_top_level_packages_are_the_design_layout() -> None:
    """The wheel ships exactly the packages DESIGN.md names."""
    assert sorted(OUR_PACKAGES) == [
        "agent",
        "core",
        "policies",
        "scheduler",
        "services",
        "ui",
        "worker",
    ]


def test_no_installed_distribution_claims_our_package_names() -> None:
    """Names like core and ui are generic: no other installed distribution may provide them."""
    claimed = importlib.metadata.packages_distributions()
    for name in OUR_PACKAGES:
        others = sorted(set(claimed.get(name, [])) - {"specfleet"})
        assert not others, f"top-level package {name!r} is also provided by {others}"


def test_our_package_names_import_from_this_checkout() -> None:
    """Each top-level name resolves to this repository, not to something on sys.path first."""
    for name in OUR_PACKAGES:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None, name
        assert Path(spec.origin).resolve().is_relative_to(REPO_ROOT), (name, spec.origin)


def test_console_script_is_installed() -> None:
    """`specfleet` is installed beside the interpreter and points at the CLI."""
    scripts = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts.get("specfleet") == "ui.cli:main"
    assert (Path(sys.executable).parent / "specfleet").exists()


def test_imports_flow_one_way() -> None:
    """core imports no other package of this repository (DESIGN.md section 2)."""
    offenders = []
    for path in (REPO_ROOT / "core").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            stripped = line.strip()
            for other in ("agent", "policies", "worker", "scheduler", "services", "ui"):
                if stripped.startswith((f"import {other}", f"from {other}.", f"from {other} ")):
                    offenders.append(f"{path.relative_to(REPO_ROOT)}:{number}: {stripped}")
    assert offenders == []
