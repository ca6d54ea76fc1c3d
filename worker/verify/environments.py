"""Product environments: one uv virtualenv per set of pins, built once and reused.

A product's environment is keyed by what decides its contents: the runtime
(``implementation.runtime``, e.g. ``python3.11`` → ``uv venv -p 3.11``), the bytes of every
dependency file :func:`core.health.pins.read_pins` reads for ``implementation.dependencies``
(the lock too, when the product has one), the repository's ``uv.toml`` if any, and the
platform. The baseline and a candidate with the same pins share one environment, and an
unchanged product reuses last week's.

Layout under the cache root::

    <runtime>-<hash>/            a complete environment (a venv; ``.specfleet-complete`` in it)
    .building-<key>-<random>/    an environment being built (renamed into place when done)
    .removing-<name>-<random>/   an environment being removed (renamed away first)
    .locks/<key>.lock            the lock serialising builders of one key

An environment is built in a temporary directory beside its target and renamed into place
once ``uv pip install`` succeeded and the completion marker was written last, so a crash
half-way never leaves something that looks complete. The venv is made ``--relocatable``
because of that rename: uv then writes entry points (``bin/pytest``) that find their
interpreter relative to themselves instead of at the temporary path.

The interpreter is the one uv finds for the runtime's version, or an installed pyenv version
uv cannot see (:func:`local_interpreter`), so a product on python3.9 builds offline where pyenv
holds a 3.9.

Installing: ``uv pip install -p <venv python> -r <file>``; for ``pyproject.toml`` with
``--all-extras`` (test tools usually live in an optional group), for ``requirements.in`` the
compiled lock. uv runs with the cache root as its working directory (so a ``.python-version``
in the product cannot choose the interpreter behind the key's back) and an environment of
its own: index, proxy and certificate settings, ``UV_*`` variables, and ``HOME`` so uv's cache
stays at its default (``~/.cache/uv``) unless ``UV_CACHE_DIR`` says otherwise; no specfleet
setting reaches it. Requirements installed from the checkout itself (``-e .``) are not
supported: the environment is shared between checkouts.

:meth:`EnvironmentCache.evict` removes environments unused for ``max_age_days``, then the
least recently used ones until the cache fits in ``max_bytes``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from specfleet.core.errors import VerificationError
from specfleet.core.health.pins import read_pins
from specfleet.core.log import get_logger
from specfleet.core.secrets import redact_text
from specfleet.core.spec.model import Spec
from specfleet.core.tools import find_tool

DEFAULT_MAX_BYTES = 10 * 1024**3
DEFAULT_MAX_AGE_DAYS = 30
DEFAULT_BUILD_TIMEOUT_SECONDS = 900.0
# A sandboxed run may still be using an environment this long after ensure() handed it out
# (the sandbox's own cap on a run), so eviction by size never takes one used more recently.
IN_USE_SECONDS = 3600.0
MAX_STDERR_CHARS = 2000
# Bumped when the layout or the way environments are built changes: old ones are not reused.
LAYOUT_VERSION = "1"

COMPLETE_MARKER = ".specfleet-complete"
USED_MARKER = ".specfleet-used"
BUILDING_PREFIX = ".building-"
REMOVING_PREFIX = ".removing-"
LOCKS_DIRECTORY = ".locks"
_RUNTIME = re.compile(r"^python(3\.\d{1,2})$")

# What uv runs with besides UV_* variables: enough to find interpreters, reach an index
# through a proxy and keep its default cache in HOME.
UV_ENVIRONMENT = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "PYENV_ROOT",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
)

log = get_logger(__name__)


@dataclass(frozen=True)
class ProductEnvironment:
    """A ready virtualenv for a product: run its ``python`` (or ``bin/``) in the sandbox."""

    path: Path  # the venv's directory
    python: Path  # the venv's interpreter, <path>/bin/python
    key: str  # the directory name: <runtime>-<hash of runtime, dependency files, platform>
    reused: bool  # True when it was already built (by an earlier call or another worker)
    seconds: float  # how long ensure() took, waiting for another builder included

    @property
    def bin(self) -> Path:
        return self.path / "bin"


class EnvironmentBuildError(VerificationError):
    """uv could not create or fill the environment; ``stderr`` is the tail of uv's output."""

    def __init__(self, message: str, stderr: str = "") -> None:
        self.stderr = stderr
        super().__init__(f"{message}: {stderr}" if stderr else message)


@dataclass(frozen=True)
class _Install:
    """What to give ``uv pip install`` for a product, and what its environment is keyed on."""

    requirement: Path  # the file passed to -r
    extras: bool  # --all-extras (pyproject.toml)
    files: tuple[tuple[str, bytes], ...]  # (repository-relative name, content) keyed on


def python_version(runtime: str) -> str:
    """``python3.11`` → ``3.11``, what ``uv venv -p`` takes."""
    match = _RUNTIME.match(runtime)
    if match is None:
        raise VerificationError(f"unsupported runtime {runtime!r}: expected python3.N")
    return match.group(1)


def pyenv_versions() -> Path:
    """Where pyenv keeps its interpreters (``$PYENV_ROOT/versions``)."""
    root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    return Path(root) / "versions"


