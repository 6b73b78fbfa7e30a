"""Parity of an exported graph with PyTorch, through time.

Reference: the PyTorch model's whole-sequence forward. Checked against it: the engine
stepping one frame per call, and the engine pushing chunks of random sizes, both carrying
state across every call. The max absolute difference of each is reported.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np
import torch

from edgernn.runtime.engine import Engine
from edgernn.runtime.errors import ParityError
from edgernn.train.model import RecurrentModel


@dataclass(frozen=True)
class ParityReport:
    steps: int
    max_abs_step: float
    max_abs_chunked: float
    max_rel: float
    bit_identical: bool
    tolerance: float

    @property
    def max_abs(self) -> float:
        return max(self.max_abs_step, self.max_abs_chunked)

    def to_dict(self) -> dict[str, float | int | bool]:
        return asdict(self) | {"max_abs": self.max_abs}

    def __str__(self) -> str:
        return (
            f"parity over {self.steps} carried steps: max |torch - onnx| step-by-step "
            f"{self.max_abs_step:.3g}, chunked {self.max_abs_chunked:.3g}, max rel {self.max_rel:.3g}, "
            f"bit-identical {self.bit_identical} (tolerance {self.tolerance:g})"
        )


def sample_inputs(model: RecurrentModel, steps: int, seed: int = 0) -> np.ndarray:
    cfg = model.config
    rng = np.random.default_rng(seed)
    if cfg.input_kind == "tokens":
        return rng.integers(0, cfg.input_size, size=steps, dtype=np.int64)
    return rng.standard_normal((steps, cfg.input_size)).astype(np.float32)


def check_parity(
    model: RecurrentModel,
    onnx_path: str | os.PathLike[str],
    steps: int = 500,
    tolerance: float = 1e-5,
    seed: int = 0,
    inputs: np.ndarray | None = None,
) -> ParityReport:
    """Compare PyTorch and the exported graph over ``steps`` carried steps; raise ParityError past ``tolerance``."""
    xs = inputs if inputs is not None else sample_inputs(model, steps, seed)
    steps = len(xs)
    model.eval()
    with torch.no_grad():
        ref, _ = model(torch.from_numpy(xs)[None])
    want = ref[0].numpy().astype(np.float64)  # (time, output)

    engine = Engine.load(onnx_path)
    stream = engine.stream()
    stepped = np.stack([stream.step(x) for x in xs]).astype(np.float64)

    stream = engine.stream()
    rng = np.random.default_rng(seed + 1)
    parts, t = [], 0
    while t < steps:
        n = int(rng.integers(1, 97))
        parts.append(stream.push(xs[t : t + n], chunk=int(rng.integers(1, 65))))
        t += n
    chunked = np.concatenate(parts).astype(np.float64)

    d_step = float(np.abs(stepped - want).max())
    d_chunk = float(np.abs(chunked - want).max())
    rel = float((np.abs(stepped - want) / (np.abs(want) + 1e-6)).max())
    report = ParityReport(
        steps=steps,
        max_abs_step=d_step,
        max_abs_chunked=d_chunk,
        max_rel=rel,
        bit_identical=bool(np.array_equal(stepped, want) and np.array_equal(chunked, want)),
        tolerance=tolerance,
    )
    if report.max_abs > tolerance:
        which = "step-by-step" if d_step >= d_chunk else "chunked"
        raise ParityError(
            f"output 'y': max |torch - onnx| {report.max_abs:.3g} ({which}) exceeds {tolerance:g} "
            f"over {steps} carried steps"
        )
    return report
