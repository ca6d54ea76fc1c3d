"""Whether a spec's build works in directories the verifier gives it or inside its checkout.

See :mod:`specfleet.worker.verify.layout` for how each layout is verified; this is the pure part the
CLI needs without loading the verifier.
"""

from __future__ import annotations

from specfleet.core.spec.model import Spec


def builds_in_checkout(spec: Spec) -> bool:
    """True when the build names neither placeholder: it works inside the checkout."""
    build = spec.implementation.build
    return "{inputs}" not in build and "{outputs}" not in build


def layout_notes(spec: Spec) -> list[str]:
    """What ``spec validate`` tells the owner about how the build will be verified."""
    if not builds_in_checkout(spec):
        return []
    fixtures = ", ".join(item.fixture for item in spec.inputs) or "none declared"
    outputs = ", ".join(sorted({output.path for output in spec.outputs}))
    return [
        "implementation.build mentions neither {inputs} nor {outputs}: it is verified in a copy "
        f"of the checkout, with the fixtures at their paths ({fixtures}) and the outputs read "
        f"where the spec says, relative to the repository ({outputs}). If the build writes "
        "elsewhere, no output will be found and the contract cannot be checked."
    ]
