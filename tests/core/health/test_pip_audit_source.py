"""The pip-audit source: the real CLI against the local OSV server, failures, environment."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from specfleet.core.errors import ConfigurationError
from specfleet.core.health.advisories import (
    AdvisoryError,
    OsvDirectory,
    PackageVersion,
    PipAuditSource,
    RunningServer,
    advisories_from_report,
    start_server,
)
from specfleet.core.health.advisories.pip_audit import subprocess_environment

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "advisories"


def pin(name: str, version: str) -> PackageVersion:
    return canonicalize_name(name), version


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with start_server(OsvDirectory(FIXTURES)) as running:
        yield running


def test_pip_audit_against_the_local_osv_server(server: RunningServer, tmp_path: Path) -> None:
    """Real pip-audit over HTTP to the real server: advisories, fixes, aliases, clean pins."""
    source = PipAuditSource(osv_url=server.query_url, cache_dir=tmp_path / "cache")
    pins = [pin("pyarrow", "14.0.0"), pin("requests", "2.28.2"), pin("duckdb", "0.9.2")]
    pins += [pin("pandas", "1.5.3")]
    found = source.advisories_for(pins)
    assert set(found) == set(pins)
    (pyarrow,) = found[pin("pyarrow", "14.0.0")]
    assert (pyarrow.id, pyarrow.fixed_versions) == ("PYSEC-2023-238", ("14.0.1",))
    assert pyarrow.aliases == ("CVE-2023-47248", "GHSA-5wvp-7f3h-6wmm")
    assert pyarrow.details.startswith("Deserialization of untrusted data")
    assert pyarrow.package == "pyarrow"
    (requests,) = found[pin("requests", "2.28.2")]
    assert (requests.id, requests.first_fix_after("2.28.2")) == ("PYSEC-2023-74", "2.31.0")
    (duckdb,) = found[pin("duckdb", "0.9.2")]
    assert duckdb.fixed_versions == ("0.9.3.dev6",)
    assert found[pin("pandas", "1.5.3")] == []
    # pip-audit vouches for the audited pin only
    assert requests.affects("2.28.2") is True
    assert requests.affects("2.20.0") is None


def test_two_versions_of_one_package_and_odd_spellings(
    server: RunningServer, tmp_path: Path
) -> None:
    """Two versions of a package are audited (in two runs); keys come back as they were asked."""
    source = PipAuditSource(osv_url=server.query_url, cache_dir=tmp_path / "cache")
    pins = [
        ("requests", "2.28.2"),
        ("requests", "2.31.0"),
        ("Requests", "2.28.02"),  # the same pin as the first, spelled differently
        ("pyarrow", "not-a-version"),  # cannot be written as a requirement
    ]
    found = source.advisories_for(pins)  # type: ignore[arg-type]
    assert [a.id for a in found[("requests", "2.28.2")]] == ["PYSEC-2023-74"]  # type: ignore[index]
    assert found[("requests", "2.31.0")] == []  # type: ignore[index]
    assert [a.id for a in found[("Requests", "2.28.02")]] == ["PYSEC-2023-74"]  # type: ignore[index]
    assert ("pyarrow", "not-a-version") not in found  # absent: not audited


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_service_is_an_error_with_stderr(tmp_path: Path) -> None:
    """pip-audit failing (nothing listens at the URL) raises AdvisoryError with its stderr."""
    url = f"http://127.0.0.1:{free_port()}/v1/query"
    source = PipAuditSource(osv_url=url, cache_dir=tmp_path / "cache", request_timeout=5)
    with pytest.raises(AdvisoryError, match=r"pip-audit failed \(exit 1\): .*Connect") as caught:
        source.advisories_for([pin("requests", "2.28.2")])
    assert "Traceback" not in str(caught.value).splitlines()[0]  # the reason comes first
    assert len(str(caught.value)) < 4100  # stderr is bounded


def test_a_hanging_service_times_out(tmp_path: Path) -> None:
    """A service that accepts but never answers ends in AdvisoryError after the time limit."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        source = PipAuditSource(
            osv_url=f"http://127.0.0.1:{port}/v1/query", cache_dir=tmp_path / "cache", timeout=3
        )
        with pytest.raises(AdvisoryError, match="did not finish within 3 s"):
            source.advisories_for([pin("requests", "2.28.2")])


