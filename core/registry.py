"""The product registry: register, list, show and remove data products; import thousands.

Registration reads the spec from the product's repository (through the mirror cache) and
refuses a repository whose spec is missing or invalid. Everything here is idempotent:
registering or importing what is already registered changes nothing and says so. Decisions
(what changed for a product) are pure functions; git and the database are passed in.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Engine
from sqlmodel import Session, select

from core.db import AuditEntry, Product, session_scope
from core.db.types import utcnow
from core.errors import (
    ImportFileError,
    InputError,
    ProductConflict,
    ProductNotFound,
    SpecfleetError,
    SpecInvalid,
)
from core.git import MirrorCache, RepoFile, normalise_repo_url, read_file_at
from core.spec.loader import MAX_SPEC_BYTES, SpecCheck, check_spec_bytes, oversize_problem
from core.spec.model import EMAIL_PATTERN, Spec

Forge = Literal["local", "gitlab"]
RegistrationStatus = Literal["added", "updated", "unchanged", "reactivated"]

# fields compared to decide whether a re-registration changes anything
TRACKED_FIELDS = (
    "name",
    "repo_url",
    "branch",
    "spec_path",
    "forge",
    "forge_project",
    "owners",
    "tags",
    "runtime",
    "spec_hash",
)


class Registration(BaseModel):
    """What a platform team asks to register: where a product lives and who owns it."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    repo: str = Field(min_length=1, description="Repository URL or local path.")
    branch: str = Field(default="main", min_length=1, pattern=r"^[^\s~^:?*\[\\]+$")
    spec: str = Field(default="dataproduct.yaml", min_length=1)
    forge: Forge = "local"
    project: str | None = Field(default=None, description="Forge project id or path.")
    owners: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    @field_validator("owners")
    @classmethod
    def _emails(cls, owners: tuple[str, ...]) -> tuple[str, ...]:
        for owner in owners:
            if not re.match(EMAIL_PATTERN, owner):
                raise ValueError(f"owner {owner!r} is not an e-mail address")
        return owners

    @field_validator("spec")
    @classmethod
    def _relative_spec(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError(f"spec path must be relative to the repository: {value!r}")
        return value


@dataclass(frozen=True)
class RegistrationResult:
    """What registering one product did."""

    product_id: str
    status: RegistrationStatus
    changed_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResolvedProduct:
    """A registration whose spec was read and validated: the row it should become."""

    registration: Registration
    repo_url: str
    spec: Spec
    spec_commit: str
    spec_hash: str

    def desired_fields(self) -> dict[str, object]:
        return {
            "name": self.spec.name,
            "repo_url": self.repo_url,
            "branch": self.registration.branch,
            "spec_path": self.registration.spec,
            "forge": self.registration.forge,
            "forge_project": self.registration.project,
            "owners": _merged(self.spec.owners, self.registration.owners),
            "tags": _merged(self.spec.tags, self.registration.tags),
            "runtime": self.spec.implementation.runtime,
            "spec_hash": self.spec_hash,
        }


def _merged(first: Iterable[str], second: Iterable[str]) -> list[str]:
    return list(dict.fromkeys([*first, *second]))


def changed_fields(product: Product, desired: dict[str, object]) -> tuple[str, ...]:
    """The tracked fields whose stored value differs from ``desired`` (pure)."""
    return tuple(name for name in TRACKED_FIELDS if getattr(product, name) != desired[name])


def decide(existing: Product | None, resolved: ResolvedProduct) -> RegistrationResult:
    """Whether registering ``resolved`` adds, updates, reactivates or changes nothing (pure).

    Raises :class:`ProductConflict` when the id is actively registered from elsewhere: two
    repositories claiming one id would make every later evaluation ambiguous.
    """
    product_id = resolved.spec.id
    if existing is None:
        return RegistrationResult(product_id, "added")
    if existing.active and (
        existing.repo_url != resolved.repo_url or existing.spec_path != resolved.registration.spec
    ):
        raise ProductConflict(
            f"product id {product_id!r} is already registered from "
            f"{existing.repo_url} ({existing.spec_path}); remove it first to move it"
        )
    changes = changed_fields(existing, resolved.desired_fields())
    if not existing.active:
        return RegistrationResult(product_id, "reactivated", changes)
    return RegistrationResult(product_id, "updated" if changes else "unchanged", changes)


class SpecReader:
    """Reads and checks specs for one operation, fetching each repository once.

    Short-lived on purpose: a reader remembers what it fetched, so a new operation (a new
    ``add``, a new import) makes a new reader and sees the repositories as they are now.
    """

    def __init__(self, mirrors: MirrorCache) -> None:
        self.mirrors = mirrors
        self._fetched: dict[str, Path | SpecfleetError] = {}
        self._checks: dict[str, SpecCheck] = {}

    def prefetch(self, urls: Iterable[str], workers: int = 8) -> None:
        """Fetch distinct repositories concurrently (git is I/O and subprocess bound)."""
        pending = sorted({url for url in urls if url not in self._fetched})
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(pending) or 1))) as pool:
            for url, outcome in zip(pending, pool.map(self._fetch_quietly, pending), strict=True):
                self._fetched[url] = outcome

    def _fetch_quietly(self, url: str) -> Path | SpecfleetError:
        try:
            return self.mirrors.fetch(url)
        except SpecfleetError as error:
            return error

    def resolve(self, registration: Registration) -> ResolvedProduct:
        """Read and check the registration's spec; raises on a missing or invalid spec."""
        url = normalise_repo_url(registration.repo)
        if url not in self._fetched:
            self._fetched[url] = self._fetch_quietly(url)
        mirror = self._fetched[url]
        if isinstance(mirror, SpecfleetError):
            raise mirror
        blob = read_file_at(mirror, url, registration.branch, registration.spec, MAX_SPEC_BYTES)
        check = self._check(blob)
        if check.spec is None:
            raise SpecInvalid(blob.label, check.problems)
        return ResolvedProduct(registration, url, check.spec, blob.commit, check.content_hash)

    def _check(self, blob: RepoFile) -> SpecCheck:
        if blob.data is None:
            problem = oversize_problem(blob.label, blob.size)
            return SpecCheck(blob.label, None, (problem,), "")
        # a file at a commit never changes: check it once however many rows name it
        key = f"{blob.label}\0{blob.commit}"
        cached = self._checks.get(key)
        if cached is None:
            cached = check_spec_bytes(blob.data, blob.label)
            self._checks[key] = cached
        return cached


