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

:func:`parse_junit` reads the JUnit XML report a test run wrote (``pytest --junitxml``) into a
:class:`TestSummary`; a report with a DOCTYPE (entity tricks) is refused.
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO
from xml.parsers import expat

from core.errors import VerificationError
from core.log import get_logger
from worker.reaper import die_with_parent, forget_group, record_group
from worker.verify.environments import ProductEnvironment
from worker.verify.model import RunResult, SandboxKind, TestCase, TestOutcome, TestSummary
from worker.verify.sandbox_policy import SandboxRefused, current_decision

# Caps over whatever a spec asks for: no run holds a worker longer or uses more.
MAX_TIMEOUT_SECONDS = 3600.0
MAX_MEMORY_MB = 8192
DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024
KILL_GRACE_SECONDS = 2.0  # between SIGTERM and SIGKILL at the timeout
READ_CHUNK_BYTES = 64 * 1024
# After the command ended: how long to wait for its output pipes to close and its process
# group to empty before reporting leftovers.
DRAIN_SECONDS = 5.0
MAX_JUNIT_BYTES = 50 * 1024 * 1024
MAX_CASES = 5000
MAX_MESSAGE_LINES = 20
MAX_MESSAGE_CHARS = 2000

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
        result = _run(command, argv, worktree, environment, kind, timeout, memory, max_output_bytes)
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


# ---------------------------------------------------------------------------------------------
# running


class _Tail:
    """The last ``limit`` bytes of a stream, and how many bytes came before them."""

    def __init__(self, limit: int) -> None:
        self.limit = max(limit, 0)
        self.data = bytearray()
        self.total = 0
        # a reader stuck on a pipe a leftover process holds may still add while we read
        self.lock = threading.Lock()

    def add(self, chunk: bytes) -> None:
        with self.lock:
            self.total += len(chunk)
            self.data += chunk
            if len(self.data) > self.limit:
                del self.data[: len(self.data) - self.limit]

    def snapshot(self) -> tuple[bytes, int]:
        """The bytes kept and how many were cut before them."""
        with self.lock:
            return bytes(self.data), self.total - len(self.data)

    def text(self) -> str:
        data, cut = self.snapshot()
        kept = data.decode("utf-8", errors="replace")
        return f"[... {_size(cut)} cut ...]\n{kept}" if cut else kept


def _size(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{count} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} bytes"  # pragma: no cover - the loop always returns


def _reader(stream: IO[bytes], tail: _Tail) -> threading.Thread:
    def pump() -> None:
        # the stream is closed here, never by the caller: closing a buffered reader that
        # another thread is blocked in would block the caller too
        with contextlib.suppress(OSError, ValueError), stream:
            while chunk := stream.read(READ_CHUNK_BYTES):
                tail.add(chunk)

    thread = threading.Thread(target=pump, name="sandbox-output", daemon=True)
    thread.start()
    return thread


def _limits(memory_mb: int) -> Callable[[], None]:
    limit = memory_mb * 1024 * 1024

    def apply() -> None:
        # runs in the child between fork and exec: only system calls, no locks taken
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core files in the worktree
        die_with_parent()  # a SIGKILLed worker takes its build with it (worker/reaper.py)

    return apply


class _Outcome:
    def __init__(self) -> None:
        self.exit_code: int | None = None
        self.duration_seconds = 0.0
        self.stdout = ""
        self.stderr = ""
        self.timed_out = False
        self.killed_reason: str | None = None
        self.warnings: tuple[str, ...] = ()


