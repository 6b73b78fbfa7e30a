"""Reading model files that may come from anywhere: typed errors, never a crash.

``read_model`` is the one place the runtime opens a model file; ``Engine.load`` calls it.
"""

from __future__ import annotations

import os

from edgernn.runtime.errors import ModelLoadError


def read_model(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the model at ``path``, or ModelLoadError naming the file and the reason."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ModelLoadError(f"{source}: cannot read the model file: {exc.strerror}") from None
    if not data:
        raise ModelLoadError(f"{source}: the file is empty, not an ONNX model")
    return data
