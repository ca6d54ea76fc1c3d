"""Product environments for the worker's tests: a bare one (offline) and one with pytest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from specfleet.core.spec.model import Spec
from specfleet.worker.verify.environments import EnvironmentCache, ProductEnvironment


def make_spec(dependencies: str = "requirements.txt", runtime: str = "python3.11") -> Spec:
    """A minimal valid spec; only ``implementation`` matters to environments and the sandbox."""
    document: dict[str, Any] = {
        "spec_version": 1,
        "id": "tiny",
        "name": "Tiny product",
        "owners": ["owner@example.com"],
        "purpose": "Exercise the verification sandbox.",
        "implementation": {
            "runtime": runtime,
            "dependencies": dependencies,
            "build": "python build.py",
            "test": "pytest -q",
        },
        "outputs": [
            {
                "name": "out",
                "path": "out.csv",
                "format": "csv",
                "columns": [{"name": "id", "type": "bigint"}],
            }
        ],
    }
    return Spec.model_validate(document)


def make_product(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return path


@pytest.fixture(scope="session")
def bare_environment(tmp_path_factory: pytest.TempPathFactory) -> ProductEnvironment:
    """A venv with nothing installed: uv creates it from a local interpreter, offline."""
    product = make_product(
        tmp_path_factory.mktemp("bare-product"), {"requirements.txt": "# nothing\n"}
    )
    return EnvironmentCache(tmp_path_factory.mktemp("bare-envs")).ensure(product, make_spec())


@pytest.fixture(scope="session")
def env_with_pytest(tmp_path_factory: pytest.TempPathFactory) -> ProductEnvironment:
    """A venv with pytest pinned, installed from PyPI (mark tests using it ``network``)."""
    product = make_product(
        tmp_path_factory.mktemp("pytest-product"),
        {"requirements.txt": "pytest==8.3.3\nsix==1.16.0\n"},
    )
    return EnvironmentCache(tmp_path_factory.mktemp("pytest-envs")).ensure(product, make_spec())
