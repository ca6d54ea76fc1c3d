"""Prompt text shipped as package data.

Its content (with the modules that assemble prompts) is hashed into every evaluation's
fingerprint (``worker.pipeline.llm_plan.prompt_digest``): editing a prompt needs no version bump.
"""

from __future__ import annotations

from importlib.resources import files


def instructions() -> str:
    return files(__package__).joinpath("instructions.md").read_text(encoding="utf-8")
