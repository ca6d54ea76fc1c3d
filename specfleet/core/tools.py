"""Locate the command-line tools specfleet drives (semgrep, pip-audit, uv, git)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def find_tool(name: str) -> str | None:
    """The tool installed beside this Python (its virtualenv) first, else the one on PATH.

    Beside-the-interpreter comes first so that the versions pinned with specfleet are the
    ones used, whatever else is on the machine.
    """
    beside = Path(sys.executable).with_name(name)
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)
