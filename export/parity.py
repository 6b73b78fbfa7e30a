"""Parity of an exported graph with PyTorch, through time, in three steps (see ``validate``).

Reference: the PyTorch model's whole-sequence forward on a batch of lanes. Checked against
it: the runtime Stream one frame per call and in chunks of random sizes (batch 1), and
onnxruntime one frame per call and in random chunks (batch > 1), all carrying state across
every call; every output (``y`` and the final states) is compared.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from edgernn.export.validate import Outputs, compare_modes, effective_tolerance, run_modes
from edgernn.runtime.spec import StreamSpec
from edgernn.train.model import RecurrentModel

DEFAULT_BATCH = 3


@dataclass(frozen=True)
class ParityReport:
    """Max |torch - onnx| over carried steps; ``outputs`` and ``modes`` break it down."""

    steps: int
    max_abs_step: float
    max_abs_chunked: float
    max_rel: float
    bit_identical: bool
    tolerance: float
    batch: int = 1
    outputs: Mapping[str, float] = field(default_factory=dict)
    modes: Mapping[str, float] = field(default_factory=dict)
    scales: Mapping[str, float] = field(default_factory=dict)  # each output's bound is tolerance x its scale

    @property
    def max_abs(self) -> float:
        return max(self.max_abs_step, self.max_abs_chunked)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "max_abs": self.max_abs,
            "outputs": dict(self.outputs),
            "modes": dict(self.modes),
            "scales": dict(self.scales),
        }

    def verdict(self) -> str:
        """One line: PASS / FAIL, the output nearest its bound, its difference and effective tolerance."""
        scale = {n: self.scales.get(n, 1.0) for n in self.outputs}
        name = max(self.outputs, key=lambda n: self.outputs[n] / (self.tolerance * scale[n]))
        d, limit = self.outputs[name], self.tolerance * scale[name]
        word = "PASS" if d <= limit else "FAIL"
        return (
            f"{word}  parity vs PyTorch over {self.steps} carried steps: max |torch - onnx| {d:.3g} on {name!r} "
            f"{'<=' if word == 'PASS' else '>'} effective tolerance {effective_tolerance(self.tolerance, scale[name])}"
        )

    def __str__(self) -> str:
        per = ", ".join(f"{k} {v:.3g}" for k, v in self.outputs.items())
        return (
            f"parity over {self.steps} carried steps (batch 1 and {self.batch}): max |torch - onnx| "
            f"one frame per call {self.max_abs_step:.3g}, random chunks {self.max_abs_chunked:.3g} "
            f"[{per}], max rel {self.max_rel:.3g}, bit-identical {self.bit_identical} (tolerance {self.tolerance:g})"
        )


def sample_inputs(model: RecurrentModel, steps: int, seed: int = 0) -> np.ndarray:
    """One lane of random inputs: (steps,) token ids or (steps, features) frames."""
    cfg = model.config
    rng = np.random.default_rng(seed)
    if cfg.input_kind == "tokens":
        return rng.integers(0, cfg.input_size, size=steps, dtype=np.int64)
    return rng.standard_normal((steps, cfg.input_size)).astype(np.float32)


def sample_batch(model: RecurrentModel, steps: int, batch: int, seed: int = 0, first: np.ndarray | None = None):
    """(batch, steps, ...) random lanes; lane 0 is ``first`` when given."""
    lanes = [first if first is not None else sample_inputs(model, steps, seed)]
    lanes += [sample_inputs(model, len(lanes[0]), seed + 1000 + i) for i in range(1, batch)]
    return np.stack(lanes)


def torch_outputs(model: RecurrentModel, xs: np.ndarray) -> Outputs:
    """The PyTorch reference: whole-sequence forward from the initial state, outputs named as in the graph."""
    spec = StreamSpec.for_model(model.config)
    model.eval()
    with torch.no_grad():
        y, state = model(torch.from_numpy(xs))
    out: Outputs = {spec.outputs[0].name: y.numpy()}
    out.update({s.output: v.numpy() for s, v in zip(spec.states, state)})
    return out


def check_parity(
    model: RecurrentModel,
    onnx_path: str | os.PathLike[str],
    steps: int = 500,
    tolerance: float = 1e-5,
    seed: int = 0,
    inputs: np.ndarray | None = None,
    batch: int = DEFAULT_BATCH,
) -> ParityReport:
    """Names, shapes, then values of the graph at ``onnx_path`` vs PyTorch over ``steps`` carried steps.

    Raises OutputNameError / OutputShapeError / OutputValueError (all ParityError), each
    naming the output; ``inputs`` (one lane) replaces the random lane 0.
    """
    xs = sample_batch(model, steps, max(batch, 2), seed, inputs)
    expected = StreamSpec.for_model(model.config)
    _, spec, modes = run_modes(onnx_path, xs, lambda probe: torch_outputs(model, probe), seed + 1, expected=expected)
    result = compare_modes(modes, torch_outputs(model, xs), spec, tolerance)
    per_mode = {m: max(d.values()) for m, d in result["modes"].items()}
    names = next(iter(result["modes"].values())).keys()
    return ParityReport(
        steps=xs.shape[1],
        max_abs_step=max(v for m, v in per_mode.items() if m.startswith("step")),
        max_abs_chunked=max(v for m, v in per_mode.items() if m.startswith("chunks")),
        max_rel=result["max_rel"],
        bit_identical=result["bit_identical"],
        tolerance=tolerance,
        batch=xs.shape[0],
        outputs={n: max(d[n] for d in result["modes"].values()) for n in names},
        modes=per_mode,
        scales=result["scales"],
    )
