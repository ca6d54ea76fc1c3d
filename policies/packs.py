"""Load a policy pack from a folder: rule files and the Semgrep files they reference.

Layout::

    pack/
      rules/*.yaml        one rule per file, or a ``rules:`` list
      semgrep/*.yaml      Semgrep rule files, referenced as ``semgrep: {file: semgrep/x.yaml}``

Every problem (bad YAML, unknown keys, a duplicate rule id, a missing or rejected Semgrep
file) is reported with its file and line, all at once; a pack with any problem is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from specfleet.core.errors import InputError, PolicyPackInvalid
from specfleet.core.spec.problems import Problem
from specfleet.core.yamldoc import YamlTooLarge, check_yaml, safe_load_bounded
from specfleet.policies.fleet import load_fleet_rules
from specfleet.policies.model import Rule, RuleFile

MAX_RULE_FILE_BYTES = 256 * 1024
SemgrepValidator = Callable[[dict[str, Any], str], list[str]]


@dataclass(frozen=True)
class Pack:
    """A loaded, valid pack: its rules and the text of every Semgrep file they use."""

    root: str
    rules: tuple[Rule, ...]
    semgrep_files: dict[str, str] = field(default_factory=dict)  # pack-relative path -> text
    fleet: dict[str, Any] | None = None  # fleet.yaml: rate limits, automerge cap (policies/fleet)

    def content_hash(self) -> str:
        return content_hash(self.rules, self.semgrep_files, self.fleet)

    def rule(self, rule_id: str) -> Rule:
        return next(rule for rule in self.rules if rule.id == rule_id)


def content_hash(
    rules: Sequence[Rule], semgrep_files: dict[str, str], fleet: dict[str, Any] | None = None
) -> str:
    """Hash of what the rules say, not how their files are laid out or formatted."""
    canonical: dict[str, Any] = {
        "rules": sorted((rule.model_dump(mode="json") for rule in rules), key=lambda r: r["id"]),
        "semgrep": {path: semgrep_files[path] for path in sorted(semgrep_files)},
    }
    if fleet is not None:  # absent: the hash of every pack published before fleet.yaml existed
        canonical["fleet"] = fleet
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def load_pack(root: Path, validate_semgrep: SemgrepValidator | None = None) -> Pack:
    """Read and check every file of the pack; raise :class:`PolicyPackInvalid` on problems."""
    if not root.is_dir():
        raise InputError(f"{root}: not a policy pack folder")
    rule_files = sorted((root / "rules").glob("*.y*ml")) if (root / "rules").is_dir() else []
    if not rule_files:
        raise InputError(f"{root}: no rule files under {root / 'rules'} (*.yaml)")
    problems: list[Problem] = []
    rules: list[Rule] = []
    first_seen: dict[str, str] = {}
    for path in rule_files:
        found, file_problems = _rules_in(path)
        problems.extend(file_problems)
        for rule, line in found:
            where = f"{path}:{line}"
            if rule.id in first_seen:
                problems.append(
                    Problem(
                        str(path),
                        f"duplicate rule id {rule.id!r} (first at {first_seen[rule.id]})",
                        ("id",),
                        line,
                    )
                )
                continue
            first_seen[rule.id] = where
            rules.append(rule)
    semgrep_files: dict[str, str] = {}
    for rule in rules:
        if rule.semgrep is None or rule.semgrep.file in semgrep_files:
            continue
        text, semgrep_problems = _semgrep_file(root, rule, validate_semgrep)
        problems.extend(semgrep_problems)
        if text is not None:
            semgrep_files[rule.semgrep.file] = text
    fleet, fleet_problems = load_fleet_rules(root)
    problems.extend(fleet_problems)
    if problems:
        raise PolicyPackInvalid(str(root), problems)
    return Pack(str(root), tuple(sorted(rules, key=lambda rule: rule.id)), semgrep_files, fleet)


def _rules_in(path: Path) -> tuple[list[tuple[Rule, int]], list[Problem]]:
    data = path.read_bytes()
    many = _has_rules_key(data)
    if many:
        checked_file = check_yaml(data, str(path), RuleFile, max_bytes=MAX_RULE_FILE_BYTES)
        if checked_file.value is None:
            return [], list(checked_file.problems)
        lines = _item_lines(data)
        return [
            (rule, lines[index] if index < len(lines) else 1)
            for index, rule in enumerate(checked_file.value.rules)
        ], []
    checked = check_yaml(data, str(path), Rule, max_bytes=MAX_RULE_FILE_BYTES, what="a rule")
    if checked.value is None:
        return [], list(checked.problems)
    return [(checked.value, 1)], []


def _has_rules_key(data: bytes) -> bool:
    try:
        document = safe_load_bounded(data, "rules file")
    except (yaml.YAMLError, YamlTooLarge, UnicodeDecodeError):
        return False  # check_yaml reports the syntax error or the alias bomb with its line
    return isinstance(document, dict) and "rules" in document


def _item_lines(data: bytes) -> list[int]:
    node = yaml.compose(data.decode("utf-8-sig"), Loader=yaml.SafeLoader)
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if key.value == "rules" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def _semgrep_file(
    root: Path, rule: Rule, validate: SemgrepValidator | None
) -> tuple[str | None, list[Problem]]:
    assert rule.semgrep is not None
    relative = rule.semgrep.file
    label = f"{root / relative}"
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        return None, [Problem(label, f"rule {rule.id}: the Semgrep file must be inside the pack")]
    if not path.is_file():
        return None, [Problem(label, f"rule {rule.id} names a Semgrep file that does not exist")]
    text = path.read_text(encoding="utf-8")
    try:
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        return None, [
            Problem(label, f"invalid YAML: {error.problem}", line=mark.line + 1 if mark else None)
        ]
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        return None, [Problem(label, "a Semgrep file holds a mapping with a 'rules' list")]
    if validate is not None:
        messages = validate(document, label)
        if messages:
            return None, [Problem(label, f"semgrep rejects it: {message}") for message in messages]
    return text, []
