"""Helpers for the fleet tests: product repositories, private Redis servers, worker processes.

Workers are real ``specfleet worker`` processes (their own process group, so a test can kill
one with everything it started); Redis is a private ``redis-server`` on a free port with an
append-only file, so a restart keeps its queues.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import git
from sqlalchemy import Engine
from sqlmodel import col, select

from specfleet.core.db import Evaluation, Product, session_scope
from tests.conftest import EXAMPLES, SPECFLEET

ADVISORIES = EXAMPLES / "advisories"
BUILD = "footfall/build.py"
WRITE = "    write_csv_atomically(rows, args.output / OUTPUT_FILE)\n"


def footfall_repo(
    path: Path,
    vulnerable: bool = False,
    build_sleep: float = 0,
    max_build_seconds: int | None = None,
) -> Path:
    """The store_footfall example as a git repository, optionally with a vulnerable pin
    (so an evaluation proposes an upgrade) and a build that sleeps before writing its output
    (only when run by the verifier: the product's own tests run the build under pytest)."""
    shutil.copytree(EXAMPLES / "store_footfall", path, ignore=shutil.ignore_patterns("out"))
    if vulnerable:
        with (path / "requirements.txt").open("a") as handle:
            handle.write("requests==2.28.2\n")
    if build_sleep:
        build = path / BUILD
        text = build.read_text()
        assert WRITE in text, "the store_footfall example changed"
        slow = (
            '    if not os.environ.get("PYTEST_CURRENT_TEST"):\n'
            f"        __import__('time').sleep({build_sleep})\n"
        )
        build.write_text(text.replace(WRITE, slow + WRITE, 1))
    if max_build_seconds is not None:
        spec = path / "dataproduct.yaml"
        spec.write_text(
            spec.read_text().replace(
                "max_build_seconds: 30", f"max_build_seconds: {max_build_seconds}"
            )
        )
    repo = git.Repo.init(path, initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "Test Author")
        config.set_value("user", "email", "author@example.com")
    repo.git.add(A=True)
    repo.index.commit("initial commit")
    repo.close()
    return path


def register(engine: Engine, products: dict[str, Path]) -> None:
    with session_scope(engine) as session:
        for product_id, repo in products.items():
            session.add(Product(id=product_id, name=product_id, repo_url=str(repo)))


def evaluations(engine: Engine, window: str | None = None) -> list[Evaluation]:
    query = select(Evaluation).order_by(col(Evaluation.id))
    if window is not None:
        query = query.where(Evaluation.window == window)
    with session_scope(engine) as session:
        return list(session.exec(query).all())


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, logs: Iterable[Path] = ()
) -> None:
    """Poll ``condition`` until it holds; fail with the workers' log tails when it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    tails = "\n".join(
        f"--- {log}\n{log.read_text(errors='replace')[-4000:]}" for log in logs if log.exists()
    )
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PrivateRedis:
    """A redis-server of this test only, persisting to an append-only file in ``directory``."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_for(answers, 20, "the private redis-server to answer")
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: redis flushes its append-only file and exits
            self.process.wait(timeout=30)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class WorkerProcess:
    """A ``specfleet worker`` in its own process group, logging to ``log``."""

    env: dict[str, str]
    log: Path
    args: tuple[str, ...] = ("--pool", "prefork", "--concurrency", "2")
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [SPECFLEET, "worker", "--loglevel", "INFO", *self.args],
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        handle.close()
        return self

    def kill(self) -> None:
        """SIGKILL to the worker and its pool processes at once: nothing gets to clean up."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)  # warm shutdown
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()


def worker_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a worker process: this test's SPECFLEET_* settings plus ``extra``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name != "PYTEST_CURRENT_TEST"  # the slow example build sleeps only outside pytest
    }
    env.update(extra)
    return env
