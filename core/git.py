"""Product repositories through a cache of bare mirrors (GitPython).

Every repository specfleet reads is mirrored once under ``$SPECFLEET_HOME/mirrors`` and
fetched on use, so reading a spec or creating a worktree never touches the user's own
checkout, and a fleet of products that share a repository clones it once. Git never prompts
(a missing credential fails fast instead of hanging a worker), and every git command has a
time limit.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import git

from core.errors import InputError, RepositoryError, SpecMissing
from core.secrets import find_secret_shapes, redact_text

GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",  # never wait for a password on a terminal nobody watches
    "GIT_ASKPASS": "true",
    "SSH_ASKPASS": "true",
    "GCM_INTERACTIVE": "never",
}
SCP_LIKE = re.compile(r"^[A-Za-z0-9_.\-]+@[A-Za-z0-9_.\-]+:[^/].*$")
REMOTE_SCHEMES = ("https", "http", "ssh", "git", "file")


def normalise_repo_url(url: str, base: Path | None = None) -> str:
    """Check a repository location and give it one canonical spelling.

    Local paths become absolute paths (so the registry means the same repository from any
    working directory); URLs must not carry credentials, which belong in settings.
    """
    text = url.strip()
    if not text:
        raise InputError("the repository URL is empty")
    if urlsplit(text).password is not None or find_secret_shapes(text):
        raise InputError(
            f"the repository URL {redact_text(text)!r} carries credentials; give the URL without "
            "them and configure the forge token (e.g. SPECFLEET_GITLAB_TOKEN) instead"
        )
    if SCP_LIKE.match(text):
        return text
    scheme = urlsplit(text).scheme.lower()
    if scheme == "file":
        return str(Path(urlsplit(text).path).resolve())
    if scheme in REMOTE_SCHEMES:
        return text
    if scheme and len(scheme) > 1:
        raise InputError(f"unsupported repository URL scheme {scheme!r} in {text!r}")
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    return str(path.resolve())


def is_local(url: str) -> bool:
    return url.startswith("/")


@dataclass(frozen=True)
class RepoFile:
    """A file read from a repository at the tip of a branch."""

    commit: str
    size: int
    data: bytes | None  # None when larger than the reader's limit: never read into memory
    label: str  # "<repo>@<branch>:<path>", for messages


class MirrorCache:
    """Bare mirrors of product repositories, fetched on demand, one lock per mirror."""

    def __init__(self, root: Path, timeout_seconds: int = 120) -> None:
        self.root = root
        self.timeout_seconds = timeout_seconds

    def path_for(self, url: str) -> Path:
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        tail = re.sub(r"[^A-Za-z0-9_.-]+", "-", url.rstrip("/").rsplit("/", 1)[-1])[:40]
        return self.root / f"{tail}-{digest}.git"

    def fetch(self, url: str) -> Path:
        """Clone ``url`` as a mirror on first use, fetch it afterwards; returns the mirror."""
        mirror = self.path_for(url)
        self.root.mkdir(parents=True, exist_ok=True)
        if is_local(url) and not Path(url).exists():
            raise RepositoryError(f"repository {url} does not exist")
        with self._locked(mirror):
            try:
                if (mirror / "HEAD").exists():
                    git.Repo(mirror).git.fetch(
                        "--prune", "origin", env=GIT_ENV, kill_after_timeout=self.timeout_seconds
                    )
                else:
                    partial = mirror.with_suffix(".partial")
                    if partial.exists():
                        shutil.rmtree(partial)
                    git.Repo.clone_from(
                        url,
                        partial,
                        mirror=True,
                        env=GIT_ENV,
                        kill_after_timeout=self.timeout_seconds,
                    )
                    # a clone interrupted half-way must never look like a mirror
                    partial.rename(mirror)
            except git.GitCommandError as error:
                raise RepositoryError(
                    f"cannot fetch {redact_text(url)}: {_git_message(error)}"
                ) from error
        return mirror

    @contextlib.contextmanager
    def _locked(self, mirror: Path) -> Iterator[None]:
        lock_path = mirror.with_suffix(".lock")
        with lock_path.open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def read_file_at(mirror: Path, url: str, branch: str, path: str, max_bytes: int) -> RepoFile:
    """Read ``path`` at the tip of ``branch``; missing branch or file is a RepositoryError."""
    label = f"{url}@{branch}:{path}"
    repo = git.Repo(mirror)
    try:
        try:
            commit = repo.commit(f"refs/heads/{branch}")
        except (git.BadName, ValueError) as error:
            raise RepositoryError(f"{url}: no branch {branch!r}") from error
        try:
            blob = commit.tree / path
        except KeyError as error:
            raise SpecMissing(f"{label}: no such file in the repository") from error
        if blob.type != "blob":
            raise SpecMissing(f"{label}: is a {blob.type}, not a file")
        data = blob.data_stream.read() if blob.size <= max_bytes else None
        return RepoFile(commit.hexsha, blob.size, data, label)
    finally:
        repo.close()


def _git_message(error: git.GitCommandError) -> str:
    stderr = (error.stderr or "").strip()
    stderr = re.sub(r"^\s*stderr:\s*", "", stderr)
    lines = [line.strip(" '") for line in stderr.splitlines() if line.strip(" '")]
    return redact_text(" ".join(lines[-3:]) or f"git exited with {error.status}")
