"""The static QDQ int8 form (OpenVINO / NPU providers) on the CPU provider: structure, calibration, parity.

Models are trained for a few updates on the recall task (synthetic, fast) so that calibration reads
real training data; parity is gated at 2e-2 over 1000 carried steps by the export pipeline itself.
The same graphs on the OpenVINO provider: tests/test_devices_openvino.py (`make openvino`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import CELLS
from onnx_ops import op_counts

from edgernn.export.errors import ExportError, QuantizeError
from edgernn.export.onnx_export import attach_spec, to_onnx_proto, write_model
from edgernn.export.pipeline import export_checkpoint
from edgernn.export.qdq import build_qdq, calibrate, ranges_by_product, training_chunks
from edgernn.export.validate import compare_graphs, sample_from_graph
from edgernn.runtime import Engine
from edgernn.runtime.spec import StreamSpec
from edgernn.train.checkpoint import load_checkpoint
from edgernn.train.tasks import build_task, recipe
from edgernn.train.trainer import fit


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("qdq-runs")
    out = {}
    for cell in CELLS:
        layers = 2 if cell == "gru" else 1
        cfg = recipe("recall", cell=cell, hidden_size=16, embed_size=4, delay=3, batch_size=8, max_steps=40,
                     num_layers=layers)  # fmt: skip
        fit(build_task(cfg), cfg, out=root / cell, log=lambda s: None)
        out[cell] = root / cell
    return out


@pytest.mark.parametrize("cell", CELLS)
def test_qdq_export_holds_parity_over_1000_carried_steps(runs, tmp_path, cell: str) -> None:
    path = tmp_path / f"{cell}.qdq.onnx"
    spec, _ = export_checkpoint(runs[cell], path, quantize="int8", int8_form="qdq", steps=1000)
    note = spec.provenance["quantization"]
    parity = note["parity_vs_fp32"]
    print(f"{cell}: qdq vs fp32 over {parity['steps']} carried steps: max |dp| {parity['max_abs_normalised']:.2e}, "
          f"calibration {note['calibration']}")  # fmt: skip
    assert parity["steps"] == 1000 and parity["max_abs_normalised"] <= 2e-2
    assert note["form"] == "qdq" and note["calibration"]["source"].startswith("the recall training data")
    assert note["calibration"]["frames"] >= 10_000
    amax = note["calibration"]["layer_max_abs_h"]
    assert len(amax) == (2 if cell == "gru" else 1) and all(0.05 < a < 1.0 for a in amax)
    ops = op_counts(path, domains=True)
    matmuls = ops[":MatMul"]
    # every product is int8 QDQ: one activation Q/DQ pair and one weight DQ per MatMul (the table is a Gather)
    assert matmuls == 2 * len(amax) and ops[":QuantizeLinear"] == matmuls  # recurrent, inputs, head
    assert ops[":DequantizeLinear"] == 2 * matmuls and not note["accurate"]
    assert not any(k.startswith("com.microsoft") for k in ops) and ":Scan" not in ops and ":If" not in ops
    graph_x = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[1]
    assert graph_x.dim_value == 1  # one frame per call: the runtime carries the time loop
    engine = Engine.load(path)
    xs = np.random.default_rng(0).integers(0, engine.vocab_size, 120)
    a, b = engine.stream(), engine.stream()
    stepped = np.stack([a.step(x) for x in xs])
    np.testing.assert_array_equal(b.push(xs, chunk=32), stepped)  # push steps frame by frame: the same values


def test_calibration_sets_the_ranges_and_is_what_holds_parity(runs, tmp_path) -> None:
    """The calibrated range against a range 100x too wide (activations rounded to nothing) and one
    a tenth of it (states clipped): both miss parity by far, the calibrated one holds it."""
    model, meta = load_checkpoint(runs["rnn"] / "model.safetensors")
    spec = StreamSpec.for_model(model.config, task=meta["task"])
    native = attach_spec(to_onnx_proto(model, 17), spec)
    write_model(native, tmp_path / "fp32.onnx")
    amax = calibrate(native, spec, training_chunks(meta["train"]))
    xs = sample_from_graph(tmp_path / "fp32.onnx", 400, 2, seed=3)
    errs = {}
    for name, ranges in (("calibrated", amax), ("wide", [100 * amax[0]]), ("narrow", [0.1 * amax[0]])):
        write_model(attach_spec(build_qdq(native, spec, 17, ranges), spec), tmp_path / f"{name}.onnx")
        errs[name] = compare_graphs(tmp_path / "fp32.onnx", tmp_path / f"{name}.onnx", xs, 1.0)["max_abs_normalised"]
    print(f"qdq error by activation range (calibrated max |h| {amax[0]:.3f}): {errs}")
    assert errs["calibrated"] <= 2e-2 and 2 * errs["calibrated"] < min(errs["wide"], errs["narrow"])


def test_ranges_follow_the_layers() -> None:
    assert ranges_by_product([0.5, 0.7, 0.9]) == {
        "l0_rec": 0.5, "l1_rec": 0.7, "l2_rec": 0.9, "l1_in": 0.5, "l2_in": 0.7, "head": 0.9,
    }  # fmt: skip


def test_qdq_refusals(runs, tmp_path) -> None:
    model, meta = load_checkpoint(runs["lstm"] / "model.safetensors")
    spec = StreamSpec.for_model(model.config, task=meta["task"])
    native = to_onnx_proto(model, 17)
    from edgernn.export.quantize import convert_proto

    with pytest.raises(QuantizeError, match="needs calibration data"):
        convert_proto(attach_spec(native, spec), "int8", int8_form="qdq")
    with pytest.raises(QuantizeError, match="int8 form 'static'"):
        convert_proto(attach_spec(native, spec), "int8", int8_form="static")
    with pytest.raises(QuantizeError, match="opset 13"):
        build_qdq(native, spec, 12, [0.5])
    with pytest.raises(ExportError, match="--int8-form"):
        export_checkpoint(runs["lstm"], tmp_path / "x.onnx", int8_form="qdq")  # fp32: no int8 form


def test_openvino_profile_exports_the_qdq_form(runs, tmp_path) -> None:
    spec, _ = export_checkpoint(runs["rnn"], tmp_path / "ov.onnx", quantize="int8", device="openvino", steps=200)
    assert spec.provenance["quantization"]["form"] == "qdq"
    spec, _ = export_checkpoint(runs["rnn"], tmp_path / "cpu.onnx", quantize="int8", device="cpu", validate=False)
    assert "form" not in spec.provenance["quantization"]
    assert any("DynamicQuantize" in op for op in op_counts(tmp_path / "cpu.onnx"))


def test_accurate_qdq_form_is_three_products_per_weight_and_closer(runs, tmp_path) -> None:
    """Two int8 parts per weight and two uint8 parts per activation: a1 w1 + a1 w2 + a2 w1 per product. The
    parts remove rounding, not clipping, so the ranges here are the states' bound (1.0): nothing is clipped
    (the calibrated ranges of this briefly trained model are below what self-written text drives it to)."""
    model, meta = load_checkpoint(runs["gru"] / "model.safetensors")
    spec = StreamSpec.for_model(model.config, task=meta["task"])
    native = attach_spec(to_onnx_proto(model, 17), spec)
    write_model(native, tmp_path / "fp32.onnx")
    amax = [1.0] * model.config.num_layers
    xs = sample_from_graph(tmp_path / "fp32.onnx", 500, 2, seed=5)
    errs = {}
    for accurate in (False, True):
        path = tmp_path / f"acc{accurate}.onnx"
        write_model(attach_spec(build_qdq(native, spec, 17, amax, accurate), spec), path)
        errs[accurate] = compare_graphs(tmp_path / "fp32.onnx", path, xs, 1.0)["max_abs_normalised"]
    ops = op_counts(tmp_path / "accTrue.onnx", domains=True)
    products = 2 * len(amax)  # two layers: two recurrent, one input product, the head
    assert ops[":MatMul"] == 3 * products and ops[":QuantizeLinear"] == 2 * products
    assert ops[":DequantizeLinear"] == 4 * products
    print(f"qdq fast {errs[False]:.2e}, accurate {errs[True]:.2e}")
    assert 0.0 < errs[True] < errs[False] / 4


def test_export_falls_back_to_the_accurate_qdq_form(runs, tmp_path) -> None:
    spec, _ = export_checkpoint(
        runs["rnn"], tmp_path / "r.onnx", quantize="int8", int8_form="qdq", steps=300, quant_tolerance=5e-4
    )
    note = spec.provenance["quantization"]
    assert note["accurate"] and "fast_form_refused" in note and note["form"] == "qdq"
    assert note["parity_vs_fp32"]["max_abs_normalised"] <= 5e-4
