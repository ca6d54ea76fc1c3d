"""Deterministic remediators: changes that need no LLM (dependency upgrades, rewrites)."""