def _run(
    command: str,
    argv: Sequence[str],
    cwd: Path,
    environment: dict[str, str],
    kind: SandboxKind,
    timeout: float,
    memory_mb: int,
    max_output_bytes: int,
) -> _Outcome:
    outcome = _Outcome()
    stdout, stderr = _Tail(max_output_bytes), _Tail(max_output_bytes)
    started = time.perf_counter()
    try:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: killed as one
            preexec_fn=_limits(memory_mb),  # only setrlimit: see _limits
            close_fds=True,
        )
    except FileNotFoundError as error:
        # what a shell says; bwrap reports the same as "execvp ...: No such file" itself
        outcome.exit_code = 127
        outcome.stderr = f"command not found: {error.filename or argv[0]}"
        return outcome
    except OSError as error:
        raise VerificationError(f"cannot start {command!r}: {error}") from error
    record_group(process.pid)  # killed by the reaper if this worker dies mid-run
    assert process.stdout is not None and process.stderr is not None
    readers = [_reader(process.stdout, stdout), _reader(process.stderr, stderr)]
    try:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            outcome.timed_out = True
            outcome.killed_reason = f"exceeded {timeout:g} s"
            _signal_group(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=KILL_GRACE_SECONDS)
    finally:
        # whatever the command left behind in its group (a daemon, a child ignoring
        # SIGTERM) goes too; under bwrap its pid namespace dies with it anyway
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()
    outcome.duration_seconds = time.perf_counter() - started
    leftovers = not _group_empty(process.pid, DRAIN_SECONDS)
    if not leftovers:
        forget_group(process.pid)
    drained = time.monotonic() + DRAIN_SECONDS
    for thread in readers:
        # a reader still blocked here means a leftover holds the pipe (only possible without
        # bwrap, for a process that left the group); it is a daemon thread and is left behind
        thread.join(timeout=max(drained - time.monotonic(), 0.01))
    warnings = []
    if leftovers or any(thread.is_alive() for thread in readers):
        warnings.append("processes of the run outlived it and could not all be stopped")
    outcome.warnings = tuple(warnings)
    outcome.stdout, outcome.stderr = stdout.text(), stderr.text()
    if not outcome.timed_out:
        outcome.exit_code = process.returncode
        if process.returncode != 0 and _out_of_memory(stderr):
            outcome.killed_reason = f"exceeded {memory_mb} MB"
    return outcome


def _signal_group(group: int, signal_number: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal_number)


