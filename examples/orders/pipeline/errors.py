"""Exit codes and the one exception the build turns into a clean, non-zero exit.

The exit codes are part of the product's contract (``failure_modes`` in dataproduct.yaml):
schedulers and the verifier tell "input not delivered yet" (retry later) apart from "input
delivered but unusable" (page someone) by the code alone.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INPUT_MISSING = 2
EXIT_INPUT_EMPTY = 3
EXIT_INPUT_INVALID = 4


class InputProblem(Exception):
    """An input cannot be turned into correct orders; nothing must be written."""

    def __init__(self, message: str, exit_code: int = EXIT_INPUT_INVALID) -> None:
        super().__init__(message)
        self.exit_code = exit_code
