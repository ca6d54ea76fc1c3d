"""``specfleet spec init``: read a repository (dbt project) or an ODCS contract into a Draft.

The I/O half of :mod:`specfleet.core.spec.draft`: finds ``dbt_project.yml``, ``profiles.yml``, the
``schema.yml`` files under the model paths, seeds, the dependency file, and the DuckDB file
when a build already ran; every YAML read is bounded (alias bombs refused).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from specfleet.core.errors import InputError
from specfleet.core.spec.draft import (
    Draft,
    DraftInput,
    dbt_outputs,
    odcs_outputs,
    odcs_owners,
    product_id,
    render_draft,
)
from specfleet.core.yamldoc import YamlTooLarge, safe_load_bounded

MAX_FILES = 200


def _yaml(path: Path) -> Any:
    try:
        return safe_load_bounded(path.read_bytes(), str(path))
    except YamlTooLarge as error:
        raise InputError(error.problem.render()) from None
    except Exception as error:  # a syntax error in the user's file: say where
        raise InputError(f"{path}: cannot read YAML: {error}") from None


def _dependencies(root: Path) -> str:
    for name in ("requirements.in", "requirements.txt", "pyproject.toml"):
        if (root / name).is_file():
            return name
    return "requirements.txt"


def _runtime(root: Path) -> str:
    """python3.N from the pip-compile header or .python-version; python3.11 when unsaid."""
    for name, pattern in (
        ("requirements.txt", r"pip-compile with Python (3\.\d+)"),
        (".python-version", r"^(3\.\d+)"),
    ):
        path = root / name
        if path.is_file():
            match = re.search(pattern, path.read_text(errors="replace")[:2000], re.MULTILINE)
            if match:
                return f"python{match.group(1)}"
    return "python3.11"


def _duckdb_path(root: Path, profile: str | None) -> str | None:
    profiles = root / "profiles.yml"
    if not profiles.is_file():
        return None
    document = _yaml(profiles)
    if not isinstance(document, dict):
        return None
    chosen = document.get(profile) if profile in document else next(iter(document.values()), None)
    if not isinstance(chosen, dict):
        return None
    targets = chosen.get("outputs") or {}
    target = targets.get(chosen.get("target")) if isinstance(targets, dict) else None
    if isinstance(target, dict) and target.get("type") == "duckdb":
        path = target.get("path")
        if isinstance(path, str) and not path.startswith("/") and ".." not in path:
            return path.removeprefix("./")
    return None


def _built_types(database: Path) -> dict[str, dict[str, str]]:
    """Column types of every table in a DuckDB file a build already wrote (read-only)."""
    if not database.is_file():
        return {}
    import duckdb

    try:
        connection = duckdb.connect(str(database), read_only=True)
    except duckdb.Error:
        return {}
    try:
        rows = connection.execute(
            "select table_name, column_name, data_type from information_schema.columns"
        ).fetchall()
    finally:
        connection.close()
    types: dict[str, dict[str, str]] = {}
    for table, column, data_type in rows:
        types.setdefault(table, {})[column] = data_type
    return types


def draft_from_dbt(root: Path) -> Draft:
    project_file = root / "dbt_project.yml"
    if not project_file.is_file():
        raise InputError(f"{root}: no dbt_project.yml (spec init drafts from dbt projects)")
    project = _yaml(project_file)
    if not isinstance(project, dict):
        raise InputError(f"{project_file}: expected a mapping")
    name = str(project.get("name") or root.name)
    model_paths = project.get("model-paths") or ["models"]
    seed_paths = project.get("seed-paths") or ["seeds"]
    documents = []
    for folder in model_paths:
        for path in sorted((root / str(folder)).rglob("*.yml"))[:MAX_FILES]:
            document = _yaml(path)
            if isinstance(document, dict) and document.get("models"):
                documents.append(document)
    duckdb_path = _duckdb_path(root, project.get("profile"))
    built = _built_types(root / duckdb_path) if duckdb_path else {}
    marts = _marts(root, model_paths)
    outputs = dbt_outputs(documents, duckdb_path, built, marts or None)
    if not outputs:
        raise InputError(f"{root}: no documented models with columns in a schema.yml")
    inputs = [
        DraftInput(product_id(path.stem), "csv", str(path.relative_to(root)))
        for folder in seed_paths
        for path in sorted((root / str(folder)).rglob("*.csv"))[:MAX_FILES]
    ]
    profiles = " --profiles-dir ." if (root / "profiles.yml").is_file() else ""
    tests = root / "tests"
    return Draft(
        id=product_id(name),
        name=name.replace("_", " ").capitalize(),
        purpose=None,
        owners=[],
        runtime=_runtime(root),
        dependencies=_dependencies(root),
        build=f"dbt build{profiles}",
        test="pytest -q" if tests.is_dir() and any(tests.glob("test_*.py")) else None,
        inputs=inputs,
        outputs=outputs,
        source="the dbt project (dbt_project.yml, schema.yml"
        + (", the built DuckDB file)" if built else ")"),
    )


def _marts(root: Path, model_paths: list[Any]) -> set[str]:
    """Models materialised as tables in SQL config blocks; empty when none say so."""
    found = set()
    for folder in model_paths:
        for path in (root / str(folder)).rglob("*.sql"):
            if re.search(r"materialized\s*=\s*['\"]table['\"]", path.read_text(errors="replace")):
                found.add(path.stem)
    return found


def draft_from_odcs(contract_file: Path, root: Path) -> Draft:
    contract = _yaml(contract_file)
    if not isinstance(contract, dict) or not contract.get("schema"):
        raise InputError(f"{contract_file}: not an ODCS data contract (no 'schema' list)")
    outputs = odcs_outputs(contract)
    description = contract.get("description")
    purpose = description.get("purpose") if isinstance(description, dict) else description
    name = str(contract.get("name") or contract.get("id") or root.name)
    return Draft(
        id=product_id(str(contract.get("id") or name)),
        name=name,
        purpose=purpose if isinstance(purpose, str) and purpose.strip() else None,
        owners=odcs_owners(contract),
        runtime=_runtime(root),
        dependencies=_dependencies(root),
        build="python -m pipeline.build --input {inputs} --output {outputs}",
        test=None,
        inputs=[],
        outputs=outputs,
        source=f"the ODCS data contract {contract_file.name}",
    )


def init_text(root: Path, odcs: Path | None = None) -> str:
    draft = draft_from_odcs(odcs, root) if odcs is not None else draft_from_dbt(root)
    return render_draft(draft)