def local_interpreter(version: str, *roots: Path) -> Path | None:
    """An installed ``python<version>`` uv would not find by itself, newest patch first.

    uv finds interpreters on PATH and in its own store; a pyenv installation that is not
    the selected one (its shim answers "command not found") is invisible to it, and uv then
    tries to download one, which fails offline. Products written for an older Python (3.8,
    3.9) are exactly the ones whose interpreter sits there unselected.
    """
    found: list[tuple[tuple[int, ...], Path]] = []
    for root in roots:
        if not root.is_dir():
            continue
        for candidate in root.glob(f"{version}.*/bin/python{version}"):
            patch = candidate.parent.parent.name[len(version) + 1 :]
            if patch.isdigit() and candidate.is_file() and os.access(candidate, os.X_OK):
                found.append(((int(patch),), candidate))
    return max(found)[1] if found else None


def platform_tag() -> str:
    """The platform an environment's binary wheels were chosen for."""
    libc, libc_version = platform.libc_ver()
    return f"{sys.platform}-{platform.machine()}-{libc or 'nolibc'}{libc_version}"


def environment_key(runtime: str, files: tuple[tuple[str, bytes], ...], platform_name: str) -> str:
    """``<runtime>-<hash>``: equal exactly when runtime, dependency files and platform are."""
    digest = hashlib.sha256()
    for part in (LAYOUT_VERSION, runtime, platform_name):
        digest.update(part.encode() + b"\0")
    for name, content in sorted(files):
        digest.update(name.encode() + b"\0" + str(len(content)).encode() + b"\0" + content)
    return f"{runtime}-{digest.hexdigest()[:24]}"


