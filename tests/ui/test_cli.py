"""The ``specfleet`` command through its installed entry point: output and exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from specfleet.core.db.engine import SCHEMA_HEAD
from tests.conftest import RepoFactory

Cli = Callable[..., CompletedProcess[str]]
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "specs"
VALID = (FIXTURES / "valid.yaml").read_text()


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_validate_exit_codes(cli: Cli, tmp_path: Path) -> None:
    """validate exits 0 for valid specs, 1 when one is invalid, 2 when one cannot be read."""
    good = write(tmp_path / "good.yaml", VALID)
    bad = write(tmp_path / "bad.yaml", VALID.replace("    why: Finance", "    wyh: Finance"))
    ok = cli("spec", "validate", str(good))
    assert ok.returncode == 0, ok.stderr
    assert "valid" in ok.stdout and "invoices" in ok.stdout
    invalid = cli("spec", "validate", str(good), str(bad))
    assert invalid.returncode == 1
    assert f"{bad}:" in invalid.stderr and "did you mean 'why'?" in invalid.stderr
    assert "Traceback" not in invalid.stderr
    missing = cli("spec", "validate", str(bad), str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2
    assert "nope.yaml: no such file" in missing.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("spec_version: 1\nid: [unclosed\n", "invalid YAML"),
        (b"", "the file is empty"),
        (b"\x00\x01\x02binary", "the file is binary"),
        (
            VALID.replace("primary_key: [invoice_id]", "primary_key: [nope]"),
            "primary key column 'nope'",
        ),
        (VALID.replace("- name: customer_email", "- name: amount"), "duplicate name 'amount'"),
    ],
)
def test_validate_reports_bad_input_without_traceback(
    cli: Cli, tmp_path: Path, content: str | bytes, expected: str
) -> None:
    """Each kind of bad spec gets one located message and exit 1, never a traceback."""
    path = write(tmp_path / "dataproduct.yaml", content)
    result = cli("spec", "validate", str(path))
    assert result.returncode == 1
    assert expected in result.stderr
    assert str(path) in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_validate_directory_and_huge_file(cli: Cli, tmp_path: Path) -> None:
    """A directory is an I/O error (2); a 50 MB file is refused by size (1)."""
    assert cli("spec", "validate", str(tmp_path)).returncode == 2
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    result = cli("spec", "validate", str(big))
    assert result.returncode == 1
    assert "50.0 MB" in result.stderr


def test_validate_json_output(cli: Cli, tmp_path: Path) -> None:
    """--json gives machines the file, line and field of every problem."""
    bad = write(tmp_path / "bad.yaml", VALID.replace("type: bigint", "type: bignum"))
    result = cli("spec", "validate", "--json", str(bad))
    assert result.returncode == 1
    (entry,) = json.loads(result.stdout)
    (problem,) = entry["problems"]
    assert problem["field"] == "outputs[0].columns[0].type"
    assert problem["line"] == next(
        n for n, line in enumerate(VALID.splitlines(), 1) if "type: bigint" in line
    )


def test_show_renders_purpose_columns_why_and_timeline(cli: Cli) -> None:
    """show renders what a person needs: purpose, each column's why, amendments in date order."""
    result = cli("spec", "show", str(FIXTURES / "valid.yaml"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Invoices" in out and "reconcile payments" in out
    assert "Reconciliation compares amounts to the cent" in out
    assert "decimal(10,2)" in out
    assert out.index("2025-01-15") < out.index("2025-06-02")
    assert "Floating-point amounts made reconciliation differ by cents." in out
    assert "tests/test_invoices.py::test_void_invoice" in out


def test_show_invalid_spec_exits_1(cli: Cli, tmp_path: Path) -> None:
    """show refuses an invalid spec with the loader's located message."""
    bad = write(tmp_path / "bad.yaml", VALID.replace("spec_version: 1", "spec_version: 9"))
    result = cli("spec", "show", str(bad))
    assert result.returncode == 1
    assert f"{bad}:" in result.stderr and "spec_version" in result.stderr


def test_schema_is_json_schema_of_the_format(cli: Cli) -> None:
    """schema prints a JSON Schema editors can use, with descriptions and closed objects."""
    result = cli("spec", "schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {"spec_version", "id", "outputs", "amendments"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False
    column = schema["$defs"]["Column"]
    assert "why" in column["properties"] and column["properties"]["why"]["description"]


def test_product_lifecycle(cli: Cli, make_repo: RepoFactory) -> None:
    """add, list, show, remove through the CLI, with idempotent re-adding."""
    repo = make_repo({"dataproduct.yaml": VALID})
    added = cli(
        "product", "add", "--repo", str(repo), "--tag", "tier1", "--owner", "lead@example.com"
    )
    assert added.returncode == 0, added.stderr
    assert "registered product invoices" in added.stdout
    again = cli(
        "product",
        "add",
        "--repo",
        f"file://{repo}",
        "--tag",
        "tier1",
        "--owner",
        "lead@example.com",
    )
    assert again.returncode == 0
    assert "already registered, nothing changed" in again.stdout

    listed = cli("product", "list")
    assert (
        "1 products" in listed.stdout and "invoices" in listed.stdout and "tier1" in listed.stdout
    )
    as_json = json.loads(cli("product", "list", "--json").stdout)
    assert as_json[0]["owners"] == ["ana@example.com", "raj@example.com", "lead@example.com"]

    shown = cli("product", "show", "invoices")
    assert shown.returncode == 0 and "product.added" in shown.stdout and str(repo) in shown.stdout

    removed = cli("product", "remove", "invoices")
    assert removed.returncode == 0 and "history kept" in removed.stdout
    assert "0 products" in cli("product", "list").stdout
    assert "removed" in cli("product", "list", "--all").stdout
    assert cli("product", "show", "nope").returncode == 1


def test_product_add_refuses_invalid_or_missing_spec(
    cli: Cli, make_repo: RepoFactory, tmp_path: Path
) -> None:
    """add refuses an invalid spec (1), a missing spec (1) and an unreachable repository (2)."""
    bad = make_repo(
        {"dataproduct.yaml": VALID.replace("name: Invoices", "nmae: Invoices")}, name="bad"
    )
    result = cli("product", "add", "--repo", str(bad))
    assert result.returncode == 1
    assert "did you mean 'name'?" in result.stderr and "@main:dataproduct.yaml:" in result.stderr
    empty = make_repo({"README.md": "hi"}, name="empty")
    missing = cli("product", "add", "--repo", str(empty))
    assert missing.returncode == 1 and "no such file" in missing.stderr
    gone = cli("product", "add", "--repo", str(tmp_path / "gone"))
    assert gone.returncode == 2 and "does not exist" in gone.stderr
    wrong_forge = cli("product", "add", "--repo", str(bad), "--forge", "bitbucket")
    assert wrong_forge.returncode == 2 and "--forge" in wrong_forge.stderr
    assert "0 products" in cli("product", "list").stdout


def test_product_import_is_idempotent_and_reports_bad_rows(
    cli: Cli, make_repo: RepoFactory, tmp_path: Path
) -> None:
    """import registers good rows, names bad rows by line, exits 1; re-import says nothing changed."""
    good = make_repo({"dataproduct.yaml": VALID}, name="good")
    file = write(
        tmp_path / "fleet.csv",
        f"repo,branch,spec,tags\n{good},main,dataproduct.yaml,gold\n{good},nope,dataproduct.yaml,\n",
    )
    first = cli("product", "import", str(file))
    assert first.returncode == 1
    assert (
        "added" in first.stdout
        and f"{file}:3" in first.stderr
        and "no branch 'nope'" in first.stderr
    )
    file.write_text(f"repo,branch,spec,tags\n{good},main,dataproduct.yaml,gold\n")
    second = cli("product", "import", str(file))
    assert second.returncode == 0, second.stderr
    assert "Nothing changed: all 1 products are already registered" in second.stdout


def test_product_import_unreadable_file(cli: Cli, tmp_path: Path) -> None:
    """A file that is not a registration file at all is an input error naming the file."""
    assert "no such file" in cli("product", "import", str(tmp_path / "x.csv")).stderr
    bad_header = write(tmp_path / "fleet.csv", "repository,branch\n/x,main\n")
    result = cli("product", "import", str(bad_header))
    assert result.returncode == 2
    assert f"{bad_header}:1: unknown column(s) 'repository'" in result.stderr


@pytest.mark.postgres
def test_cli_against_postgresql(cli: Cli, make_repo: RepoFactory, postgres_url: str) -> None:
    """The same commands work against PostgreSQL, migrating an empty database on first use."""
    env = {"SPECFLEET_DATABASE_URL": postgres_url}
    repo = make_repo({"dataproduct.yaml": VALID})
    assert cli("product", "add", "--repo", str(repo), env=env).returncode == 0
    assert "invoices" in cli("product", "list", env=env).stdout
    status = cli("db", "upgrade", env=env)
    assert status.returncode == 0 and "up to date" in status.stdout


def test_db_upgrade_on_an_empty_sqlite(cli: Cli, specfleet_home: Path) -> None:
    """db upgrade creates the schema in a new home and is safe to repeat."""
    first = cli("db", "upgrade")
    assert (
        first.returncode == 0
        and f"migrated from an empty database to {SCHEMA_HEAD}" in first.stdout
    )
    assert (specfleet_home / "specfleet.db").exists()
    assert "up to date" in cli("db", "upgrade").stdout


def test_unreachable_database_is_a_clear_error(cli: Cli) -> None:
    """A database that cannot be reached gives one line and exit 2, never a traceback."""
    env = {"SPECFLEET_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    result = cli("product", "list", env=env)
    assert result.returncode == 2
    assert "cannot reach the database" in result.stderr and "Traceback" not in result.stderr


def test_show_names_the_logical_type_of_a_sql_alias(cli: Cli, tmp_path: Path) -> None:
    """A column declared varchar is shown as the string it became, with what was written."""
    spec = write(tmp_path / "dataproduct.yaml", VALID.replace("type: bigint", "type: INT8", 1))
    result = cli("spec", "show", str(spec))
    assert result.returncode == 0, result.stderr
    assert "bigint (declared INT8)" in result.stdout.replace("\n", " ").replace("│", " ")


def test_product_add_uses_the_repository_default_branch(cli: Cli, make_repo: RepoFactory) -> None:
    """A repository whose default branch is trunk registers on trunk; --branch still overrides."""
    repo = make_repo({"dataproduct.yaml": VALID}, branch="trunk")
    added = cli("product", "add", "--repo", str(repo))
    assert added.returncode == 0, added.stderr
    shown = json.loads(cli("product", "list", "--json").stdout)
    assert [product["branch"] for product in shown] == ["trunk"]
    wrong = cli("product", "add", "--repo", str(repo), "--branch", "main")
    assert wrong.returncode != 0 and "no branch 'main'" in wrong.stderr
