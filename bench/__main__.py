"""``python -m bench``: every benchmark, one JSON document and one Markdown table.

Each benchmark is a script in this directory that prints one JSON object (its figures, the
median of several runs, and where one is named the naive baseline measured in the same run).
This runner runs them one after another in fresh processes (so one benchmark's caches and
memory never flatter the next), reads their JSON, and reduces each to the rows of the
published table: the figure, its value, the target and whether it was met.

    python -m bench                      # everything; writes bench/results/latest.{json,md}
    python -m bench --only verify_orders # one benchmark
    python -m bench --list

Exit status: 0 every target met, 1 a target missed, 2 a benchmark could not run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"

Figures = dict[str, Any]


@dataclass(frozen=True)
class Row:
    """One line of the published table."""

    figure: str
    value: str
    target: str
    met: bool | None  # None: informative, no target


@dataclass(frozen=True)
class Benchmark:
    name: str
    script: str
    args: tuple[str, ...]
    rows: Callable[[Figures], list[Row]]
    what: str
    needs: tuple[str, ...] = field(default=())  # services: "redis", "postgresql"


def _get(figures: Figures, *path: str) -> Any:
    value: Any = figures
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _registry_rows(f: Figures) -> list[Row]:
    first = _get(f, "first_import_seconds_median")
    target = _get(f, "target_seconds")
    return [
        Row(
            f"import {f.get('products')} products from {f.get('repositories')} repositories",
            f"{first} s (re-import {_get(f, 'reimport_seconds_median')} s)",
            f"< {target} s",
            first is not None and target is not None and first < target,
        )
    ]


def _health_rows(f: Figures) -> list[Row]:
    return [
        Row(
            "dependency health of a 100-pin file, warm vs cold cache",
            f"cold {_get(f, 'cold_seconds_median')} s, warm {_get(f, 'warm_seconds_median')} s "
            f"({_get(f, 'warm_speedup')}x)",
            f"warm {_get(f, 'target_speedup')}x faster",
            bool(_get(f, "target_met")),
        )
    ]


def _health_vs_pip_audit_rows(f: Figures) -> list[Row]:
    return [
        Row(
            f"specfleet health vs pip-audit, warm, {f.get('pins')}-pin lock, same advisories",
            f"health {_get(f, 'health_seconds_median')} s, "
            f"pip-audit {_get(f, 'pip_audit_seconds_median')} s ({_get(f, 'ratio')}x)",
            "health <= pip-audit",
            bool(_get(f, "target_met")),
        )
    ]


def _startup_rows(f: Figures) -> list[Row]:
    return [
        Row(
            "`specfleet --help`, lazy vs every command imported",
            f"{_get(f, 'help_seconds_median')} s vs {_get(f, 'eager_seconds_median')} s "
            f"({_get(f, 'speedup')}x)",
            f"< {_get(f, 'target_seconds')} s",
            bool(_get(f, "target_met")),
        )
    ]


def _semgrep_rows(f: Figures) -> list[Row]:
    return [
        Row(
            "semgrep: 20 rules vs 1 rule on orders (one invocation)",
            f"{_get(f, 'twenty_rules', 'seconds_median')} s vs "
            f"{_get(f, 'one_rule', 'seconds_median')} s ({_get(f, 'ratio')}x)",
            f"< {_get(f, 'target_ratio_below')}x",
            bool(_get(f, "target_met")),
        )
    ]


def _verify_rows(f: Figures) -> list[Row]:
    return [
        Row(
            "full verification of orders, cold vs warm caches",
            f"cold {_get(f, 'cold_seconds_median')} s, warm {_get(f, 'warm_seconds_median')} s "
            f"({_get(f, 'warm_over_cold')}); warm environments only "
            f"{_get(f, 'warm_environments_seconds_median')} s, new candidate "
            f"{_get(f, 'warm_new_candidate_seconds_median')} s",
            "warm < 1/3 of cold",
            bool(_get(f, "target_met")),
        )
    ]


def _prompt_rows(f: Figures) -> list[Row]:
    products = f.get("products", {})
    tokens = ", ".join(f"{name} {item.get('prompt_tokens')}" for name, item in products.items())
    share = f.get("mean_shared_prefix_share")
    return [
        Row("prompt tokens per product (LLM planner)", tokens, "", None),
        Row(
            "identical prompt prefix across two products, same policy set",
            f"{round(share * 100, 1)} %" if isinstance(share, float) else str(share),
            f"> {round(f.get('target_share', 0.5) * 100)} %",
            bool(f.get("met")),
        ),
    ]


def _fanout_rows(f: Figures) -> list[Row]:
    fast, speedup = _get(f, "fanout_seconds_median"), _get(f, "speedup")
    return [
        Row(
            f"window fan-out of {f.get('products')} products into Redis ({f.get('database')})",
            f"{fast} s ({_get(f, 'fanout_messages_per_second')} msg/s); naive one task and one "
            f"query per product {_get(f, 'naive_seconds_median')} s ({speedup}x)",
            f"< {_get(f, 'target_seconds')} s and >= {_get(f, 'target_speedup')}x naive",
            fast is not None
            and speedup is not None
            and fast < _get(f, "target_seconds")
            and speedup >= _get(f, "target_speedup"),
        )
    ]


def _noop_rows(f: Figures) -> list[Row]:
    targets = f.get("targets", {})
    rate, cheaper = _get(f, "noop_per_second_median"), _get(f, "noop_cheaper_than_full_evaluation")
    rss = _get(f, "worker_peak_rss_mb_median")
    return [
        Row(
            "no-op evaluations per second, one worker process",
            f"{rate}/s ({_get(f, 'noop_evaluation_ms')} ms each)",
            f">= {targets.get('noop_per_second')}/s",
            rate is not None and rate >= targets.get("noop_per_second", 50),
        ),
        Row(
            "no-op vs a full evaluation of the same kind of product",
            f"{cheaper}x cheaper (full {_get(f, 'full_evaluation_ms_median')} ms)",
            f">= {targets.get('noop_cheaper')}x",
            cheaper is not None and cheaper >= targets.get("noop_cheaper", 100),
        ),
        Row(
            f"worker peak RSS over {f.get('products')}-product windows",
            f"{rss} MB",
            f"< {targets.get('peak_rss_mb')} MB",
            rss is not None and rss < targets.get("peak_rss_mb", 500),
        ),
    ]


def _generic_rows(f: Figures) -> list[Row]:
    """Benchmarks that list their own targets as {"targets": [{figure, value, target, met}]}."""
    rows = []
    for item in f.get("targets", []):
        rows.append(
            Row(
                str(item.get("figure")),
                str(item.get("value")),
                str(item.get("target", "")),
                item.get("met"),
            )
        )
    return rows


BENCHMARKS = [
    Benchmark(
        "registry_import",
        "registry_import.py",
        ("--trials", "2"),
        _registry_rows,
        "registering 10,000 products from a file (real CLI, real git)",
    ),
    Benchmark(
        "health_cache",
        "health_cache.py",
        ("--runs", "3"),
        _health_rows,
        "dependency health, cold (PyPI) vs warm release-facts cache",
    ),
    Benchmark(
        "health_vs_pip_audit",
        "health_vs_pip_audit.py",
        ("--runs", "5"),
        _health_vs_pip_audit_rows,
        "specfleet health vs pip-audit side by side on one 70-pin lock",
    ),
    Benchmark(
        "startup",
        "startup.py",
        ("--runs", "7"),
        _startup_rows,
        "`specfleet --help` start-up, lazy command imports vs eager",
    ),
    Benchmark(
        "semgrep_rules",
        "semgrep_rules.py",
        ("--runs", "3"),
        _semgrep_rows,
        "all of a product's semgrep rules in one invocation",
    ),
    Benchmark(
        "verify_orders",
        "verify_orders.py",
        ("--runs", "1"),
        _verify_rows,
        "the verification gate on orders, cold vs warm caches",
    ),
    Benchmark(
        "fanout",
        "fanout.py",
        ("--database", "postgresql", "--trials", "2"),
        _fanout_rows,
        "a window of 10,000 products queued into Redis vs one task and query per product",
        needs=("redis", "postgresql"),
    ),
    Benchmark(
        "noop",
        "noop.py",
        ("--trials", "2"),
        _noop_rows,
        "no-op evaluation throughput and peak memory of one worker process",
        needs=("redis",),
    ),
    Benchmark(
        "full_evaluation",
        "full_evaluation.py",
        ("--warm-runs", "2"),
        _generic_rows,
        "orders evaluated fetch to merge request, cold and warm, per stage",
    ),
    Benchmark(
        "prompt_economy",
        "prompt_economy.py",
        (),
        _prompt_rows,
        "prompt size per product and the prefix shared across products",
    ),
    Benchmark(
        "web_pages",
        "web_pages.py",
        ("--runs", "7"),
        _generic_rows,
        "each web console page with 1,000 products registered",
    ),
    Benchmark(
        "faults",
        "faults.py",
        (),
        _generic_rows,
        "fault injection on a 40-product fleet: suite time and recovery after each fault",
    ),
]


def machine_facts() -> dict[str, Any]:
    versions = {}
    for distribution in ("specfleet", "celery", "sqlmodel", "duckdb", "semgrep", "uv", "openai"):
        try:
            versions[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[distribution] = None
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "bwrap": shutil.which("bwrap") is not None,
        "versions": versions,
    }


def run_one(benchmark: Benchmark, timeout: float) -> tuple[Figures | None, str, float]:
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, str(BENCH_DIR / benchmark.script), *benchmark.args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=BENCH_DIR.parent,
        )
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s", time.perf_counter() - started
    seconds = time.perf_counter() - started
    try:
        start = done.stdout.index("{")
        figures = json.loads(done.stdout[start:])
    except ValueError:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return None, f"exit {done.returncode}: {' / '.join(tail)}", seconds
    return figures, "", seconds


def markdown(results: list[dict[str, Any]], facts: dict[str, Any]) -> str:
    lines = [
        f"Measured {facts['measured_at']} on {facts['cpus']} CPUs, Python {facts['python']} "
        f"(`python -m bench`).",
        "",
        "| benchmark | figure | measured | target | met |",
        "| --- | --- | --- | --- | --- |",
    ]
    for result in results:
        if result["error"]:
            lines.append(f"| {result['name']} | could not run | {result['error']} | | no |")
            continue
        for row in result["rows"]:
            met = "n/a" if row["met"] is None else ("yes" if row["met"] else "**no**")
            lines.append(
                f"| {result['name']} | {row['figure']} | {row['value']} | {row['target']} | {met} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", help="run only this benchmark (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per benchmark")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR, help="where to write results")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    if args.list:
        for benchmark in BENCHMARKS:
            console.print(f"{benchmark.name:<18} {benchmark.what}")
        return 0
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    unknown = set(args.only or ()) - {b.name for b in BENCHMARKS}
    if unknown:
        console.print(f"unknown benchmark(s): {', '.join(sorted(unknown))}; see --list")
        return 2
    facts = machine_facts() | {"measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    results: list[dict[str, Any]] = []
    with console.status("") as status:
        for index, benchmark in enumerate(chosen, start=1):
            status.update(f"[{index}/{len(chosen)}] {benchmark.name}: {benchmark.what}")
            figures, error, seconds = run_one(benchmark, args.timeout)
            rows = [row.__dict__ for row in benchmark.rows(figures)] if figures else []
            results.append(
                {
                    "name": benchmark.name,
                    "what": benchmark.what,
                    "seconds": round(seconds, 1),
                    "error": error,
                    "rows": rows,
                    "figures": figures,
                }
            )
            mark = "failed" if error else "done"
            console.print(f"{benchmark.name}: {mark} in {seconds:.0f} s {error}")
    document = {"machine": facts, "benchmarks": results}
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "latest.json").write_text(json.dumps(document, indent=2) + "\n")
    table_text = markdown(results, facts)
    (args.output / "latest.md").write_text(table_text)

    table = Table(title="specfleet benchmarks")
    for heading in ("benchmark", "figure", "measured", "target", "met"):
        table.add_column(heading, overflow="fold")
    for result in results:
        if result["error"]:
            table.add_row(result["name"], "could not run", result["error"], "", "no")
        for row in result["rows"]:
            met = "n/a" if row["met"] is None else ("yes" if row["met"] else "NO")
            table.add_row(result["name"], row["figure"], row["value"], row["target"], met)
    Console().print(table)
    console.print(f"wrote {args.output / 'latest.json'} and {args.output / 'latest.md'}")
    if any(result["error"] for result in results):
        return 2
    missed = any(row["met"] is False for result in results for row in result["rows"])
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
