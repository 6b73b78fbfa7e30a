"""Shared by the Triton server tests: the server venv, a repository of the shipped textgen model.

The server tests run under ``make triton`` (which builds ``.venv-triton`` and sets
EDGERNN_TRITON_VENV); in a plain ``make test`` they skip and say so.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgernn.export.triton import write_repository
from edgernn.export.triton_twin import write_twin
from edgernn.runtime import Engine

ROOT = Path(__file__).resolve().parents[1]
TEXTGEN = ROOT / "runtime" / "models" / "textgen.onnx"
IDLE_US = 1_500_000  # the short-idle twin: Triton drops its sequences after 1.5 s


def model_config_pb2():
    """tritonclient's generated module, loaded from its file (skips tritonclient.grpc's __init__, which needs grpc)."""
    tc = pytest.importorskip("tritonclient")
    path = Path(tc.__file__).parent / "grpc" / "model_config_pb2.py"
    spec = importlib.util.spec_from_file_location("model_config_pb2", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_config(path: Path):
    from google.protobuf import text_format

    pb2 = model_config_pb2()
    return text_format.Parse(path.read_text(), pb2.ModelConfig()), pb2


def server_venv() -> Path:
    """The server venv named by EDGERNN_TRITON_VENV; skip (or fail under `make triton`) without it."""
    venv = os.environ.get("EDGERNN_TRITON_VENV")
    if not venv:
        pytest.skip("no Triton server venv: `make triton` builds .venv-triton and runs these tests")
    path = Path(venv)
    if not (path / "bin" / "python").exists():
        pytest.fail(f"EDGERNN_TRITON_VENV={venv} has no bin/python (run `make triton`)")
    return path


def make_repository(root: Path) -> Path:
    """``root`` with the textgen model as 'char' (+ 'char_twin', direct), 'idle_twin' (1.5 s idle), 'oldest_twin'."""
    proto = onnx.load(str(TEXTGEN))
    spec = Engine.load(TEXTGEN).spec
    write_repository(root, proto, spec, name="char")
    write_twin(root / "idle_twin", proto, spec, "idle_twin", idle_microseconds=IDLE_US)
    write_twin(root / "oldest_twin", proto, spec, "oldest_twin", strategy="oldest")
    return root


def reference(frames: list[np.ndarray]) -> np.ndarray:
    """The same chunks pushed through one engine stream alone: (sum T, vocab)."""
    stream = Engine.load(TEXTGEN).stream()
    return np.concatenate([stream.push(f) for f in frames])


def chunks(seed: int, total: int, vocab: int) -> list[np.ndarray]:
    """``total`` random tokens cut into requests of 1 to 4 frames."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, vocab, total).astype(np.int64)
    cuts, t = [], 0
    while t < total:
        n = int(rng.integers(1, 5))
        cuts.append(tokens[t : t + n])
        t += n
    return cuts
