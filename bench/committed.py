"""Committed bench results read back: each bench module writes its table or JSON file under
bench/results/ and renders its BENCHMARKS.md section from it (bench/report.py gathers them).
A result that is not committed gives no section, not an error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def markdown_section(heading: str, results: Path, note: str) -> str:
    """``heading``, ``note`` (how to regenerate it, what it measured) and the committed markdown
    table in ``results``; nothing where none is committed."""
    if not results.is_file():
        return ""
    return f"{heading}\n\n{note}\n\n" + results.read_text(encoding="utf-8")


def load_json(results: Path) -> dict[str, Any] | None:
    """The committed JSON result in ``results``, or None where none is committed."""
    if not results.is_file():
        return None
    loaded: dict[str, Any] = json.loads(results.read_text())
    return loaded
