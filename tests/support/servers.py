"""Throwaway PostgreSQL and Redis servers for a test session, on free loopback ports.

When ``SPECFLEET_TEST_POSTGRES_URL`` / ``SPECFLEET_TEST_REDIS_URL`` are unset, the session
starts its own servers from the system's binaries (``initdb``/``pg_ctl`` of Debian's
``postgresql`` package, ``redis-server``) in a temporary directory and removes them at the
end, so the test command needs no running service. The fault suite uses the same classes to
stop and restart a server mid-run (``stop``/``start`` keep the port and the data directory).

PostgreSQL refuses to run as root; as root the server runs as the ``postgres`` system user
(created by the Debian package) through ``setpriv``. Durability is switched off (``fsync``,
``synchronous_commit``, ``full_page_writes``): a test database is thrown away anyway, and this
keeps a commit from costing a disk flush on a shared machine.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT = 30.0


class ServerUnavailable(RuntimeError):
    """The binaries to start a throwaway server are missing or the server did not start."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def postgres_bin_dir() -> Path:
    """The newest PostgreSQL server binaries: Debian's versioned directory, else PATH."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key)
    for candidate in reversed(candidates):
        if (candidate / "initdb").exists():
            return candidate
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise ServerUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl): install Debian's `postgresql` package "
        "or set SPECFLEET_TEST_POSTGRES_URL to an existing server"
    )


def _version_key(path: Path) -> tuple[int, ...]:
    version = path.parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _unprivileged_prefix() -> tuple[list[str], str | None]:
    """The command prefix that drops root for initdb/pg_ctl, and the user it runs as."""
    if os.geteuid() != 0:
        return [], None
    for user in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(user)
            return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"], user
    raise ServerUnavailable("running as root and no `postgres` user to run PostgreSQL as")


def _wait(condition: object, what: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise ServerUnavailable(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class ThrowawayPostgres:
    """A PostgreSQL cluster in a temporary directory, on a free port, trust auth for postgres."""

    port: int = field(default_factory=free_port)
    directory: Path | None = None

    @property
    def data(self) -> Path:
        assert self.directory is not None, "start() first"
        return self.directory / "data"

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        prefix, _ = _unprivileged_prefix()
        result = subprocess.run(
            [*prefix, *args], capture_output=True, text=True, check=False, timeout=120
        )
        if result.returncode != 0:
            raise ServerUnavailable(f"{Path(args[0]).name} failed: {result.stderr.strip()}")

    def create(self) -> None:
        """initdb in a fresh temporary directory (owned by the unprivileged user)."""
        binaries = postgres_bin_dir()
        self.directory = Path(tempfile.mkdtemp(prefix="specfleet-pg-"))
        _, user = _unprivileged_prefix()
        if user is not None:
            record = pwd.getpwnam(user)
            os.chown(self.directory, record.pw_uid, record.pw_gid)
        self._run(
            str(binaries / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        )

    def start(self) -> ThrowawayPostgres:
        if self.directory is None:
            self.create()
        assert self.directory is not None
        options = (
            f"-p {self.port} -h 127.0.0.1 -k {self.directory} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(postgres_bin_dir() / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.directory / "server.log"),
            "-w",
            "-t",
            str(int(START_TIMEOUT)),
            "start",
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate`` is a crash: no checkpoint, connections cut)."""
        if self.directory is None or not (self.data / "postmaster.pid").exists():
            return
        self._run(
            str(postgres_bin_dir() / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"
        )

    def remove(self) -> None:
        self.stop("immediate")
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


@dataclass
class ThrowawayRedis:
    """A redis-server on a free port; no persistence unless ``appendonly``."""

    port: int = field(default_factory=free_port)
    appendonly: bool = False
    directory: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> ThrowawayRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerUnavailable(
                "no redis-server: install Debian's `redis-server` package or set "
                "SPECFLEET_TEST_REDIS_URL to an existing server"
            )
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="specfleet-redis-"))
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.appendonly
            else ["--appendonly", "no"]
        )
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                *persistence,
                "--dir",
                str(self.directory),
                "--databases",
                "16",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        process = self.process
        _wait(
            lambda: process.poll() is not None or port_answers(self.port),
            f"redis-server on port {self.port}",
        )
        if process.poll() is not None:
            raise ServerUnavailable(f"redis-server exited with {process.returncode}")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: whatever was only in memory is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self.process = None

    def remove(self) -> None:
        self.stop()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
