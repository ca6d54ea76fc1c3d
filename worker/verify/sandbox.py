"""Running a product's own commands (build, tests) in a sandbox, with limits, as values.

Product code is untrusted: a candidate was written by the planner and may do anything its
dependencies allow. :func:`run_sandboxed` runs one command line so that

* it sees no credential: the environment starts EMPTY and gets only ``PATH`` (the product's
  venv first), ``LANG``, ``TZ``, a fresh empty ``HOME``, ``TMPDIR``, ``VIRTUAL_ENV`` and
  ``PYTHONDONTWRITEBYTECODE``; nothing of specfleet's own environment is passed on;
* with bubblewrap (``bwrap``), it sees only what it needs, read-only: ``/usr`` (and the
  ``/bin``, ``/lib*`` links into it), selected files of ``/etc``, the venv and the Python
  installation the venv points to; read-write only the worktree, the ``writable`` paths and
  a throw-away ``/tmp``; no network (unless asked); its own PID, IPC, UTS and user
  namespaces; no capabilities. The real home (``~/.netrc``, ``~/.ssh``, ``~/.gitconfig``) is
  not mounted at all. ``/tmp`` is a fresh directory on the host's disk rather than a tmpfs:
  a tmpfs lives in RAM, which the memory limit does not cover;
* it stops at its wall-clock limit with everything it started (SIGTERM to its process group,
  SIGKILL after :data:`KILL_GRACE_SECONDS`; whatever is left when the command ends is killed
  too), and allocates at most its memory limit per process. Under bwrap every process of the
  run lives in the sandbox's PID namespace, which dies with bwrap (``--die-with-parent``),
  so even a daemon that left the process group goes;
* its output is kept bounded: the last ``max_output_bytes`` of each stream, however much it
  prints.

Without bubblewrap (not installed, or user namespaces are off) the command runs as a plain
subprocess with the same scrubbed environment and limits, in the worktree, and the result
says so in ``warnings``: then the network and the filesystem are NOT isolated, and a process
that leaves the process group (``setsid``) can outlive the run (the result warns when one
did).

The memory limit is ``RLIMIT_AS`` (address space) set in the child before ``exec``. It is
per process, not for the whole tree, and counts reserved as well as used memory; pyarrow,
duckdb, numpy and pandas import and run a 64-thread duckdb query under 1024 MB (checked on
the worker image), so it does not get in the way of the usual stack. Limits from a spec are
capped by :data:`MAX_TIMEOUT_SECONDS` and :data:`MAX_MEMORY_MB` whatever it says.

The process itself is run by :mod:`worker.verify.bounded_run`; the JUnit report it wrote is
read by :mod:`specfleet.worker.verify.junit`.
"""

from __future__ import annotations

import contextlib
import functools
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from specfleet.core.errors import VerificationError
from specfleet.core.log import get_logger
from specfleet.worker.verify.bounded_run import run_bounded
from specfleet.worker.verify.environments import ProductEnvironment
from specfleet.worker.verify.junit import parse_junit
from specfleet.worker.verify.model import RunResult, SandboxKind
from specfleet.worker.verify.sandbox_policy import SandboxRefused, current_decision

# Caps over whatever a spec asks for: no run holds a worker longer or uses more.
MAX_TIMEOUT_SECONDS = 3600.0
MAX_MEMORY_MB = 8192
DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024

NO_BWRAP_WARNING = "UNSANDBOXED: bubblewrap unavailable: network and filesystem not isolated"
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
# the sandbox's own /tmp (a fresh scratch directory mounted there), not the host's
SANDBOX_TMP = "/tmp"  # noqa: S108
SANDBOX_HOME = f"{SANDBOX_TMP}/home"
# /etc is not mounted whole: it may hold credentials (pip.conf with an index token, shadow);
# these are what the C library, Python, TLS and Debian's alternatives need.
ETC_ENTRIES = (
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "fonts",
    "gai.conf",
    "group",
    "host.conf",
    "hostname",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "locale.alias",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "passwd",
    "pki",
    "protocols",
    "resolv.conf",
    "services",
    "ssl",
    "timezone",
    "python3*",  # Debian's sitecustomize for its own interpreters
)
SYSTEM_TOP_LEVEL = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")

log = get_logger(__name__)


