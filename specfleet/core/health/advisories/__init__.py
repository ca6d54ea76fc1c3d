"""Known vulnerabilities of pinned versions: OSV matching, an offline advisory directory,
pip-audit, and an OSV-compatible server for organisations without internet access."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from specfleet.core.health.advisories.interface import (
        Advisory,
        AdvisoryError,
        AdvisorySource,
        PackageVersion,
        RangeEvent,
        Severity,
    )
    from specfleet.core.health.advisories.matching import (
        advisory_affects,
        first_fix_after,
        fixed_versions,
        is_affected,
        range_includes,
    )
    from specfleet.core.health.advisories.osv_directory import AdvisoryFileProblem, OsvDirectory
    from specfleet.core.health.advisories.osv_record import (
        Malformed,
        OsvRecord,
        load_document,
        parse_record,
    )
    from specfleet.core.health.advisories.pip_audit import (
        PipAuditSource,
        advisories_from_report,
        find_pip_audit,
    )
    from specfleet.core.health.advisories.server import (
        OsvApi,
        OsvHttpServer,
        RunningServer,
        is_loopback,
        make_server,
        start_server,
    )
    from specfleet.core.health.advisories.severity import (
        cvss3_base_score,
        severity_for_score,
        severity_from_label,
        severity_of,
    )

# names resolve on first use, so asking about one pin's advisories does not import pip-audit's
# runner or the HTTP server (see bench/health_vs_pip_audit.py)
_WHERE = {
    "Advisory": "specfleet.core.health.advisories.interface",
    "AdvisoryError": "specfleet.core.health.advisories.interface",
    "AdvisoryFileProblem": "specfleet.core.health.advisories.osv_directory",
    "AdvisorySource": "specfleet.core.health.advisories.interface",
    "Malformed": "specfleet.core.health.advisories.osv_record",
    "OsvApi": "specfleet.core.health.advisories.server",
    "OsvDirectory": "specfleet.core.health.advisories.osv_directory",
    "OsvHttpServer": "specfleet.core.health.advisories.server",
    "OsvRecord": "specfleet.core.health.advisories.osv_record",
    "PackageVersion": "specfleet.core.health.advisories.interface",
    "PipAuditSource": "specfleet.core.health.advisories.pip_audit",
    "RangeEvent": "specfleet.core.health.advisories.interface",
    "RunningServer": "specfleet.core.health.advisories.server",
    "Severity": "specfleet.core.health.advisories.interface",
    "advisories_from_report": "specfleet.core.health.advisories.pip_audit",
    "advisory_affects": "specfleet.core.health.advisories.matching",
    "cvss3_base_score": "specfleet.core.health.advisories.severity",
    "find_pip_audit": "specfleet.core.health.advisories.pip_audit",
    "first_fix_after": "specfleet.core.health.advisories.matching",
    "fixed_versions": "specfleet.core.health.advisories.matching",
    "is_affected": "specfleet.core.health.advisories.matching",
    "is_loopback": "specfleet.core.health.advisories.server",
    "load_document": "specfleet.core.health.advisories.osv_record",
    "make_server": "specfleet.core.health.advisories.server",
    "parse_record": "specfleet.core.health.advisories.osv_record",
    "range_includes": "specfleet.core.health.advisories.matching",
    "severity_for_score": "specfleet.core.health.advisories.severity",
    "severity_from_label": "specfleet.core.health.advisories.severity",
    "severity_of": "specfleet.core.health.advisories.severity",
    "start_server": "specfleet.core.health.advisories.server",
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
