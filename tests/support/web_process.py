"""``specfleet web`` as its own process (uvicorn) on a free loopback port, for browser tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import SPECFLEET
from tests.support.servers import free_port


@dataclass(frozen=True)
class WebProcess:
    url: str
    pid: int


@contextlib.contextmanager
def specfleet_web(
    home: Path, database_url: str, env: dict[str, str] | None = None, wait_seconds: float = 60
) -> Iterator[WebProcess]:
    """Start the console, wait until it answers, stop it afterwards; fail with its output."""
    port = free_port()
    process = subprocess.Popen(
        [SPECFLEET, "web", "--host", "127.0.0.1", "--port", str(port)],
        env={
            **os.environ,
            "SPECFLEET_HOME": str(home),
            "SPECFLEET_DATABASE_URL": database_url,
            **(env or {}),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"specfleet web exited with {process.returncode}: {output}")
            if time.monotonic() > deadline:
                pytest.fail(f"specfleet web did not answer within {wait_seconds:.0f} s")
            time.sleep(0.2)
        yield WebProcess(url, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
