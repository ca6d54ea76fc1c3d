"""Reading a product's dependency files into pins, and rewriting them byte for byte."""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from packaging.utils import NormalizedName, canonicalize_name

from specfleet.core.errors import DependencyFileError, InputError
from specfleet.core.health.pins import (
    NOT_REGISTRY,
    PinSet,
    plan_rewrites,
    read_pins,
    rewrite_pins,
    uv_executable,
    write_rewrites,
)
from specfleet.core.health.pins import files as pins_module
from tests.conftest import EXAMPLES


def files(root: Path, contents: dict[str, str | bytes]) -> Path:
    for relative, content in contents.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_bytes(content.encode())
    return root


def summary(pinset: PinSet) -> list[tuple[str, str, str, int]]:
    return [(p.name, str(p.specifier), p.file, p.line) for p in pinset.pins]


def problems(pinset: PinSet) -> list[tuple[str, int, str]]:
    return [(p.file, p.line, p.reason) for p in pinset.problems]


def changes(**versions: str) -> dict[NormalizedName, str]:
    return {canonicalize_name(name): version for name, version in versions.items()}


# --------------------------------------------------------------------------------------------
# requirements.txt syntax

PARSE_CASES = [
    ("exact pin", "pandas==1.5.3\n", [("pandas", "==1.5.3", 1)]),
    (
        "comments, blank lines and trailing comments",
        "# runtime\n\nnumpy==1.24.4  # pandas 1.5 needs numpy 1\n   # indented comment\n",
        [("numpy", "==1.24.4", 3)],
    ),
    (
        "a continuation joins lines and counts from the first",
        "# head\npyarrow\\\n==14.0.0\nsix==1.16.0\n",
        [("pyarrow", "==14.0.0", 2), ("six", "==1.16.0", 4)],
    ),
    ("a range", "requests>=2.0,<3\n", [("requests", "<3,>=2.0", 1)]),
    ("spaces inside the specifier", "requests >= 2.0 , < 3\n", [("requests", "<3,>=2.0", 1)]),
    ("an unversioned requirement", "pytest\n", [("pytest", "", 1)]),
    ("arbitrary equality", "legacy===1.0-custom\n", [("legacy", "===1.0-custom", 1)]),
    ("names are canonical", "Foo_Bar.Baz==1.0\n", [("foo-bar-baz", "==1.0", 1)]),
    ("a byte-order mark", "\ufeffsix==1.16.0\n", [("six", "==1.16.0", 1)]),
    (
        "CRLF line endings",
        "six==1.16.0\r\nidna==3.6\r\n",
        [("six", "==1.16.0", 1), ("idna", "==3.6", 2)],
    ),
    (
        "index and other file options are not pins",
        "-i https://pypi.org/simple\n--pre\n--only-binary :all:\nsix==1.16.0\n",
        [("six", "==1.16.0", 4)],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in PARSE_CASES], ids=[c[0] for c in PARSE_CASES]
)
def test_requirements_syntax(
    tmp_path: Path, text: str, expected: list[tuple[str, str, int]]
) -> None:
    """Each requirements-file construct yields the pins pip would see, at the right line."""
    files(tmp_path, {"requirements.txt": text})
    result = read_pins(tmp_path, "requirements.txt")
    assert [(p.name, str(p.specifier), p.line) for p in result.pins] == expected
    if expected:
        assert result.problems == ()


def test_markers_extras_and_hashes_are_kept_on_the_pin(tmp_path: Path) -> None:
    """A pin carries its extras, marker, raw text and hash values."""
    files(
        tmp_path,
        {
            "requirements.txt": (
                'pandas[Performance,parquet]==1.5.3 ; python_version < "3.12"\n'
                "six==1.16.0 \\\n"
                "    --hash=sha256:aaa \\\n"
                "    --hash sha256:bbb\n"
            )
        },
    )
    pandas, six = read_pins(tmp_path, "requirements.txt").pins
    assert pandas.extras == ("parquet", "performance")
    assert pandas.marker == 'python_version < "3.12"'
    assert pandas.raw == 'pandas[Performance,parquet]==1.5.3 ; python_version < "3.12"'
    assert pandas.version == "1.5.3"
    assert (six.line, six.hashes, six.version) == (2, ("sha256:aaa", "sha256:bbb"), "1.16.0")


