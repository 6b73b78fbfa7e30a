"""Export the small models the device tests use, for environments without torch (``make openvino``).

    .venv/bin/python tests/devices_models.py build/device-models
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from conftest import CELLS, VOCAB, tiny_model

from edgernn.export.onnx_export import export_model
from edgernn.export.quantize import quantize_model


def main(out: str) -> None:
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    for cell in CELLS:
        for kind in ("tokens", "frames"):
            name = cell if kind == "tokens" else f"frames-{cell}"
            vocabulary = VOCAB if kind == "tokens" else ""
            task = {"name": "devices", "vocabulary": vocabulary}
            export_model(tiny_model(cell, kind, hidden=64), root / f"{name}.onnx", task=task, force=True)
            # the QDQ int8 form the openvino profile takes; these random-weight models have no task, so
            # calibration reads random inputs of the model's kind (export calibrates on training data)
            rng = np.random.default_rng(0)
            xs = rng.integers(0, len(VOCAB), (4, 400)) if kind == "tokens" else rng.standard_normal((4, 400, 6))
            calibration = [(xs.astype(np.int64 if kind == "tokens" else np.float32), True)]
            quantize_model(root / f"{name}.onnx", root / f"{name}.qdq.onnx", int8_form="qdq", force=True,
                           calibration=calibration, calibration_source="random inputs")  # fmt: skip
    print(f"exported {2 * len(CELLS)} models (fp32 and qdq int8) to {root}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build/device-models")