@functools.cache
def sandbox_available() -> bool:
    """Whether bubblewrap is installed and can create its namespaces here (checked once)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False
    trial = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    trial += [*_system_mounts(), "--proc", "/proc", "--dev", "/dev", "--", "true"]
    try:
        result = subprocess.run(
            trial, stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        log.warning("bubblewrap cannot run", error=str(error))
        return False
    if result.returncode != 0:
        reason = result.stderr.decode(errors="replace").strip()[-300:]
        log.warning("bubblewrap cannot create a sandbox here", reason=reason)
        return False
    return True


def run_sandboxed(
    command: str,
    worktree: Path,
    env: ProductEnvironment,
    *,
    timeout_seconds: float,
    memory_mb: int,
    writable: Sequence[Path] = (),
    readable: Sequence[Path] = (),
    network: bool = False,
    junit_xml: Path | None = None,
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    use_bwrap: bool | None = None,
) -> RunResult:
    """Run ``command`` (split with shlex, no shell) in ``worktree`` with ``env``'s Python.

    ``writable`` paths are mounted read-write besides the worktree (created when missing),
    ``readable`` ones read-only. ``use_bwrap`` None means "when available"; True requires
    it. A command that runs and fails, times out or is killed is a result; only a command
    line that cannot be split, or a missing worktree, raises :class:`VerificationError`.
    """
    try:
        words = shlex.split(command)
    except ValueError as error:
        raise VerificationError(f"cannot split the command {command!r}: {error}") from error
    if not words:
        raise VerificationError("the command is empty")
    worktree = worktree.resolve()
    if not worktree.is_dir():
        raise VerificationError(f"the worktree {worktree} is not a directory")
    warnings: list[str] = []
    unsandboxed_note = NO_BWRAP_WARNING
    if use_bwrap is None:  # the settings decide: SPECFLEET_SANDBOX and fleet mode
        decision = current_decision()
        if decision.kind is None:
            raise SandboxRefused(decision.refusal or "no sandbox")
        bwrap = decision.kind == "bwrap"
        unsandboxed_note = decision.warning or NO_BWRAP_WARNING
    else:
        bwrap = use_bwrap
    if bwrap and not sandbox_available():
        raise VerificationError("bubblewrap was required but cannot create a sandbox here")
    timeout = min(float(timeout_seconds), MAX_TIMEOUT_SECONDS)
    memory = min(int(memory_mb), MAX_MEMORY_MB)
    if timeout < timeout_seconds or memory < memory_mb:
        warnings.append(f"limits capped at {timeout:g} s and {memory} MB")
    if not bwrap:
        warnings.append(unsandboxed_note)
    for path in writable:
        path.mkdir(parents=True, exist_ok=True)
    if junit_xml is not None:
        junit_xml.unlink(missing_ok=True)  # the report read is the one this run wrote
    # ignore_cleanup_errors: the product may leave files it made unremovable in its /tmp
    with tempfile.TemporaryDirectory(
        prefix="specfleet-run-", ignore_cleanup_errors=True
    ) as scratch_name:
        scratch = Path(scratch_name)
        (scratch / "tmp").mkdir()
        (scratch / "tmp" / "home").mkdir()
        if bwrap:
            argv = bwrap_command(
                words,
                worktree,
                env,
                scratch_tmp=scratch / "tmp",
                writable=[path.resolve() for path in writable],
                readable=[path.resolve() for path in readable],
                network=network,
            )
            environment = sandbox_environment(env, home=SANDBOX_HOME, tmp=SANDBOX_TMP)
        else:
            argv = words
            environment = sandbox_environment(
                env, home=str(scratch / "tmp" / "home"), tmp=str(scratch / "tmp")
            )
        kind: SandboxKind = "bwrap" if bwrap else "subprocess"
        result = run_bounded(
            command, argv, worktree, environment, kind, timeout, memory, max_output_bytes
        )
    junit = None
    if junit_xml is not None:
        try:
            junit = parse_junit(junit_xml, worktree)
        except VerificationError as error:
            warnings.append(str(error))
    return RunResult(
        command=command,
        exit_code=result.exit_code,
        duration_seconds=result.duration_seconds,
        stdout=result.stdout,
        stderr=result.stderr,
        sandbox=kind,
        timed_out=result.timed_out,
        killed_reason=result.killed_reason,
        warnings=tuple(warnings) + result.warnings,
        junit=junit,
    )


def sandbox_environment(env: ProductEnvironment, *, home: str, tmp: str) -> dict[str, str]:
    """The whole environment of a product command: built from nothing, not filtered."""
    venv = env.path.resolve()  # the path it is mounted at in the sandbox
    return {
        "PATH": f"{venv / 'bin'}:{SANDBOX_PATH}",
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "HOME": home,
        "TMPDIR": tmp,
        "VIRTUAL_ENV": str(venv),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def bwrap_command(
    words: Sequence[str],
    worktree: Path,
    env: ProductEnvironment,
    *,
    scratch_tmp: Path,
    writable: Sequence[Path] = (),
    readable: Sequence[Path] = (),
    network: bool = False,
) -> list[str]:
    """The bwrap command line running ``words`` in ``worktree`` (see the module docstring).

    Mounts, in order: the system read-only; ``/proc``, ``/dev``; ``scratch_tmp`` as ``/tmp``;
    then the product's paths, parents before children so none hides another; the sandbox
    root is made read-only last, so the directories leading to a mounted path exist but
    cannot be written (below ``/tmp``, see the comment on covers).
    """
    bwrap = shutil.which("bwrap") or "bwrap"
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if network:
        argv.append("--share-net")
    argv += _system_mounts()
    argv += ["--proc", "/proc", "--dev", "/dev", "--bind", str(scratch_tmp), SANDBOX_TMP]
    mounts: dict[Path, bool] = {}  # path -> writable
    for path in (env.path.resolve(), *python_installation(env), *readable):
        mounts.setdefault(path, False)
    for path in (worktree, *writable):
        mounts[path] = True
    # The parent of a path mounted under /tmp would be a plain directory of the sandbox's
    # writable /tmp: it gets an empty tmpfs, made read-only once everything is mounted, so
    # the worktree's siblings cannot be created. Only the parent: the levels above stay
    # ordinary /tmp, where a product's own tools (pytest's /tmp/pytest-of-<user>) may write.
    tmp = Path(SANDBOX_TMP)
    covers = {
        path.parent
        for path in mounts
        if _under(path.parent, tmp, 1)
        and path.parent not in mounts
        and not any(_under(path.parent, mount) for mount in mounts)
    }
    for path in sorted(covers | set(mounts), key=lambda path: len(path.parts)):
        if path in covers:
            argv += ["--tmpfs", str(path)]
        else:
            argv += ["--bind" if mounts[path] else "--ro-bind", str(path), str(path)]
    for cover in sorted(covers):
        argv += ["--remount-ro", str(cover)]
    argv += ["--remount-ro", "/", "--chdir", str(worktree), "--", *words]
    return argv


def python_installation(env: ProductEnvironment) -> list[Path]:
    """The Python installation the venv's interpreter links to, when outside ``/usr``.

    ``pyvenv.cfg`` names it (``home = <prefix>/bin``); the venv's ``bin/python`` is a symlink
    into it, which must resolve inside the sandbox, and its standard library is there too.
    """
    prefixes: list[Path] = []
    config = env.path / "pyvenv.cfg"
    with contextlib.suppress(OSError):
        for line in config.read_text(encoding="utf-8").splitlines():
            name, _, value = line.partition("=")
            if name.strip() == "home" and value.strip():
                home = Path(value.strip())
                prefixes += [_prefix(home), _prefix(home.resolve())]
    with contextlib.suppress(OSError):
        prefixes.append(_prefix(env.python.resolve().parent))
    usr = Path("/usr")
    return [
        path
        for path in dict.fromkeys(prefixes)
        if path.is_dir() and path != Path("/") and not _under(path, usr)
    ]


def _prefix(bin_directory: Path) -> Path:
    return bin_directory.parent if bin_directory.name == "bin" else bin_directory


def _under(path: Path, parent: Path, depth: int = 0) -> bool:
    """``path`` is ``parent`` or below it, at least ``depth`` levels down."""
    try:
        relative = path.relative_to(parent)
    except ValueError:
        return False
    return len(relative.parts) >= depth


def _system_mounts() -> list[str]:
    argv = ["--ro-bind", "/usr", "/usr"]
    for name in SYSTEM_TOP_LEVEL:
        path = Path("/") / name
        if path.is_symlink():  # merged /usr: /bin -> usr/bin
            argv += ["--symlink", str(path.readlink()), str(path)]
        elif path.is_dir():
            argv += ["--ro-bind", str(path), str(path)]
    for entry in ETC_ENTRIES:
        for match in sorted(Path("/etc").glob(entry)):
            argv += ["--ro-bind-try", str(match), str(match)]
    return argv