PROBLEM_CASES = [
    ("unparseable", "pandas==\n", "Expected"),
    ("bad marker", "six==1.0; python_version <> '3'\n", "Expected"),
    ("editable", "-e ./lib\n", f"{NOT_REGISTRY} (editable)"),
    ("local path", "./vendor/pkg\n", NOT_REGISTRY),
    ("archive", "pkg-1.0-py3-none-any.whl\n", NOT_REGISTRY),
    ("VCS URL", "git+https://github.com/org/pkg.git#egg=pkg\n", NOT_REGISTRY),
    ("direct reference", "pkg @ https://example.com/pkg-1.0.tar.gz\n", NOT_REGISTRY),
    ("unknown option", "--frobnicate\n", "option --frobnicate is not supported"),
    ("option missing its value", "-r\n", "option --requirement needs a value"),
    ("file option after a requirement", "six==1.0 --pre\n", "option --pre is not supported after"),
    ("a '#' without a space before is no comment", "six==1.16.0#x\n", "Expected"),
    ("unbalanced quote", "six==1.0 --hash='sha256:a\n", "cannot split the options"),
]


@pytest.mark.parametrize(
    ("text", "reason"), [c[1:] for c in PROBLEM_CASES], ids=[c[0] for c in PROBLEM_CASES]
)
def test_bad_lines_are_problems_and_the_rest_still_parses(
    tmp_path: Path, text: str, reason: str
) -> None:
    """A line pip would refuse, or a non-registry requirement, is a located problem; others count."""
    files(tmp_path, {"requirements.txt": "idna==3.6\n" + text + "six==1.16.0\n"})
    result = read_pins(tmp_path, "requirements.txt")
    assert summary(result) == [
        ("idna", "==3.6", "requirements.txt", 1),
        ("six", "==1.16.0", "requirements.txt", 3),
    ]
    (problem,) = result.problems
    assert (problem.file, problem.line, problem.text) == ("requirements.txt", 2, text.strip())
    assert reason in problem.reason


def test_includes_are_read_relative_to_the_including_file(tmp_path: Path) -> None:
    """-r / --requirement= follow nested files; pins name the file that declares them."""
    files(
        tmp_path,
        {
            "requirements.txt": "-r deps/base.txt\nsix==1.16.0\n",
            "deps/base.txt": "# base\n--requirement=extra/more.txt\nidna==3.6\n",
            "deps/extra/more.txt": "certifi==2024.2.2\n",
        },
    )
    result = read_pins(tmp_path, "requirements.txt")
    assert summary(result) == [
        ("certifi", "==2024.2.2", "deps/extra/more.txt", 1),
        ("idna", "==3.6", "deps/base.txt", 3),
        ("six", "==1.16.0", "requirements.txt", 2),
    ]
    assert result.files == ("requirements.txt", "deps/base.txt", "deps/extra/more.txt")
    assert result.problems == ()
    assert result.direct == {"certifi", "idna", "six"}
    assert [p.file for p in result.named("SIX")] == ["requirements.txt"]


def test_an_include_cycle_is_reported_once_and_reading_goes_on(tmp_path: Path) -> None:
    """a -> b -> a is a problem at the line closing the cycle; each file's pins count once."""
    files(tmp_path, {"a.txt": "-r b.txt\nsix==1.16.0\n", "b.txt": "idna==3.6\n-r a.txt\n"})
    result = read_pins(tmp_path, "a.txt")
    assert [p.name for p in result.pins] == ["idna", "six"]
    assert problems(result) == [("b.txt", 2, "include cycle: a.txt -> b.txt -> a.txt")]


def test_a_file_included_twice_is_read_once(tmp_path: Path) -> None:
    """Two files including the same base do not duplicate its pins."""
    files(
        tmp_path,
        {
            "r.txt": "-r x.txt\n-r y.txt\n",
            "x.txt": "-r base.txt\n",
            "y.txt": "-r base.txt\n",
            "base.txt": "six==1.16.0\n",
        },
    )
    result = read_pins(tmp_path, "r.txt")
    assert summary(result) == [("six", "==1.16.0", "base.txt", 1)]
    assert result.problems == ()


