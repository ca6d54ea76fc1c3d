"""Exit codes and the one exception the runner turns into a clean, non-zero exit.

The codes are part of the contract (``failure_modes`` in dataproduct.yaml): the scheduler
retries on 2 (an input has not arrived yet) and pages on-call for 3 and 4.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INPUT_MISSING = 2
EXIT_INPUT_EMPTY = 3
EXIT_INPUT_INVALID = 4


class InputProblem(Exception):
    """An input cannot be turned into correct outputs; nothing must be written."""

    def __init__(self, message: str, exit_code: int = EXIT_INPUT_INVALID) -> None:
        super().__init__(message)
        self.exit_code = exit_code
