"""Run ``edgernn`` in a subprocess the way an edge install does: torch, onnx and safetensors blocked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

MODELS = Path(__file__).resolve().parents[1] / "runtime" / "models"

BLOCKED_CLI = (
    "import sys\n"
    "for name in ('torch', 'onnx', 'safetensors'):\n"
    "    sys.modules[name] = None  # any import of it now raises ImportError\n"
    "from edgernn.cli import main\n"
    "sys.exit(main())\n"
)


def shipped(task: str) -> Path:
    path = MODELS / f"{task}.onnx"
    if not path.is_file():
        pytest.skip(f"the example {task} model is not built ({path}); run `make models`")
    return path


def edgernn(*args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``edgernn ARGS`` with torch blocked; fails the test with stderr when the exit status is not 0."""
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKED_CLI, *args], input=stdin, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"edgernn {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
    return proc
