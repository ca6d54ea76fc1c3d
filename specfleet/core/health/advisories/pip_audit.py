"""An advisory source that runs the real ``pip-audit`` CLI once for a whole set of pins.

pip-audit is asked about exact pins only (``-r FILE --no-deps --disable-pip``), so it never
resolves or installs anything; its JSON report is mapped to :class:`Advisory` values. It
reports ids, aliases, a description and the fixed versions, but no ranges: each advisory
records the audited pin as ``known_affected``, so ``affects`` says True for that pin and
"cannot tell" (None) for any other version.

Services: ``osv`` (optionally at ``osv_url``, e.g. the server in
:mod:`core.health.advisories.server` for an air-gapped mirror) or ``pypi``. pip-audit exits
1 both when it finds vulnerabilities and when it fails; a JSON report on stdout is what tells
a finding from a failure. The subprocess gets a minimal environment: no specfleet settings,
tokens or package-index credentials reach it.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from specfleet.core.errors import ConfigurationError
from specfleet.core.health.advisories.interface import Advisory, AdvisoryError, PackageVersion
from specfleet.core.health.advisories.matching import parse_version, sort_versions
from specfleet.core.health.advisories.osv_record import summary_line
from specfleet.core.log import get_logger
from specfleet.core.secrets import find_secret_shapes, redact_text
from specfleet.core.tools import find_tool

Service = Literal["osv", "pypi"]
MAX_STDERR_CHARS = 2000
# Variables pip-audit may need to run and reach its service; everything else stays behind.
PASSED_ENVIRONMENT = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
)
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
LOOPBACK_NAMES = "127.0.0.1,localhost,::1"

log = get_logger(__name__)

# (canonical name, PEP 440 version): pip-audit reports dependencies canonically and with
# normalised versions, so "Django==2.2.0" comes back as django 2.2
_ReportKey = tuple[NormalizedName, Version]


def find_pip_audit() -> str:
    """The pip-audit beside this Python (its virtualenv), else the one on PATH."""
    found = find_tool("pip-audit")
    if found is None:
        raise AdvisoryError("pip-audit is not installed (neither beside Python nor on PATH)")
    return found


class PipAuditSource:
    """:class:`AdvisorySource` running ``pip-audit`` (see the module docstring)."""

    name = "pip-audit"

    def __init__(
        self,
        osv_url: str | None = None,
        service: Service = "osv",
        timeout: float = 300,
        cache_dir: Path | None = None,
        *,
        request_timeout: int = 15,
        executable: str | None = None,
    ) -> None:
        if service not in get_args(Service):
            raise ConfigurationError(f"pip-audit service must be osv or pypi, not {service!r}")
        if osv_url is not None:
            _check_osv_url(osv_url)
            if service != "osv":
                raise ConfigurationError("an OSV URL is only used with the osv service")
        self.osv_url = osv_url
        self.service = service
        self.timeout = timeout  # the whole run
        self.request_timeout = request_timeout  # each HTTP request pip-audit makes
        self.cache_dir = cache_dir
        self.executable = executable

    def advisories_for(
        self, packages: Sequence[PackageVersion]
    ) -> Mapping[PackageVersion, Sequence[Advisory]]:
        """Advisories pip-audit reports for each pin.

        A pin whose version is not PEP 440 cannot be written as a requirement, and a pin
        pip-audit skips has no answer: both are left out of the result (absent means "not
        audited", an empty list means "no known vulnerability").
        """
        answers: dict[PackageVersion, Sequence[Advisory]] = {}
        for batch in _batches(packages):
            answers.update(advisories_from_report(self._run(batch), packages))
        return answers

    def command(self, requirements: Path) -> list[str]:
        """The pip-audit command line for a requirements file."""
        command = [
            self.executable or find_pip_audit(),
            "--requirement",
            str(requirements),
            "--no-deps",
            "--disable-pip",
            "--format",
            "json",
            "--desc",
            "on",
            "--aliases",
            "on",
            "--progress-spinner",
            "off",
            "--vulnerability-service",
            self.service,
            "--timeout",
            str(self.request_timeout),
        ]
        if self.osv_url is not None:
            command += ["--osv-url", self.osv_url]
        if self.cache_dir is not None:
            command += ["--cache-dir", str(self.cache_dir)]
        return command

    def _run(self, batch: Sequence[_ReportKey]) -> object:
        with tempfile.TemporaryDirectory(prefix="specfleet-pip-audit-") as workdir:
            requirements = Path(workdir) / "requirements.txt"
            requirements.write_text("".join(f"{name}=={version}\n" for name, version in batch))
            command = self.command(requirements)
            log.debug("running pip-audit", pins=len(batch), service=self.service)
            try:
                result = subprocess.run(
                    command,
                    capture_output=True,
                    text=True,
                    timeout=self.timeout,
                    env=subprocess_environment(),
                    stdin=subprocess.DEVNULL,
                    cwd=workdir,
                    check=False,
                )
            except subprocess.TimeoutExpired as error:
                raise AdvisoryError(
                    f"pip-audit did not finish within {self.timeout:g} s"
                    f"{_stderr_tail(error.stderr)}"
                ) from error
            except OSError as error:
                raise AdvisoryError(f"pip-audit cannot be run: {error}") from error
        report = _json_report(result.stdout)
        # exit 1 means "vulnerabilities found" only when the report was written
        if result.returncode not in (0, 1) or report is None:
            raise AdvisoryError(
                f"pip-audit failed (exit {result.returncode}){_stderr_tail(result.stderr)}"
            )
        return report


def advisories_from_report(
    report: object, packages: Sequence[PackageVersion]
) -> dict[PackageVersion, list[Advisory]]:
    """Map a pip-audit JSON report back to the pins asked about; others are left out.

    pip-audit names dependencies canonically with PEP 440-normalised versions, so pins are
    matched by canonical name and version equality (``Django==2.2.0`` matches ``django 2.2``).
    """
    wanted: dict[_ReportKey, list[PackageVersion]] = {}
    for name, version in packages:
        key = _report_key(name, version)
        if key is not None:
            wanted.setdefault(key, []).append((name, version))
    dependencies = report.get("dependencies") if isinstance(report, Mapping) else None
    if not isinstance(dependencies, list):
        raise AdvisoryError("pip-audit's report has no 'dependencies' list")
    answers: dict[PackageVersion, list[Advisory]] = {}
    for dependency in dependencies:
        if not isinstance(dependency, Mapping):
            continue
        if "skip_reason" in dependency:
            reason = dependency.get("skip_reason")
            log.info("pip-audit skipped a pin", pin=dependency.get("name"), reason=reason)
            continue
        key = _report_key(str(dependency.get("name", "")), str(dependency.get("version", "")))
        for pin in wanted.get(key, []) if key is not None else []:
            answers[pin] = [
                _advisory(vuln, pin)
                for vuln in dependency.get("vulns") or ()
                if isinstance(vuln, Mapping)
            ]
    return answers


def _advisory(vuln: Mapping[str, Any], pin: PackageVersion) -> Advisory:
    name, version = pin
    description = str(vuln.get("description") or "")
    if description == "N/A":  # pip-audit's placeholder when the record has no text
        description = ""
    return Advisory(
        id=str(vuln.get("id", "")),
        package=canonicalize_name(name),
        aliases=tuple(sorted(str(alias) for alias in vuln.get("aliases") or ())),
        summary=summary_line(description),
        details=description,
        fixed_versions=sort_versions(str(fix) for fix in vuln.get("fix_versions") or ()),
        known_affected=frozenset({version}),
    )


def _report_key(name: str, version: str) -> _ReportKey | None:
    parsed = parse_version(version)
    return None if parsed is None else (canonicalize_name(name), parsed)


def _batches(packages: Sequence[PackageVersion]) -> list[list[_ReportKey]]:
    """Distinct pins split so no batch names a package twice (pip-audit refuses that).

    Usually one batch; a second only when two versions of one package are asked about.
    Pins that are not PEP 440 versions are dropped here, with a log line.
    """
    batches: list[list[_ReportKey]] = []
    keys_seen: set[_ReportKey] = set()
    versions_seen: dict[NormalizedName, int] = {}
    for name, version in packages:
        key = _report_key(name, version)
        if key is None:
            log.warning("pin not audited: not a PEP 440 version", package=name, version=version)
            continue
        if key in keys_seen:
            continue
        keys_seen.add(key)
        index = versions_seen.get(key[0], 0)
        versions_seen[key[0]] = index + 1
        if index == len(batches):
            batches.append([])
        batches[index].append(key)
    return batches


def subprocess_environment() -> dict[str, str]:
    """The environment pip-audit runs with: an allow-list, and loopback never proxied."""
    environment = {name: os.environ[name] for name in PASSED_ENVIRONMENT if name in os.environ}
    for name in PROXY_VARIABLES:
        value = os.environ.get(name)
        # a proxy URL with a password is a credential; without it pip-audit goes direct
        if value and urlsplit(value).password is None:
            environment[name] = value
    no_proxy = [os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or "", LOOPBACK_NAMES]
    environment["NO_PROXY"] = environment["no_proxy"] = ",".join(part for part in no_proxy if part)
    environment["PYTHONIOENCODING"] = "utf-8"
    return environment


def _check_osv_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"the OSV URL must be an http(s) URL, not {url!r}")
    if parts.password is not None or parts.username is not None or find_secret_shapes(url):
        raise ConfigurationError(
            f"the OSV URL {redact_text(url)!r} carries credentials; pip-audit would log them"
        )


def _json_report(stdout: str) -> object | None:
    try:
        report = json.loads(stdout)
    except json.JSONDecodeError:
        return None
    return report if isinstance(report, Mapping) and "dependencies" in report else None


def _stderr_tail(stderr: str | bytes | None) -> str:
    """The last line of stderr (the reason, after a traceback), then its bounded tail."""
    if not stderr:
        return ""
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    text = redact_text(text.strip())
    lines = text.splitlines()
    if not lines:
        return ""
    if len(text) > MAX_STDERR_CHARS:
        text = "…" + text[-MAX_STDERR_CHARS:]
    last = lines[-1][:MAX_STDERR_CHARS]
    return f": {last}" if len(lines) == 1 else f": {last}\n{text}"