def _group_empty(group: int, within: float) -> bool:
    """Whether the process group is gone (zombies waiting for init to reap them count)."""
    deadline = time.monotonic() + within
    while True:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        if not any(_alive(pid) for pid in _group_members(group)):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _group_members(group: int) -> Iterable[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = Path(entry.path, "stat").read_text()
                fields = stat.rsplit(")", 1)[1].split()
                if int(fields[2]) == group:
                    yield int(entry.name)


def _alive(pid: int) -> bool:
    """Running or sleeping; a zombie has already stopped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


_MEMORY_ERRORS = (b"MemoryError", b"std::bad_alloc", b"Cannot allocate memory", b"out of memory")


def _out_of_memory(stderr: _Tail) -> bool:
    """Whether the end of stderr says an allocation failed (the limit is an rlimit, so the
    process is not killed: it fails in its own way)."""
    tail = stderr.snapshot()[0][-4096:]
    return any(marker in tail for marker in _MEMORY_ERRORS)


# ---------------------------------------------------------------------------------------------
# JUnit XML


def parse_junit(path: Path, root: Path | None = None) -> TestSummary | None:
    """The test results a JUnit XML report holds; None when there is no report.

    ``root``, the checkout the tests ran in, lets test names be given as pytest prints them.

    Counts come from the ``<testcase>`` elements (a suite's own totals only when it lists
    none). Raises :class:`VerificationError` for a report that is too big, is not XML, or
    declares a DOCTYPE: entities could expand without bound or read local files.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    except OSError as error:
        raise VerificationError(f"JUnit report {path.name} cannot be read: {error}") from error
    if size > MAX_JUNIT_BYTES:
        raise VerificationError(f"JUnit report {path.name} refused: {_size(size)} is too big")
    data = path.read_bytes()
    _refuse_doctype(data, path.name)
    try:
        document = ElementTree.fromstring(data)  # noqa: S314 - no DOCTYPE: checked above
    except ElementTree.ParseError as error:
        raise VerificationError(f"JUnit report {path.name} is not XML: {error}") from error
    cases = [_case(element, root) for element in document.iter("testcase")]
    if not cases:
        return _suite_totals(document)
    counts = {outcome: 0 for outcome in ("passed", "failed", "skipped", "error")}
    for case in cases:
        counts[case.outcome] += 1
    if len(cases) > MAX_CASES:  # keep every failure; passing cases are what is dropped
        interesting = [case for case in cases if case.outcome != "passed"][:MAX_CASES]
        passing = [case for case in cases if case.outcome == "passed"]
        cases = interesting + passing[: MAX_CASES - len(interesting)]
    return TestSummary(
        total=sum(counts.values()),
        passed=counts["passed"],
        failed=counts["failed"],
        skipped=counts["skipped"],
        errors=counts["error"],
        cases=tuple(cases),
    )


def _refuse_doctype(data: bytes, name: str) -> None:
    """A first pass with expat that stops at a DOCTYPE, whatever the report's encoding."""

    def refuse(*_: object) -> None:
        raise VerificationError(f"JUnit report {name} refused: it declares a DOCTYPE")

    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    try:
        parser.Parse(data, True)
    except expat.ExpatError as error:
        raise VerificationError(f"JUnit report {name} is not XML: {error}") from error


_OUTCOMES: tuple[tuple[str, TestOutcome], ...] = (
    ("failure", "failed"),
    ("error", "error"),
    ("skipped", "skipped"),
)


def _case(element: ElementTree.Element, root: Path | None) -> TestCase:
    name = junit_test_name(
        element.get("classname", ""), element.get("name", ""), element.get("file"), root
    )
    for child, outcome in _OUTCOMES:
        found = element.find(child)
        if found is not None:
            return TestCase(name=name, outcome=outcome, message=_message(found))
    return TestCase(name=name, outcome="passed")


def junit_test_name(
    classname: str, name: str, file: str | None = None, root: Path | None = None
) -> str:
    """A test's name as pytest prints it (``tests/test_x.py::TestY::test_z``) when the report
    or the checkout tells which part of the dotted ``classname`` is the module's file;
    ``classname::name`` otherwise.
    """
    parts = classname.split(".") if classname else []
    if file:
        # pytest's xunit1 names the file: file="tests/test_x.py" classname="tests.test_x.TestY"
        module = file.removesuffix(".py").replace("/", ".")
        inner = classname.removeprefix(module).lstrip(".")
        return "::".join([file, *(inner.split(".") if inner else []), name])
    if root is not None:
        # xunit2 (pytest's default) does not: the longest dotted prefix that is a file is it
        for end in range(len(parts), 0, -1):
            path = "/".join(parts[:end]) + ".py"
            if (root / path).is_file():
                return "::".join([path, *parts[end:], name])
    return f"{classname}::{name}" if classname else name


def _message(element: ElementTree.Element) -> str:
    parts = [element.get("message", "").strip(), (element.text or "").strip()]
    text = "\n".join(part for part in parts if part)
    lines = text.splitlines()
    if len(lines) > MAX_MESSAGE_LINES:
        text = "\n".join(lines[:MAX_MESSAGE_LINES]) + "\n…"
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def _suite_totals(root: ElementTree.Element) -> TestSummary:
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))

    def total(attribute: str) -> int:
        count = 0
        for suite in suites:
            with contextlib.suppress(ValueError):
                count += int(suite.get(attribute, "0"))
        return count

    tests, failed, errors = total("tests"), total("failures"), total("errors")
    skipped = total("skipped") or total("skips")
    passed = max(tests - failed - errors - skipped, 0)
    return TestSummary(total=tests, passed=passed, failed=failed, skipped=skipped, errors=errors)
