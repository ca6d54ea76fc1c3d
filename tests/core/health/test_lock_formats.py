"""Lock formats behind one interface: uv.lock, poetry.lock, Pipfile.lock (real files made by
uv, Poetry and Pipenv in tests/fixtures/locks), read with lines and Python targets, and moved
in place or by their tool, changing only the pins asked for."""

from __future__ import annotations

import difflib
import json
import shutil
import sys
from pathlib import Path

import pytest
from packaging.utils import NormalizedName, canonicalize_name

from specfleet.core.errors import DependencyFileError
from specfleet.core.health.pins import (
    discover,
    plan_rewrites,
    python_floor,
    read_pins,
    write_rewrites,
)
from specfleet.core.health.pins.compile import compile_arguments, keep_header

LOCKS = Path(__file__).resolve().parents[2] / "fixtures" / "locks"
FIXES = {canonicalize_name("pyarrow"): "14.0.1", canonicalize_name("requests"): "2.31.0"}


def copy(tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(LOCKS / name, tmp_path / name))


def versions(root: Path, named: str) -> dict[tuple[str, str | None], str | None]:
    return {(p.name, p.marker): p.version for p in read_pins(root, named).pins}


@pytest.mark.parametrize(
    ("folder", "named", "lock", "count", "python"),
    [
        ("uv", "uv.lock", "uv.lock", 29, "3.8"),
        ("uv", "pyproject.toml", "uv.lock", 29, "3.8"),  # the lock beside is what installs
        ("poetry", "poetry.lock", "poetry.lock", 15, "3.8"),
        ("pipenv", "Pipfile", "Pipfile.lock", 12, "3.11"),
        ("pipenv", "Pipfile.lock", "Pipfile.lock", 12, "3.11"),
    ],
)
def test_a_lock_is_read_with_lines_and_its_python_target(
    folder: str, named: str, lock: str, count: int, python: str
) -> None:
    pinset = read_pins(LOCKS / folder, named)
    assert (pinset.lock, pinset.lock_format, pinset.python_target) == (lock, lock, python)
    assert len(pinset.pins) == count and pinset.problems == ()
    text = (LOCKS / folder / lock).read_text().splitlines()
    for pin in pinset.pins:
        assert pin.file == lock and pin.name in canonicalize_name(text[pin.line - 1].strip('"{: '))
    requests = pinset.named("requests")
    assert [pin.version for pin in requests] == ["2.28.2"]


def test_uv_forks_keep_their_python_markers_and_intent_comes_from_pyproject() -> None:
    pinset = read_pins(LOCKS / "uv", "uv.lock")
    numpy = {pin.version: pin.marker for pin in pinset.named("numpy")}
    assert numpy["1.24.4"] == "(python_full_version < '3.9')"
    assert [(p.name, str(p.specifier)) for p in pinset.intent][:2] == [
        ("pyarrow", "==14.0.0"),
        ("requests", "<3,>=2.28"),
    ]
    assert "orders-uv" not in {pin.name for pin in pinset.pins}  # the project is no pin


def test_pipfile_lock_groups_and_markers() -> None:
    pinset = read_pins(LOCKS / "pipenv", "Pipfile.lock")
    (pytest_pin,) = pinset.named("pytest")
    assert pytest_pin.group == "develop" and pytest_pin.marker == "python_version >= '3.10'"
    assert pinset.named("requests")[0].hashes  # pipenv's hashes are kept on the pin


def test_sources_that_are_not_an_index_are_problems(tmp_path: Path) -> None:
    repo = copy(tmp_path, "pipenv")
    lock = repo / "Pipfile.lock"
    document = json.loads(lock.read_text())
    document["default"]["mylib"] = {"git": "https://example.com/mylib.git", "ref": "abc"}
    lock.write_text(json.dumps(document, indent=4, sort_keys=True) + "\n")
    pinset = read_pins(repo, "Pipfile.lock")
    assert [(p.file, p.reason) for p in pinset.problems] == [
        ("Pipfile.lock", "not a registry requirement (installed from git)")
    ]
    assert pinset.problems[0].line > 0


