"""Benchmark: the semgrep check of one product with 1 organisation rule vs 20 rules.

The product is the `orders` example (copied to a temporary folder). One rule is the default
pack's naive-datetime rule set; twenty are that plus 19 generated rule sets, each matching
calls of one method name (`$OBJ.astype(...)`, ...): no literal for semgrep to skip a file
by, so every rule is matched against every Python file, as the pack's rules are. All rule
sets go to one semgrep invocation, so twenty rules should cost little more than one: the
process start, rule loading and parsing are paid once. Each figure is the median of
``--runs`` checks after one unmeasured warm-up. Prints JSON; exits 1 if twenty rules take
2 times as long as one or longer, 2 if a check did not run as expected.

    python bench/semgrep_rules.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from specfleet.core.log import configure_logging  # noqa: E402
from specfleet.core.settings import get_settings  # noqa: E402
from specfleet.policies.checks.semgrep import (  # noqa: E402
    SemgrepReport,
    SemgrepRuleSet,
    check_semgrep,
    find_semgrep,
)

NAIVE_DATETIME = REPO_ROOT / "policies" / "pack" / "v1" / "semgrep" / "naive-datetime.yaml"
METHODS = (
    "astype",
    "merge",
    "groupby",
    "read_csv",
    "to_datetime",
    "fillna",
    "isna",
    "sum",
    "round",
    "apply",
    "sort_values",
    "reset_index",
    "rename",
    "drop",
    "get",
    "append",
    "join",
    "format",
    "write_text",
)
TARGET_RATIO = 2.0


def naive_datetime() -> SemgrepRuleSet:
    document = yaml.safe_load(NAIVE_DATETIME.read_text())
    return SemgrepRuleSet.from_document(
        "ORG-PY-010", "medium", "semgrep/naive-datetime.yaml", document
    )


def generated(index: int, method: str) -> SemgrepRuleSet:
    document = {
        "rules": [
            {
                "id": f"calls-{method}",
                "languages": ["python"],
                "severity": "INFO",
                "message": f"a call of {method}()",
                "patterns": [
                    {"pattern": "$OBJ.$METHOD(...)"},
                    {"metavariable-regex": {"metavariable": "$METHOD", "regex": f"^{method}$"}},
                ],
            }
        ]
    }
    return SemgrepRuleSet(f"BENCH-{index:03d}", "info", f"generated/{method}.yaml", document)


def timed_checks(repo: Path, rule_sets: list[SemgrepRuleSet], runs: int) -> list[SemgrepReport]:
    check_semgrep(repo, rule_sets)  # warm-up: file system and semgrep's own caches
    return [check_semgrep(repo, rule_sets) for _ in range(runs)]


def semgrep_version() -> str:
    result = subprocess.run(
        [find_semgrep(), "--version"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ.get("PATH", ""), "SEMGREP_ENABLE_VERSION_CHECK": "0"},
    )
    return result.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    configure_logging(get_settings())  # log lines to stderr: stdout is the JSON document
    one_rule = [naive_datetime()]
    twenty_rules = one_rule + [generated(i + 1, method) for i, method in enumerate(METHODS)]
    with tempfile.TemporaryDirectory(prefix="specfleet-bench-") as scratch:
        repo = Path(scratch) / "orders"
        shutil.copytree(REPO_ROOT / "examples" / "orders", repo)
        one = timed_checks(repo, one_rule, args.runs)
        twenty = timed_checks(repo, twenty_rules, args.runs)
    for report in one + twenty:
        naive = [f for f in report.findings if f.rule_id == "ORG-PY-010" and f.status == "fail"]
        errors = [f for f in report.findings if f.status == "error"]
        if report.invocations != 1 or len(naive) != 1 or errors:
            print(f"unexpected check: {report}", file=sys.stderr)
            return 2
    one_median = statistics.median(report.seconds for report in one)
    twenty_median = statistics.median(report.seconds for report in twenty)
    ratio = twenty_median / one_median
    figures = {
        "benchmark": "semgrep_rules",
        "product": "examples/orders",
        "runs": args.runs,
        "one_rule": {
            "rule_sets": len(one_rule),
            "semgrep_rules": sum(len(r.document["rules"]) for r in one_rule),
            "seconds_median": round(one_median, 3),
            "seconds": [round(report.seconds, 3) for report in one],
            "findings": len(one[0].findings),
            "invocations_per_check": one[0].invocations,
        },
        "twenty_rules": {
            "rule_sets": len(twenty_rules),
            "semgrep_rules": sum(len(r.document["rules"]) for r in twenty_rules),
            "seconds_median": round(twenty_median, 3),
            "seconds": [round(report.seconds, 3) for report in twenty],
            "findings": len(twenty[0].findings),
            "invocations_per_check": twenty[0].invocations,
        },
        "ratio": round(ratio, 2),
        "target_ratio_below": TARGET_RATIO,
        "target_met": ratio < TARGET_RATIO,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "semgrep": semgrep_version(),
        },
    }
    print(json.dumps(figures, indent=2))
    return 0 if figures["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
