"""The distribution: one installed namespace (`specfleet.*`), every runtime import declared,
imports flowing one way, and a wheel that carries its data files."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
PACKAGE_DIRS: dict[str, str] = SETUPTOOLS["package-dir"]
LISTED = set(SETUPTOOLS["packages"])
GENERIC = ("core", "ui", "agent", "worker", "policies", "scheduler", "services", "cli", "web")


def _packages_on_disk() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for name, folder in PACKAGE_DIRS.items():
        root = REPO_ROOT / folder
        for init in root.rglob("__init__.py"):
            relative = init.parent.relative_to(root).parts
            dotted = ".".join((name, *relative))
            owner = max(
                (n for n in PACKAGE_DIRS if dotted == n or dotted.startswith(n + ".")), key=len
            )
            if owner == name:  # a mapped sub-package is listed under its own mapping
                found[dotted] = init.parent
    return found


def test_every_package_is_listed_under_the_one_namespace() -> None:
    """A new package folder that pyproject.toml does not list would be missing from the wheel."""
    on_disk = set(_packages_on_disk())
    assert on_disk - LISTED == set(), "add these to [tool.setuptools] packages"
    assert LISTED - on_disk == set(), "listed but not on disk"
    assert all(name == "specfleet" or name.startswith("specfleet.") for name in LISTED)


def test_the_design_cards_folders_stay_at_the_top_level() -> None:
    """worker/, scheduler/, agent/, policies/ are where the design card puts them."""
    for folder in ("worker", "scheduler", "agent", "policies"):
        assert PACKAGE_DIRS[f"specfleet.{folder}"] == folder


def test_no_generic_top_level_name_is_installed(tmp_path: Path) -> None:
    """Outside the checkout, only `specfleet` is importable: no `core` or `agent` of ours
    sits in site-packages to collide with another project's."""
    probe = (
        "import importlib.util, json\n"
        f"names = {list(GENERIC)!r}\n"
        "found = [n for n in names if importlib.util.find_spec(n) is not None]\n"
        "import specfleet.worker.tasks, specfleet.cli, specfleet.web.app, specfleet.core.settings\n"
        "print(json.dumps(found))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_console_script_points_into_the_namespace() -> None:
    scripts = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts.get("specfleet") == "specfleet.cli:main"
    assert (Path(sys.executable).parent / "specfleet").exists()


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _declared() -> set[str]:
    names = set()
    for requirement in PYPROJECT["project"]["dependencies"]:
        match = re.match(r"[A-Za-z0-9._-]+", requirement)
        assert match, requirement
        names.add(re.sub(r"[-_.]+", "-", match.group(0)).lower())
    return names


def test_every_runtime_import_is_declared() -> None:
    """A module imported by the installed code comes from the stdlib, from specfleet, or from a
    distribution pyproject.toml declares (directly: not by luck through another one)."""
    distributions = importlib.metadata.packages_distributions()
    declared = _declared()
    undeclared = []
    for folder in _packages_on_disk().values():
        for path in folder.glob("*.py"):
            for line, module in _imports(path):
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in ("specfleet", "__future__"):
                    continue
                owners = {re.sub(r"[-_.]+", "-", d).lower() for d in distributions.get(top, [])}
                if not owners & declared:
                    undeclared.append(f"{path.relative_to(REPO_ROOT)}:{line}: {module} {owners}")
    assert undeclared == []


LAYERS = {
    # package -> what it may not import (imports flow cli/web -> services -> worker, scheduler
    # -> agent, policies -> core)
    "specfleet.core": (
        "specfleet.cli",
        "specfleet.web",
        "specfleet.services",
        "specfleet.worker",
        "specfleet.scheduler",
        "specfleet.agent",
        "specfleet.policies",
    ),
    "specfleet.agent": (
        "specfleet.cli",
        "specfleet.web",
        "specfleet.services",
        "specfleet.worker",
        "specfleet.scheduler",
    ),
    "specfleet.policies": (
        "specfleet.cli",
        "specfleet.web",
        "specfleet.services",
        "specfleet.worker",
        "specfleet.scheduler",
    ),
    "specfleet.worker": ("specfleet.cli", "specfleet.web", "specfleet.services"),
    "specfleet.scheduler": ("specfleet.cli", "specfleet.web", "specfleet.services"),
    "specfleet.services": ("specfleet.cli", "specfleet.web"),
}


def test_imports_flow_one_way() -> None:
    """No layer imports one above it (docs/design.md, parts and layout)."""
    packages = _packages_on_disk()
    offenders = []
    for name, folder in packages.items():
        layer = next((lay for lay in LAYERS if name == lay or name.startswith(lay + ".")), None)
        if layer is None:
            continue
        for path in folder.glob("*.py"):
            for line, module in _imports(path):
                if module.startswith(LAYERS[layer]):
                    offenders.append(f"{path.relative_to(REPO_ROOT)}:{line}: {module}")
    assert offenders == []


@pytest.mark.network
def test_the_wheel_holds_the_namespace_and_its_data(tmp_path: Path) -> None:
    """A wheel (not only the editable install) carries code, policy packs, migrations,
    templates and static files, all under specfleet/."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "uv",
            "build",
            "--wheel",
            "--out-dir",
            str(tmp_path),
            str(REPO_ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("specfleet-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"specfleet"}
    for expected in (
        "specfleet/worker/tasks.py",
        "specfleet/cli/__init__.py",
        "specfleet/web/templates/base.html",
        "specfleet/core/db/migrations/env.py",
        "specfleet/agent/prompts/instructions.md",
    ):
        assert expected in names, expected
    assert any(n.startswith("specfleet/core/db/migrations/versions/0001") for n in names)
    assert any(n.startswith("specfleet/policies/pack/v2/") for n in names)
    assert any(n.startswith("specfleet/web/static/") for n in names)