@pytest.mark.parametrize(
    "include", ["../outside.txt", "sub/../../outside.txt", "/etc/hostname", "link.txt"]
)
def test_an_include_leaving_the_repository_is_not_followed(tmp_path: Path, include: str) -> None:
    """An include outside the repository (.., absolute, symlink) is a problem and not read."""
    repo = tmp_path / "repo"
    files(tmp_path, {"outside.txt": "evil==6.6.6\n"})
    files(repo, {"requirements.txt": f"-r {include}\nsix==1.16.0\n", "sub/.keep": ""})
    (repo / "link.txt").symlink_to(tmp_path / "outside.txt")
    result = read_pins(repo, "requirements.txt")
    assert [p.name for p in result.pins] == ["six"]
    assert problems(result) == [
        ("requirements.txt", 1, f"the include {include} is outside the repository")
    ]


def test_a_missing_include_is_a_problem(tmp_path: Path) -> None:
    """An include naming no file is reported where it is written."""
    files(tmp_path, {"requirements.txt": "six==1.16.0\n-r nope.txt\n"})
    result = read_pins(tmp_path, "requirements.txt")
    assert problems(result) == [
        ("requirements.txt", 2, "the included file nope.txt does not exist")
    ]
    assert [p.name for p in result.pins] == ["six"]


def test_constraints_are_kept_apart_from_pins(tmp_path: Path) -> None:
    """-c lines bound versions but install nothing: they are constraints, not pins."""
    files(
        tmp_path,
        {
            "requirements.txt": "-c constraints.txt\nrequests\n",
            "constraints.txt": "urllib3<2\nrequests==2.31.0\n",
        },
    )
    result = read_pins(tmp_path, "requirements.txt")
    assert summary(result) == [("requests", "", "requirements.txt", 2)]
    assert [(c.name, str(c.specifier), c.file, c.line) for c in result.constraints] == [
        ("urllib3", "<2", "constraints.txt", 1),
        ("requests", "==2.31.0", "constraints.txt", 2),
    ]


def test_index_urls_are_recorded_without_credentials(tmp_path: Path) -> None:
    """Private indexes are visible to the report, the tokens in their URLs are not."""
    files(
        tmp_path,
        {
            "requirements.txt": (
                "-i https://ci:s3cr3t@pkgs.internal/simple\n"
                "--extra-index-url=https://pypi.org/simple\n-f ./wheels\nsix==1.16.0\n"
            )
        },
    )
    result = read_pins(tmp_path, "requirements.txt")
    assert result.indexes == ("https://pkgs.internal/simple", "https://pypi.org/simple", "./wheels")


@pytest.mark.parametrize("named", ["missing.txt", "../requirements.txt", "/etc/passwd"])
def test_the_named_file_must_exist_inside_the_repository(tmp_path: Path, named: str) -> None:
    """A missing or escaping dependencies path is an InputError naming it."""
    files(tmp_path, {"requirements.txt": "six\n", "repo/.keep": ""})
    with pytest.raises(DependencyFileError, match=named.replace(".", r"\.")) as raised:
        read_pins(tmp_path / "repo", named)
    assert isinstance(raised.value, InputError)


def test_a_file_that_is_not_utf8_is_a_problem(tmp_path: Path) -> None:
    """Undecodable bytes are reported, not raised, so the rest of the report is produced."""
    files(tmp_path, {"requirements.txt": b"six==1.16.0\n\xff\xfe\n"})
    assert problems(read_pins(tmp_path, "requirements.txt")) == [
        ("requirements.txt", 0, "the file is not UTF-8 text")
    ]


# --------------------------------------------------------------------------------------------
# pyproject.toml

PYPROJECT = textwrap.dedent(
    """\
    [build-system]
    requires = ["hatchling"]

    [project]
    name = "Orders"
    description = "[project.dependencies] in a string does not confuse the reader"
    dependencies = [
      # runtime
      "pandas[parquet]==1.5.3",
      'numpy >= 1.24, < 2 ; python_version < "3.12"',
      "pkg @ https://example.com/pkg.tar.gz",
      "not a requirement!",
    ]

    [project.optional-dependencies]
    test = ["pytest==7.4.4", "orders[extra]"]
    "docs" = [
        "mkdocs~=1.5",  # site
    ]

    [tool.other]
    dependencies = ["ignored==1.0"]
    """
)


