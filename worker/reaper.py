"""Clean-up after a dead worker: its build process groups and its scratch directories.

Every worker process that runs evaluations (a Celery pool process, or the ``specfleet worker``
process itself with the solo pool) registers as an **owner**: a directory
``$SPECFLEET_HOME/work/owners/<host>-<pid>-<start time>/`` holding

* ``tmp/``: its scratch space (the pipeline's checkouts, the gate's sandboxes: Python's
  ``tempfile`` points here for the whole process), and
* ``groups/<pgid>``: one file per build process group it started (the sandbox records each
  group while it runs), holding the group leader's start time.

A worker killed with SIGKILL cleans nothing up. Its direct build children die with it
(``PR_SET_PDEATHSIG``, and bwrap's PID namespace takes everything inside), but a build run
without bwrap may leave grandchildren, and every scratch directory stays. So when a worker
(or a replacement pool process) starts, :func:`reap` looks at every owner of this host whose
process is gone (the pid is dead, or reused: the start time differs), kills the process
groups it recorded that still exist, and removes its directory.

The pid's start time (from ``/proc``) makes an owner's identity unique: a pid reused by an
unrelated process is never mistaken for the owner, and a group id is only signalled while
the recorded leader is dead or still the very process that was recorded (Linux does not hand
out a pid as long as a process group of that id exists).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from specfleet.core.log import get_logger

log = get_logger("specfleet.worker.reaper")

PR_SET_PDEATHSIG = 1
OWNERS = "owners"


def process_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])  # field 22 of stat(5), 20th after the command name


@dataclass(frozen=True)
class OwnerName:
    """``<host>-<pid>-<start time>``, the name of an owner's directory."""

    host: str
    pid: int
    started: int

    @property
    def text(self) -> str:
        return f"{self.host}-{self.pid}-{self.started}"

    @classmethod
    def parse(cls, text: str) -> OwnerName | None:
        host, _, rest = text.rpartition("-")
        host, _, pid = host.rpartition("-")
        if not (host and pid.isdigit() and rest.isdigit()):
            return None
        return cls(host, int(pid), int(rest))


def owner_is_gone(owner: OwnerName, start_time_of: Callable[[int], int | None]) -> bool:
    """True when the owner's process no longer runs (dead, or its pid now another process)."""
    return start_time_of(owner.pid) != owner.started


def group_is_orphan(
    pgid: int, leader_started: int, start_time_of: Callable[[int], int | None]
) -> bool:
    """May ``pgid`` be killed as a dead owner's build? Not when the id is someone else's now."""
    current = start_time_of(pgid)
    return current is None or current == leader_started


def this_owner() -> OwnerName:
    pid = os.getpid()
    return OwnerName(socket.gethostname(), pid, process_start_time(pid) or 0)


@dataclass
class ReapReport:
    groups_killed: list[int] = field(default_factory=list)
    directories_removed: list[str] = field(default_factory=list)


@dataclass
class Owner:
    """This process's owner directory (see the module docstring)."""

    root: Path
    name: OwnerName

    @property
    def directory(self) -> Path:
        return self.root / self.name.text

    @property
    def scratch(self) -> Path:
        return self.directory / "tmp"

    @property
    def groups(self) -> Path:
        return self.directory / "groups"

    def create(self) -> Owner:
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.groups.mkdir(parents=True, exist_ok=True)
        return self

    def record_group(self, pgid: int) -> None:
        started = process_start_time(pgid)
        if started is not None:
            (self.groups / str(pgid)).write_text(str(started))

    def forget_group(self, pgid: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.groups / str(pgid)).unlink()


def reap(
    root: Path,
    host: str | None = None,
    start_time_of: Callable[[int], int | None] = process_start_time,
    kill_group: Callable[[int], None] | None = None,
) -> ReapReport:
    """Kill the recorded build groups of this host's dead owners and remove their directories."""
    host = host or socket.gethostname()
    kill = kill_group or _kill_group
    report = ReapReport()
    for directory in _owner_directories(root):
        owner = OwnerName.parse(directory.name)
        if owner is None or owner.host != host or not owner_is_gone(owner, start_time_of):
            continue
        killed = []
        for pgid, leader_started in _recorded_groups(directory / "groups"):
            if group_is_orphan(pgid, leader_started, start_time_of) and _group_exists(pgid):
                kill(pgid)
                killed.append(pgid)
        report.groups_killed += killed
        _wait_until_gone(killed)
        if _remove(directory):
            report.directories_removed.append(directory.name)
    if report.groups_killed or report.directories_removed:
        log.warning(
            "cleaned up after dead workers",
            groups_killed=report.groups_killed,
            directories_removed=report.directories_removed,
        )
    return report