@pytest.mark.parametrize(("folder", "lock"), [("uv", "uv.lock"), ("poetry", "poetry.lock")])
def test_an_in_place_edit_moves_only_the_named_packages(
    tmp_path: Path, folder: str, lock: str
) -> None:
    repo = copy(tmp_path, folder)
    before_text = (repo / lock).read_text()
    before = versions(repo, lock)
    plan = plan_rewrites(repo, read_pins(repo, lock), FIXES)
    assert dict(plan.lock_changes) == FIXES
    assert {(n.name, n.kind) for n in plan.notes if n.file == lock} == {
        ("pyarrow", "lock-edited"),
        ("requests", "lock-edited"),
    }
    write_rewrites(repo, read_pins(repo, lock), FIXES, use_tools=False)
    after = versions(repo, lock)
    moved = {key for key in before if before[key] != after.get(key)}
    assert moved == {("pyarrow", None), ("requests", None)}
    assert after[("pyarrow", None)] == "14.0.1" and after[("requests", None)] == "2.31.0"
    removed = [
        line
        for line in difflib.ndiff(before_text.splitlines(), (repo / lock).read_text().splitlines())
        if line.startswith("- ")
    ]
    # what goes is the moved versions and the old releases' files, nothing of other packages
    assert all(
        "14.0.0" in line
        or "2.28.2" in line
        or line.strip() in ("- ]", "- wheels = [", "- files = [")
        for line in removed
    ), [line for line in removed if "14.0.0" not in line and "2.28.2" not in line][:5]


def test_an_unparseable_lock_is_planned_as_untouchable(tmp_path: Path) -> None:
    repo = copy(tmp_path, "poetry")
    lock = repo / "poetry.lock"
    lock.write_text(lock.read_text().replace('name = "requests"', 'name = "requests', 1))
    pinset = read_pins(repo, "poetry.lock")
    assert pinset.unreadable == ("poetry.lock",) and pinset.problems[0].line == 381
    plan = plan_rewrites(repo, pinset, FIXES)
    assert plan.lock_changes == () and plan.lock_edit is None
    assert {note.kind for note in plan.notes} == {"unreadable"}
    assert write_rewrites(repo, pinset, FIXES) == []


FAKE_UV_LOCK = """\
#!{python}
import pathlib, sys
args = sys.argv[1:]
pathlib.Path({record!r}).write_text(" ".join(args))
if {fail!r}:
    pathlib.Path("uv.lock").write_text("half written")
    print("error: Failed to fetch: `https://pypi.org/simple/requests/`", file=sys.stderr)
    sys.exit(2)
text = pathlib.Path("uv.lock").read_text()
text = text.replace('name = "requests"\\nversion = "2.28.2"', 'name = "requests"\\nversion = "2.31.0"')
pathlib.Path("uv.lock").write_text(text)
"""


def fake_uv(tmp_path: Path, *, fail: bool) -> tuple[Path, Path]:
    record = tmp_path / "uv-args.txt"
    script = tmp_path / "bin" / "uv"
    script.parent.mkdir(exist_ok=True)
    script.write_text(FAKE_UV_LOCK.format(python=sys.executable, record=str(record), fail=fail))
    script.chmod(0o755)
    return script, record


def test_uv_lock_is_moved_by_uv_itself_when_installed(tmp_path: Path) -> None:
    repo = copy(tmp_path, "uv")
    uv, record = fake_uv(tmp_path, fail=False)
    changes: dict[NormalizedName, str] = {canonicalize_name("requests"): "2.31.0"}
    written = write_rewrites(repo, read_pins(repo, "uv.lock"), changes, uv=uv)
    assert written == [repo.resolve() / "uv.lock"]
    assert record.read_text() == "lock --quiet --upgrade-package requests==2.31.0"
    assert versions(repo, "uv.lock")[("requests", None)] == "2.31.0"
    block = (repo / "uv.lock").read_text().split('name = "requests"\nversion')[1][:3000]
    assert "sha256:" in block  # uv's own output: files and hashes kept


@pytest.mark.network
def test_the_real_uv_lock_moves_only_the_asked_package(tmp_path: Path) -> None:
    """The real uv (installed with specfleet) against PyPI: requests moves to 2.31.0 with its
    own files and hashes; every other package block of the lock stays byte for byte."""
    repo = copy(tmp_path, "uv")
    uv = Path(sys.executable).parent / "uv"
    before = (repo / "uv.lock").read_text()
    changes: dict[NormalizedName, str] = {canonicalize_name("requests"): "2.31.0"}
    written = write_rewrites(repo, read_pins(repo, "uv.lock"), changes, uv=uv)
    assert written == [repo.resolve() / "uv.lock"]
    after = (repo / "uv.lock").read_text()
    assert versions(repo, "uv.lock")[("requests", None)] == "2.31.0"

    def blocks(text: str) -> dict[str, str]:
        return {b.split('"', 2)[1]: b for b in text.split("[[package]]\nname = ")[1:]}

    old, new = blocks(before), blocks(after)
    assert old.keys() == new.keys()
    assert [name for name in old if old[name] != new[name]] == ["requests"]
    assert "requests-2.31.0-py3-none-any.whl" in new["requests"] and "sha256:" in new["requests"]