def test_pyproject_dependencies_and_optional_groups(tmp_path: Path) -> None:
    """[project.dependencies] and each optional group are read with lines; others are not."""
    files(tmp_path, {"pyproject.toml": PYPROJECT})
    result = read_pins(tmp_path, "pyproject.toml")
    assert [(p.name, str(p.specifier), p.line, p.group) for p in result.pins] == [
        ("pandas", "==1.5.3", 9, None),
        ("numpy", "<2,>=1.24", 10, None),
        ("pytest", "==7.4.4", 16, "test"),
        ("mkdocs", "~=1.5", 18, "docs"),
    ]
    url, unparseable = result.problems
    assert (url.line, url.text) == (11, "pkg @ https://example.com/pkg.tar.gz")
    assert url.reason.startswith(NOT_REGISTRY)
    assert (unparseable.line, unparseable.text) == (12, "not a requirement!")
    assert unparseable.reason.startswith("Expected")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[project\nname = 'x'\n", "not valid TOML"),
        ("[tool.x]\n", "there is no [project] table"),
        ("[project]\nname = 'x'\ndynamic = ['dependencies']\n", "dependencies are dynamic"),
        ("[project]\nname = 'x'\ndependencies = 'six'\n", "dependencies is not a list"),
    ],
)
def test_unusable_pyproject_is_a_problem(tmp_path: Path, text: str, reason: str) -> None:
    """A pyproject without readable dependencies is reported, not raised."""
    files(tmp_path, {"pyproject.toml": text})
    result = read_pins(tmp_path, "pyproject.toml")
    assert result.pins == ()
    (problem,) = result.problems
    assert reason in problem.reason


# --------------------------------------------------------------------------------------------
# requirements.in + compiled lock

LOCK = textwrap.dedent(
    """\
    # This file was autogenerated by uv via the following command:
    #    uv pip compile requirements.in -o requirements.txt
    certifi==2024.2.2
        # via requests
    requests==2.31.0
        # via -r requirements.in
    six==1.16.0
        # via -r requirements.in
    """
)


@pytest.mark.parametrize("named", ["requirements.in", "requirements.txt"])
def test_a_compiled_lock_gives_the_pins_and_the_in_the_intent(tmp_path: Path, named: str) -> None:
    """Pins come from the lock (what runs); the .in's requirements are the direct intent."""
    files(tmp_path, {"requirements.in": "requests>=2\nsix\n", "requirements.txt": LOCK})
    result = read_pins(tmp_path, named)
    assert result.lock == "requirements.txt"
    assert [(p.name, p.version, p.line) for p in result.pins] == [
        ("certifi", "2024.2.2", 3),
        ("requests", "2.31.0", 5),
        ("six", "1.16.0", 7),
    ]
    assert [p.name for p in result.intent] == ["requests", "six"]
    assert result.direct == {"requests", "six"}
    assert result.files == ("requirements.in", "requirements.txt")


def test_a_hand_written_txt_beside_an_in_is_not_a_lock(tmp_path: Path) -> None:
    """Without an "autogenerated" header the named requirements.txt is read as it is."""
    files(tmp_path, {"requirements.in": "six\n", "requirements.txt": "six==1.16.0\n"})
    result = read_pins(tmp_path, "requirements.txt")
    assert (result.lock, result.intent, result.files) == (None, (), ("requirements.txt",))


def test_a_missing_lock_falls_back_to_the_in(tmp_path: Path) -> None:
    """An .in without its compiled lock is a problem; the .in's requirements are the pins."""
    files(tmp_path, {"deps/requirements.in": "six==1.16.0\n"})
    result = read_pins(tmp_path, "deps/requirements.in")
    assert result.lock is None
    assert summary(result) == [("six", "==1.16.0", "deps/requirements.in", 1)]
    assert [(p.file, p.line) for p in result.problems] == [("deps/requirements.txt", 0)]
    assert "missing" in result.problems[0].reason


# --------------------------------------------------------------------------------------------
# rewriting text


