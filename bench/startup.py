"""Benchmark: `specfleet --help` start-up, lazy (today) vs eager (every command imported).

The root help is drawn from the command table (specfleet/cli/commands.py) without importing a
command; the eager figure imports every command module and builds the full Typer app, which is
what each invocation paid before. Both run as fresh processes with bytecode compiled, median
of several runs. Prints JSON.

    python bench/startup.py --runs 7
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_SECONDS = 0.3
EAGER = "from specfleet.cli import build_app; build_app()"


def _seconds(command: list[str], runs: int) -> float:
    subprocess.run(command, capture_output=True, check=True)  # bytecode compiled, caches warm
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    script = shutil.which("specfleet") or str(Path(sys.executable).parent / "specfleet")
    lazy = _seconds([script, "--help"], runs)
    eager = _seconds([sys.executable, "-c", EAGER], runs)
    print(
        json.dumps(
            {
                "help_seconds_median": lazy,
                "eager_seconds_median": eager,
                "speedup": round(eager / lazy, 1) if lazy else None,
                "runs": runs,
                "target_seconds": TARGET_SECONDS,
                "target_met": lazy < TARGET_SECONDS,
            }
        )
    )


if __name__ == "__main__":
    main()
