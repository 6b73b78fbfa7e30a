"""int8 and fp16 variants of an exported graph, with the same names, shapes and stream spec.

- LSTM: ``onnxruntime.quantization.quantize_dynamic`` turns the LSTM op into
  DynamicQuantizeLSTM and the head MatMul into an int8 product (or, with
  ``lstm_decomposed=True``, the decomposed cell below).
- GRU and Elman RNN: onnxruntime has no int8 kernel for those ops, so the graph is rebuilt
  as plain MatMuls + gate math (``edgernn.export.decomposed``) with every weight product
  int8 (per-tensor QInt8 weights, activations quantized per call), the recurrent one inside
  the Scan body included.
- fp16 (for GPU profiles): weights and compute in float16, inputs, outputs and state kept
  float32 so the spec and the runtime are unchanged.

Example:
    >>> quantize_model("model.onnx", "model.int8.onnx")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import onnx

from edgernn.export.decomposed import build_decomposed, read_weights
from edgernn.export.errors import QuantizeError
from edgernn.export.onnx_export import attach_spec, write_model
from edgernn.runtime.safety import read_model
from edgernn.runtime.spec import METADATA_KEY, StreamSpec
from edgernn.train.checkpoint import file_sha256

QUANTIZE_MODES = ("int8", "fp16")
# The int8 graphs edgernn makes: onnxruntime's dynamic contrib ops (CPU provider only), or static
# QDQ (``edgernn.export.qdq``: OpenVINO / NPU providers). devices/*.toml name theirs (int8_form).
INT8_FORMS = ("dynamic", "qdq")
Calibration = list[tuple[Any, bool]]  # (lanes, time[, features]) inputs and "state starts afresh"


def read_spec(proto: onnx.ModelProto, source: str = "model") -> StreamSpec:
    """The stream spec in ``proto``'s metadata."""
    return StreamSpec.from_metadata({p.key: p.value for p in proto.metadata_props}, source)


def _opset(proto: onnx.ModelProto) -> int:
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def quantize_int8(
    proto: onnx.ModelProto,
    spec: StreamSpec,
    cell_aware: bool = True,
    lstm_decomposed: bool = False,
    accurate: bool = False,
) -> tuple[onnx.ModelProto, dict]:
    """The int8 graph of a native fp32 edgernn graph, and a note of how it was made.

    ``accurate``: every cell decomposed, each weight in two int8 parts (the second quantizes
    the first one's rounding error), two per-tensor products added; for GRU and RNN the products
    quantize (h + 1) / 2, not h (``edgernn.export.decomposed`` says why). It reads twice the
    weight bytes of the fast form, so it is slower; it is the fallback export takes when the fast
    form misses the tolerance, which long-trained models do (BENCHMARKS.md has both forms' figures).
    """
    cfg = spec.model
    if cfg is None:
        raise QuantizeError("the stream spec has no model config; only graphs exported by edgernn can be quantized")
    if accurate:
        out = build_decomposed(read_weights(proto, spec), spec, _opset(proto), quantize=True, residual=True)
        method = "decomposed cell: DynamicQuantizeMatMul, two-part (residual) per-tensor int8 weights, Scan over time"
    elif cell_aware and (cfg.cell in ("gru", "rnn") or lstm_decomposed):
        out = build_decomposed(read_weights(proto, spec), spec, _opset(proto), quantize=True)
        method = "decomposed cell: DynamicQuantizeMatMul, per-tensor symmetric int8 weights, Scan over time"
    else:
        out = _quantize_dynamic(proto)
        method = "onnxruntime quantize_dynamic (LSTM -> DynamicQuantizeLSTM, MatMul), per-tensor QInt8"
    onnx.checker.check_model(out)
    return out, {"dtype": "int8", "method": method}


def _quantize_dynamic(proto: onnx.ModelProto) -> onnx.ModelProto:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(proto, str(src))
        quantize_dynamic(
            str(src), str(dst), weight_type=QuantType.QInt8, per_channel=False, op_types_to_quantize=["LSTM", "MatMul"]
        )
        return onnx.load(str(dst))


