"""spec init drafts a spec that validates from a dbt project or an ODCS contract; export --odcs."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import yaml

from specfleet.core.spec import check_spec_file
from tests.conftest import EXAMPLES, RepoFactory

Cli = Callable[..., CompletedProcess[str]]


def dbt_project_without_spec(tmp_path: Path) -> Path:
    repo = Path(shutil.copytree(EXAMPLES / "shop_marts", tmp_path / "shop"))
    (repo / "dataproduct.yaml").unlink()
    return repo


def test_init_drafts_a_valid_spec_from_the_dbt_project(cli: Cli, tmp_path: Path) -> None:
    repo = dbt_project_without_spec(tmp_path)
    result = cli("spec", "init", str(repo), "--write")
    assert result.returncode == 0, result.stderr
    assert "places for the owner to fill in" in result.stdout
    check = check_spec_file(repo / "dataproduct.yaml")
    assert check.valid, [problem.render() for problem in check.problems]
    spec = check.spec
    assert spec is not None
    assert spec.implementation.build == "dbt build --profiles-dir ."
    assert spec.implementation.runtime == "python3.9"  # from the pip-compile header
    assert {item.fixture for item in spec.inputs} == {
        "seeds/raw_customers.csv",
        "seeds/raw_orders.csv",
    }
    customers = spec.output("customer_orders")
    assert (customers.format, customers.path, customers.table) == (
        "duckdb",
        "warehouse.duckdb",
        "customer_orders",
    )
    assert customers.primary_key == ["customer_id"]
    types = {column.name: column.type for column in customers.columns}
    assert types["lifetime_revenue"] == "decimal(12,2)" and types["full_name"] == "string"
    text = (repo / "dataproduct.yaml").read_text()
    assert "owner@example.invalid  # OWNER:" in text and "# why:  # OWNER:" in text
    again = cli("spec", "init", str(repo), "--write")
    assert again.returncode == 2 and "not overwritten" in again.stderr


def test_init_refuses_a_directory_that_is_not_a_dbt_project(cli: Cli, tmp_path: Path) -> None:
    result = cli("spec", "init", str(tmp_path))
    assert result.returncode != 0 and "no dbt_project.yml" in result.stderr


def test_export_odcs_and_init_from_it_round_trip(cli: Cli, tmp_path: Path) -> None:
    exported = cli("spec", "export", "--odcs", str(EXAMPLES / "shop_marts" / "dataproduct.yaml"))
    assert exported.returncode == 0, exported.stderr
    contract = yaml.safe_load(exported.stdout)
    assert contract["kind"] == "DataContract" and contract["apiVersion"].startswith("v3")
    assert [item["name"] for item in contract["schema"]] == ["daily_revenue", "customer_orders"]
    email = next(p for p in contract["schema"][1]["properties"] if p["name"] == "email")
    assert email["classification"] == "pii-direct"
    odcs = tmp_path / "contract.yaml"
    odcs.write_text(exported.stdout)
    drafted = cli("spec", "init", str(tmp_path), "--from-odcs", str(odcs), "--write")
    assert drafted.returncode == 0, drafted.stderr
    check = check_spec_file(tmp_path / "dataproduct.yaml")
    assert check.valid, [problem.render() for problem in check.problems]
    assert check.spec is not None and check.spec.owners == ["lena.fischer@example.com"]
    assert check.spec.output("customer_orders").primary_key == ["customer_id"]


def test_product_add_on_a_dbt_repository_without_spec_offers_a_draft(
    cli: Cli, make_repo: RepoFactory, tmp_path: Path
) -> None:
    source = dbt_project_without_spec(tmp_path)
    repo = make_repo(source=source, name="shop", branch="trunk")
    result = cli("product", "add", "--repo", str(repo))
    assert result.returncode == 1 and "no such file" in result.stderr
    assert "drafted a spec from the dbt project" in result.stderr
    draft = Path(result.stderr.split("dbt project: ", 1)[1].split()[0])
    check = check_spec_file(draft)
    assert check.valid and check.spec is not None and check.spec.id == "shop_marts"
