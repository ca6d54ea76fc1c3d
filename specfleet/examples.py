"""Turn the example data products under ``examples/`` into real git repositories.

The examples ship as plain folders so they can be read and edited in this repository; a
product, though, is a repository with history. This makes one repository per example (one
commit on ``main``, or on the branch :data:`DEFAULT_BRANCHES` names) and a registration file
listing them, ready for ``product import``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import git
import yaml

from specfleet.core.errors import InputError
from specfleet.core.spec import load_spec

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
IGNORED = shutil.ignore_patterns("__pycache__", ".pytest_cache", "out", "*.pyc", ".venv")
AUTHOR = git.Actor("specfleet examples", "examples@specfleet.invalid")
# Real repositories do not all call their default branch main; this example's story is one
# that does not (product add asks the repository, the fleet file names it).
DEFAULT_BRANCHES = {"shop_marts": "trunk"}


@dataclass(frozen=True)
class ExampleRepo:
    product_id: str
    path: Path
    created: bool
    branch: str = "main"


def example_dirs(source: Path = EXAMPLES_DIR) -> list[Path]:
    if not source.is_dir():
        raise InputError(f"{source}: no examples directory (run from a specfleet checkout)")
    return sorted(path.parent for path in source.glob("*/dataproduct.yaml"))


def materialise_examples(target: Path, source: Path = EXAMPLES_DIR) -> list[ExampleRepo]:
    """One git repository per example under ``target``; existing ones are left as they are."""
    repos = []
    for example in example_dirs(source):
        spec = load_spec(example / "dataproduct.yaml")
        path = target / spec.id
        created = not (path / ".git").exists()
        if created:
            if path.exists():
                shutil.rmtree(path)
            shutil.copytree(example, path, ignore=IGNORED)
            repo = git.Repo.init(path, initial_branch=DEFAULT_BRANCHES.get(spec.id, "main"))
            repo.git.add(A=True)
            repo.index.commit(
                f"{spec.name}: initial import of the example", author=AUTHOR, committer=AUTHOR
            )
            repo.close()
        repos.append(ExampleRepo(spec.id, path, created, DEFAULT_BRANCHES.get(spec.id, "main")))
    return repos


def write_fleet_file(target: Path, repos: list[ExampleRepo]) -> Path:
    fleet = target / "fleet.yaml"
    rows = [{"repo": str(repo.path), "branch": repo.branch, "tags": ["example"]} for repo in repos]
    fleet.write_text(
        "# Registration file for `specfleet product import`, written by `specfleet examples init`\n"
        + yaml.safe_dump({"products": rows}, sort_keys=False)
    )
    return fleet
