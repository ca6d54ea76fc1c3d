"""What each role may do: pure decisions over an :class:`Identity` and a product's owners.

``platform`` registers and removes products, ``architect`` publishes policy sets, ``owner``
approves, merges and closes merge requests of the products whose owners include one of the
account's addresses (and only those), ``viewer`` reads. Everyone signed in may read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from specfleet.web.auth import Identity, PermissionDenied

Action = Literal[
    "product.register",
    "product.remove",
    "policy.publish",
    "mr.act",
    "evaluation.request",
    "amendment.request",
]


def allowed(identity: Identity, action: Action, owners: Sequence[str] = ()) -> bool:
    if action in ("product.register", "product.remove"):
        return identity.role == "platform"
    if action == "policy.publish":
        return identity.role == "architect"
    if action in ("mr.act", "amendment.request"):
        # a spec amendment changes what the product promises: its owners ask for it
        return identity.role == "owner" and identity.owns(tuple(owners))
    if action == "evaluation.request":
        return identity.role == "platform" or (
            identity.role == "owner" and identity.owns(tuple(owners))
        )
    return False


def require(identity: Identity, action: Action, owners: Sequence[str] = (), what: str = "") -> None:
    """Raise :class:`PermissionDenied` with a message saying which role or ownership is needed."""
    if allowed(identity, action, owners):
        return
    subject = f" {what}" if what else ""
    if action in ("mr.act", "evaluation.request", "amendment.request") and identity.role == "owner":
        message = (
            f"{identity.name} does not own{subject}; only its owners "
            f"({', '.join(owners) or 'none listed'}) may do this"
        )
    else:
        needed = {
            "product.register": "platform",
            "product.remove": "platform",
            "policy.publish": "architect",
            "mr.act": "owner (of the product)",
            "evaluation.request": "platform or owner (of the product)",
            "amendment.request": "owner (of the product)",
        }[action]
        message = f"this needs the {needed} role; {identity.name} is {identity.role}"
    raise PermissionDenied(message)
