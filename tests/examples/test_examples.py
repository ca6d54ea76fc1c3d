"""The bundled examples are real products: valid specs that build and pass their own tests."""

from __future__ import annotations

import ast
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from specfleet.core.spec import Spec, load_spec
from specfleet.core.spec.layout import builds_in_checkout
from tests.conftest import EXAMPLES
from specfleet.worker.verify.environments import local_interpreter, pyenv_versions

EXAMPLE_DIRS = sorted(path.parent for path in EXAMPLES.glob("*/dataproduct.yaml"))
UV = str(Path(sys.executable).with_name("uv"))


def test_there_are_four_examples_and_their_specs_are_valid() -> None:
    """orders, customer_revenue, store_footfall and the dbt project shop_marts ship, and
    each spec loads."""
    ids = {load_spec(path / "dataproduct.yaml").id for path in EXAMPLE_DIRS}
    assert ids == {"orders", "customer_revenue", "store_footfall", "shop_marts"}


@pytest.mark.parametrize("example", EXAMPLE_DIRS, ids=lambda path: path.name)
def test_specs_use_every_section(example: Path) -> None:
    """Every example exercises the whole format, amendments with a why included."""
    spec = load_spec(example / "dataproduct.yaml")
    assert spec.inputs and spec.outputs and spec.failure_modes
    assert spec.requirements and len(spec.amendments) >= 2
    assert spec.constraints.freshness is not None
    assert all(amendment.why.strip() for amendment in spec.amendments)
    columns = [column for output in spec.outputs for column in output.columns]
    assert all(column.description and column.why for column in columns)
    assert any(column.pii for column in columns)
    for item in spec.inputs:
        assert (example / item.fixture).is_file(), item.fixture


@pytest.mark.parametrize("example", EXAMPLE_DIRS, ids=lambda path: path.name)
def test_every_requirement_names_tests_that_exist(example: Path) -> None:
    """Each requirement's tests are real test functions in the example's repository."""
    spec = load_spec(example / "dataproduct.yaml")
    for requirement in spec.requirements:
        assert requirement.tests, f"{requirement.id} names no test"
        for node_id in requirement.tests:
            file, _, name = node_id.partition("::")
            tree = ast.parse((example / file).read_text())
            defined = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
            assert name.split("[")[0] in defined, f"{requirement.id}: {node_id} does not exist"


def test_orders_carries_the_pins_of_the_story() -> None:
    """orders pins pandas 1.5.3 and pins with known advisories (the story from the field)."""
    pins = (EXAMPLES / "orders" / "requirements.txt").read_text()
    assert "pandas==1.5.3" in pins and "pyarrow==14.0.0" in pins and "requests==2.28.2" in pins
    advisories = Path(__file__).resolve().parents[3] / "shared" / "data" / "advisory-database"
    if advisories.is_dir():  # the shared snapshot beside the checkout, where present
        assert (advisories / "vulns" / "pyarrow" / "PYSEC-2023-238.yaml").is_file()