def _wait_until_gone(groups: list[int], timeout: float = 5.0) -> None:
    """SIGKILL is delivered asynchronously: a build killed mid-write may still create a file
    in the directory about to be removed, so give the groups a moment to be gone."""
    deadline = time.monotonic() + timeout
    while groups and time.monotonic() < deadline:
        groups = [pgid for pgid in groups if _group_exists(pgid)]
        if groups:
            time.sleep(0.05)


def _remove(directory: Path, attempts: int = 5) -> bool:
    """Remove the directory, again while something (a dying process, another pool process
    reaping the same owner) still changes it; True once it is gone."""
    for _ in range(attempts):
        shutil.rmtree(directory, ignore_errors=True)
        if not directory.exists():
            return True
        time.sleep(0.1)
    log.warning("could not remove a dead worker's directory", directory=str(directory))
    return False


def _owner_directories(root: Path) -> Iterable[Path]:
    try:
        return sorted(path for path in root.iterdir() if path.is_dir())
    except FileNotFoundError:
        return []


def _recorded_groups(directory: Path) -> Iterable[tuple[int, int]]:
    try:
        files = list(directory.iterdir())
    except FileNotFoundError:
        return []
    groups = []
    for file in files:
        with contextlib.suppress(OSError, ValueError):
            groups.append((int(file.name), int(file.read_text().strip())))
    return groups


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


# --- this process's registration, used by the sandbox and the pipeline --------------------

_current: Owner | None = None


def register_process(work_dir: Path) -> Owner:
    """Make this process an owner: reap dead ones, then scratch space under its directory."""
    global _current
    root = work_dir / OWNERS
    reap(root)
    owner = Owner(root, this_owner()).create()
    _current = owner
    # every tempfile of this process (gate sandboxes, checkouts) lands in the owner's scratch
    tempfile.tempdir = str(owner.scratch)
    return owner


def current_owner() -> Owner | None:
    """This process's owner, when it registered (a worker); None in a CLI command."""
    if _current is not None and _current.name.pid != os.getpid():
        return None  # a forked child that did not register itself
    return _current


def scratch_root(default: Path) -> Path:
    """Where an evaluation's scratch directory goes: the owner's scratch space, else default."""
    owner = current_owner()
    return owner.scratch if owner is not None else default


def record_group(pgid: int) -> None:
    """Note a build process group this worker started (a no-op outside a worker)."""
    owner = current_owner()
    if owner is not None:
        with contextlib.suppress(OSError):
            owner.record_group(pgid)


def forget_group(pgid: int) -> None:
    owner = current_owner()
    if owner is not None:
        owner.forget_group(pgid)


_libc: Any = None


def die_with_parent() -> None:
    """In a child between fork and exec: SIGKILL it when the thread that forked it dies."""
    global _libc
    if _libc is None:
        return
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def load_libc() -> None:
    """Load libc before forking (no dlopen between fork and exec)."""
    global _libc
    with contextlib.suppress(OSError):
        _libc = ctypes.CDLL(None, use_errno=True)


load_libc()


# --- Celery wiring: every pool process registers (and reaps) when it starts ---------------


def _on_process_start(**_: Any) -> None:
    from specfleet.core.settings import get_settings

    try:
        register_process(get_settings().home / "work")
    except OSError as error:  # clean-up must never stop a worker from working
        log.warning("cannot register the worker's scratch space", error=str(error))


def _on_process_shutdown(**_: Any) -> None:
    owner = current_owner()
    if owner is not None:
        shutil.rmtree(owner.directory, ignore_errors=True)


def connect_celery_signals() -> None:
    """Called by ``specfleet worker`` only: a worker inside a CLI command or a test leaves the
    process's scratch space where it is."""
    from celery import signals

    signals.worker_process_init.connect(_on_process_start, weak=False, dispatch_uid="reaper")
    signals.worker_process_shutdown.connect(
        _on_process_shutdown, weak=False, dispatch_uid="reaper-exit"
    )
