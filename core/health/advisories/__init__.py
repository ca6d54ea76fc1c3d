"""Known vulnerabilities of pinned versions: OSV matching, an offline advisory directory,
pip-audit, and an OSV-compatible server for organisations without internet access."""

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
from core.health.advisories.pip_audit import PipAuditSource, advisories_from_report, find_pip_audit
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
