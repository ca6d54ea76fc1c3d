"""Stage 1, fetch: where the product's branch points now, and its commit in the mirror cache.

The tip comes from the ref files of a local repository, else from one ``git ls-remote`` (no
objects transferred), so an unchanged product is recognised without fetching anything; the
mirror is brought up to date only when the evaluation goes on and the mirror lacks that commit.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from specfleet.core.errors import RepositoryError
from specfleet.core.git import GIT_ENV, MirrorCache, is_local
from specfleet.core.secrets import redact_text

HEX40 = re.compile(r"^[0-9a-f]{40}$")


def remote_tip(url: str, branch: str, timeout_seconds: int = 60) -> str:
    """The commit ``branch`` points at in the repository at ``url``."""
    if is_local(url):
        if not Path(url).exists():
            raise RepositoryError(f"repository {url} does not exist (moved or deleted?)")
        tip = local_tip(Path(url), branch)
        if tip is not None:
            return tip
    try:
        result = subprocess.run(
            ["git", "ls-remote", "--heads", "--", url, f"refs/heads/{branch}"],
            capture_output=True,
            env={**os.environ, **GIT_ENV},
            timeout=timeout_seconds,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise RepositoryError(
            f"{redact_text(url)} did not answer within {timeout_seconds} s"
        ) from error
    if result.returncode != 0:
        stderr = redact_text(result.stderr.decode("utf-8", "replace").strip()[-400:])
        raise RepositoryError(f"cannot read {redact_text(url)}: {stderr or 'git ls-remote failed'}")
    for line in result.stdout.decode().splitlines():
        commit, _, ref = line.partition("\t")
        if ref == f"refs/heads/{branch}":
            return commit
    raise RepositoryError(f"{redact_text(url)}: no branch {branch!r}")


def local_tip(repo: Path, branch: str) -> str | None:
    """The branch's commit read straight from a local repository's ref files, or None when
    they are not in the plain layout (a linked worktree, reftable, a symbolic ref): then
    ``git ls-remote`` answers. Saves a process per no-op evaluation of a local product."""
    git_dir: Path | None = repo / ".git"
    if git_dir is None or not git_dir.is_dir():
        git_dir = repo if (repo / "HEAD").is_file() else None  # a bare repository
    if git_dir is None or (git_dir / "reftable").exists():
        return None
    ref = f"refs/heads/{branch}"
    try:
        loose = (git_dir / ref).read_text().strip()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        loose = ""
    except OSError:
        return None
    if loose:
        return loose if HEX40.match(loose) else None
    try:
        packed = (git_dir / "packed-refs").read_text()
    except OSError:
        return None
    for line in packed.splitlines():
        commit, _, name = line.partition(" ")
        if name == ref and HEX40.match(commit):
            return commit
    return None


def has_commit(mirror: Path, commit: str) -> bool:
    if not (mirror / "HEAD").exists():
        return False
    result = subprocess.run(
        ["git", "--git-dir", str(mirror), "cat-file", "-e", f"{commit}^{{commit}}"],
        capture_output=True,
        env={**os.environ, **GIT_ENV},
        timeout=60,
        check=False,
    )
    return result.returncode == 0


def mirror_with(mirrors: MirrorCache, url: str, commit: str) -> tuple[Path, bool]:
    """The mirror holding ``commit``, fetched only if it lacks it; (mirror, fetched)."""
    mirror = mirrors.path_for(url)
    if has_commit(mirror, commit):
        return mirror, False
    mirror = mirrors.fetch(url)
    if not has_commit(mirror, commit):
        raise RepositoryError(
            f"{redact_text(url)}: commit {commit[:12]} disappeared while evaluating (the branch "
            "was rewritten); the next evaluation takes the new tip"
        )
    return mirror, True
