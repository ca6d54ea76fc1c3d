"""Running one argument list in its own process group with a wall-clock limit, a memory
limit (``RLIMIT_AS``) and bounded output, and stopping everything it started.

The sandbox (:mod:`specfleet.worker.verify.sandbox`) decides what the command sees; this module only
runs it: SIGTERM to the group at the timeout, SIGKILL after :data:`KILL_GRACE_SECONDS`, and
whatever is left when the command ends is killed too. Only the last ``max_output_bytes`` of
each stream are kept, however much it prints.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO

from specfleet.core.errors import VerificationError
from specfleet.worker.reaper import die_with_parent, forget_group, record_group
from specfleet.worker.verify.model import SandboxKind

KILL_GRACE_SECONDS = 2.0  # between SIGTERM and SIGKILL at the timeout
READ_CHUNK_BYTES = 64 * 1024
# After the command ended: how long to wait for its output pipes to close and its process
# group to empty before reporting leftovers.
DRAIN_SECONDS = 5.0


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
        return f"[... {human_size(cut)} cut ...]\n{kept}" if cut else kept


def human_size(count: int) -> str:
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


class RunOutcome:
    """What happened to one run: exit code, timing, kept output, why it was stopped."""

    def __init__(self) -> None:
        self.exit_code: int | None = None
        self.duration_seconds = 0.0
        self.stdout = ""
        self.stderr = ""
        self.timed_out = False
        self.killed_reason: str | None = None
        self.warnings: tuple[str, ...] = ()


def run_bounded(
    command: str,
    argv: Sequence[str],
    cwd: Path,
    environment: dict[str, str],
    kind: SandboxKind,
    timeout: float,
    memory_mb: int,
    max_output_bytes: int,
) -> RunOutcome:
    outcome = RunOutcome()
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
