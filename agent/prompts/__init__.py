"""Prompt text shipped as package data; ``PROMPT_VERSION`` enters evaluation fingerprints."""

from __future__ import annotations

from importlib.resources import files

PROMPT_VERSION = "agent-1"


def instructions() -> str:
    return files(__package__).joinpath("instructions.md").read_text(encoding="utf-8")
