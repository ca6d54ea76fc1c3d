"""Verification: the gate every candidate passes before it becomes a merge request."""
