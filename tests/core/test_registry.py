"""The product registry on SQLite and PostgreSQL: add, re-add, conflicts, removal, import."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from specfleet.core.db import AuditEntry, Product
from specfleet.core.errors import (
    ProductConflict,
    ProductNotFound,
    RepositoryError,
    SpecInvalid,
    SpecMissing,
)
from specfleet.core.git import MirrorCache
from specfleet.core.registry import (
    Registration,
    Registry,
    changed_fields,
    list_products,
    read_import_file,
)
from tests.conftest import RepoFactory, commit_files

VALID = (Path(__file__).resolve().parent.parent / "fixtures" / "specs" / "valid.yaml").read_text()


def spec_text(product_id: str = "invoices", **replace: str) -> str:
    text = VALID.replace("id: invoices", f"id: {product_id}", 1)
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


@pytest.fixture
def registry(engine: Engine, tmp_path: Path) -> Registry:
    return Registry(engine, MirrorCache(tmp_path / "mirrors"), "platform@example.com")


def rows(engine: Engine) -> list[Product]:
    with Session(engine) as session:
        return list(session.exec(select(Product).order_by(Product.id)))


def audit_actions(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return [entry.action for entry in session.exec(select(AuditEntry).order_by(AuditEntry.id))]


def test_add_reads_the_spec_from_the_branch(
    registry: Registry, engine: Engine, make_repo: RepoFactory
) -> None:
    """Registering stores the spec's id, name, owners, tags and commit, merged with extras."""
    repo = make_repo({"dataproduct.yaml": spec_text()})
    result = registry.add(
        Registration(repo=str(repo), owners=("lead@example.com",), tags=("tier1",))
    )
    assert result.status == "added"
    (product,) = rows(engine)
    assert (product.id, product.name, product.repo_url) == ("invoices", "Invoices", str(repo))
    assert product.owners == ["ana@example.com", "raj@example.com", "lead@example.com"]
    assert product.tags == ["finance", "python", "tier1"]
    assert product.runtime == "python3.11"
    assert product.spec_commit and len(product.spec_commit) == 40
    assert product.registered_at.tzinfo is not None
    assert audit_actions(engine) == ["product.added"]


def test_registering_twice_is_idempotent(
    registry: Registry, engine: Engine, make_repo: RepoFactory
) -> None:
    """The same registration a second time changes nothing and writes no audit entry."""
    repo = make_repo({"dataproduct.yaml": spec_text()})
    registry.add(Registration(repo=str(repo)))
    again = registry.add(Registration(repo=f"file://{repo}"))
    assert again.status == "unchanged"
    assert len(rows(engine)) == 1
    assert audit_actions(engine) == ["product.added"]


def test_a_changed_spec_updates_the_product(
    registry: Registry, engine: Engine, make_repo: RepoFactory
) -> None:
    """A new commit that renames the product is picked up and the changed fields are named."""
    repo = make_repo({"dataproduct.yaml": spec_text()})
    registry.add(Registration(repo=str(repo)))
    commit_files(
        repo, {"dataproduct.yaml": spec_text(**{"name: Invoices": "name: Customer invoices"})}
    )
    result = registry.add(Registration(repo=str(repo)))
    assert result.status == "updated"
    assert "name" in result.changed_fields and "spec_hash" in result.changed_fields
    assert rows(engine)[0].name == "Customer invoices"


def test_the_same_id_from_another_repository_conflicts(
    registry: Registry, engine: Engine, make_repo: RepoFactory
) -> None:
    """Two repositories cannot claim one product id; the first registration stays."""
    first = make_repo({"dataproduct.yaml": spec_text()}, name="first")
    second = make_repo({"dataproduct.yaml": spec_text()}, name="second")
    registry.add(Registration(repo=str(first)))
    with pytest.raises(ProductConflict, match="already registered from"):
        registry.add(Registration(repo=str(second)))
    assert rows(engine)[0].repo_url == str(first)


