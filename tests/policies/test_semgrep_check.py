"""The semgrep check: one real semgrep run per product, findings mapped to organisation rules.

Real semgrep runs take a few seconds each, so the scenarios that can share one run do: the
``fleet`` product holds copies of the three examples plus crafted files (credentials, a file
semgrep can only partly parse, a file a slow rule times out on), and is checked once.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from specfleet.core.errors import PolicyCheckError, SpecfleetError
from specfleet.policies.checks.semgrep import (
    RUN_RULE_ID,
    SemgrepReport,
    SemgrepRuleSet,
    check_semgrep,
    combine_rule_sets,
    find_semgrep,
    findings_from_report,
    validate_semgrep_rules,
)
from specfleet.policies.findings import Finding, RuleSeverity
from tests.conftest import EXAMPLES, REPO_ROOT, RepoFactory

PACK = REPO_ROOT / "policies" / "pack" / "v1" / "semgrep"
PACK_RULES: dict[str, tuple[RuleSeverity, str]] = {
    "ORG-PY-010": ("medium", "naive-datetime"),
    "ORG-SQL-001": ("medium", "select-star"),
    "ORG-SEC-004": ("critical", "hardcoded-credentials"),
}

CREDENTIALS_POSITIVE = """\
import psycopg

password = "hunter2"
DB_PASSWORD = "s3cr3t-value"
api_key = 'abc123def456'
client_secret = "shh-its-a-secret"
auth_token: str = "tok-123456"
settings.password = "hunter2"
conn = psycopg.connect(host="db", password="hunter2")
config = {"password": "hunter2", "user": "app"}
DSN = "postgresql://app:hunter2@db.example.com:5432/orders"


def connect(user="app", passwd="hunter2"):
    return psycopg.connect(user=user, password=passwd)
"""
POSITIVE_LINES = [3, 4, 5, 6, 7, 8, 9, 10, 11, 14]

CREDENTIALS_NEGATIVE = """\
import os

password = ""
token = os.environ["API_TOKEN"]
secret = os.environ.get("CLIENT_SECRET", "")
api_key = os.getenv("API_KEY")
token_type = "bearer"
password_field = "password"
PASSWORD_ENV = "DB_PASSWORD"
secret = "${CLIENT_SECRET}"
password = "<your-password>"
DSN = "postgresql://app@db.example.com:5432/orders"
DSN = f"postgresql://app:{password}@db/orders"
config = {"password": os.environ["DB_PASSWORD"]}
pwd = "/home/app"


def connect(user="app", password=None):
    return password
"""

# tree-sitter recovers from the bad line; semgrep reports it as a partial parse of the file
PARTLY_PARSEABLE = """\
from datetime import datetime

