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
import io
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import git

from specfleet.core.errors import InputError, RepositoryError
from specfleet.core.repo_allow import RepoAllowList
from specfleet.core.secrets import find_secret_shapes, redact_text

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


class MirrorCache:
    """Bare mirrors of product repositories, fetched on demand, one lock per mirror."""

    def __init__(
        self, root: Path, timeout_seconds: int = 120, allow: RepoAllowList | None = None
    ) -> None:
        self.root = root
        self.timeout_seconds = timeout_seconds
        # None: any location (the CLI on the user's own machine); the web server passes
        # SPECFLEET_REPO_ALLOW so that a registration cannot make it connect anywhere
        self.allow = allow

    def path_for(self, url: str) -> Path:
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        tail = re.sub(r"[^A-Za-z0-9_.-]+", "-", url.rstrip("/").rsplit("/", 1)[-1])[:40]
        return self.root / f"{tail}-{digest}.git"

    def fetch(self, url: str) -> Path:
        """Clone ``url`` as a mirror on first use, fetch it afterwards; returns the mirror."""
        if self.allow is not None:
            self.allow.check(url)
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
                if not (mirror / "HEAD").exists():
                    # nothing was mirrored: leave no lock file (nor partial clone) behind
                    shutil.rmtree(mirror.with_suffix(".partial"), ignore_errors=True)
                    mirror.with_suffix(".lock").unlink(missing_ok=True)
                raise RepositoryError(
                    f"cannot fetch {redact_text(url)}: {_git_message(error)}"
                ) from error
        return mirror

    @contextlib.contextmanager
    def _locked(self, mirror: Path) -> Iterator[None]:
        lock_path = mirror.with_suffix(".lock")
        while True:
            with lock_path.open("a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                # the holder before us may have removed the file (a failed first fetch): a
                # lock on an unlinked file excludes nobody, so take the current file's lock
                if not _same_file(handle.fileno(), lock_path):
                    continue
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
                return

    def clean_stale_locks(self) -> int:
        """Remove lock files of mirrors that do not exist and that nobody holds."""
        removed = 0
        for lock_path in self.root.glob("*.lock") if self.root.exists() else ():
            if lock_path.with_suffix(".git").exists():
                continue
            with lock_path.open("a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a fetch is under way
                if _same_file(handle.fileno(), lock_path):
                    lock_path.unlink(missing_ok=True)
                    removed += 1
        return removed


def _same_file(descriptor: int, path: Path) -> bool:
    try:
        return os.fstat(descriptor).st_ino == path.stat().st_ino
    except FileNotFoundError:
        return False


@dataclass(frozen=True)
class TreeEntry:
    """A file's entry in a commit's tree: its blob id and size, without its content."""

    path: str
    blob: str
    size: int


def branch_tip(mirror: Path, url: str, branch: str) -> str:
    """The commit at the tip of ``branch``; a missing branch is a RepositoryError."""
    result = _git(mirror, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}")
    if result.returncode != 0:
        raise RepositoryError(f"{url}: no branch {branch!r}")
    return result.stdout.decode().strip()


def default_branch(mirror: Path, url: str) -> str:
    """The branch the repository's HEAD points at (``trunk``, ``master``, ...).

    Asked of the repository itself (``ls-remote --symref``) because a mirror's own HEAD is
    set once at clone time and would miss a later rename; the mirror's HEAD is the fallback
    for servers that do not advertise it.
    """
    remote = subprocess.run(
        ["git", "ls-remote", "--symref", url, "HEAD"],
        capture_output=True,
        env={**os.environ, **GIT_ENV},
        timeout=120,
        check=False,
    )
    match = re.search(rb"^ref: refs/heads/(\S+)\tHEAD$", remote.stdout, re.MULTILINE)
    if remote.returncode == 0 and match:
        return match.group(1).decode()
    local = _git(mirror, "symbolic-ref", "--quiet", "HEAD")
    if local.returncode == 0 and local.stdout.startswith(b"refs/heads/"):
        return local.stdout.decode().strip().removeprefix("refs/heads/")
    raise RepositoryError(f"{redact_text(url)}: cannot tell its default branch; pass --branch")


def tree_entries(mirror: Path, commit: str, paths: Sequence[str]) -> dict[str, TreeEntry]:
    """Blob id and size of each of ``paths`` that is a file at ``commit`` (one git call)."""
    entries: dict[str, TreeEntry] = {}
    wanted = set(paths)
    for start in range(0, len(paths), 1000):  # stay far below the argument-length limit
        chunk = list(paths[start : start + 1000])
        result = _git(mirror, "ls-tree", "-l", "-z", "--full-tree", commit, "--", *chunk)
        if result.returncode != 0:
            raise RepositoryError(f"cannot list {commit[:12]}: {_stderr(result)}")
        for record in result.stdout.split(b"\0"):
            if not record:
                continue
            meta, _, name = record.partition(b"\t")
            _mode, kind, blob, size = meta.split()
            path = name.decode("utf-8", "surrogateescape")
            if kind == b"blob" and path in wanted:
                entries[path] = TreeEntry(path, blob.decode(), int(size))
    return entries


def read_blobs(mirror: Path, blobs: Sequence[str]) -> dict[str, bytes]:
    """Contents of many blobs through one ``git cat-file --batch``."""
    unique = list(dict.fromkeys(blobs))
    if not unique:
        return {}
    result = _git(mirror, "cat-file", "--batch", stdin=("\n".join(unique) + "\n").encode())
    if result.returncode != 0:
        raise RepositoryError(f"cannot read objects from {mirror.name}: {_stderr(result)}")
    contents: dict[str, bytes] = {}
    output, offset = result.stdout, 0
    for blob in unique:
        header_end = output.index(b"\n", offset)
        header = output[offset:header_end].split()
        if len(header) < 3 or header[1] == b"missing":
            raise RepositoryError(f"object {blob} is missing from {mirror.name}")
        size = int(header[2])
        contents[blob] = output[header_end + 1 : header_end + 1 + size]
        offset = header_end + 1 + size + 1  # content, then a newline
    return contents


def run_git(cwd: Path | None, *args: str, timeout: float = 300) -> str:
    """Run git in a working copy of specfleet's own (never a user's checkout), without prompts;
    its output, or RepositoryError with git's redacted complaint."""
    result = subprocess.run(
        ["git", *(["-C", str(cwd)] if cwd else []), *args],
        capture_output=True,
        env={**os.environ, **GIT_ENV},
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RepositoryError(f"git {args[0]} failed: {_stderr(result)}")
    return result.stdout.decode("utf-8", "replace").strip()


def _git(
    mirror: Path, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", "--git-dir", str(mirror), *args],
        input=stdin,
        capture_output=True,
        env={**os.environ, **GIT_ENV},
        timeout=120,
        check=False,
    )


def _stderr(result: subprocess.CompletedProcess[bytes]) -> str:
    return redact_text(result.stderr.decode("utf-8", "replace").strip()[-500:])


def _git_message(error: git.GitCommandError) -> str:
    stderr = (error.stderr or "").strip()
    stderr = re.sub(r"^\s*stderr:\s*", "", stderr)
    lines = [line.strip(" '") for line in stderr.splitlines() if line.strip(" '")]
    return redact_text(" ".join(lines[-3:]) or f"git exited with {error.status}")


def export_tree(repo: Path, ref: str, destination: Path) -> str:
    """Write the files of ``ref`` (no .git) into ``destination``; returns the commit id.

    An export rather than a worktree: verification copies are thrown away, must never share
    state with the product's repository, and must not carry its hooks or configuration.
    """
    try:
        repository = git.Repo(repo, search_parent_directories=False)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as error:
        raise RepositoryError(f"{repo} is not a git repository") from error
    try:
        commit = repository.commit(ref).hexsha
    except (git.BadName, ValueError) as error:
        raise RepositoryError(f"{repo}: no commit or branch {ref!r}") from error
    finally:
        repository.close()
    destination.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", commit],
        capture_output=True,
        env={**os.environ, **GIT_ENV},
        timeout=300,
        check=False,
    )
    if archive.returncode != 0:
        raise RepositoryError(f"cannot export {ref} of {repo}: {_stderr(archive)}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        # git archive writes only regular files, directories and symlinks inside the tree
        tar.extractall(destination, filter="data")
    return commit