def test_a_missing_executable_is_an_error(tmp_path: Path) -> None:
    """A pip-audit that cannot be started raises AdvisoryError."""
    source = PipAuditSource(executable=str(tmp_path / "no-pip-audit"))
    with pytest.raises(AdvisoryError, match="cannot be run"):
        source.advisories_for([pin("requests", "2.28.2")])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"service": "esms"}, "must be osv or pypi"),
        ({"osv_url": "ftp://mirror/v1/query"}, "http"),
        ({"osv_url": "https://user:pw@mirror.example/v1/query"}, "carries credentials"),
        ({"osv_url": "http://127.0.0.1:1/v1/query", "service": "pypi"}, "only used with"),
    ],
)
def test_configuration_is_checked(arguments: dict[str, str], message: str) -> None:
    """Wrong services and URLs with credentials are refused before anything runs."""
    with pytest.raises(ConfigurationError, match=message):
        PipAuditSource(**arguments)  # type: ignore[arg-type]


def test_command_line(tmp_path: Path) -> None:
    """Exact pins only, JSON out, no spinner, the service and URL and cache as configured."""
    source = PipAuditSource(
        osv_url="http://127.0.0.1:9/v1/query", cache_dir=tmp_path, executable="pip-audit"
    )
    command = source.command(tmp_path / "requirements.txt")
    text = " ".join(command)
    assert command[0] == "pip-audit"
    for part in (
        "--no-deps",
        "--disable-pip",
        "--format json",
        "--progress-spinner off",
        "--vulnerability-service osv",
        "--osv-url http://127.0.0.1:9/v1/query",
        f"--cache-dir {tmp_path}",
        f"--requirement {tmp_path / 'requirements.txt'}",
    ):
        assert part in text
    plain = PipAuditSource(service="pypi", executable="pip-audit").command(tmp_path / "r.txt")
    assert "--osv-url" not in plain and "--cache-dir" not in plain


def test_environment_passes_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The subprocess sees an allow-list: no tokens or index credentials; loopback unproxied."""
    monkeypatch.setenv("SPECFLEET_GITLAB_TOKEN", "glpat-secretsecretsecret")
    monkeypatch.setenv("PIP_INDEX_URL", "https://user:pw@index.example/simple")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://user:pw@proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    environment = subprocess_environment()
    assert "SPECFLEET_GITLAB_TOKEN" not in environment
    assert "PIP_INDEX_URL" not in environment
    assert "OPENAI_API_KEY" not in environment
    assert environment["HTTPS_PROXY"] == "http://proxy.example:3128"
    assert "HTTP_PROXY" not in environment  # it carries a password
    assert environment["NO_PROXY"] == "internal.example,127.0.0.1,localhost,::1"
    assert "PATH" in environment


def test_report_mapping() -> None:
    """Skipped dependencies and pins missing from the report are left out; N/A is no text."""
    report = {
        "dependencies": [
            {
                "name": "django",
                "version": "2.2",
                "vulns": [
                    {
                        "id": "PYSEC-1",
                        "fix_versions": ["2.2.10", "1.11.28"],
                        "aliases": ["GHSA-b", "CVE-a"],
                        "description": "N/A",
                    }
                ],
            },
            {"name": "flask", "skip_reason": "could not be audited"},
            "not a dependency",
        ],
        "fixes": [],
    }
    pins = [("Django", "2.2.0"), ("flask", "2.0"), ("other", "1.0")]
    found = advisories_from_report(report, pins)  # type: ignore[arg-type]
    assert list(found) == [("Django", "2.2.0")]
    (advisory,) = found[("Django", "2.2.0")]  # type: ignore[index]
    assert advisory.package == "django"
    assert advisory.fixed_versions == ("1.11.28", "2.2.10")
    assert advisory.aliases == ("CVE-a", "GHSA-b")
    assert (advisory.summary, advisory.details) == ("", "")
    with pytest.raises(AdvisoryError, match="no 'dependencies'"):
        advisories_from_report({"fixes": []}, pins)  # type: ignore[arg-type]