stamp = datetime.now()
))))(((( = = = :::
"""

FIXABLE_NOW = """\
from datetime import datetime, timezone


def stamp():
    return datetime.now()
"""

# A rule whose four ellipses are quartic in the statements of one function: it runs past
# semgrep's per-file timeout on SLOW_FILE and nowhere else.
SLOW_RULE = {
    "rules": [
        {
            "id": "four-calls",
            "languages": ["python"],
            "severity": "WARNING",
            "message": "four calls in a row",
            "patterns": [
                {
                    "pattern": "$X = $F(...)\n...\n$Y = $G(...)\n...\n"
                    "$Z = $H(...)\n...\n$W = $I(...)\n"
                },
                {
                    "metavariable-comparison": {
                        "metavariable": "$X",
                        "comparison": 'str($X) == "never"',
                    }
                },
            ],
        }
    ]
}
SLOW_FILE = "def f():\n" + "".join(f"    x{i} = g{i}(1)\n" for i in range(3000))

UNPARSEABLE_PATTERN = {
    "rules": [
        {
            "id": "half-a-call",
            "languages": ["python"],
            "severity": "WARNING",
            "message": "never reported",
            "pattern": "foo(",
        }
    ]
}

MISSING_PATTERN = {
    "rules": [{"id": "no-pattern", "languages": ["python"], "severity": "WARNING", "message": "m"}]
}

UNKNOWN_LANGUAGE = {
    "rules": [
        {
            "id": "klingon-call",
            "languages": ["klingon"],
            "severity": "WARNING",
            "message": "m",
            "pattern": "foo()",
        }
    ]
}


def pack_rule_set(rule_id: str) -> SemgrepRuleSet:
    severity, name = PACK_RULES[rule_id]
    document = yaml.safe_load((PACK / f"{name}.yaml").read_text())
    return SemgrepRuleSet.from_document(rule_id, severity, f"semgrep/{name}.yaml", document)


def pack_rule_sets() -> list[SemgrepRuleSet]:
    return [pack_rule_set(rule_id) for rule_id in PACK_RULES]


def write_script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def logging_semgrep(folder: Path) -> tuple[str, Path]:
    """A semgrep that logs each invocation (its arguments, one line) and runs the real one."""
    log = folder / "invocations.log"
    script = write_script(
        folder / "semgrep", f'echo "$*" >> "{log}"\nexec "{find_semgrep()}" "$@"\n'
    )
    return script, log


def copy_example(name: str, target: Path) -> Path:
    shutil.copytree(EXAMPLES / name, target, ignore=shutil.ignore_patterns("__pycache__", "out"))
    return target


def by_rule(report: SemgrepReport, rule_id: str, status: str = "fail") -> list[Finding]:
    return [f for f in report.findings if f.rule_id == rule_id and f.status == status]


def under(report: SemgrepReport, folder: str) -> list[Finding]:
    return [f for f in report.findings if (f.file or "").startswith(f"{folder}/")]


@dataclass(frozen=True)
class FleetRun:
    report: SemgrepReport
    invocation_log: Path


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory: pytest.TempPathFactory) -> FleetRun:
    """One check of the fleet product with the pack's rule sets, a slow and a broken one."""
    root = tmp_path_factory.mktemp("fleet")
    product = root / "product"
    for name in ("orders", "customer_revenue", "store_footfall"):
        copy_example(name, product / name)
    crafted = product / "crafted"
    crafted.mkdir()
    (crafted / "credentials_positive.py").write_text(CREDENTIALS_POSITIVE)
    (crafted / "credentials_negative.py").write_text(CREDENTIALS_NEGATIVE)
    (crafted / "partly_parseable.py").write_text(PARTLY_PARSEABLE)
    (crafted / "fixable_now.py").write_text(FIXABLE_NOW)
    (crafted / "slow.py").write_text(SLOW_FILE)
    rule_sets = [
        *pack_rule_sets(),
        SemgrepRuleSet("ORG-SLOW-001", "low", "semgrep/slow.yaml", SLOW_RULE),
        SemgrepRuleSet("ORG-BROKEN-001", "high", "semgrep/broken.yaml", UNPARSEABLE_PATTERN),
    ]
    wrapper, log = logging_semgrep(root)
    report = check_semgrep(product, rule_sets, semgrep=wrapper, rule_timeout_seconds=1)
    return FleetRun(report, log)


def test_one_semgrep_invocation_for_all_rule_sets(fleet_run: FleetRun) -> None:
    """Five rule sets (one slow, one broken) cost exactly one semgrep process."""
    lines = fleet_run.invocation_log.read_text().splitlines()
    assert len(lines) == 1
    assert fleet_run.report.invocations == 1
    arguments = lines[0].split()
    assert arguments[0] == "scan"
    for flag in ("--json", "--disable-version-check", "--quiet", "--disable-nosem"):
        assert flag in arguments
    assert arguments[arguments.index("--metrics") + 1] == "off"
    assert arguments[arguments.index("--timeout") + 1] == "1"
    assert arguments.count("--config") == 1


def test_examples_findings_map_to_rule_ids_files_and_lines(fleet_run: FleetRun) -> None:
    """orders' naive now() and customer_revenue's SELECT * are found where they are."""
    naive = by_rule(fleet_run.report, "ORG-PY-010")
    assert [(f.file, f.line) for f in under(fleet_run.report, "orders")] == [
        ("orders/pipeline/build.py", 49)
    ]
    (orders,) = [f for f in naive if f.file == "orders/pipeline/build.py"]
    assert (orders.kind, orders.severity, orders.status) == ("semgrep", "medium", "fail")
    assert "timezone-aware UTC" in orders.message
    # build.py imports only the class: the rewrite would need an import, so no fix
    assert orders.fixable is False
    (star,) = by_rule(fleet_run.report, "ORG-SQL-001")
    assert (star.file, star.line, star.severity) == (
        "customer_revenue/models/stg_customers.sql",
        2,
        "medium",
    )
    assert "SELECT *" in star.message
    assert under(fleet_run.report, "customer_revenue") == [star]
    assert under(fleet_run.report, "store_footfall") == []


def test_naive_now_is_fixable_where_timezone_is_imported(fleet_run: FleetRun) -> None:
    """With `timezone` in scope the naive-datetime finding says a deterministic fix exists."""
    (finding,) = [f for f in fleet_run.report.findings if f.file == "crafted/fixable_now.py"]
    assert (finding.rule_id, finding.line, finding.fixable) == ("ORG-PY-010", 5, True)
    assert "datetime.now(timezone.utc)" in finding.message


def test_hard_coded_credentials_found_and_clean_code_left_alone(fleet_run: FleetRun) -> None:
    """Every literal credential is reported; empty strings, env reads and placeholders are not."""
    found = by_rule(fleet_run.report, "ORG-SEC-004")
    assert all(f.severity == "critical" for f in found)
    assert sorted(f.line or 0 for f in found if f.file == "crafted/credentials_positive.py") == (
        POSITIVE_LINES
    )
    assert [f for f in found if f.file == "crafted/credentials_negative.py"] == []
    assert not any("hunter2" in f.message for f in fleet_run.report.findings)


def test_partly_parseable_file_is_an_error_finding_of_its_own(fleet_run: FleetRun) -> None:
    """A file semgrep cannot fully parse is an error finding; other files are still checked."""
    errors = [f for f in fleet_run.report.findings if f.file == "crafted/partly_parseable.py"]
    (error,) = [f for f in errors if f.status == "error"]
    assert (error.rule_id, error.line, error.kind) == (RUN_RULE_ID, 4, "semgrep")
    assert "Syntax error" in error.message
    # the highest severity of the rules run: what went unchecked may hide any of them
    assert error.severity == "critical"
    assert by_rule(fleet_run.report, "ORG-SQL-001")


def test_rule_timing_out_on_one_file_is_an_error_finding(fleet_run: FleetRun) -> None:
    """A rule semgrep gives up on for one file is an error of that rule, with the file."""
    (timeout,) = by_rule(fleet_run.report, "ORG-SLOW-001", status="error")
    assert timeout.file == "crafted/slow.py"
    assert "Timeout" in timeout.message
    assert timeout.severity == "low"
    assert by_rule(fleet_run.report, "ORG-SLOW-001") == []


def test_rule_with_unparseable_pattern_fails_alone(fleet_run: FleetRun) -> None:
    """A pattern semgrep cannot parse is an error finding naming its rule; the others ran."""
    (broken,) = by_rule(fleet_run.report, "ORG-BROKEN-001", status="error")
    assert broken.file is None
    assert "half-a-call" in broken.message
    assert "Rule parse error" in broken.message
    assert by_rule(fleet_run.report, "ORG-PY-010")


def test_ignore_files_are_honoured_as_semgrep_does(make_repo: RepoFactory) -> None:
    """.gitignore'd, .semgrepignore'd files and .git/ are not scanned; tracked files are."""
    naive = "from datetime import datetime\n\nstamp = datetime.now()\n"
    repo = make_repo(
        {
            "src/build.py": naive,
            "generated/build.py": naive,
            "scratch/build.py": naive,
            ".gitignore": "scratch/\n",
            ".semgrepignore": "generated/\n",
        }
    )
    (repo / ".git" / "hooks" / "build.py").write_text(naive)
    report = check_semgrep(repo, [pack_rule_set("ORG-PY-010")])
    assert [(f.rule_id, f.file, f.line) for f in report.findings] == [
        ("ORG-PY-010", "src/build.py", 3)
    ]


def test_pack_rule_files_are_valid_and_have_messages() -> None:
    """semgrep accepts each default-pack file, and every rule tells the owner what to do."""
    for rule_set in pack_rule_sets():
        assert validate_semgrep_rules(rule_set.document, rule_set.source) == []
        for rule in rule_set.document["rules"]:
            assert len(rule["message"]) > 80, rule["id"]
    assert pack_rule_set("ORG-PY-010").fixable is True
    assert pack_rule_set("ORG-SQL-001").fixable is False


def test_invalid_rule_file_gets_semgreps_own_message() -> None:
    """validate_semgrep_rules returns what semgrep says, pointing at the rule."""
    (message,) = validate_semgrep_rules(MISSING_PATTERN, "semgrep/bad.yaml")
    assert message.startswith("rule no-pattern: ")
    assert "is not valid under any of the given schemas" in message
    (message,) = validate_semgrep_rules({"not_rules": []}, "semgrep/empty.yaml")
    assert message == "semgrep/empty.yaml is missing `rules` as top-level key"


def test_refused_rule_sets_do_not_lose_the_others(tmp_path: Path) -> None:
    """Rule sets semgrep refuses become error findings; the rest are checked in a re-run."""
    product = copy_example("orders", tmp_path / "orders")
    wrapper, log = logging_semgrep(tmp_path)
    rule_sets = [
        SemgrepRuleSet("ORG-BAD-001", "high", "semgrep/bad.yaml", MISSING_PATTERN),
        pack_rule_set("ORG-PY-010"),
        SemgrepRuleSet("ORG-BAD-002", "medium", "semgrep/klingon.yaml", UNKNOWN_LANGUAGE),
    ]
    report = check_semgrep(product, rule_sets, semgrep=wrapper)
    (naive,) = by_rule(report, "ORG-PY-010")
    assert (naive.file, naive.line) == ("pipeline/build.py", 49)
    (schema,) = by_rule(report, "ORG-BAD-001", status="error")
    assert "semgrep/bad.yaml" in schema.message
    assert "is not valid under any of the given schemas" in schema.message
    (language,) = by_rule(report, "ORG-BAD-002", status="error")
    assert "unsupported language: klingon" in language.message
    # semgrep refuses one kind of problem per run: one re-run per kind, each counted
    assert report.invocations == len(log.read_text().splitlines())
    assert report.invocations in (2, 3)


def test_refusal_naming_no_rule_asks_about_each_rule_set(tmp_path: Path) -> None:
    """When semgrep refuses without saying which rules, each rule set is validated alone."""
    product = copy_example("orders", tmp_path / "orders")
    log = tmp_path / "invocations.log"
    refusal = json.dumps(
        {
            "results": [],
            "errors": [{"code": 7, "level": "error", "type": "SemgrepError", "message": "?"}],
            "paths": {"scanned": []},
        }
    )
    # the first answer is a refusal that names nothing; later ones come from semgrep
    wrapper = write_script(
        tmp_path / "semgrep",
        f'echo "$*" >> "{log}"\n'
        f'if [ "$(wc -l < "{log}")" -eq 1 ]; then echo \'{refusal}\'; exit 7; fi\n'
        f'exec "{find_semgrep()}" "$@"\n',
    )
    rule_sets = [
        pack_rule_set("ORG-PY-010"),
        SemgrepRuleSet("ORG-BAD-001", "high", "semgrep/bad.yaml", MISSING_PATTERN),
    ]
    report = check_semgrep(product, rule_sets, semgrep=wrapper)
    assert report.invocations == 4 == len(log.read_text().splitlines())
    (refused,) = by_rule(report, "ORG-BAD-001", status="error")
    assert "rule no-pattern: " in refused.message
    assert [(f.rule_id, f.line) for f in by_rule(report, "ORG-PY-010")] == [("ORG-PY-010", 49)]


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie has ended; only its exit status is left


def test_timeout_kills_semgrep_and_reports_every_rule_set(tmp_path: Path) -> None:
    """Past the timeout semgrep's whole process group is killed; each rule set gets an error."""
    pid_file = tmp_path / "sleeper.pid"
    wrapper = write_script(tmp_path / "semgrep", f'sleep 60 &\necho $! > "{pid_file}"\nwait\n')
    started = time.monotonic()
    report = check_semgrep(tmp_path, pack_rule_sets(), semgrep=wrapper, timeout_seconds=1)
    assert time.monotonic() - started < 15
    assert {(f.rule_id, f.status) for f in report.findings} == {
        (rule_id, "error") for rule_id in PACK_RULES
    }
    assert all("did not finish within 1 s" in f.message for f in report.findings)
    assert report.invocations == 1
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(pid)


def test_semgrep_crash_without_report_is_an_error_per_rule_set(tmp_path: Path) -> None:
    """A semgrep that dies without a JSON report fails each rule set, with its last words."""
    wrapper = write_script(
        tmp_path / "semgrep", "echo 'Traceback ...' >&2\necho 'boom' >&2\nexit 2\n"
    )
    report = check_semgrep(tmp_path, pack_rule_sets(), semgrep=wrapper)
    assert len(report.findings) == len(PACK_RULES)
    assert all(f.status == "error" for f in report.findings)
    assert all("semgrep failed (exit 2): boom" in f.message for f in report.findings)


@pytest.fixture
def canary(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    value = "glpat-canary-canary-canary-0001"
    monkeypatch.setenv("SPECFLEET_GITLAB_TOKEN", value)
    monkeypatch.setenv("SEMGREP_APP_TOKEN", value)
    yield value


def test_semgrep_environment_carries_no_credentials(tmp_path: Path, canary: str) -> None:
    """semgrep sees PATH, LANG, a throw-away HOME and metrics off: no token of ours."""
    dump = tmp_path / "env.txt"
    empty_report = json.dumps({"results": [], "errors": [], "paths": {"scanned": []}})
    wrapper = write_script(tmp_path / "semgrep", f"env > \"{dump}\"\necho '{empty_report}'\n")
    report = check_semgrep(tmp_path, pack_rule_sets(), semgrep=wrapper)
    assert report.findings == ()
    seen = dict(line.split("=", 1) for line in dump.read_text().splitlines() if "=" in line)
    assert "SPECFLEET_GITLAB_TOKEN" not in seen
    assert canary not in dump.read_text()
    assert seen["SEMGREP_SEND_METRICS"] == "off"
    assert seen["SEMGREP_ENABLE_VERSION_CHECK"] == "0"
    assert seen["HOME"] != os.environ.get("HOME")
    assert not Path(seen["HOME"]).exists()  # removed with the run
    assert set(seen) - {"PWD", "SHLVL", "_", "OLDPWD"} <= {
        "PATH",
        "LANG",
        "HOME",
        "SEMGREP_SEND_METRICS",
        "SEMGREP_ENABLE_VERSION_CHECK",
    }


def test_missing_semgrep_is_a_policy_check_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No semgrep to run is a PolicyCheckError (a SpecfleetError), not a finding."""
    with pytest.raises(PolicyCheckError, match="cannot be run"):
        check_semgrep(tmp_path, pack_rule_sets(), semgrep=str(tmp_path / "no-semgrep"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SpecfleetError, match="semgrep is not installed"):
        find_semgrep()
    with pytest.raises(PolicyCheckError, match="not a directory"):
        check_semgrep(tmp_path / "missing", pack_rule_sets(), semgrep="semgrep")


def test_rule_set_without_rules_list_is_refused_without_running(tmp_path: Path) -> None:
    """A document with no rules list is an error finding, and nothing is run for it."""
    report = check_semgrep(
        tmp_path,
        [SemgrepRuleSet("ORG-X-001", "info", "semgrep/x.yaml", {"rule": []})],
        semgrep=str(tmp_path / "never-run"),
    )
    assert report.invocations == 0
    (finding,) = report.findings
    assert (finding.rule_id, finding.status) == ("ORG-X-001", "error")
    assert "semgrep/x.yaml" in finding.message


def test_check_ids_map_back_with_or_without_semgreps_prefix(tmp_path: Path) -> None:
    """Renamed ids map back to our rule ids, also when semgrep prefixes the config's path."""
    twice = SemgrepRuleSet("ORG-A.1", "high", "a.yaml", {"rules": [{"id": "x.y"}, {"id": "x.y"}]})
    other = SemgrepRuleSet("ORG-B", "low", "b.yaml", {"rules": [{"id": "z", "fix": "w"}]})
    config, problems = combine_rule_sets([twice, other], range(2))
    assert problems == []
    assert [rule.combined_id for rule in config.rules] == [
        "ORG-A_1--x_y",
        "ORG-A_1--x_y-2",
        "ORG-B--z",
    ]
    assert yaml.safe_load(config.text)["rules"][2] == {"id": "ORG-B--z", "fix": "w"}

    def result(check_id: str, path: str) -> dict[str, Any]:
        return {"check_id": check_id, "path": path, "start": {"line": 3}, "extra": {"message": "m"}}

    report = {
        "results": [
            result("tmp.specfleet-semgrep-abc.ORG-A_1--x_y-2", "src/a.py"),
            result("ORG-B--z", str(tmp_path / "src" / "b.py")),
        ],
        "errors": [{"code": 3, "level": "warn", "type": "Timeout", "rule_id": "ORG-B--z"}],
    }
    findings = findings_from_report(report, config, [twice, other], tmp_path)
    assert [(f.rule_id, f.file, f.line, f.fixable, f.status) for f in findings] == [
        ("ORG-A.1", "src/a.py", 3, False, "fail"),
        ("ORG-B", "src/b.py", 3, True, "fail"),
        ("ORG-B", None, None, False, "error"),
    ]
