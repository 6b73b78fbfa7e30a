"""An fp16 export loads and streams on the CPU with the default profile (no crash), close to fp32."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import CELLS, tiny_model

from edgernn.export.onnx_export import export_model
from edgernn.export.quantize import quantize_model
from edgernn.runtime.session import has_float16_weights

CHILD = """
import sys, numpy as np
from edgernn.runtime import Engine
xs = np.arange(200) % 40
out = []
for path in sys.argv[1:]:
    stream = Engine.load(path).stream()
    out.append(np.stack([stream.step(x) for x in xs]))
print(float(np.abs(out[0] - out[1]).max()), float(np.abs(out[1]).max()))
"""


@pytest.mark.parametrize("cell", CELLS)
def test_fp16_model_streams_on_cpu_in_a_child_process(tmp_path: Path, cell: str) -> None:
    fp32, fp16 = tmp_path / "fp32.onnx", tmp_path / "fp16.onnx"
    export_model(tiny_model(cell), fp32, task={"vocabulary": "x"})
    quantize_model(fp32, fp16, mode="fp16")
    assert has_float16_weights(fp16.read_bytes()) and not has_float16_weights(fp32.read_bytes())
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(fp32), str(fp16)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"child exited {proc.returncode}: {proc.stderr[-500:]}"
    diff, scale = map(float, proc.stdout.split())
    print(f"{cell}: fp16 vs fp32 over 200 carried steps, max abs {diff:.3g} (outputs up to {scale:.3g})")
    assert 0 < diff <= 2e-2 * max(1.0, scale)
    assert np.isfinite(diff)
