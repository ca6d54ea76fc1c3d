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
    # a hash-pinned lock and a pyproject with a pytest section: evidence a plan may not weaken
    (repo / "requirements-lock.txt").write_text(
        "# pip-compile --generate-hashes\nsix==1.16.0 \\\n    --hash=sha256:" + "1" * 64 + "\n"
    )
    (repo / "pyproject.toml").write_text(
        '[project]\nname = "footfall"\nversion = "1.0"\n\n'
        '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'
    )
    # a test no requirement names: protected all the same, as existing evidence
    (repo / "tests" / "test_smoke.py").write_text("def test_imports():\n    import footfall\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / "footfall" / "outside").symlink_to(outside)
    (repo / "passwd_link").symlink_to("/etc/passwd")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo
