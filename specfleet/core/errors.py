"""The specfleet exception tree.

Expected outcomes (a product that is up to date, a check that found nothing, a spec with
problems reported to a user) are values; exceptions are for what a caller cannot carry on
from. Every exception specfleet raises derives from :class:`SpecfleetError`, and adapters
translate library errors into it with ``raise ... from`` so the original stays attached.

::

    SpecfleetError                     root: catch this at an entry point
    ├── ConfigurationError             a setting is missing or contradictory
    ├── InputError                     a file or argument a user gave cannot be used
    │   ├── DocumentInvalid            a YAML document broke its format (carries problems)
    │   │   ├── SpecInvalid            ... a dataproduct.yaml spec
    │   │   └── PolicyPackInvalid      ... a policy pack (rule files, semgrep files)
    │   ├── ImportFileError            a registration file cannot be read at all
    │   └── DependencyFileError        a product's dependency file cannot be read or rewritten
    ├── RepositoryError                a product repository cannot be fetched or read
    │   └── SpecMissing                the repository has no spec at the registered path
    ├── RegistryError                  the registry refuses a change
    │   ├── ProductNotFound            no product with that id
    │   └── ProductConflict            the id is registered from another repository
    ├── PolicyCheckError               a policy check cannot run at all (e.g. no semgrep)
    ├── VerificationError              a candidate cannot be verified at all (e.g. its
    │                                  environment cannot be built, a sandbox cannot start)
    ├── DatabaseError                  the database cannot be reached or migrated
    ├── ForgeError                     a forge refused or failed an operation
    │   ├── ForgeTransientError        ... worth retrying (5xx, 429, timeouts)
    │   ├── MergeRequestNotFound       no such merge request on that forge
    │   └── MergeRequestRefused        a person's action the merge request's state forbids
    └── LLMError                       the LLM endpoint failed in a way the planner cannot
                                       turn into an outcome (bad configuration, auth)

The command-line interface maps these to exit codes (see ``specfleet/cli/common.py``):
0 success, 1 the input was understood and is invalid (or the registry refused it),
2 usage, I/O or environment error (a missing file, an unreachable repository or database).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from specfleet.core.spec.problems import Problem


class SpecfleetError(Exception):
    """Root of every error specfleet raises on purpose."""


class ConfigurationError(SpecfleetError):
    """A setting is missing, malformed or contradicts another."""


class InputError(SpecfleetError):
    """A file or argument given by a user cannot be used as it is."""


class DocumentInvalid(InputError):
    """A document does not follow its format; ``problems`` says where and why."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = list(problems)
        count = len(self.problems)
        first = self.problems[0].render() if self.problems else source
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(f"{first}{more}")

    def __reduce__(self) -> tuple[type[DocumentInvalid], tuple[str, list[Problem]]]:
        # pickled when specs are checked in worker processes
        return (type(self), (self.source, self.problems))


class SpecInvalid(DocumentInvalid):
    """A ``dataproduct.yaml`` does not follow the format."""


class PolicyPackInvalid(DocumentInvalid):
    """A policy pack has invalid rules or Semgrep files; nothing was published."""


class ImportFileError(InputError):
    """A registration file (YAML or CSV) cannot be read at all."""


class DependencyFileError(InputError):
    """A product's dependency file is missing or outside its repository, or rewriting it (or
    recompiling its lock) failed; a failed rewrite leaves the files as they were."""


class RepositoryError(SpecfleetError):
    """A product repository cannot be fetched, or a branch or file in it cannot be read."""


class SpecMissing(RepositoryError):
    """The repository has no spec at the registered path on the registered branch."""


class RegistryError(SpecfleetError):
    """The product registry refuses a change."""


class ProductNotFound(RegistryError):
    """No product is registered under that id."""


class ProductConflict(RegistryError):
    """The product id is already registered from a different repository or spec path."""


class PolicyCheckError(SpecfleetError):
    """A policy check cannot be run at all: its tool is missing or the product is not there.

    What a check finds, including a rule or a file it could not check, is reported as
    findings instead; this is for when there is nothing to report on.
    """


class VerificationError(SpecfleetError):
    """Verification cannot run at all: the product's environment cannot be built, the sandbox
    cannot start, or a report it produced cannot be read.

    A build or test that runs and fails is a result (a ``RunResult`` with its exit code), not
    this error; this is for when there is no run to report on.
    """


class DatabaseError(SpecfleetError):
    """The database cannot be reached, or its schema cannot be brought up to date."""


class ForgeError(SpecfleetError):
    """A forge (local or GitLab) refused or failed an operation."""


class ForgeTransientError(ForgeError):
    """A forge failure worth retrying later: a 5xx, a 429 (``retry_after`` seconds), a timeout."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MergeRequestNotFound(ForgeError):
    """No merge request with that reference exists on the forge."""


class MergeRequestRefused(ForgeError):
    """An approval, merge or close the merge request's state forbids (a draft, a closed one,
    a branch that moved since it was reviewed, a conflicting target)."""


class LLMError(SpecfleetError):
    """The LLM endpoint cannot be used at all (misconfigured, unauthorised).

    A bad answer (malformed JSON, a hostile plan) or an exhausted budget is an outcome the
    planner records, not this error.
    """


class FleetPaused(SpecfleetError):
    """The fleet is paused: a manual evaluation is refused unless it is forced."""
