"""Register, import and remove data products (the registry's writes, with who did them)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from sqlalchemy import Engine

from specfleet.core.errors import ImportFileError, InputError
from specfleet.core.git import MirrorCache
from specfleet.core.registry import (
    ImportReport,
    ImportRow,
    Registration,
    RegistrationResult,
    Registry,
    read_import_file,
)

MAX_IMPORT_BYTES = 20 * 1024 * 1024


def on_default_branch(mirrors: MirrorCache, registration: Registration) -> Registration:
    """The registration on its repository's default branch (for a registration naming none)."""
    from specfleet.core.registry.reader import with_default_branch

    return with_default_branch(mirrors, registration)


def register_product(
    engine: Engine, mirrors: MirrorCache, actor: str, registration: Registration
) -> RegistrationResult:
    """Register (or update, or re-register) a product; its spec must be present and valid."""
    return Registry(engine, mirrors, actor).add(registration)


def remove_product(engine: Engine, mirrors: MirrorCache, actor: str, product_id: str) -> bool:
    """Stop evaluating a product (history kept); False when it was already removed."""
    return Registry(engine, mirrors, actor).remove(product_id)


def import_products(
    engine: Engine,
    mirrors: MirrorCache,
    actor: str,
    rows: Sequence[ImportRow],
    on_progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Register every row (of a YAML or CSV file); bad rows are reported, the rest imported."""
    return Registry(engine, mirrors, actor).import_rows(rows, on_progress=on_progress)


def import_upload(
    engine: Engine, mirrors: MirrorCache, actor: str, filename: str, data: bytes
) -> ImportReport:
    """Register the rows of an uploaded file, labelled with the upload's name (never with the
    server's temporary folder)."""
    if len(data) > MAX_IMPORT_BYTES:
        raise InputError(f"{filename}: larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MiB")
    name = safe_upload_name(filename)
    with tempfile.TemporaryDirectory(prefix="specfleet-import-") as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        try:
            rows = read_import_file(path)
        except ImportFileError as error:
            # the server's temporary folder means nothing to the uploader
            raise ImportFileError(str(error).replace(folder + "/", "")) from None
        report = import_products(engine, mirrors, actor, rows)
    report.failed = [
        replace(
            failure,
            label=failure.label.replace(folder + "/", ""),
            reason=failure.reason.replace(folder + "/", ""),
        )
        for failure in report.failed
    ]
    return report


def safe_upload_name(filename: str) -> str:
    """The uploader's file name, only its last part and only safe characters."""
    name = Path(filename.replace("\\", "/")).name or "upload"
    return "".join(char if char.isalnum() or char in "._-" else "_" for char in name)[:100]
