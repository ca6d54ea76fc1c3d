"""A problem found in a spec file: where it is (file, line, column, field) and what is wrong."""

from __future__ import annotations

from dataclasses import dataclass, field

FieldPath = tuple[str | int, ...]


def render_path(path: FieldPath) -> str:
    """``("outputs", 0, "columns", 2, "name")`` -> ``outputs[0].columns[2].name``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass(frozen=True)
class Problem:
    """One reason a spec is invalid, located as precisely as the YAML allows."""

    source: str
    message: str
    path: FieldPath = ()
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    hints: tuple[str, ...] = field(default=())

    def location(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where

    def render(self) -> str:
        field_part = f" {render_path(self.path)}:" if self.path else ""
        hint_part = "".join(f" ({hint})" for hint in self.hints)
        return f"{self.location()}:{field_part} {self.message}{hint_part}"

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.source,
            "line": self.line,
            "column": self.column,
            "field": render_path(self.path),
            "message": self.message,
            "hints": list(self.hints),
        }