class Registry:
    """Registered products in the database; every change is audited."""

    def __init__(self, engine: Engine, mirrors: MirrorCache, actor: str) -> None:
        self.engine = engine
        self.mirrors = mirrors
        self.actor = actor

    def add(self, registration: Registration) -> RegistrationResult:
        resolved = SpecReader(self.mirrors).resolve(registration)
        with session_scope(self.engine) as session:
            existing = session.get(Product, resolved.spec.id)
            result = decide(existing, resolved)
            self._apply(session, existing, resolved, result)
        return result

    def import_rows(
        self, rows: Sequence[ImportRow], on_progress: Callable[[int], None] | None = None
    ) -> ImportReport:
        """Register many products; a bad row is reported and the rest are imported."""
        report = ImportReport()
        reader = SpecReader(self.mirrors)
        valid: list[tuple[ImportRow, Registration]] = []
        for row in rows:
            if row.error is not None or row.registration is None:
                report.failed.append(RowFailure(row.label, row.error or "empty row"))
            else:
                valid.append((row, row.registration))
        urls = []
        for _row, registration in valid:
            try:
                urls.append(normalise_repo_url(registration.repo))
            except InputError:
                continue  # reported against its row by resolve() below
        reader.prefetch(urls)
        resolved_rows: list[tuple[ImportRow, ResolvedProduct]] = []
        seen: dict[str, str] = {}
        for done, (row, registration) in enumerate(valid, start=1):
            if on_progress is not None and done % 100 == 0:
                on_progress(done)
            try:
                resolved = reader.resolve(registration)
            except SpecInvalid as error:
                detail = "; ".join(problem.render() for problem in error.problems[:3])
                report.failed.append(RowFailure(row.label, f"invalid spec: {detail}"))
                continue
            except SpecfleetError as error:
                report.failed.append(RowFailure(row.label, str(error)))
                continue
            first = seen.get(resolved.spec.id)
            if first is not None:
                report.failed.append(
                    RowFailure(row.label, f"product {resolved.spec.id!r} is already in {first}")
                )
                continue
            seen[resolved.spec.id] = row.label
            resolved_rows.append((row, resolved))
        with session_scope(self.engine) as session:
            ids = [resolved.spec.id for _, resolved in resolved_rows]
            existing = _products_by_id(session, ids)
            for row, resolved in resolved_rows:
                try:
                    result = decide(existing.get(resolved.spec.id), resolved)
                except ProductConflict as error:
                    report.failed.append(RowFailure(row.label, str(error)))
                    continue
                self._apply(session, existing.get(resolved.spec.id), resolved, result)
                report.results.append(result)
        return report

    def _apply(
        self,
        session: Session,
        existing: Product | None,
        resolved: ResolvedProduct,
        result: RegistrationResult,
    ) -> None:
        if result.status == "unchanged":
            return
        now = utcnow()
        desired = resolved.desired_fields()
        if existing is None:
            product = Product(
                id=resolved.spec.id,
                spec_commit=resolved.spec_commit,
                registered_by=self.actor,
                registered_at=now,
                updated_at=now,
                **desired,  # type: ignore[arg-type]
            )
            session.add(product)
        else:
            for name, value in desired.items():
                setattr(existing, name, value)
            existing.spec_commit = resolved.spec_commit
            existing.active = True
            existing.removed_at = None
            existing.updated_at = now
            session.add(existing)
        session.add(
            AuditEntry(
                actor=self.actor,
                action=f"product.{result.status}",
                subject_type="product",
                subject_id=resolved.spec.id,
                detail={"changed": list(result.changed_fields), "commit": resolved.spec_commit},
                at=now,
            )
        )

    def remove(self, product_id: str) -> bool:
        """Soft-remove: the row and its history stay; returns False when already removed."""
        with session_scope(self.engine) as session:
            product = session.get(Product, product_id)
            if product is None:
                raise ProductNotFound(f"no product {product_id!r} is registered")
            if not product.active:
                return False
            product.active = False
            product.removed_at = product.updated_at = utcnow()
            session.add(product)
            session.add(
                AuditEntry(
                    actor=self.actor,
                    action="product.removed",
                    subject_type="product",
                    subject_id=product_id,
                )
            )
        return True


