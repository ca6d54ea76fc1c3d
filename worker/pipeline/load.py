"""Stage 3, load spec: the product's ``dataproduct.yaml`` at the evaluated commit, read from
the mirror (no checkout) and checked with the spec loader's located problems."""

from __future__ import annotations

from pathlib import Path

from specfleet.core.errors import SpecInvalid, SpecMissing
from specfleet.core.git import read_blobs, tree_entries
from specfleet.core.spec import Spec, check_spec_bytes
from specfleet.core.spec.loader import MAX_SPEC_BYTES, oversize_problem


def spec_at(mirror: Path, commit: str, spec_path: str) -> tuple[Spec, bytes]:
    """The valid spec at ``commit`` and its bytes; SpecMissing or SpecInvalid otherwise."""
    entries = tree_entries(mirror, commit, [spec_path])
    entry = entries.get(spec_path)
    if entry is None:
        raise SpecMissing(f"no {spec_path} at commit {commit[:12]}")
    if entry.size > MAX_SPEC_BYTES:
        raise SpecInvalid(spec_path, [oversize_problem(spec_path, entry.size)])
    data = read_blobs(mirror, [entry.blob])[entry.blob]
    check = check_spec_bytes(data, spec_path)
    if check.spec is None:
        raise SpecInvalid(check.source, check.problems)
    return check.spec, data