def convert_fp16(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, dict]:
    """float16 weights and compute; graph inputs/outputs (and so the state) stay float32."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    out = convert_float_to_float16(proto, keep_io_types=True, disable_shape_infer=False)
    _toposort(out.graph)  # the converter appends its input Casts at the end
    onnx.checker.check_model(out)
    return out, {"dtype": "float16", "method": "onnxruntime.transformers.float16, float32 inputs/outputs/state"}


def _toposort(graph: onnx.GraphProto) -> None:
    """Order ``graph.node`` so every node comes after the producers of its inputs (stable otherwise)."""
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = [n for n in pending if not set(n.input) <= ready]
        done = [n for n in pending if set(n.input) <= ready]
        if not done:
            raise QuantizeError(f"graph has a cycle or a dangling input near node {rest[0].name!r}")
        for n in done:
            ready.update(n.output)
        ordered += done
        pending = rest
    copies = [onnx.NodeProto() for _ in ordered]
    for c, n in zip(copies, ordered):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)


def quantize_qdq(
    proto: onnx.ModelProto, spec: StreamSpec, calibration: Calibration | None, source: str, accurate: bool = False
) -> tuple[onnx.ModelProto, dict]:
    """The static QDQ int8 step graph (``edgernn.export.qdq``) of a native graph, calibrated on ``calibration``."""
    from edgernn.export.qdq import METHOD, build_qdq, calibrate

    if not calibration:
        raise QuantizeError("the qdq int8 form needs calibration data (sequences of the task's inputs)")
    amax = calibrate(proto, spec, calibration)
    out = build_qdq(proto, spec, _opset(proto), amax, accurate)
    onnx.checker.check_model(out)
    frames = sum(int(x.shape[0]) * int(x.shape[1]) for x, _ in calibration)
    parts = "uint8 activations in two parts (accurate)" if accurate else "uint8 activations"
    note = {"dtype": "int8", "form": "qdq", "accurate": accurate, "method": METHOD.format(parts=parts, source=source)}
    note["calibration"] = {"source": source, "frames": frames, "layer_max_abs_h": [round(a, 6) for a in amax]}
    return out, note


def convert_proto(
    proto: onnx.ModelProto,
    mode: str,
    cell_aware: bool = True,
    lstm_decomposed: bool = False,
    accurate: bool = False,
    int8_form: str = "dynamic",
    calibration: Calibration | None = None,
    calibration_source: str = "the given sequences",
) -> tuple[onnx.ModelProto, StreamSpec]:
    """``mode`` ('int8' or 'fp16') variant of ``proto``, with its spec (provenance records the conversion).
    ``int8_form`` 'qdq' (static, ``calibration`` needed) or 'dynamic' (the CPU provider's contrib ops)."""
    if mode not in QUANTIZE_MODES:
        raise QuantizeError(f"quantize mode {mode!r} is not one of {', '.join(QUANTIZE_MODES)}")
    if int8_form not in INT8_FORMS:
        raise QuantizeError(f"int8 form {int8_form!r} is not one of {', '.join(INT8_FORMS)}")
    from edgernn.export.forms import native_of

    spec = read_spec(proto)
    proto = native_of(proto)  # an auto graph's native branch: int8 and fp16 start from the traced ops
    if mode == "int8" and int8_form == "qdq":
        out, note = quantize_qdq(proto, spec, calibration, calibration_source, accurate)
    elif mode == "int8":
        out, note = quantize_int8(proto, spec, cell_aware, lstm_decomposed, accurate)
    else:
        out, note = convert_fp16(proto)
    kept = {p.key: p.value for p in proto.metadata_props if p.key != METADATA_KEY}
    for key, value in kept.items():
        entry = out.metadata_props.add()
        entry.key, entry.value = key, value
    spec = spec.with_provenance(quantization=note)
    return attach_spec(out, spec), spec


def quantize_model(
    path_in: str | os.PathLike[str],
    path_out: str | os.PathLike[str],
    cell_aware: bool = True,
    mode: str = "int8",
    force: bool = False,
    lstm_decomposed: bool = False,
    accurate: bool = False,
    int8_form: str = "dynamic",
    calibration: Calibration | None = None,
    calibration_source: str = "the given sequences",
) -> StreamSpec:
    """Write the int8 (or fp16) variant of the edgernn graph at ``path_in`` to ``path_out``.

    ``cell_aware=True`` rebuilds GRU and RNN graphs as int8 MatMuls (a real speed-up);
    ``False`` runs plain ``quantize_dynamic``, which leaves those ops in fp32. The result
    has the same input, output and state names and the same spec, so ``Engine.load`` streams
    it unchanged. Returns the spec written.

    ``accurate=True``: two-part int8 weights for every cell (see ``quantize_int8``); the export
    pipeline falls back to it by itself when the fast form misses the tolerance.

    ``lstm_decomposed=True`` builds an LSTM the GRU / RNN way instead of DynamicQuantizeLSTM:
    a trade between one frame per call and chunks, and between the two forms' rounding.

    ``int8_form="qdq"``: the static QDQ step graph for OpenVINO / NPU providers, its activation
    ranges calibrated on ``calibration`` (``edgernn.export.qdq.training_chunks`` reads a task's
    training data); ``calibration_source`` names that data in the provenance.
    """
    proto = onnx.load_from_string(read_model(path_in))  # the runtime's safe reader: no FIFO, device, bomb
    out, spec = convert_proto(
        proto, mode, cell_aware, lstm_decomposed, accurate, int8_form, calibration, calibration_source
    )
    note: dict[str, Any] = dict(spec.provenance["quantization"])
    note["source_sha256"] = file_sha256(path_in)
    spec = spec.with_provenance(quantization=note)
    write_model(attach_spec(out, spec), path_out, force=force)
    return spec
