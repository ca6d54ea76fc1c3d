"""Prompt text shipped as package data; ``PROMPT_VERSION`` enters evaluation fingerprints."""

from __future__ import annotations

from importlib.resources import files

PROMPT_VERSION = "agent-2"  # issue 16: protected evidence, claims, requirement lines


def instructions() -> str:
    return files(__package__).joinpath("instructions.md").read_text(encoding="utf-8")