@pytest.fixture(scope="module")
def product_envs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One uv virtualenv per example, from its pinned requirements (uv caches the wheels)."""
    root = tmp_path_factory.mktemp("envs")
    envs = {}
    for example in EXAMPLE_DIRS:
        spec = load_spec(example / "dataproduct.yaml")
        env = root / spec.id
        python_version = spec.implementation.runtime.removeprefix("python")
        interpreter = local_interpreter(python_version, pyenv_versions()) or python_version
        subprocess.run([UV, "venv", "-q", "-p", str(interpreter), str(env)], check=True)
        # requirements.in is installed from the lock pip-compile wrote beside it
        pins = (example / spec.implementation.dependencies).with_suffix(".txt")
        subprocess.run(
            [UV, "pip", "install", "-q", "-p", str(env / "bin" / "python"), "-r", str(pins)],
            check=True,
            timeout=600,
        )
        envs[spec.id] = env
    return envs


def run_in_env(env: Path, command: str, cwd: Path, timeout: int) -> subprocess.CompletedProcess[str]:
    path = f"{env / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    clean = {"PATH": path, "HOME": str(cwd), "LANG": "C.UTF-8", "VIRTUAL_ENV": str(env)}
    return subprocess.run(
        shlex.split(command), cwd=cwd, env=clean, capture_output=True, text=True, timeout=timeout
    )


def stage_inputs(spec: Spec, repo: Path, inputs: Path) -> None:
    inputs.mkdir()
    for item in spec.inputs:
        shutil.copy(repo / item.fixture, inputs / f"{item.name}.{item.format}")


def build_command(spec: Spec, inputs: Path, outputs: Path) -> str:
    return spec.implementation.build.format(inputs=inputs, outputs=outputs)


@pytest.mark.network
@pytest.mark.parametrize("example", EXAMPLE_DIRS, ids=lambda path: path.name)
def test_example_builds_passes_its_tests_and_fails_as_specified(
    example: Path, product_envs: dict[str, Path], tmp_path: Path
) -> None:
    """In its own virtualenv each example builds every output, passes its tests, and each
    failure mode ends with the exit code and message its spec promises, leaving no output."""
    spec = load_spec(example / "dataproduct.yaml")
    env = product_envs[spec.id]
    repo = tmp_path / "repo"
    shutil.copytree(example, repo, ignore=shutil.ignore_patterns("__pycache__"))
    limit = spec.constraints.max_build_seconds

    if builds_in_checkout(spec):  # dbt: seeds in the repository, outputs beside it
        check_checkout_build(spec, env, example, repo, tmp_path, limit)
        return
    stage_inputs(spec, repo, tmp_path / "inputs")
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    built = run_in_env(env, build_command(spec, tmp_path / "inputs", outputs), repo, limit)
    assert built.returncode == 0, built.stderr
    for output in spec.outputs:
        assert (outputs / output.path).is_file(), f"{output.name} was not written"

    assert spec.implementation.test is not None
    tested = run_in_env(env, spec.implementation.test, repo, limit)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert " passed" in tested.stdout and " failed" not in tested.stdout

    for mode in spec.failure_modes:
        inputs = tmp_path / f"inputs-{mode.id}"
        stage_inputs(spec, repo, inputs)
        target = next(item for item in spec.inputs if item.name == mode.when.input_name)
        staged = inputs / f"{target.name}.{target.format}"
        if mode.when.input_missing:
            staged.unlink()
        else:
            staged.write_bytes(b"")
        failed_outputs = tmp_path / f"outputs-{mode.id}"
        failed_outputs.mkdir()
        result = run_in_env(env, build_command(spec, inputs, failed_outputs), repo, limit)
        assert result.returncode == mode.expect.exit_code, (mode.id, result.stderr)
        if mode.expect.stderr_contains:
            assert mode.expect.stderr_contains in result.stderr, (mode.id, result.stderr)
        if mode.expect.no_outputs:
            assert list(failed_outputs.iterdir()) == [], f"{mode.id} left outputs behind"


def check_checkout_build(
    spec: Spec, env: Path, example: Path, repo: Path, tmp_path: Path, limit: int
) -> None:
    """A build that works in its checkout: outputs at their paths, tests pass, and each
    failure mode (run in a fresh copy with the input removed) fails as promised."""
    built = run_in_env(env, spec.implementation.build, repo, limit)
    assert built.returncode == 0, built.stdout[-3000:]
    for output in spec.outputs:
        assert (repo / output.path).is_file(), f"{output.name} was not written"
    assert spec.implementation.test is not None
    tested = run_in_env(env, spec.implementation.test, repo, limit)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    for mode in spec.failure_modes:
        copy = Path(shutil.copytree(example, tmp_path / f"mode-{mode.id}"))
        target = next(item for item in spec.inputs if item.name == mode.when.input_name)
        if mode.when.input_missing:
            (copy / target.fixture).unlink()
        else:
            (copy / target.fixture).write_bytes(b"")
        result = run_in_env(env, spec.implementation.build, copy, limit)
        assert result.returncode == mode.expect.exit_code, (mode.id, result.stdout[-2000:])
        if mode.expect.no_outputs:
            assert not any((copy / output.path).exists() for output in spec.outputs)
