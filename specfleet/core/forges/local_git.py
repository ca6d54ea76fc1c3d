"""The embedded forge's bare git repositories under ``root``: naming, locking, reading tips,
creating a project from a checkout, pushing a branch and writing a merge commit.

Every git call runs with hooks disabled and a timeout; failures become :class:`ForgeError`
with the (redacted) tail of git's stderr.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from specfleet.core.db import MergeRequest
from specfleet.core.errors import ForgeError, InputError, MergeRequestRefused
from specfleet.core.forges.interface import BranchPush
from specfleet.core.git import GIT_ENV
from specfleet.core.secrets import redact_text

PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
BRANCH_NAME = re.compile(r"^(?!.*\.\.)(?!/)(?!.*//)(?!.*@\{)[A-Za-z0-9_.\-/]{1,255}(?<![/.])$")
MERGER_IDENTITY = {
    "GIT_AUTHOR_NAME": "specfleet",
    "GIT_AUTHOR_EMAIL": "specfleet@localhost",
    "GIT_COMMITTER_NAME": "specfleet",
    "GIT_COMMITTER_EMAIL": "specfleet@localhost",
}


def check_branch(branch: str) -> None:
    if not BRANCH_NAME.match(branch) or branch.endswith(".lock"):
        raise InputError(f"invalid branch name {branch!r}")


class BareRepositories:
    """One bare repository per project under ``root``, each guarded by a file lock."""

    def __init__(self, root: Path, timeout_seconds: int = 120) -> None:
        self.root = root
        self.timeout_seconds = timeout_seconds

    def path(self, project: str) -> Path:
        """The bare repository of ``project`` (which may not exist yet)."""
        if not PROJECT_NAME.match(project):
            raise InputError(
                f"invalid local forge project name {project!r}: use letters, digits, '.', '_' "
                "and '-' (the product id)"
            )
        return self.root / f"{project}.git"

    def existing(self, project: str) -> Path:
        path = self.path(project)
        if not (path / "HEAD").exists():
            raise ForgeError(f"no local forge project {project!r} (expected {path})")
        return path

    def create(self, project: str, source: Path) -> str:
        """The project's bare repository, created from ``source``'s branches when absent."""
        path = self.path(project)
        if not (source / ".git").exists() and not (source / "HEAD").exists():
            raise InputError(f"{source} is not a git repository")
        with self.locked(project):
            if (path / "HEAD").exists():
                return str(path.resolve())
            self.root.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            if partial.exists():
                shutil.rmtree(partial)
            self.git(None, "init", "--bare", "--quiet", str(partial))
            self.git(
                partial,
                "fetch",
                "--quiet",
                "--no-tags",
                str(source.resolve()),
                "+refs/heads/*:refs/heads/*",
            )
            head = self._source_head(source)
            if head:
                self.git(partial, "symbolic-ref", "HEAD", f"refs/heads/{head}")
            # a repository interrupted half-way must never look like a project
            partial.rename(path)
        return str(path.resolve())

    def push(self, push: BranchPush) -> str:
        """Force ``push.branch`` to ``push.commit``, fetched from ``push.source``."""
        check_branch(push.branch)
        path = self.existing(push.project)
        with self.locked(push.project):
            if self.tip(path, push.branch) == push.commit:
                return push.commit
            # pushing from the source sends exactly the missing objects, whatever refs it has;
            # --no-verify: a repository's own hooks never run on specfleet's machines
            self.git(
                push.source,
                "push",
                "--quiet",
                "--no-verify",
                "--force",
                str(path),
                f"{push.commit}:refs/heads/{push.branch}",
                in_work_tree=True,
            )
            tip = self.tip(path, push.branch)
        if tip != push.commit:
            raise ForgeError(f"{push.project}: {push.branch} is at {tip}, not {push.commit}")
        return tip

    def merge_commit(
        self, path: Path, row: MergeRequest, head: str, target: str, actor: str
    ) -> tuple[str, str]:
        """The commit the target branch moves to, and how it was made."""
        if self.is_ancestor(path, head, target):
            return target, "already-contained"
        if self.is_ancestor(path, target, head):
            return head, "fast-forward"
        merged = self.run(path, "merge-tree", "--write-tree", "--name-only", target, head)
        if merged.returncode == 1:
            lines = merged.stdout.decode("utf-8", "replace").splitlines()[1:]
            conflicting = list(dict.fromkeys(_until_blank(lines)))[:5]
            raise MergeRequestRefused(
                f"merge request {row.id} conflicts with {row.target_branch}"
                + (f" in {', '.join(name for name in conflicting if name)}" if conflicting else "")
                + "; it is updated by the next proposal"
            )
        if merged.returncode != 0:
            raise ForgeError(f"cannot merge merge request {row.id}: {stderr_of(merged)}")
        tree = merged.stdout.decode().splitlines()[0].strip()
        message = (
            f"Merge branch '{row.branch}' into {row.target_branch}\n\n"
            f"{row.title}\n\nMerge request {row.forge_ref}, approved by "
            f"{', '.join(row.approvals) or 'nobody'}, merged by {actor}.\n"
        )
        commit = self.git(
            path, "commit-tree", tree, "-p", target, "-p", head, "-m", message, env=MERGER_IDENTITY
        ).strip()
        return commit, "merge-commit"

    def tip(self, path: Path, branch: str) -> str | None:
        result = self.run(
            path, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}"
        )
        return result.stdout.decode().strip() if result.returncode == 0 else None

    def is_ancestor(self, path: Path, ancestor: str, descendant: str) -> bool:
        return self.run(path, "merge-base", "--is-ancestor", ancestor, descendant).returncode == 0

    def _source_head(self, source: Path) -> str | None:
        result = subprocess.run(
            ["git", "-C", str(source), "symbolic-ref", "--quiet", "--short", "HEAD"],
            capture_output=True,
            env={**os.environ, **GIT_ENV},
            timeout=self.timeout_seconds,
            check=False,
        )
        if result.returncode != 0:
            return None
        return result.stdout.decode().strip() or None

    def run(
        self,
        path: Path | None,
        *args: str,
        in_work_tree: bool = False,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        if path is None:
            location: list[str] = []
        elif in_work_tree:
            location = ["-C", str(path)]
        else:
            location = ["--git-dir", str(path)]
        try:
            return subprocess.run(
                ["git", "-c", "core.hooksPath=/dev/null", *location, *args],
                capture_output=True,
                env={**os.environ, **GIT_ENV, **(env or {})},
                timeout=self.timeout_seconds,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise ForgeError(f"git {args[0]} timed out after {self.timeout_seconds} s") from error

    def git(
        self,
        path: Path | None,
        *args: str,
        in_work_tree: bool = False,
        env: dict[str, str] | None = None,
    ) -> str:
        result = self.run(path, *args, in_work_tree=in_work_tree, env=env)
        if result.returncode != 0:
            raise ForgeError(f"git {args[0]} failed: {stderr_of(result)}")
        return result.stdout.decode("utf-8", "replace")

    @contextlib.contextmanager
    def locked(self, project: str) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        lock_path = self.path(project).with_suffix(".lock")
        with lock_path.open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _until_blank(lines: list[str]) -> Iterator[str]:
    for line in lines:
        if not line.strip():
            return
        yield line.strip()


def stderr_of(result: subprocess.CompletedProcess[bytes]) -> str:
    return redact_text(result.stderr.decode("utf-8", "replace").strip()[-500:])
