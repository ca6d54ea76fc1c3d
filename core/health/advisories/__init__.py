"""Known vulnerabilities of pinned versions: OSV matching, an offline advisory directory,
pip-audit, and an OSV-compatible server for organisations without internet access."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.health.advisories.interface import (
        Advisory,
        AdvisoryError,
        AdvisorySource,
        PackageVersion,
        RangeEvent,
        Severity,
    )
    from core.health.advisories.matching import (
        advisory_affects,
        first_fix_after,
        fixed_versions,
        is_affected,
        range_includes,
    )
    from core.health.advisories.osv_directory import AdvisoryFileProblem, OsvDirectory
    from core.health.advisories.osv_record import Malformed, OsvRecord, load_document, parse_record
    from core.health.advisories.pip_audit import (
        PipAuditSource,
        advisories_from_report,
        find_pip_audit,
    )
    from core.health.advisories.server import (
        OsvApi,
        OsvHttpServer,
        RunningServer,
        is_loopback,
        make_server,
        start_server,
    )
    from core.health.advisories.severity import (
        cvss3_base_score,
        severity_for_score,
        severity_from_label,
        severity_of,
    )

# names resolve on first use, so asking about one pin's advisories does not import pip-audit's
# runner or the HTTP server (see bench/health_vs_pip_audit.py)
_WHERE = {
    "Advisory": "core.health.advisories.interface",
    "AdvisoryError": "core.health.advisories.interface",
    "AdvisoryFileProblem": "core.health.advisories.osv_directory",
    "AdvisorySource": "core.health.advisories.interface",
    "Malformed": "core.health.advisories.osv_record",
    "OsvApi": "core.health.advisories.server",
    "OsvDirectory": "core.health.advisories.osv_directory",
    "OsvHttpServer": "core.health.advisories.server",
    "OsvRecord": "core.health.advisories.osv_record",
    "PackageVersion": "core.health.advisories.interface",
    "PipAuditSource": "core.health.advisories.pip_audit",
    "RangeEvent": "core.health.advisories.interface",
    "RunningServer": "core.health.advisories.server",
    "Severity": "core.health.advisories.interface",
    "advisories_from_report": "core.health.advisories.pip_audit",
    "advisory_affects": "core.health.advisories.matching",
    "cvss3_base_score": "core.health.advisories.severity",
    "find_pip_audit": "core.health.advisories.pip_audit",
    "first_fix_after": "core.health.advisories.matching",
    "fixed_versions": "core.health.advisories.matching",
    "is_affected": "core.health.advisories.matching",
    "is_loopback": "core.health.advisories.server",
    "load_document": "core.health.advisories.osv_record",
    "make_server": "core.health.advisories.server",
    "parse_record": "core.health.advisories.osv_record",
    "range_includes": "core.health.advisories.matching",
    "severity_for_score": "core.health.advisories.severity",
    "severity_from_label": "core.health.advisories.severity",
    "severity_of": "core.health.advisories.severity",
    "start_server": "core.health.advisories.server",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "Advisory",
    "AdvisoryError",
    "AdvisoryFileProblem",
    "AdvisorySource",
    "Malformed",
    "OsvApi",
    "OsvDirectory",
    "OsvHttpServer",
    "OsvRecord",
    "PackageVersion",
    "PipAuditSource",
    "RangeEvent",
    "RunningServer",
    "Severity",
    "advisories_from_report",
    "advisory_affects",
    "cvss3_base_score",
    "find_pip_audit",
    "first_fix_after",
    "fixed_versions",
    "is_affected",
    "is_loopback",
    "load_document",
    "make_server",
    "parse_record",
    "range_includes",
    "severity_for_score",
    "severity_from_label",
    "severity_of",
    "start_server",
]
