"""Whether product code may run, and how: no silent unsandboxed runs.

``SPECFLEET_SANDBOX``: ``bwrap`` requires bubblewrap everywhere; ``none`` runs product code as
a plain subprocess on purpose (every run warns, every MR and ``fleet status`` say so first);
``auto`` (the default) uses bubblewrap, and where it is missing a fleet worker (Redis
configured) refuses to build product code while the embedded mode (the demo, ``specfleet
evaluate`` on a laptop) runs unsandboxed and says so in the run's warnings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from specfleet.core.errors import VerificationError

UNSANDBOXED = "UNSANDBOXED"
SANDBOX_OFF_WARNING = (
    f"{UNSANDBOXED}: SPECFLEET_SANDBOX=none - product code ran with the worker's network and "
    "filesystem access"
)
NO_SANDBOX_REFUSAL = (
    "refusing to run product code without a sandbox: bubblewrap (bwrap) is missing or cannot "
    "create namespaces here. Install bubblewrap (apt-get install bubblewrap; the specfleet "
    "image has it) or, knowingly, set SPECFLEET_SANDBOX=none"
)
MR_BANNER = (
    "> **Warning: verified WITHOUT a sandbox.** The build and tests of this change ran with "
    "the worker's network and filesystem access (bubblewrap unavailable or "
    "SPECFLEET_SANDBOX=none)."
)


class SandboxRefused(VerificationError):
    """Product code would run unsandboxed where that is not allowed."""


@dataclass(frozen=True)
class SandboxDecision:
    kind: Literal["bwrap", "subprocess"] | None  # None: refused
    warning: str | None = None
    refusal: str | None = None


def decide(setting: str, fleet: bool, available: bool) -> SandboxDecision:
    """How product code runs for a ``SPECFLEET_SANDBOX`` setting, mode and bwrap's presence."""
    if setting == "none":
        return SandboxDecision("subprocess", SANDBOX_OFF_WARNING)
    if available:
        return SandboxDecision("bwrap")
    if setting == "bwrap" or fleet:
        return SandboxDecision(None, refusal=NO_SANDBOX_REFUSAL)
    return SandboxDecision("subprocess")  # embedded: run_sandboxed adds NO_BWRAP_WARNING


def current_decision() -> SandboxDecision:
    """The decision for this process's settings (fleet mode: a Redis URL is configured)."""
    from specfleet.core.settings import get_settings
    from specfleet.worker.verify.sandbox import sandbox_available

    settings = get_settings()
    fleet = settings.redis_url is not None
    if settings.sandbox == "none":
        return decide("none", fleet, False)
    return decide(settings.sandbox, fleet, sandbox_available())


def unsandboxed_banner(verification: str) -> str:
    """The MR's first lines when its verification ran unsandboxed ('' when it did not)."""
    unsandboxed = UNSANDBOXED in verification or "bubblewrap unavailable" in verification
    return MR_BANNER if unsandboxed else ""