def test_the_orders_example_differs_only_on_the_changed_pins() -> None:
    """Rewriting two pins of examples/orders changes exactly those two lines."""
    original = (EXAMPLES / "orders" / "requirements.txt").read_bytes().decode()
    rewrite = rewrite_pins(original, "requirements", changes(pyarrow="14.0.1", requests="2.31.0"))
    diff = [
        line
        for line in difflib.unified_diff(
            original.splitlines(True), rewrite.text.splitlines(True), n=0
        )
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert diff == [
        "-pyarrow==14.0.0\n",
        "+pyarrow==14.0.1\n",
        "-requests==2.28.2\n",
        "+requests==2.31.0\n",
    ]
    assert [(c.name, c.line, c.old, c.new) for c in rewrite.changed] == [
        ("pyarrow", 9, "==14.0.0", "==14.0.1"),
        ("requests", 12, "==2.28.2", "==2.31.0"),
    ]
    assert rewrite.notes == ()


def test_a_rewrite_keeps_every_other_byte() -> None:
    """Comments, spacing, extras, markers, === and CRLF endings survive a rewrite."""
    original = (
        "# top comment\r\n"
        "\r\n"
        'Pandas[parquet] == 1.5.3 ; python_version < "3.12"   # why pinned\r\n'
        "legacy===1.0  # arbitrary\r\n"
        "numpy==1.24.4\r\n"
        "numpy==1.24.4 ; sys_platform == 'win32'\r\n"
        "  idna==3.6"
    )
    rewrite = rewrite_pins(
        original, "requirements", changes(pandas="2.0.3", legacy="1.1", numpy="1.26.4", idna="3.7")
    )
    assert rewrite.text == (
        "# top comment\r\n"
        "\r\n"
        'Pandas[parquet] == 2.0.3 ; python_version < "3.12"   # why pinned\r\n'
        "legacy===1.1  # arbitrary\r\n"
        "numpy==1.26.4\r\n"
        "numpy==1.26.4 ; sys_platform == 'win32'\r\n"
        "  idna==3.7"
    )
    assert [c.line for c in rewrite.changed] == [3, 4, 5, 6, 7]


def test_a_byte_order_mark_survives_a_rewrite() -> None:
    """A file starting with a BOM keeps it, and its first requirement is still rewritten."""
    rewrite = rewrite_pins("\ufeffsix==1.16.0\n", "requirements", changes(six="1.17.0"))
    assert rewrite.text == "\ufeffsix==1.17.0\n"


def test_hashes_are_dropped_and_the_lock_marked_stale() -> None:
    """A hashed requirement loses its hashes (they would not match) and the result says so."""
    original = (
        "idna==3.6 \\\n"
        "    --hash=sha256:aaa \\\n"
        "    --hash=sha256:bbb  # via requests\n"
        "six==1.16.0 \\\n"
        "    --hash=sha256:ccc\n"
        "    # via -r requirements.in\n"
    )
    rewrite = rewrite_pins(original, "requirements", changes(idna="3.7"))
    assert rewrite.text == (
        "idna==3.7  # via requests\n"
        "six==1.16.0 \\\n"
        "    --hash=sha256:ccc\n"
        "    # via -r requirements.in\n"
    )
    assert rewrite.lock_stale
    assert [(n.name, n.line, n.kind) for n in rewrite.notes] == [("idna", 1, "hashes-dropped")]


def test_a_single_line_hashed_requirement_keeps_its_other_options() -> None:
    """Only --hash options go; other per-requirement options and the comment stay."""
    rewrite = rewrite_pins(
        "six==1.16.0 --hash=sha256:a --config-settings=k=v  # c\n",
        "requirements",
        changes(six="1.17.0"),
    )
    assert rewrite.text == "six==1.17.0 --config-settings=k=v  # c\n"


@pytest.mark.parametrize(
    ("line", "version", "kind"),
    [
        ("requests>=2,<2.30\n", "2.31.0", "range-excludes"),
        ("requests>=2\n", "2.31.0", "range-admits"),
        ("requests\n", "2.31.0", "range-admits"),
        ("requests==2.*\n", "3.0.0", "range-excludes"),
        ("requests==2.31.0\n", "2.31.0", "already-pinned"),
        ("requests==2.28.2\n", "not a version", "invalid-version"),
        ("six==1.16.0\n", "2.31.0", "not-declared"),
    ],
)
def test_what_a_rewrite_leaves_alone_is_noted(line: str, version: str, kind: str) -> None:
    """Ranges, same versions, bad versions and absent names leave the text as it was, noted."""
    rewrite = rewrite_pins(line, "requirements", changes(requests=version))
    assert rewrite.text == line
    assert rewrite.changed == ()
    assert [n.kind for n in rewrite.notes] == [kind]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            'requests >=2, <2.30 ; python_version >= "3"  # c\n',
            'requests ==2.31.0 ; python_version >= "3"  # c\n',
        ),
        ("requests[socks](>=2,<2.30)\n", "requests[socks]==2.31.0\n"),
        ("requests\n", "requests==2.31.0\n"),
        ("requests ; os_name == 'nt'\n", "requests==2.31.0 ; os_name == 'nt'\n"),
    ],
)
def test_pin_ranges_replaces_the_whole_specifier(line: str, expected: str) -> None:
    """With pin_ranges a range or bare name becomes ==version; marker and comment stay."""
    rewrite = rewrite_pins(line, "requirements", changes(requests="2.31.0"), pin_ranges=True)
    assert rewrite.text == expected
    assert [c.new for c in rewrite.changed] == ["==2.31.0"]


