"""Compact renderings of a product's spec, health report and findings for the planner's prompt.

The product part of the prompt is what a fleet run cannot cache, so it carries what the planner
needs and nothing twice: the spec without its owners' addresses and without YAML's line folding,
and a health report that lists in full only the pins something is wrong with (the rest on one
``name==version`` line). Pure functions of their inputs, so the prompt is deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import yaml

from specfleet.core.health.report import HealthReport, PinHealth
from specfleet.policies.findings import Finding

# Spec keys in the order the planner reads them; ``owners``, ``automerge`` and ``spec_version``
# are left out (who approves, how, and the format version do not change what the best
# implementation is).
SPEC_KEYS = (
    "id",
    "name",
    "purpose",
    "requirements",
    "outputs",
    "failure_modes",
    "amendments",
    "inputs",
    "implementation",
    "constraints",
    "tags",
)
FLOW_LIST_CHARS = 120  # short lists and mappings of scalars go on one line up to this length
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`])")  # where a finding's message splits


class _CompactDumper(yaml.SafeDumper):
    """YAML with short lists and mappings in flow style (``[a, b]``, ``{k: v}``), no folding."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = (
        bool(data)
        and all(isinstance(item, str | int | float | bool) for item in data)
        and sum(len(str(item)) + 2 for item in data) <= FLOW_LIST_CHARS
    )
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _represent_dict(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
    # short mappings of scalars (a failure mode's trigger and expectation, the constraints) and
    # one-key mappings of a short list (a requirement's tests of one file) go on one line
    scalars = all(isinstance(item, str | int | float | bool) for item in data.values())
    flow = (
        bool(data)
        and (scalars or len(data) == 1)
        and len(yaml.safe_dump(data, width=1_000_000)) <= FLOW_LIST_CHARS
    )
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


_CompactDumper.add_representer(list, _represent_list)
_CompactDumper.add_representer(dict, _represent_dict)


def _unfold(value: object) -> object:
    """Prose written as a YAML block (it holds a newline) becomes one line; other strings stay."""
    if isinstance(value, str):
        return " ".join(value.split()) if "\n" in value else value
    if isinstance(value, list):
        return [_unfold(item) for item in value]
    if isinstance(value, dict):
        return {key: _unfold(item) for key, item in value.items()}
    return value


def grouped_tests(tests: list[str]) -> list[str] | dict[str, list[str]]:
    """A requirement's test ids grouped by file (``{file: [test, ...]}`` for ``file::test``),
    in their order; ids without a file part leave the list as it is (pure)."""
    groups: dict[str, list[str]] = {}
    for test in tests:
        file, separator, name = test.partition("::")
        if not separator:
            return tests
        groups.setdefault(file, []).append(name)
    return groups


def compact_spec_yaml(data: dict[str, Any]) -> str:
    """The spec (``model_dump(mode="json")``) as compact YAML in the planner's reading order;
    a requirement's tests of one file are grouped under the file (see :func:`grouped_tests`)."""
    ordered: dict[str, Any] = {
        key: _unfold(data[key]) for key in SPEC_KEYS if key in data and data[key] not in ([], None)
    }
    for requirement in ordered.get("requirements", []):
        if isinstance(requirement, dict) and requirement.get("tests"):
            requirement["tests"] = grouped_tests(requirement["tests"])
    return yaml.dump(
        ordered, Dumper=_CompactDumper, sort_keys=False, allow_unicode=True, width=1_000_000
    )


def pin_needs_attention(pin: PinHealth, flagged: Collection[str], common: Collection[str]) -> bool:
    """A pin is shown in full when it is vulnerable, yanked, named by a failing dependency
    finding (outdated beyond policy, policy-affected) or carries a note of its own."""
    return bool(
        pin.advisories
        or pin.yanked
        or _normalised(pin.pin.name) in flagged
        or any(note not in common for note in pin.notes)
    )


def health_lines(report: HealthReport, flagged_packages: Mapping[str, Sequence[str]]) -> list[str]:
    """The health report as lines: runtime, source, pins needing attention (with the failing
    rules that name them, from ``flagged_packages``), the rest on one compact line."""
    flagged = {_normalised(name): rules for name, rules in flagged_packages.items()}
    common = _notes_on_every_pin(report)
    lines = [
        f"runtime {report.runtime.runtime}: {report.runtime.status}"
        + (f" (end of life {report.runtime.end_of_life})" if report.runtime.end_of_life else ""),
        f"checked {report.checked_on.isoformat()} against {report.advisory_source}"
        + (f"; every pin: {'; '.join(common)}" if common else ""),
    ]
    attention = [pin for pin in report.pins if pin_needs_attention(pin, flagged, common)]
    quiet = [pin for pin in report.pins if pin not in attention]
    if attention:
        lines.append("pins needing attention:")
        lines.extend("- " + _pin_facts(pin, common, flagged) for pin in attention)
    if quiet:
        lines.append(
            "other pins (nothing to report): " + ", ".join(_pin_name(pin) for pin in quiet)
        )
    lines.extend(f"- problem: {problem}" for problem in report.problems)
    return lines


def _notes_on_every_pin(report: HealthReport) -> list[str]:
    if not report.pins:
        return []
    first, *rest = report.pins
    return [note for note in first.notes if all(note in pin.notes for pin in rest)]


def _pin_name(pin: PinHealth) -> str:
    version = pin.current or pin.pin.specifier
    return f"{pin.pin.name}=={version}" if pin.current else f"{pin.pin.name} {version}".strip()


def _pin_facts(
    pin: PinHealth, common: Collection[str], flagged: Mapping[str, Sequence[str]]
) -> str:
    facts = [f"{_pin_name(pin)} ({pin.pin.file}:{pin.pin.line})"]
    rules = flagged.get(_normalised(pin.pin.name))
    if rules:
        facts.append(f"failing {', '.join(sorted(set(rules)))}")
    if pin.latest:
        facts.append(f"latest {pin.latest}")
    if pin.age_days is not None:
        facts.append(f"{pin.age_days} days old")
    if pin.yanked:
        facts.append("YANKED")
    for advisory in pin.advisories:
        fixed = ", ".join(advisory.fixed_versions) or "no fix"
        facts.append(
            f"advisory {advisory.id} ({advisory.severity or 'severity unknown'}; fixed in {fixed})"
        )
    facts.extend(note for note in pin.notes if note not in common)
    return "; ".join(facts)


def _normalised(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def finding_message(
    finding: Finding, shown_advisories: Collection[tuple[str, str]], stable_text: str = ""
) -> str:
    """A finding's message without what the prompt already says: a dependency finding whose
    advisory the health report shows points there; a semgrep finding drops the sentences its
    rule's summary in the stable part already carries word for word (keeping at least one)."""
    if (
        finding.kind == "dependency"
        and finding.package
        and finding.advisory
        and (_normalised(finding.package), finding.advisory) in shown_advisories
    ):
        return f"{finding.package}: advisory {finding.advisory} (see the health report)"
    message = " ".join(finding.message.split())
    if finding.kind != "semgrep" or not stable_text:
        return message
    sentences = SENTENCE_END.split(message)
    new = [sentence for sentence in sentences if sentence not in stable_text]
    return " ".join(new or sentences[:1])


def advisories_shown(report: HealthReport | None) -> set[tuple[str, str]]:
    """(package, advisory id) pairs the health report lists in full."""
    if report is None:
        return set()
    return {
        (_normalised(pin.pin.name), advisory.id)
        for pin in report.pins
        for advisory in pin.advisories
    }
