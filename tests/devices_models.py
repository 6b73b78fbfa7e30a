"""Export the small models the device tests use, for environments without torch (``make openvino``).

    .venv/bin/python tests/devices_models.py build/device-models
"""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import CELLS, VOCAB, tiny_model

from edgernn.export.onnx_export import export_model


def main(out: str) -> None:
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    for cell in CELLS:
        for kind in ("tokens", "frames"):
            name = cell if kind == "tokens" else f"frames-{cell}"
            vocabulary = VOCAB if kind == "tokens" else ""
            task = {"name": "devices", "vocabulary": vocabulary}
            export_model(tiny_model(cell, kind, hidden=64), root / f"{name}.onnx", task=task, force=True)
    print(f"exported {2 * len(CELLS)} models to {root}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build/device-models")