def test_a_requirement_split_across_lines_is_not_rewritten() -> None:
    """When the specifier sits on a continuation line the rewrite refuses rather than guesses."""
    original = "pyarrow\\\n==14.0.0\n"
    rewrite = rewrite_pins(original, "requirements", changes(pyarrow="14.0.1"))
    assert rewrite.text == original
    assert [n.kind for n in rewrite.notes] == ["not-rewritable"]


def test_a_pyproject_rewrite_keeps_quotes_comments_and_spacing() -> None:
    """Only the versions inside the requirement strings change in pyproject.toml."""
    rewrite = rewrite_pins(
        PYPROJECT,
        "pyproject",
        changes(pandas="2.0.3", numpy="2.1.0", pytest="8.2.0", ignored="2.0"),
    )
    expected = PYPROJECT.replace('"pandas[parquet]==1.5.3"', '"pandas[parquet]==2.0.3"').replace(
        '"pytest==7.4.4"', '"pytest==8.2.0"'
    )
    assert rewrite.text == expected
    assert [(c.name, c.line) for c in rewrite.changed] == [("pandas", 9), ("pytest", 16)]
    assert [(n.name, n.kind) for n in rewrite.notes] == [
        ("numpy", "range-excludes"),
        ("ignored", "not-declared"),
    ]


def test_a_pyproject_range_can_be_pinned_in_single_quotes() -> None:
    """pin_ranges in a literal string keeps the single quotes and the marker."""
    rewrite = rewrite_pins(PYPROJECT, "pyproject", changes(numpy="1.26.4"), pin_ranges=True)
    differing = [
        (before, after)
        for before, after in zip(PYPROJECT.splitlines(), rewrite.text.splitlines(), strict=True)
        if before != after
    ]
    assert differing == [
        (
            "  'numpy >= 1.24, < 2 ; python_version < \"3.12\"',",
            "  'numpy ==1.26.4 ; python_version < \"3.12\"',",
        )
    ]


def test_a_pyproject_string_with_escapes_is_not_rewritten() -> None:
    """An escaped basic string cannot be edited in place safely, so it is noted instead."""
    original = '[project]\nname = "x"\ndependencies = ["six==1.16.0 ; os_name == \\"nt\\""]\n'
    rewrite = rewrite_pins(original, "pyproject", changes(six="1.17.0"))
    assert rewrite.text == original
    assert [n.kind for n in rewrite.notes] == ["not-rewritable"]


# --------------------------------------------------------------------------------------------
# writing files


def test_write_rewrites_edits_the_declaring_files(tmp_path: Path) -> None:
    """Each pin changes in the file that declares it (includes and constraints too)."""
    files(
        tmp_path,
        {
            "requirements.txt": "-r base.txt\n-c constraints.txt\nsix==1.16.0\n",
            "base.txt": "idna==3.6  # kept comment\n",
            "constraints.txt": "idna<3.7\n",
            "untouched.txt": "idna==3.6\n",
        },
    )
    pinset = read_pins(tmp_path, "requirements.txt")
    written = write_rewrites(tmp_path, pinset, changes(idna="3.7"), pin_ranges=True)
    assert written == [tmp_path / "base.txt", tmp_path / "constraints.txt"]
    assert (tmp_path / "base.txt").read_text() == "idna==3.7  # kept comment\n"
    assert (tmp_path / "constraints.txt").read_text() == "idna==3.7\n"
    assert (
        tmp_path / "requirements.txt"
    ).read_text() == "-r base.txt\n-c constraints.txt\nsix==1.16.0\n"
    assert (tmp_path / "untouched.txt").read_text() == "idna==3.6\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "base.txt",
        "constraints.txt",
        "requirements.txt",
        "untouched.txt",
    ]


