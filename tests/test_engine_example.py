"""The runnable example runs, on a model exported here (no torch in the child)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "stream_example.py"
BLOCK_TORCH = "import sys; sys.modules['torch'] = None; sys.modules['onnx'] = None; sys.argv = sys.argv[1:]; "


def test_stream_example_runs_on_the_edge_install(exported) -> None:
    _, path = exported["lstm"]
    code = BLOCK_TORCH + f"import runpy; runpy.run_path({str(EXAMPLE)!r}, run_name='__main__')"
    proc = subprocess.run([sys.executable, "-c", code, "x", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-800:]
    out = proc.stdout
    assert "stepped (100, 60), pushed (100, 60)" in out
    assert "continue identically: True" in out
    assert "ragged: [(5, 60), (2, 60), (0, 60)]" in out
