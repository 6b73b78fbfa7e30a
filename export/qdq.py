"""Static int8 in the QDQ form, for the providers that cannot run onnxruntime's CPU-only int8 ops.

DynamicQuantizeMatMul and DynamicQuantizeLSTM (``edgernn.export.quantize``'s fast and accurate
forms) are com.microsoft contrib ops: OpenVINO, QNN, NNAPI and other NPU stacks take none of
them. What they take is the standard pattern, QuantizeLinear / DequantizeLinear around every
matrix product, with the activations' scales fixed ahead of time:

    a  -> QuantizeLinear(s_a, 128) -> DequantizeLinear ─┐
    Wq -> DequantizeLinear(s_w per output column)  ─────┴─ MatMul (+ bias)

The cell is the decomposed one (``edgernn.export.decomposed``: the native RNN / GRU / LSTM op
holds its products inside, where no QDQ can reach), written as **one step**: the graph's time
axis is fixed at 1 and the runtime carries the state from call to call (``Stream.push`` steps
frame by frame). OpenVINO compiles that graph whole; it refuses the Scan the chunk form loops
with (its nodes fall back to the CPU provider), and NPU compilers want static shapes anyway.

Trained models whose states saturate at +-1 (the shipped char models) miss the 2e-2 parity with one
int8 part per weight and activation (music 2.8e-2, textgen 3.4e-2 over 1000 self-written characters);
the **accurate** QDQ form stores each weight in two int8 parts and quantizes each activation in two
uint8 parts (each second part takes its first one's rounding), three QDQ products per weight (music
and textgen 1.6e-4, 1.5e-4), and ``export`` falls back to it as it does for the dynamic form.

Calibration (``calibrate``): the model run in fp32, state carried, over its task's training
data (``training_chunks``); each product's activation range is the largest |h| its layer reached
(the input product of a frame model and a frame model's head stay fp32, as in the dynamic form,
and a token model's folded table: a Gather, not a product). Every hidden state of these cells lies in
(-1, 1), so the range is bounded whatever the data; calibration only tightens it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from edgernn.export.decomposed import build_decomposed, read_weights
from edgernn.export.errors import QuantizeError
from edgernn.runtime.spec import INPUT_X, OUTPUT_Y, StreamSpec

METHOD = (
    "static QDQ: one step (time fixed at 1), decomposed cell, QuantizeLinear/DequantizeLinear around every "
    "MatMul ({parts} calibrated on {source}, int8 per-column weights)"
)


def calibrate(native: onnx.ModelProto, spec: StreamSpec, chunks: Iterable[tuple[np.ndarray, bool]]) -> list[float]:
    """Each layer's largest |h| over ``chunks`` ((lanes, time[, features]) inputs, and whether the
    state starts afresh there), the native fp32 graph run one frame per call on the CPU provider."""
    cfg = spec.model
    if cfg is None:
        raise QuantizeError("the stream spec has no model config: cannot calibrate")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(native.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    h_out = next(s.output for s in spec.states if s.output.startswith("h"))
    names = [s.output for s in spec.states]
    amax = np.zeros(cfg.num_layers)
    state: dict[str, np.ndarray] = {}
    frames = 0
    for xs, reset in chunks:
        lanes = xs.shape[0]
        if reset or not state or next(iter(state.values())).shape[1] != lanes:
            state = {s.input: np.full(s.concrete_shape(lanes), s.init, s.dtype) for s in spec.states}
        for t in range(xs.shape[1]):
            got = sess.run(names, {INPUT_X: np.ascontiguousarray(xs[:, t : t + 1]), **state})
            state = {s.input: v for s, v in zip(spec.states, got)}
            amax = np.maximum(amax, np.abs(dict(zip(names, got))[h_out]).max(axis=(1, 2)))
            frames += lanes
    if frames == 0:
        raise QuantizeError("calibration got no frames")
    return [float(a) for a in amax]


def ranges_by_product(layer_amax: list[float]) -> dict[str, float]:
    """The activation range of every product ``build_decomposed`` names: a layer's recurrent product
    reads its own h, the next layer's input product and the head read the layer below's."""
    out = {f"l{i}_rec": a for i, a in enumerate(layer_amax)}
    out.update({f"l{i + 1}_in": a for i, a in enumerate(layer_amax[:-1])})
    out["head"] = layer_amax[-1]
    return out


def build_qdq(
    native: onnx.ModelProto, spec: StreamSpec, opset: int, layer_amax: list[float], accurate: bool = False
) -> onnx.ModelProto:
    """The QDQ one-step graph of the native graph ``native``, its names and spec unchanged. ``accurate``:
    every activation in two uint8 parts (``Builder._qdq``), two products per weight."""
    if opset < 13:
        raise QuantizeError(f"the QDQ form needs opset 13 or later (per-channel DequantizeLinear), got {opset}")
    cfg = spec.model
    if cfg is None or len(layer_amax) != cfg.num_layers:
        raise QuantizeError(f"calibration gave {len(layer_amax)} layer range(s) for {cfg and cfg.num_layers} layer(s)")
    weights = read_weights(native, spec)
    out = build_decomposed(
        weights, spec, opset, quantize=True, residual=accurate, frames="one", qdq=ranges_by_product(layer_amax)
    )
    for value in [*out.graph.input, *out.graph.output]:  # one frame per call: time is 1 in the graph
        if value.name in (INPUT_X, OUTPUT_Y):
            value.type.tensor_type.shape.dim[1].ClearField("dim_param")
            value.type.tensor_type.shape.dim[1].dim_value = 1
    return out


def training_chunks(train_config: dict, frames: int = 16384, max_batches: int = 256) -> list[tuple[np.ndarray, bool]]:
    """Calibration input from the task's training data: the run's training batches in order, every
    lane, until they hold ``frames`` frames or ``max_batches`` batches. The state is carried from
    batch to batch, resets and all: a stream runs for as long as its caller feeds it (the parity gate
    is 1000 carried steps), and a task trained on short windows (recall: 5 frames, then a reset) never
    shows its states' range over a long run otherwise (0.23 against 0.65 on a small recall GRU)."""
    from edgernn.train.tasks import build_task
    from edgernn.train.trainer import TrainConfig

    known = set(TrainConfig.__dataclass_fields__)
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in train_config.items() if k in known}
    cfg = TrainConfig(**values)
    return source_chunks(build_task(cfg).source, frames, max_batches)


def source_chunks(source: Any, frames: int = 16384, max_batches: int = 256) -> list[tuple[np.ndarray, bool]]:
    """``training_chunks`` of a task's batch source (``edgernn.train.trainer.BatchSource``)."""
    out: list[tuple[np.ndarray, bool]] = []
    total = 0
    for step in range(max_batches):
        x = source.global_batch(step).x.numpy()
        out.append((x, step == 0))  # carried across batches: a stream's state lives longer than a training window
        total += x.shape[0] * x.shape[1]
        if total >= frames:
            break
    return out