def test_write_rewrites_keeps_the_file_mode(tmp_path: Path) -> None:
    """A rewritten file keeps its permissions (atomic replacement must not reset them)."""
    files(tmp_path, {"requirements.txt": "six==1.16.0\n"})
    (tmp_path / "requirements.txt").chmod(0o640)
    write_rewrites(tmp_path, read_pins(tmp_path, "requirements.txt"), changes(six="1.17.0"))
    assert (tmp_path / "requirements.txt").stat().st_mode & 0o777 == 0o640


def test_a_failed_write_changes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If one file cannot be staged, none is replaced and no temporary file is left."""
    files(tmp_path, {"requirements.txt": "-r base.txt\nsix==1.16.0\n", "base.txt": "idna==3.6\n"})
    pinset = read_pins(tmp_path, "requirements.txt")
    real_stage = pins_module.stage

    def stage(path: Path, data: bytes) -> Path:
        if path.name == "base.txt":
            raise OSError(28, "No space left on device")
        return real_stage(path, data)

    monkeypatch.setattr(pins_module, "stage", stage)
    with pytest.raises(DependencyFileError, match="No space left"):
        write_rewrites(tmp_path, pinset, changes(six="1.17.0", idna="3.7"))
    assert (tmp_path / "requirements.txt").read_text() == "-r base.txt\nsix==1.16.0\n"
    assert (tmp_path / "base.txt").read_text() == "idna==3.6\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.txt", "requirements.txt"]


def test_a_failed_rename_puts_back_what_was_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the second rename fails, the first replaced file gets its original text back."""
    files(tmp_path, {"requirements.txt": "-r base.txt\nsix==1.16.0\n", "base.txt": "idna==3.6\n"})
    pinset = read_pins(tmp_path, "requirements.txt")
    real_move = pins_module._move
    failed: list[Path] = []

    def move(temporary: Path, path: Path) -> None:
        if path.name == "base.txt" and not failed:
            failed.append(path)
            raise OSError(13, "Permission denied")
        real_move(temporary, path)

    monkeypatch.setattr(pins_module, "_move", move)
    with pytest.raises(DependencyFileError, match="Permission denied"):
        write_rewrites(tmp_path, pinset, changes(six="1.17.0", idna="3.7"))
    assert failed
    assert (tmp_path / "requirements.txt").read_text() == "-r base.txt\nsix==1.16.0\n"
    assert (tmp_path / "base.txt").read_text() == "idna==3.6\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.txt", "requirements.txt"]


FAKE_UV = """\
#!{python}
import json, pathlib, sys
args = sys.argv[1:]
pathlib.Path({record!r}).write_text(json.dumps({{"args": args, "cwd": str(pathlib.Path.cwd())}}))
mode = {mode!r}
if mode == "fail":
    print("error: No solution found when resolving dependencies", file=sys.stderr)
    sys.exit(1)
out = pathlib.Path(args[args.index("--output-file") + 1])
text = out.read_text()
if mode == "upgrade":
    for spec in [args[i + 1] for i, a in enumerate(args) if a == "--upgrade-package"]:
        name, version = spec.split("==")
        lines = [f"{{name}}=={{version}}" if l.startswith(name + "==") else l for l in text.splitlines()]
        text = "\\n".join(lines) + "\\n"
out.write_text(text)
"""


def fake_uv(tmp_path: Path, mode: str) -> tuple[Path, Path]:
    record = tmp_path / "uv-call.json"
    script = tmp_path / "bin" / "uv"
    script.parent.mkdir()
    script.write_text(FAKE_UV.format(python=sys.executable, record=str(record), mode=mode))
    script.chmod(0o755)
    return script, record


def compiled_product(root: Path) -> Path:
    return files(
        root / "repo",
        {
            "requirements.in": "requests>=2\nsix==1.16.0  # why\n",
            "requirements.txt": LOCK.replace(
                "requirements.in -o requirements.txt",
                "requirements.in -o requirements.txt --generate-hashes",
            ),
        },
    )