def test_invalid_spec_is_refused_with_the_loaders_message(
    registry: Registry, engine: Engine, make_repo: RepoFactory
) -> None:
    """A repository whose spec is invalid is refused, located in repo, branch and file."""
    repo = make_repo({"dataproduct.yaml": spec_text(**{"    why: Finance": "    wyh: Finance"})})
    with pytest.raises(SpecInvalid) as caught:
        registry.add(Registration(repo=str(repo)))
    message = caught.value.problems[0].render()
    assert message.startswith(f"{repo}@main:dataproduct.yaml:")
    assert "did you mean 'why'?" in message
    assert rows(engine) == []


def test_missing_spec_branch_or_repository_is_refused(
    registry: Registry, make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A missing spec file, branch or repository each gets its own message."""
    repo = make_repo({"README.md": "no spec here"})
    with pytest.raises(SpecMissing, match=r"dataproduct\.yaml: no such file"):
        registry.add(Registration(repo=str(repo)))
    with pytest.raises(RepositoryError, match="no branch 'develop'"):
        registry.add(Registration(repo=str(repo), branch="develop"))
    with pytest.raises(RepositoryError, match="does not exist"):
        registry.add(Registration(repo=str(tmp_path / "gone")))


def test_oversized_spec_in_a_repository_is_refused(
    registry: Registry, make_repo: RepoFactory
) -> None:
    """A 2 MB spec in a repository is refused by size, not parsed."""
    repo = make_repo({"dataproduct.yaml": "#" * (2 * 1024 * 1024)})
    with pytest.raises(SpecInvalid, match=r"2\.0 MB"):
        registry.add(Registration(repo=str(repo)))


def test_url_with_credentials_is_refused(registry: Registry) -> None:
    """Credentials never enter the registry through a repository URL."""
    from specfleet.core.errors import InputError

    with pytest.raises(InputError, match="carries credentials") as caught:
        registry.add(
            Registration(repo="https://bot:glpat-abcdefghijklmnopqrstu@gitlab.example.com/a/b.git")
        )
    assert "glpat-abcdefghijklmnopqrstu" not in str(caught.value)


def test_remove_is_soft_and_re_adding_reactivates(
    registry: Registry, engine: Engine, make_repo: RepoFactory
) -> None:
    """Removal keeps the row and its history; registering again brings it back."""
    repo = make_repo({"dataproduct.yaml": spec_text()})
    registry.add(Registration(repo=str(repo)))
    assert registry.remove("invoices") is True
    assert registry.remove("invoices") is False
    assert list_products(engine) == []
    (removed,) = list_products(engine, include_removed=True)
    assert removed.removed_at is not None and not removed.active
    assert registry.add(Registration(repo=str(repo))).status == "reactivated"
    assert [product.id for product in list_products(engine)] == ["invoices"]
    assert audit_actions(engine) == ["product.added", "product.removed", "product.reactivated"]
    with pytest.raises(ProductNotFound):
        registry.remove("nope")


def test_list_filters_by_owner_and_tag(
    registry: Registry, engine: Engine, make_repo: RepoFactory
) -> None:
    """Listing can be narrowed to one owner or one tag."""
    repo_a = make_repo({"dataproduct.yaml": spec_text("alpha")}, name="a")
    repo_b = make_repo({"dataproduct.yaml": spec_text("beta")}, name="b")
    registry.add(Registration(repo=str(repo_a), owners=("zoe@example.com",)))
    registry.add(Registration(repo=str(repo_b), tags=("gold",)))
    assert [p.id for p in list_products(engine, owner="zoe@example.com")] == ["alpha"]
    assert [p.id for p in list_products(engine, tag="gold")] == ["beta"]
    assert [p.id for p in list_products(engine, tag="finance")] == ["alpha", "beta"]


def test_import_reports_bad_rows_and_imports_the_rest(
    registry: Registry, engine: Engine, make_repo: RepoFactory, tmp_path: Path
) -> None:
    """Bad rows are reported with their line; good rows are imported; re-import is a no-op."""
    good_a = make_repo({"dataproduct.yaml": spec_text("alpha")}, name="a")
    good_b = make_repo({"specs/b.yaml": spec_text("beta")}, name="b")
    bad_spec = make_repo(
        {"dataproduct.yaml": spec_text("gamma", **{"spec_version: 1": ""})}, name="c"
    )
    csv_file = tmp_path / "products.csv"
    csv_file.write_text(
        "repo,branch,spec,owners,tags\n"
        f"{good_a},main,dataproduct.yaml,lead@example.com;ops@example.com,tier1\n"
        f"{good_b},main,specs/b.yaml,,\n"
        f"{bad_spec},main,dataproduct.yaml,,\n"
        f"{good_a},main,dataproduct.yaml,not-an-email,\n"
        f"{tmp_path / 'missing'},main,dataproduct.yaml,,\n"
    )
    report = registry.import_rows(read_import_file(csv_file))
    assert report.count("added") == 2
    failures = {failure.label: failure.reason for failure in report.failed}
    assert set(failures) == {f"{csv_file}:4", f"{csv_file}:5", f"{csv_file}:6"}
    assert "missing required key 'spec_version'" in failures[f"{csv_file}:4"]
    assert "not an e-mail address" in failures[f"{csv_file}:5"]
    assert "does not exist" in failures[f"{csv_file}:6"]
    alpha = next(product for product in rows(engine) if product.id == "alpha")
    assert alpha.owners[-2:] == ["lead@example.com", "ops@example.com"]

    again = registry.import_rows(read_import_file(csv_file))
    assert again.count("unchanged") == 2 and not again.changed_anything
    assert len(rows(engine)) == 2


def test_import_yaml_with_duplicate_product_in_the_file(
    registry: Registry, make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A YAML import naming one product twice keeps the first and reports the second's line."""
    repo = make_repo({"dataproduct.yaml": spec_text("alpha")})
    file = tmp_path / "products.yaml"
    file.write_text(f"products:\n  - repo: {repo}\n    tags: [x]\n  - repo: {repo}\n  - 42\n")
    report = registry.import_rows(read_import_file(file))
    assert report.count("added") == 1
    reasons = {failure.label: failure.reason for failure in report.failed}
    assert reasons[f"{file}:4"] == f"product 'alpha' is already in {file}:2"
    assert "expected a mapping" in reasons[f"{file}:5"]


def test_changed_fields_is_pure_and_compares_lists() -> None:
    """Only the tracked fields that differ are named; list order matters."""
    product = Product(id="p", name="P", repo_url="/r", owners=["a@x.io"], tags=["t"], spec_hash="h")
    desired = {
        "name": "P",
        "repo_url": "/r",
        "branch": "main",
        "spec_path": "dataproduct.yaml",
        "forge": "local",
        "forge_project": None,
        "owners": ["a@x.io", "b@x.io"],
        "tags": ["t"],
        "runtime": None,
        "spec_hash": "h",
        "registration_hash": None,
    }
    assert changed_fields(product, desired) == ("owners",)


def test_many_specs_are_checked_in_parallel_with_the_same_results() -> None:
    """Above the parallel threshold, worker processes give the serial results, problems included."""
    from specfleet.core.errors import SpecInvalid
    from specfleet.core.registry.reader import PARALLEL_CHECKS_FROM, check_many

    items = [
        (spec_text(f"p{index:04d}").encode(), f"repo@main:p{index}.yaml")
        for index in range(PARALLEL_CHECKS_FROM)
    ]
    items[7] = (spec_text("p0007", **{"spec_version: 1": "spec_version: 3"}).encode(), "bad.yaml")
    progress: list[int] = []
    results = check_many(items, on_progress=progress.append)
    assert len(results) == len(items)
    assert [getattr(result, "id", None) for result in results[:3]] == ["p0000", "p0001", "p0002"]
    invalid = results[7]
    assert isinstance(invalid, SpecInvalid)
    assert invalid.source == "bad.yaml" and "spec_version" in invalid.problems[0].render()
    assert progress and progress[-1] <= len(items) and progress == sorted(progress)