class EnvironmentCache:
    """Builds product environments with uv under ``root`` and hands out cached ones."""

    def __init__(
        self,
        root: Path,
        uv: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_age_days: float = DEFAULT_MAX_AGE_DAYS,
        *,
        build_timeout_seconds: float = DEFAULT_BUILD_TIMEOUT_SECONDS,
    ) -> None:
        self.root = root
        self.uv = uv
        self.max_bytes = max_bytes
        self.max_age_days = max_age_days
        self.build_timeout_seconds = build_timeout_seconds

    def ensure(self, repo: Path, spec: Spec) -> ProductEnvironment:
        """The environment for ``spec``'s runtime and ``repo``'s dependency files, built if new.

        Safe to call from several processes at once: one builds, the others wait for it and
        reuse the result. Raises :class:`EnvironmentBuildError` when uv fails (unknown package,
        no network; nothing is left behind), :class:`DependencyFileError` when the dependency
        file is missing.
        """
        started = time.perf_counter()
        runtime = spec.implementation.runtime
        version = python_version(runtime)
        install = _install_plan(repo, spec.implementation.dependencies)
        key = environment_key(runtime, install.files, platform_tag())
        target = self.root / key
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock(key):
            reused = _is_complete(target)
            if not reused:
                self._build(target, key, version, install)
            _touch(target / USED_MARKER)
        seconds = time.perf_counter() - started
        log.debug("product environment", key=key, reused=reused, seconds=round(seconds, 3))
        return ProductEnvironment(target, target / "bin" / "python", key, reused, seconds)

    def evict(self, now: float | None = None) -> list[Path]:
        """Remove environments unused for ``max_age_days``, then the least recently used
        until the cache holds at most ``max_bytes``; return what was removed.

        Environments being built (their lock is held) and, for the size limit, environments
        used in the last :data:`IN_USE_SECONDS` are kept: a run may be using them.
        Leftovers of crashed builds are removed too.
        """
        if not self.root.is_dir():
            return []
        now = time.time() if now is None else now
        removed: list[Path] = []
        for leftover in self.root.glob(f"{BUILDING_PREFIX}*"):
            key = leftover.name[len(BUILDING_PREFIX) :].rsplit("-", 1)[0]
            with self._lock(key, wait=False) as held:
                if held:
                    _remove_tree(leftover)
        for doomed in self.root.glob(f"{REMOVING_PREFIX}*"):
            shutil.rmtree(doomed, ignore_errors=True)  # a removal that was interrupted
        entries = []
        for path in self.root.iterdir():
            if path.name.startswith(".") or not path.is_dir():
                continue
            entries.append((_last_used(path), path))
        entries.sort()  # least recently used first
        max_age = self.max_age_days * 86400
        sizes = {path: _tree_size(path) for _, path in entries}
        total = sum(sizes.values())
        for last_used, path in entries:
            too_old = now - last_used > max_age
            too_big = total > self.max_bytes and now - last_used > IN_USE_SECONDS
            if not (too_old or too_big):
                continue
            with self._lock(path.name, wait=False) as held:
                if held and path.exists():
                    _remove_tree(path)
                    removed.append(path)
                    total -= sizes[path]
        if removed:
            log.info("product environments evicted", count=len(removed), bytes_left=total)
        return removed

    # -----------------------------------------------------------------------------------------

    def _build(self, target: Path, key: str, version: str, install: _Install) -> None:
        uv = self.uv or find_tool("uv")
        if uv is None:
            raise VerificationError("uv is not installed (neither beside Python nor on PATH)")
        for leftover in self.root.glob(f"{BUILDING_PREFIX}{key}-*"):
            _remove_tree(leftover)  # a crashed build of this key; we hold its lock
        if target.exists():
            _remove_tree(target)  # incomplete, or its interpreter is gone
        building = self.root / f"{BUILDING_PREFIX}{key}-{secrets.token_hex(4)}"
        try:
            self._run_uv(
                [
                    uv,
                    "venv",
                    "--quiet",
                    "--no-project",
                    "--relocatable",
                    "-p",
                    local_interpreter(version, pyenv_versions()) or version,
                    building,
                ],
                "uv venv failed",
            )
            command: list[str | Path] = [uv, "pip", "install", "--quiet"]
            command += ["-p", building / "bin" / "python", "-r", install.requirement]
            if install.extras:
                command.append("--all-extras")
            self._run_uv(command, "uv pip install failed")
            # written last: its presence is what makes an environment complete
            (building / COMPLETE_MARKER).write_text(f"{key}\n")
            building.rename(target)
        except BaseException:
            _remove_tree(building)
            raise

    def _run_uv(self, command: list[str | Path], failure: str) -> None:
        try:
            result = subprocess.run(
                [str(part) for part in command],
                cwd=self.root,
                env=uv_environment(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=self.build_timeout_seconds,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise EnvironmentBuildError(
                f"{failure}: no answer within {self.build_timeout_seconds:g} s",
                _tail(error.stderr),
            ) from error
        except OSError as error:
            raise EnvironmentBuildError(f"{failure}: uv cannot be run: {error}") from error
        if result.returncode != 0:
            raise EnvironmentBuildError(
                f"{failure} (exit {result.returncode})", _tail(result.stderr or result.stdout)
            )

    @contextlib.contextmanager
    def _lock(self, key: str, *, wait: bool = True) -> Iterator[bool]:
        """Hold the lock of ``key`` (an flock: released when the process dies).

        Yields whether it is held: always True when waiting, False when ``wait`` is False and
        another process holds it.
        """
        locks = self.root / LOCKS_DIRECTORY
        locks.mkdir(parents=True, exist_ok=True)
        with (locks / f"{key}.lock").open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def uv_environment() -> dict[str, str]:
    """What uv runs with: :data:`UV_ENVIRONMENT` and ``UV_*``; no specfleet settings."""
    environment = {name: os.environ[name] for name in UV_ENVIRONMENT if name in os.environ}
    environment.update(
        {name: value for name, value in os.environ.items() if name.startswith("UV_")}
    )
    environment.setdefault("PATH", os.defpath)
    return environment


def _install_plan(repo: Path, dependencies: str) -> _Install:
    root = repo.resolve()
    pinset = read_pins(root, dependencies)
    names = list(pinset.files)
    if (root / "uv.toml").is_file():
        names.append("uv.toml")  # uv reads it from the checkout: its settings shape the env
    files = tuple(
        (name, (root / name).read_bytes())
        for name in dict.fromkeys(names)
        if (root / name).is_file()
    )
    # a compiled requirements lock installs as it is; other locks (uv.lock, poetry.lock,
    # Pipfile.lock) are not pip requirements, so the declaring file installs as before
    lock = pinset.lock if pinset.lock_format == "requirements" else None
    requirement = root / (lock or dependencies)
    return _Install(requirement, requirement.suffix == ".toml", files)


def _is_complete(path: Path) -> bool:
    """Built to the end, and its interpreter still there (pyenv or uv may have removed it)."""
    python = path / "bin" / "python"
    return (path / COMPLETE_MARKER).is_file() and python.resolve().is_file()


def _touch(path: Path) -> None:
    path.touch()
    os.utime(path)  # touch() leaves an existing file's time alone on some filesystems


def _last_used(path: Path) -> float:
    for marker in (USED_MARKER, COMPLETE_MARKER):
        with contextlib.suppress(OSError):
            return (path / marker).stat().st_mtime
    with contextlib.suppress(OSError):
        return path.stat().st_mtime
    return 0.0


def _tree_size(path: Path) -> int:
    """Bytes of the files under ``path`` (symlinks not followed, a hard link counted once)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for directory, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                stat = (Path(directory) / name).lstat()
                if (stat.st_dev, stat.st_ino) in seen:
                    continue
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_size
    return total


def _remove_tree(path: Path) -> None:
    """Remove ``path``: renamed away first, so no one finds a half-removed environment."""
    if not path.exists():
        return
    doomed = path.with_name(f"{REMOVING_PREFIX}{path.name}-{secrets.token_hex(4)}")
    try:
        path.rename(doomed)
    except OSError:
        doomed = path
    shutil.rmtree(doomed, ignore_errors=True)


def _tail(output: str | bytes | None) -> str:
    if not output:
        return ""
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    text = redact_text(text.strip())
    return text if len(text) <= MAX_STDERR_CHARS else "…" + text[-MAX_STDERR_CHARS:]