def get_product(engine: Engine, product_id: str) -> Product:
    with Session(engine) as session:
        product = session.get(Product, product_id)
    if product is None:
        raise ProductNotFound(f"no product {product_id!r} is registered")
    return product


def list_products(
    engine: Engine,
    include_removed: bool = False,
    owner: str | None = None,
    tag: str | None = None,
) -> list[Product]:
    with Session(engine) as session:
        statement = select(Product).order_by(Product.id)
        if not include_removed:
            statement = statement.where(Product.active == True)  # noqa: E712
        products = list(session.exec(statement))
    if owner:
        products = [product for product in products if owner in product.owners]
    if tag:
        products = [product for product in products if tag in product.tags]
    return products


def product_history(engine: Engine, product_id: str, limit: int = 20) -> list[AuditEntry]:
    with Session(engine) as session:
        statement = (
            select(AuditEntry)
            .where(AuditEntry.subject_type == "product", AuditEntry.subject_id == product_id)
            .order_by(AuditEntry.id.desc())  # type: ignore[union-attr]
            .limit(limit)
        )
        return list(session.exec(statement))


def _products_by_id(session: Session, ids: Sequence[str]) -> dict[str, Product]:
    found: dict[str, Product] = {}
    # chunks keep the IN list inside SQLite's bound-parameter limit
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for product in session.exec(select(Product).where(Product.id.in_(chunk))):  # type: ignore[attr-defined]
            found[product.id] = product
    return found


@dataclass(frozen=True)
class ImportRow:
    """One row of an import file: its location label and either a registration or an error."""

    label: str  # e.g. "products.csv:12"
    registration: Registration | None
    error: str | None = None


@dataclass(frozen=True)
class RowFailure:
    label: str
    reason: str


@dataclass
class ImportReport:
    results: list[RegistrationResult] = field(default_factory=list)
    failed: list[RowFailure] = field(default_factory=list)

    def count(self, status: RegistrationStatus) -> int:
        return sum(1 for result in self.results if result.status == status)

    @property
    def changed_anything(self) -> bool:
        return any(result.status != "unchanged" for result in self.results)


