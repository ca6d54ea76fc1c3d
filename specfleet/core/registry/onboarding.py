"""Onboarding a repository that has no ``dataproduct.yaml`` yet: a drafted spec to start from.

``product add`` on such a repository stops (a product without a spec cannot be verified),
but when the branch is a dbt project it drafts the spec with ``spec init`` from an export of
that branch, so the owner has something to review instead of an empty page.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from specfleet.core.errors import SpecfleetError
from specfleet.core.git import MirrorCache, export_tree, normalise_repo_url
from specfleet.core.registry.decisions import Registration
from specfleet.core.spec.init import init_text


def draft_for_repository(
    mirrors: MirrorCache, registration: Registration, drafts: Path
) -> Path | None:
    """Draft a spec from the registered branch; the draft's path, or None when not a dbt project."""
    url = normalise_repo_url(registration.repo)
    mirror = mirrors.fetch(url)
    with tempfile.TemporaryDirectory(prefix="specfleet-onboard-") as scratch:
        checkout = Path(scratch) / "checkout"
        export_tree(mirror, registration.branch, checkout)
        if not (checkout / "dbt_project.yml").is_file():
            return None
        try:
            text = init_text(checkout)
        except SpecfleetError:
            return None
    drafts.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", url.rstrip("/").rsplit("/", 1)[-1])[:60] or "repo"
    target = drafts / f"{name}.dataproduct.yaml"
    target.write_text(text)
    return target