def test_a_failed_uv_lock_puts_every_file_back(tmp_path: Path) -> None:
    repo = copy(tmp_path, "uv")
    before = {path.name: path.read_bytes() for path in repo.iterdir()}
    uv, _ = fake_uv(tmp_path, fail=True)
    with pytest.raises(DependencyFileError, match="uv lock failed: error: Failed to fetch"):
        write_rewrites(repo, read_pins(repo, "uv.lock"), FIXES, uv=uv)  # pyproject moves too
    assert {path.name: path.read_bytes() for path in repo.iterdir()} == before


PIP_COMPILE_LOCK = """\
#
# This file is autogenerated by pip-compile with Python 3.8
# by the following command:
#
#    pip-compile --allow-unsafe requirements.in
#
requests[socks]==2.28.2
    # via -r requirements.in
"""


def test_a_pip_compile_lock_is_recompiled_for_the_product_keeping_extras_and_header() -> None:
    header = PIP_COMPILE_LOCK.split("requests")[0]
    arguments = compile_arguments(
        PIP_COMPILE_LOCK, "requirements.in", [(canonicalize_name("requests"), "2.31.0")], "3.8"
    )
    assert arguments[:3] == ["pip", "compile", "requirements.in"]
    assert arguments[arguments.index("--python-version") + 1] == "3.8"
    assert "--no-strip-extras" in arguments
    custom = arguments[arguments.index("--custom-compile-command") + 1]
    assert custom == "pip-compile --allow-unsafe requirements.in"
    uv_output = (
        "# This file was autogenerated by uv via the following command:\n"
        f"#    {custom}\nrequests[socks]==2.31.0\n    # via -r requirements.in\n"
    )
    assert keep_header(PIP_COMPILE_LOCK, uv_output) == (
        header + "requests[socks]==2.31.0\n    # via -r requirements.in\n"
    )


def test_the_products_target_replaces_the_python_the_lock_was_last_compiled_with() -> None:
    lock = "#    uv pip compile requirements.in --python-version 3.11 -o requirements.txt\nsix==1\n"
    arguments = compile_arguments(lock, "requirements.in", [], "3.8")
    assert arguments.count("--python-version") == 1
    assert arguments[arguments.index("--python-version") + 1] == "3.8"


def test_discovery_prefers_what_is_installed(tmp_path: Path) -> None:
    assert discover(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n")
    assert discover(tmp_path) == "pyproject.toml"
    (tmp_path / "requirements-dev.txt").write_text("six==1.16.0\n")
    assert discover(tmp_path) == "pyproject.toml"
    (tmp_path / "requirements.txt").write_text("six==1.16.0\n")
    assert discover(tmp_path) == "requirements.txt"
    (tmp_path / "poetry.lock").write_text("")
    assert discover(tmp_path) == "poetry.lock"


@pytest.mark.parametrize(
    ("text", "floor"),
    [
        (">=3.8", "3.8"),
        (">=3.8,<4", "3.8"),
        ("^3.9", "3.9"),
        ("3.11", "3.11"),
        ("~=3.10", "3.10"),
        ("", None),
        ("<4", None),
    ],
)
def test_python_floor(text: str, floor: str | None) -> None:
    assert python_floor(text) == floor


def test_every_changed_pin_is_listed_direct_or_transitive(tmp_path: Path) -> None:
    """What the merge request lists: the moved pins, with lock-only ones marked transitive."""
    from specfleet.core.health.pins import pin_differences

    repo = copy(tmp_path, "uv")
    before = read_pins(repo, "uv.lock")
    changes = {**FIXES, canonicalize_name("certifi"): "2026.1.1"}
    write_rewrites(repo, before, changes, use_tools=False)
    moved = pin_differences(before, read_pins(repo, "uv.lock"))
    assert [(d.name, d.old, d.new, d.direct) for d in moved] == [
        ("certifi", "2026.10.19.post1", "2026.1.1", False),
        ("pyarrow", "14.0.0", "14.0.1", True),
        ("requests", "2.28.2", "2.31.0", True),
    ]
