"""``specfleet advisories`` through the installed entry point: check's table, serve's API."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from urllib.parse import urlsplit

import pytest

from tests.conftest import SPECFLEET

Cli = Callable[..., CompletedProcess[str]]
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "advisories"


def test_check_lists_advisories_and_exits_1(cli: Cli) -> None:
    """Vulnerable pins get a row each (id, aliases, severity, first fix) and exit 1."""
    result = cli(
        "advisories", "check", str(FIXTURES), "requests==2.28.2", "duckdb==0.9.2", "pandas==1.5.3"
    )
    assert result.returncode == 1, result.stderr
    cells = [line.split("│") for line in result.stdout.splitlines() if "│" in line]
    rows = {cell[3].strip(): "│".join(cell) for cell in cells if cell[3].strip()}  # not wraps
    assert set(rows) == {"PYSEC-2023-74", "PYSEC-2024-25"}
    assert "CVE-2023-32681" in rows["PYSEC-2023-74"] and "2.31.0" in rows["PYSEC-2023-74"]
    assert "critical" in rows["PYSEC-2024-25"] and "0.9.3.dev6" in rows["PYSEC-2024-25"]
    assert "2 advisories for the 3 pins checked." in result.stdout


def test_check_without_findings_exits_0(cli: Cli) -> None:
    """Pins no advisory affects: a one-line all-clear and exit 0."""
    result = cli("advisories", "check", str(FIXTURES), "pandas==1.5.3", "pyarrow==14.0.1")
    assert result.returncode == 0, result.stderr
    assert "No known vulnerability affects the 2 pins checked." in result.stdout


def test_check_reports_malformed_files_and_still_answers(cli: Cli) -> None:
    """Malformed advisory files are warned about with a reason; the good one is still listed."""
    result = cli("advisories", "check", str(FIXTURES), "demo-malformed==1.0")
    assert result.returncode == 1
    assert "DEMO-2024-5" in result.stdout
    assert "BROKEN-YAML.yaml: invalid YAML" in result.stderr
    assert "NO-ID.yaml: the record has no 'id'" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_usage_errors_exit_2(cli: Cli, tmp_path: Path) -> None:
    """A missing directory or a pin that is not name==version is a usage error (2)."""
    missing = cli("advisories", "check", str(tmp_path / "nope"), "requests==2.28.2")
    assert missing.returncode == 2
    assert f"advisory directory {tmp_path / 'nope'} does not exist" in missing.stderr
    loose = cli("advisories", "check", str(FIXTURES), "requests>=2")
    assert loose.returncode == 2
    assert "not an exact pin" in loose.stderr


def test_serve_answers_queries_until_interrupted(tmp_path: Path) -> None:
    """serve prints its URL, answers an OSV query over HTTP, and stops cleanly on Ctrl-C."""
    process = subprocess.Popen(
        [SPECFLEET, "advisories", "serve", str(FIXTURES), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        # started as a script's background job would be: SIGINT ignored, which it inherits
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+)", first)
        assert match, first + (process.stderr.read() if process.stderr else "")
        url = match.group(1)
        assert f"--osv-url {url}/v1/query" in process.stdout.readline()
        connection = http.client.HTTPConnection(urlsplit(url).netloc, timeout=10)
        query = {"package": {"name": "pyarrow", "ecosystem": "PyPI"}, "version": "14.0.0"}
        connection.request("POST", "/v1/query", json.dumps(query))
        response = connection.getresponse()
        assert response.status == 200
        body = json.loads(response.read())
        connection.close()
        assert [vuln["id"] for vuln in body["vulns"]] == ["PYSEC-2023-238"]
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate(timeout=10)
            pytest.fail(f"serve did not stop on Ctrl-C within 30 s; its stderr: {stderr[-2000:]}")
        assert code == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_serve_refuses_a_non_loopback_host(cli: Cli) -> None:
    """Listening beyond loopback needs --allow-remote; without it, exit 2 before binding."""
    result = cli("advisories", "serve", str(FIXTURES), "--host", "0.0.0.0")  # noqa: S104
    assert result.returncode == 2
    assert "--allow-remote" in result.stderr