def registration_from_mapping(label: str, values: dict[str, object]) -> ImportRow:
    """Build a registration from a row's mapping, reporting problems against the row."""
    cleaned = {key: value for key, value in values.items() if value not in (None, "")}
    for key in ("owners", "tags"):
        if isinstance(cleaned.get(key), str):
            cleaned[key] = tuple(
                part
                for part in str(cleaned[key]).replace(";", " ").replace(",", " ").split()
                if part
            )
    try:
        return ImportRow(label, Registration.model_validate(cleaned))
    except ValidationError as error:
        reasons = []
        for item in error.errors(include_url=False):
            where = ".".join(str(part) for part in item["loc"])
            message = str(item["msg"]).removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = f"unknown column (known: {', '.join(Registration.model_fields)})"
            reasons.append(f"{where}: {message}" if where else message)
        return ImportRow(label, None, "; ".join(reasons))


def utc_text(moment: dt.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


IMPORT_COLUMNS = tuple(Registration.model_fields)


def read_import_file(path: Path) -> list[ImportRow]:
    """Rows of a YAML or CSV registration file, each labelled ``file:line``.

    A file that cannot be read at all raises :class:`ImportFileError`; a bad row becomes an
    :class:`ImportRow` with its error, so the rest can still be imported.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as error:
        raise ImportFileError(f"{path}: no such file") from error
    except UnicodeDecodeError as error:
        raise ImportFileError(f"{path}: not UTF-8 text") from error
    except OSError as error:
        raise ImportFileError(f"{path}: cannot be read ({error.strerror or error})") from error
    if path.suffix.lower() == ".csv":
        return _csv_rows(path, text)
    if path.suffix.lower() in (".yaml", ".yml"):
        return _yaml_rows(path, text)
    raise ImportFileError(f"{path}: expected a .csv, .yaml or .yml file")


def _csv_rows(path: Path, text: str) -> list[ImportRow]:
    reader = csv.DictReader(text.splitlines(keepends=True))
    header = [name.strip() for name in reader.fieldnames or []]
    if not header:
        raise ImportFileError(
            f"{path}:1: empty file; expected a header row ({', '.join(IMPORT_COLUMNS)})"
        )
    unknown = [name for name in header if name not in IMPORT_COLUMNS]
    if unknown:
        raise ImportFileError(
            f"{path}:1: unknown column(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(IMPORT_COLUMNS)}"
        )
    if "repo" not in header:
        raise ImportFileError(f"{path}:1: the header needs a 'repo' column")
    reader.fieldnames = header
    rows = []
    for record in reader:
        label = f"{path}:{reader.line_num}"
        if None in record:
            rows.append(ImportRow(label, None, f"{len(record[None])} more value(s) than columns"))
            continue
        rows.append(
            registration_from_mapping(label, {k: (v or "").strip() for k, v in record.items()})
        )
    return rows


def _yaml_rows(path: Path, text: str) -> list[ImportRow]:
    import yaml

    try:
        from yaml import CSafeLoader as Loader
    except ImportError:  # pragma: no cover
        from yaml import SafeLoader as Loader  # type: ignore[assignment]
    try:
        root = yaml.compose(text, Loader=Loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ImportFileError(f"{where}: invalid YAML: {error.problem}") from error
    if root is None:
        return []
    if isinstance(root, yaml.MappingNode):
        items = {str(key.value): value for key, value in root.value}
        if set(items) != {"products"}:
            raise ImportFileError(f"{path}:1: expected a list of products or a 'products:' key")
        root = items["products"]
    if not isinstance(root, yaml.SequenceNode):
        raise ImportFileError(f"{path}:{root.start_mark.line + 1}: expected a list of products")
    constructor = Loader("")
    rows = []
    for node in root.value:
        label = f"{path}:{node.start_mark.line + 1}"
        if not isinstance(node, yaml.MappingNode):
            rows.append(ImportRow(label, None, "expected a mapping with at least 'repo'"))
            continue
        values = constructor.construct_mapping(node, deep=True)
        rows.append(registration_from_mapping(label, {str(k): v for k, v in values.items()}))
    return rows