def test_the_lock_is_recompiled_with_its_own_header_options(tmp_path: Path) -> None:
    """uv runs where the lock was compiled, with its header options and -P NAME==VERSION."""
    import json

    repo = compiled_product(tmp_path)
    uv, record = fake_uv(tmp_path, "upgrade")
    pinset = read_pins(repo, "requirements.in")
    written = write_rewrites(
        repo, pinset, changes(six="1.17.0", certifi="2024.7.4"), uv=uv, python_version="3.11"
    )
    assert written == [repo / "requirements.in", repo / "requirements.txt"]
    assert (repo / "requirements.in").read_text() == "requests>=2\nsix==1.17.0  # why\n"
    lock = (repo / "requirements.txt").read_text()
    assert (
        "six==1.17.0\n" in lock and "certifi==2024.7.4\n" in lock and "requests==2.31.0\n" in lock
    )
    call = json.loads(record.read_text())
    args = call["args"]
    assert call["cwd"] == str(repo.resolve())
    assert args[:3] == ["pip", "compile", "requirements.in"]
    assert args[args.index("--custom-compile-command") + 1] == (
        "uv pip compile requirements.in -o requirements.txt --generate-hashes"
    )
    assert "--generate-hashes" in args
    assert [args[i + 1] for i, a in enumerate(args) if a == "--upgrade-package"] == [
        "six==1.17.0",
        "certifi==2024.7.4",
    ]
    assert args[args.index("--python-version") + 1] == "3.11"
    assert sorted(p.name for p in repo.iterdir()) == ["requirements.in", "requirements.txt"]


@pytest.mark.parametrize(
    ("mode", "message"), [("fail", "No solution found"), ("same", "did not pin six==1.17.0")]
)
def test_a_failed_compile_changes_nothing(tmp_path: Path, mode: str, message: str) -> None:
    """When uv fails, or does not pin the version asked for, the .in and lock stay as they were."""
    repo = compiled_product(tmp_path)
    before = {p.name: p.read_bytes() for p in repo.iterdir()}
    uv, _ = fake_uv(tmp_path, mode)
    pinset = read_pins(repo, "requirements.in")
    with pytest.raises(DependencyFileError, match=message):
        write_rewrites(repo, pinset, changes(six="1.17.0"), uv=uv)
    assert {p.name: p.read_bytes() for p in repo.iterdir()} == before


def test_the_plan_skips_lock_changes_the_intent_forbids(tmp_path: Path) -> None:
    """A range in the .in that excludes the version keeps it out of the compile; transitive pins go in."""
    files(tmp_path, {"requirements.in": "requests>=2,<2.31\nsix\n", "requirements.txt": LOCK})
    plan = plan_rewrites(
        tmp_path,
        read_pins(tmp_path, "requirements.in"),
        changes(requests="2.32.0", certifi="2024.7.4", six="1.16.0", nope="1.0"),
    )
    assert plan.lock_changes == (("certifi", "2024.7.4"),)
    assert plan.edits == ()
    assert [(n.name, n.kind, n.file) for n in plan.notes] == [
        ("requests", "range-excludes", "requirements.in"),
        ("six", "range-admits", "requirements.in"),
        ("six", "already-pinned", None),
        ("nope", "not-declared", None),
    ]
    assert plan.applied == {"certifi"}


def test_uv_is_found_beside_the_interpreter() -> None:
    """The default uv is the one installed with specfleet, next to sys.executable."""
    assert uv_executable() == Path(sys.executable).with_name("uv")
    assert uv_executable().is_file()


@pytest.mark.network
def test_uv_regenerates_the_lock_keeping_other_pins(tmp_path: Path) -> None:
    """Real uv: the changed package gets its version, an unrelated pin keeps its old one."""
    repo = files(tmp_path / "repo", {"requirements.in": "six==1.16.0  # legacy code\nidna\n"})
    uv = str(uv_executable())
    subprocess.run(
        [
            uv,
            "pip",
            "compile",
            "requirements.in",
            "-o",
            "requirements.txt",
            "-P",
            "idna==3.6",
            "-q",
        ],
        cwd=repo,
        check=True,
        env={**os.environ, "UV_PYTHON": sys.executable},
    )
    header = (repo / "requirements.txt").read_text().splitlines()[:2]
    pinset = read_pins(repo, "requirements.in")
    assert {p.name: p.version for p in pinset.pins} == {"idna": "3.6", "six": "1.16.0"}

    write_rewrites(repo, pinset, changes(six="1.17.0"), python_version="3.11")

    after = read_pins(repo, "requirements.in")
    assert {p.name: p.version for p in after.pins} == {"idna": "3.6", "six": "1.17.0"}
    assert (repo / "requirements.in").read_text() == "six==1.17.0  # legacy code\nidna\n"
    assert (repo / "requirements.txt").read_text().splitlines()[:2] == header
