"""The repository the guard-rail corpus is checked against: store_footfall plus traps."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.conftest import EXAMPLES

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "edits"
CANARY_FORGE_TOKEN = "canary-forge-token-7f3a9c"


def build_edits_repo(tmp_path: Path) -> Path:
    """store_footfall with CI files, a git directory and symlinks pointing out of it."""
    repo = Path(shutil.copytree(EXAMPLES / "store_footfall", tmp_path / "repo"))
    (repo / ".gitlab-ci.yml").write_text("test:\n  script: [pytest -q]\n")
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / ".github" / "workflows" / "test.yml").write_text(
        "on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n      - run: pytest -q\n"
    )
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / "footfall" / "outside").symlink_to(outside)
    (repo / "passwd_link").symlink_to("/etc/passwd")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo
