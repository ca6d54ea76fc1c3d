"""The ``semgrep`` kind of policy check: every semgrep rule that applies to a product, in one run.

Each organisation rule of kind ``semgrep`` brings a semgrep config (a :class:`SemgrepRuleSet`).
:func:`check_semgrep` writes all of them into ONE temporary config, each semgrep rule renamed
to ``<our rule id>--<semgrep rule id>`` (e.g. ``ORG-PY-010--naive-now``), runs
``semgrep scan`` once on the product's checkout and maps its JSON report back:

- ``results[]`` become ``fail`` findings of the organisation rule, with the repository-relative
  file, the start line, semgrep's message, and ``fixable`` when that semgrep rule has a
  ``fix``/``fix-regex``;
- ``errors[]`` (a file semgrep could only partly parse, a rule that timed out on a file, a
  rule semgrep could not parse) become ``error`` findings: of the rule semgrep names, or of
  :data:`RUN_RULE_ID` (``semgrep``) when it names none, e.g. a syntax error in a file;
- semgrep refusing the combined config (a rule set with a schema error or an unknown
  language) does not lose the other rule sets: the refused ones get an ``error`` finding with
  semgrep's message and the rest are run again without them. Only that path costs more than
  one invocation, and :attr:`SemgrepReport.invocations` counts every one;
- a run past the wall-clock timeout is killed (its whole process group) and every rule set
  in it gets an ``error`` finding.

Which files are scanned is semgrep's choice, as on a developer's machine: ``.gitignore`` in a
git checkout, the product's ``.semgrepignore``, else semgrep's default ignore list (which
leaves out ``tests/``, ``node_modules/`` and the like); ``.git/`` never. ``# nosemgrep``
comments are not honoured (``--disable-nosem``): an organisation rule is not something a
product, or the planner editing it, can switch off in a comment.

Semgrep runs offline with ``--metrics off``, no version check, rules only from the file
written here (never the registry), and an environment of its own: ``PATH``, ``LANG`` and a
throw-away ``HOME``, so no specfleet setting, token or credential reaches it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from specfleet.core.errors import PolicyCheckError
from specfleet.core.log import get_logger
from specfleet.core.secrets import redact_text
from specfleet.core.tools import find_tool
from specfleet.policies.findings import Finding, RuleSeverity, normalise_snippet

RUN_RULE_ID = "semgrep"  # findings semgrep reports without naming a rule (a file, the run)
RULE_ID_SEPARATOR = "--"
DEFAULT_TIMEOUT_SECONDS = 120
DEFAULT_RULE_TIMEOUT_SECONDS = 5.0  # semgrep's own default per rule and file
MAX_STDERR_CHARS = 2000
MAX_MESSAGE_CHARS = 1000
# Exit codes (and error codes in the JSON report) of semgrep refusing its config outright:
# rule parse failure, unparseable YAML, invalid config, unknown language. Nothing was scanned.
CONFIG_REJECTED_CODES = frozenset({4, 5, 7, 8})
# semgrep's summary line after the real reasons; repeating it in a finding says nothing new
_SUMMARY_MESSAGE = re.compile(r"^invalid configuration file found", re.IGNORECASE)
_CONFIG_PATH = re.compile(r"\S*specfleet-semgrep-[^/\s]*/rules\.yaml")
_UNKNOWN_LANGUAGE = re.compile(r"unsupported language: ([^\s.,;]+)", re.IGNORECASE)
_UNSAFE_ID_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]+")
_SEVERITY_ORDER: tuple[RuleSeverity, ...] = ("info", "low", "medium", "high", "critical")

log = get_logger(__name__)


@dataclass(frozen=True)
class SemgrepRuleSet:
    """The semgrep rules of one organisation rule, as parsed from its pack file."""

    rule_id: str  # the organisation rule, e.g. ORG-PY-010
    severity: RuleSeverity
    source: str  # the pack file it came from, for messages
    document: Mapping[str, Any]  # a parsed semgrep config: {"rules": [...]}
    fixable: bool = False  # its semgrep rules carry a fix

    @classmethod
    def from_document(
        cls, rule_id: str, severity: RuleSeverity, source: str, document: Mapping[str, Any]
    ) -> SemgrepRuleSet:
        """A rule set whose ``fixable`` says whether any of its semgrep rules has a fix."""
        rules = document.get("rules")
        fixable = isinstance(rules, list) and any(_has_fix(rule) for rule in rules)
        return cls(rule_id, severity, source, document, fixable)


@dataclass(frozen=True)
class SemgrepReport:
    """What one check of a product against its semgrep rule sets found, and what it cost."""

    findings: tuple[Finding, ...]
    invocations: int  # semgrep processes started (1 unless a rule set was refused)
    seconds: float


@dataclass(frozen=True)
class PlacedRule:
    """One semgrep rule as placed in the combined config."""

    rule_set: int  # index into the rule sets checked
    semgrep_id: str  # as the pack wrote it
    combined_id: str  # its id in the combined config
    fixable: bool
    languages: tuple[str, ...]
    first_line: int  # where it sits in the combined config (1-based, inclusive)
    last_line: int


@dataclass(frozen=True)
class CombinedConfig:
    """The combined semgrep config for some rule sets, and how to map its ids back."""

    text: str
    rules: tuple[PlacedRule, ...]

    @cached_property
    def by_id(self) -> dict[str, PlacedRule]:
        return {rule.combined_id: rule for rule in self.rules}

    def rule_for(self, check_id: str) -> PlacedRule | None:
        """The rule semgrep means by ``check_id``.

        semgrep may prefix ids with the config's directories (``tmp.abc.ORG-X--y``), so the
        last dotted part is tried too: combined ids never contain a dot.
        """
        return self.by_id.get(check_id) or self.by_id.get(check_id.rsplit(".", 1)[-1])

    def rule_at(self, line: int) -> PlacedRule | None:
        return next((r for r in self.rules if r.first_line <= line <= r.last_line), None)

    @property
    def rule_sets(self) -> list[int]:
        return sorted({rule.rule_set for rule in self.rules})


@dataclass(frozen=True)
class _Run:
    """How one semgrep process ended."""

    report: Mapping[str, Any] | None  # its JSON report; None when it wrote none
    returncode: int | None  # None: killed at the timeout
    stderr: str


def find_semgrep() -> str:
    """The semgrep beside this Python (its virtualenv), else the one on PATH."""
    found = find_tool("semgrep")
    if found is None:
        raise PolicyCheckError("semgrep is not installed (neither beside Python nor on PATH)")
    return found


def check_semgrep(
    repo: Path,
    rule_sets: Sequence[SemgrepRuleSet],
    *,
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS,
    rule_timeout_seconds: float = DEFAULT_RULE_TIMEOUT_SECONDS,
    semgrep: str | None = None,
) -> SemgrepReport:
    """Check the checkout at ``repo`` against ``rule_sets`` in one semgrep run.

    ``timeout_seconds`` bounds the whole check (wall clock, every invocation included);
    ``rule_timeout_seconds`` is semgrep's ``--timeout``, for one rule on one file.
    Raises :class:`PolicyCheckError` only when the check cannot start: no semgrep, no
    checkout. Everything else, semgrep failing included, is reported as findings.
    """
    started = time.perf_counter()
    deadline = started + timeout_seconds
    if not repo.is_dir():
        raise PolicyCheckError(f"cannot check {repo}: it is not a directory")
    executable = semgrep or find_semgrep()
    config, findings = combine_rule_sets(rule_sets, range(len(rule_sets)))
    invocations = 0
    while config.rules:
        if time.perf_counter() >= deadline:
            findings += _timeout_findings(rule_sets, config, timeout_seconds)
            break
        run = _run_semgrep(
            executable,
            config.text,
            scan=repo,
            timeout=deadline - time.perf_counter(),
            rule_timeout=rule_timeout_seconds,
        )
        invocations += 1
        if run.returncode is None:
            findings += _timeout_findings(rule_sets, config, timeout_seconds)
            break
        if run.report is None:
            reason = f"semgrep failed (exit {run.returncode}){_stderr_tail(run.stderr)}"
            findings += _run_findings(rule_sets, config.rule_sets, f"{reason}; not checked")
            break
        if not _config_rejected(run):
            findings += findings_from_report(run.report, config, rule_sets, repo)
            break
        refused = refused_rule_sets(run.report, config)
        if not refused:
            # semgrep did not say which rule set it refused: ask about each one on its own
            try:
                for index in config.rule_sets:
                    invocations += 1
                    if messages := validate_semgrep_rules(
                        rule_sets[index].document,
                        rule_sets[index].source,
                        semgrep=executable,
                        timeout_seconds=max(1.0, deadline - time.perf_counter()),
                    ):
                        refused[index] = messages
            except PolicyCheckError as error:
                findings += _run_findings(rule_sets, config.rule_sets, f"{error}; not checked")
                break
        if not refused:
            reasons = "; ".join(_error_messages(run.report)) or f"exit {run.returncode}"
            findings += _run_findings(
                rule_sets, config.rule_sets, f"semgrep refused the rules ({reasons}); not checked"
            )
            break
        findings += [_refused_finding(rule_sets[i], messages) for i, messages in refused.items()]
        config, _ = combine_rule_sets(rule_sets, [i for i in config.rule_sets if i not in refused])
    seconds = time.perf_counter() - started
    log.debug("semgrep check", rule_sets=len(rule_sets), invocations=invocations, seconds=seconds)
    return SemgrepReport(
        findings=tuple(sorted(set(findings), key=_finding_order)),
        invocations=invocations,
        seconds=seconds,
    )


def validate_semgrep_rules(
    document: Mapping[str, Any],
    source: str,
    *,
    semgrep: str | None = None,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> list[str]:
    """semgrep's own messages about the rule file ``document`` (from ``source``); [] if valid.

    semgrep loads the rules and scans an empty folder, which parses every pattern without
    reading a product. (``semgrep scan --validate`` is not used: it fetches a lint pack from
    the semgrep registry, and checks run offline.) Raises :class:`PolicyCheckError` when
    semgrep cannot be run or gives no answer in time.
    """
    try:
        text, rule_at = _validation_config(document)
    except yaml.YAMLError as error:
        return [f"{source} cannot be written as a semgrep config: {error}"]
    executable = semgrep or find_semgrep()
    with tempfile.TemporaryDirectory(prefix="specfleet-semgrep-validate-") as scratch:
        empty = Path(scratch) / "empty"
        empty.mkdir()
        run = _run_semgrep(executable, text, scan=empty, timeout=timeout_seconds, rule_timeout=0)
    if run.returncode is None:
        raise PolicyCheckError(f"semgrep did not validate {source} within {timeout_seconds:g} s")
    if run.report is None:
        raise PolicyCheckError(
            f"semgrep failed to validate {source} (exit {run.returncode}){_stderr_tail(run.stderr)}"
        )
    return _error_messages(run.report, config_name=source, rule_at=rule_at)


def _validation_config(document: Mapping[str, Any]) -> tuple[str, Callable[[int], str | None]]:
    """``document`` as YAML, and which of its rules a line of that YAML is in.

    Rules are written one after another in block style (as in the combined config), so a
    line semgrep points at is told as the rule's id: the pack file's own lines differ.
    """
    rules = document.get("rules")
    if not isinstance(rules, list) or not all(isinstance(rule, Mapping) for rule in rules):
        return _dump_yaml(document), lambda line: None
    lines = ["rules:"]
    ranges: list[tuple[int, int, str]] = []
    for position, rule in enumerate(rules):
        first = len(lines) + 1
        lines += _dump_yaml([rule]).splitlines()
        ranges.append((first, len(lines), str(rule.get("id") or f"number {position + 1}")))
    others = {key: value for key, value in document.items() if key != "rules"}
    if others:
        lines += _dump_yaml(others).splitlines()

    def rule_at(line: int) -> str | None:
        return next((name for first, last, name in ranges if first <= line <= last), None)

    return "\n".join(lines) + "\n", rule_at


def combine_rule_sets(
    rule_sets: Sequence[SemgrepRuleSet], indices: Iterable[int]
) -> tuple[CombinedConfig, list[Finding]]:
    """One semgrep config holding the rules of ``rule_sets[i]`` for each ``i`` in ``indices``.

    Each semgrep rule is renamed ``<rule id>--<semgrep id>`` (characters semgrep could
    rewrite, dots among them, made ``_``; a repeat gets ``-2``, ``-3``) and written in block
    style, one after another, so a line semgrep points at names the rule it is in. A rule set
    whose document is not a semgrep config (no ``rules`` list of mappings) gets an ``error``
    finding instead of a place in the config.
    """
    lines = ["rules:"]
    placed: list[PlacedRule] = []
    problems: list[Finding] = []
    taken: set[str] = set()
    for index in indices:
        rule_set = rule_sets[index]
        rules = rule_set.document.get("rules")
        if not isinstance(rules, list) or not all(isinstance(r, Mapping) for r in rules):
            problems.append(_refused_finding(rule_set, ["it has no `rules` list of rule mappings"]))
            continue
        try:
            chunks = [
                _placed_rule(rule_set, position, rule, taken) for position, rule in enumerate(rules)
            ]
        except yaml.YAMLError as error:
            problems.append(_refused_finding(rule_set, [f"it cannot be written as YAML: {error}"]))
            continue
        for semgrep_id, combined_id, rule, text in chunks:
            first = len(lines) + 1
            lines += text.splitlines()
            placed.append(
                PlacedRule(
                    rule_set=index,
                    semgrep_id=semgrep_id,
                    combined_id=combined_id,
                    fixable=_has_fix(rule),
                    languages=_languages(rule),
                    first_line=first,
                    last_line=len(lines),
                )
            )
    return CombinedConfig("\n".join(lines) + "\n", tuple(placed)), problems


def findings_from_report(
    report: Mapping[str, Any],
    config: CombinedConfig,
    rule_sets: Sequence[SemgrepRuleSet],
    repo: Path,
) -> list[Finding]:
    """Findings for semgrep's JSON ``report`` of a scan with ``config``."""
    findings: list[Finding] = []
    for result in _mappings(report.get("results")):
        rule = config.rule_for(str(result.get("check_id", "")))
        extra = result.get("extra")
        message = str(extra.get("message") or "").strip() if isinstance(extra, Mapping) else ""
        file = _repo_path(result.get("path"), repo)
        line = _line(result.get("start"))
        if rule is None:
            # cannot happen with the config written here; kept visible rather than dropped
            findings.append(
                _run_finding(
                    rule_sets,
                    config.rule_sets,
                    f"semgrep reported rule {result.get('check_id')!r}, which was not asked "
                    f"for: {message}",
                    file,
                    line,
                )
            )
            continue
        rule_set = rule_sets[rule.rule_set]
        findings.append(
            Finding(
                rule_id=rule_set.rule_id,
                kind="semgrep",
                severity=rule_set.severity,
                message=_bounded(redact_text(message)) or f"matched {rule.semgrep_id}",
                file=file,
                line=line,
                fixable=rule.fixable,
                status="fail",
                snippet=_matched_source(repo, file, result),
            )
        )
    for error in _mappings(report.get("errors")):
        findings.append(_error_finding(error, config, rule_sets, repo))
    return findings


def refused_rule_sets(report: Mapping[str, Any], config: CombinedConfig) -> dict[int, list[str]]:
    """The rule sets semgrep's errors point at when it refused ``config``, with its messages.

    An error names a rule set through a span inside one of its rules, by mentioning one of
    its combined ids, or (an unknown language, which semgrep reports without a place) by the
    language its rules declare; an error that does none of these names no rule set.
    """
    refused: dict[int, list[str]] = {}
    for error in _mappings(report.get("errors")):
        message = _error_text(error)
        if not message or _SUMMARY_MESSAGE.match(message):
            continue
        named = {
            rule.rule_set
            for span in _mappings(error.get("spans"))
            if str(span.get("file", "rules.yaml")).endswith("rules.yaml")
            and (rule := config.rule_at(_line(span.get("start")) or 0)) is not None
        }
        named |= {
            rule.rule_set
            for rule in config.rules
            if re.search(rf"(?<![\w-]){re.escape(rule.combined_id)}(?![\w-])", message)
        }
        rule_id = error.get("rule_id")
        if rule_id and (rule := config.rule_for(str(rule_id))) is not None:
            named.add(rule.rule_set)
        if unknown := _UNKNOWN_LANGUAGE.search(message):
            language = unknown.group(1).lower()
            named |= {rule.rule_set for rule in config.rules if language in rule.languages}
        for index in named:
            refused.setdefault(index, []).append(_bounded(redact_text(message)))
    return refused


def semgrep_command(executable: str, config: Path, rule_timeout: float) -> list[str]:
    """The semgrep command line: one config file, the current directory, JSON on stdout."""
    return [
        executable,
        "scan",
        "--config",
        str(config),
        "--json",
        "--metrics",
        "off",
        "--disable-version-check",
        "--no-rewrite-rule-ids",
        "--disable-nosem",
        "--timeout",
        f"{rule_timeout:g}",
        "--quiet",
        ".",
    ]


def semgrep_environment(home: Path) -> dict[str, str]:
    """What semgrep runs with: PATH and LANG, a throw-away HOME, metrics and updates off."""
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "HOME": str(home),
        "SEMGREP_SEND_METRICS": "off",
        "SEMGREP_ENABLE_VERSION_CHECK": "0",
    }


def _run_semgrep(
    executable: str, config_text: str, *, scan: Path, timeout: float, rule_timeout: float
) -> _Run:
    """Run semgrep once on the folder ``scan`` with the config ``config_text``.

    semgrep starts helper processes (semgrep-core), so it runs in a session of its own and
    the whole process group is killed at the timeout: nothing is left running.
    """
    with tempfile.TemporaryDirectory(prefix="specfleet-semgrep-") as scratch:
        config = Path(scratch) / "rules.yaml"
        config.write_text(config_text, encoding="utf-8")
        home = Path(scratch) / "home"
        home.mkdir()
        command = semgrep_command(executable, config, rule_timeout)
        try:
            process = subprocess.Popen(
                command,
                cwd=scan,
                env=semgrep_environment(home),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                start_new_session=True,
            )
        except OSError as error:
            raise PolicyCheckError(f"semgrep cannot be run ({executable}): {error}") from error
        try:
            stdout, stderr = process.communicate(timeout=max(timeout, 0.001))
        except subprocess.TimeoutExpired:
            _kill_group(process)
            return _Run(None, None, "")
        finally:
            if process.poll() is None:  # interrupted: leave nothing behind
                _kill_group(process)
    return _Run(_json_report(stdout), process.returncode, stderr)


def _kill_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    try:
        process.communicate(timeout=10)
    except subprocess.TimeoutExpired:  # a child escaped the group and holds the pipes
        process.kill()
        process.wait()


def _config_rejected(run: _Run) -> bool:
    """Whether semgrep refused the config outright (and so scanned nothing)."""
    if run.returncode in CONFIG_REJECTED_CODES:
        return True
    report = run.report or {}
    paths = report.get("paths")
    scanned = paths.get("scanned") if isinstance(paths, Mapping) else None
    return not scanned and any(
        error.get("level") == "error" and error.get("code") in CONFIG_REJECTED_CODES
        for error in _mappings(report.get("errors"))
    )


def _error_finding(
    error: Mapping[str, Any],
    config: CombinedConfig,
    rule_sets: Sequence[SemgrepRuleSet],
    repo: Path,
) -> Finding:
    """An ``error`` finding for one entry of semgrep's ``errors[]`` after a scan."""
    spans = _mappings(error.get("spans"))
    file = _repo_path(error.get("path") or (spans[0].get("file") if spans else None), repo)
    line = _line(spans[0].get("start")) if spans else None
    if file is None:
        line = None
    message = f"semgrep: {_bounded(redact_text(_error_text(error)))}"
    rule = config.rule_for(str(error.get("rule_id"))) if error.get("rule_id") else None
    if rule is None:
        return _run_finding(rule_sets, config.rule_sets, message, file, line)
    rule_set = rule_sets[rule.rule_set]
    return Finding(
        rule_id=rule_set.rule_id,
        kind="semgrep",
        severity=rule_set.severity,
        message=message,
        file=file,
        line=line,
        status="error",
    )


def _error_messages(
    report: Mapping[str, Any],
    *,
    config_name: str = "the combined rules",
    rule_at: Callable[[int], str | None] | None = None,
) -> list[str]:
    """semgrep's messages in ``errors[]``, its closing summary left out when there are others."""
    messages = []
    for error in _mappings(report.get("errors")):
        text = _error_text(error, config_name)
        spans = _mappings(error.get("spans"))
        line = _line(spans[0].get("start")) if spans and rule_at is not None else None
        if line is not None and rule_at is not None and (rule := rule_at(line)) is not None:
            text = f"rule {rule}: {text}"
        if text:
            messages.append(_bounded(redact_text(text)))
    useful = [message for message in messages if not _SUMMARY_MESSAGE.search(message)]
    return useful or messages


def _error_text(error: Mapping[str, Any], config_name: str = "the combined rules") -> str:
    kind = error.get("type")
    name = kind[0] if isinstance(kind, list) and kind else kind
    text = error.get("message") or error.get("long_msg") or error.get("short_msg") or name
    text = str(text or "").strip()
    # the combined config lives in a temporary folder: its path means nothing to a reader
    return _CONFIG_PATH.sub(config_name, text)


def _refused_finding(rule_set: SemgrepRuleSet, messages: Sequence[str]) -> Finding:
    return Finding(
        rule_id=rule_set.rule_id,
        kind="semgrep",
        severity=rule_set.severity,
        message=_bounded(
            f"semgrep refused the rules in {rule_set.source}, so this rule was not checked: "
            + "; ".join(messages)
        ),
        status="error",
    )


def _timeout_findings(
    rule_sets: Sequence[SemgrepRuleSet], config: CombinedConfig, timeout_seconds: float
) -> list[Finding]:
    return _run_findings(
        rule_sets,
        config.rule_sets,
        f"semgrep did not finish within {timeout_seconds:g} s and was stopped; not checked",
    )


def _run_findings(
    rule_sets: Sequence[SemgrepRuleSet], indices: Iterable[int], message: str
) -> list[Finding]:
    """One ``error`` finding per rule set: a run that failed checked none of them."""
    return [
        Finding(
            rule_id=rule_sets[index].rule_id,
            kind="semgrep",
            severity=rule_sets[index].severity,
            message=_bounded(message),
            status="error",
        )
        for index in indices
    ]


def _run_finding(
    rule_sets: Sequence[SemgrepRuleSet],
    indices: Iterable[int],
    message: str,
    file: str | None,
    line: int | None,
) -> Finding:
    """An ``error`` finding semgrep did not tie to a rule: :data:`RUN_RULE_ID`.

    Its severity is the highest of the rule sets in the run: what went unchecked (a file
    semgrep could not parse) may hide a violation of any of them.
    """
    severities = [rule_sets[index].severity for index in indices] or ["info"]
    return Finding(
        rule_id=RUN_RULE_ID,
        kind="semgrep",
        severity=max(severities, key=_SEVERITY_ORDER.index),
        message=_bounded(message),
        file=file,
        line=line,
        status="error",
    )


def _placed_rule(
    rule_set: SemgrepRuleSet, position: int, rule: Mapping[str, Any], taken: set[str]
) -> tuple[str, str, Mapping[str, Any], str]:
    """(semgrep id, combined id, rule, its YAML as one item of the ``rules`` list)."""
    semgrep_id = str(rule.get("id") or f"rule-{position + 1}")
    base = _UNSAFE_ID_CHARACTERS.sub("_", f"{rule_set.rule_id}{RULE_ID_SEPARATOR}{semgrep_id}")
    combined_id, repeat = base, 1
    while combined_id in taken:
        repeat += 1
        combined_id = f"{base}-{repeat}"
    taken.add(combined_id)
    renamed = {str(key): _plain(value) for key, value in rule.items()} | {"id": combined_id}
    return semgrep_id, combined_id, rule, _dump_yaml([renamed])


def _dump_yaml(value: object) -> str:
    return yaml.safe_dump(_plain(value), sort_keys=False, allow_unicode=True)


def _plain(value: object) -> object:
    """Mappings and sequences as dicts and lists, which ``yaml.safe_dump`` writes."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _has_fix(rule: object) -> bool:
    return isinstance(rule, Mapping) and bool(rule.get("fix") or rule.get("fix-regex"))


def _languages(rule: Mapping[str, Any]) -> tuple[str, ...]:
    languages = rule.get("languages")
    if not isinstance(languages, list):
        return ()
    return tuple(str(language).lower() for language in languages)


def _json_report(stdout: str) -> Mapping[str, Any] | None:
    try:
        report = json.loads(stdout)
    except json.JSONDecodeError:
        return None
    if isinstance(report, Mapping) and "results" in report and "errors" in report:
        return report
    return None


def _mappings(value: object) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _matched_source(repo: Path, file: str | None, result: Mapping[str, Any]) -> str | None:
    """The source lines a result matched, normalised: the finding's identity, not its line."""
    start, end = _line(result.get("start")), _line(result.get("end"))
    if file is None or start is None:
        return None
    try:
        lines = (repo / file).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    last = max(start, end or start)
    return normalise_snippet("\n".join(lines[start - 1 : min(last, start + 20)]))


def _line(position: object) -> int | None:
    line = position.get("line") if isinstance(position, Mapping) else None
    return line if isinstance(line, int) and line > 0 else None


def _repo_path(path: object, repo: Path) -> str | None:
    """``path`` as semgrep printed it, made relative to the checkout (``None`` if outside)."""
    if not isinstance(path, str) or not path:
        return None
    candidate = Path(path)
    if candidate.is_absolute():
        try:
            candidate = candidate.resolve().relative_to(repo.resolve())
        except ValueError:
            return None
    text = candidate.as_posix()
    return text[2:] if text.startswith("./") else text


def _finding_order(finding: Finding) -> tuple[str, int, str, str, str]:
    return (finding.file or "", finding.line or 0, finding.rule_id, finding.status, finding.message)


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def _stderr_tail(stderr: str) -> str:
    """The last line of stderr (the reason, after a traceback), bounded and redacted."""
    lines = redact_text(stderr.strip()).splitlines()
    return f": {lines[-1][:MAX_STDERR_CHARS]}" if lines else ""
