"""export's graph forms: native, decomposed, auto (one graph that picks per call shape), all held to the same parity."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import tiny_model
from onnx_ops import op_counts

from edgernn.export.decomposed import read_weights
from edgernn.export.errors import ExportError
from edgernn.export.forms import build_form, chunk_threshold, form_of, native_of
from edgernn.export.onnx_export import attach_spec, write_model
from edgernn.export.parity import check_parity
from edgernn.export.pipeline import export_checkpoint
from edgernn.export.quantize import read_spec
from edgernn.runtime import Engine
from edgernn.runtime.spec import StreamSpec
from edgernn.train.checkpoint import save_checkpoint


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("kind", ["tokens", "frames"])
def test_auto_form_matches_pytorch_over_1000_steps_on_every_branch(exported, tmp_path, cell: str, kind: str) -> None:
    """min_batch=2: batch-1 chunks take the native op, batch-3 chunks the Scan, one frame the step once."""
    model, path = exported[cell if kind == "tokens" else f"frames-{cell}"]
    proto = onnx.load(str(path))
    spec = read_spec(proto)
    auto = build_form(proto, spec, "auto", 17, min_batch=2)
    onnx.checker.check_model(auto)
    assert form_of(auto) == "auto" and {"Scan", "If", cell.upper()} <= op_counts(auto).keys()
    target = write_model(attach_spec(auto, spec), tmp_path / "auto.onnx")
    report = check_parity(model, target, steps=1000, tolerance=1e-5)
    print(report)  # max abs diff per mode: step and chunked, batch 1 and 3
    assert report.max_abs <= 1e-5 and report.steps == 1000 and report.batch == 3, report
    # the same numbers on every branch: batch 1 vs 3 at one frame and in chunks, against the native graph
    sess = {p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (path, target)}
    rng = np.random.default_rng(3)
    for b, t in ((1, 1), (1, 5), (3, 1), (3, 5)):
        x = rng.integers(0, 5, (b, t)) if kind == "tokens" else rng.standard_normal((b, t, 6)).astype(np.float32)
        feeds = {
            "x": x,
            **{s.input: rng.standard_normal(s.concrete_shape(b)).astype(np.float32) * 0.5 for s in spec.states},
        }
        want, got = (s.run(None, feeds) for s in sess.values())
        diff = max(float(np.abs(a - g).max()) for a, g in zip(want, got))
        print(f"{cell} {kind} batch {b} time {t}: max |auto - native| {diff:.2e}")
        assert diff <= 1e-5


def test_native_of_recovers_the_traced_graph_and_int8_starts_from_it(exported) -> None:
    _, path = exported["gru"]
    proto = onnx.load(str(path))
    spec = read_spec(proto)
    auto = build_form(proto, spec, "auto", 17)
    back = native_of(auto)
    assert [n.op_type for n in back.graph.node] == [n.op_type for n in proto.graph.node]
    a, b = read_weights(back, spec), read_weights(proto, spec)
    assert all(np.array_equal(x.R, y.R) for x, y in zip(a.layers, b.layers))
    assert native_of(proto) is proto


def test_chunk_threshold_follows_the_input_product() -> None:
    """RNN: always decomposed; GRU / LSTM: from the input product's multiply-adds per stream-frame."""
    from edgernn.bench import models
    from edgernn.export.onnx_export import to_onnx_proto

    for cell, hidden, want in (("rnn", 128, 1), ("gru", 128, 31), ("gru", 512, 2), ("lstm", 256, 6)):
        model = models.torch_model(models.ModelKey(cell, hidden))
        proto = to_onnx_proto(model)
        assert chunk_threshold(read_weights(proto, StreamSpec.for_model(model.config))) == want


def test_export_writes_the_auto_form_by_default_and_form_overrides(tmp_path, capsys) -> None:
    from edgernn.cli import main

    ckpt = tmp_path / "gru.safetensors"
    save_checkpoint(ckpt, tiny_model("gru", layers=2), {"lr": 0.01}, {"name": "textgen", "vocabulary": "ab"})
    out = tmp_path / "m.onnx"
    assert main(["export", str(ckpt), "-o", str(out), "--validate", "--steps", "200"]) == 0
    assert "fp32 auto form" in capsys.readouterr().out
    engine = Engine.load(out)
    assert engine.spec.provenance["form"] == "auto" and engine.spec.provenance["parity"]["max_abs"] <= 1e-5
    native = tmp_path / "n.onnx"
    assert main(["export", str(ckpt), "-o", str(native), "--form", "native"]) == 0
    assert {"GRU"} & op_counts(native).keys() and "If" not in op_counts(native)
    q = tmp_path / "q.onnx"  # int8 is made from the native graph whatever the default form
    export_checkpoint(ckpt, q, quantize="int8", validate=False)
    with pytest.raises(ExportError, match="--form auto"):
        export_checkpoint(ckpt, tmp_path / "x.onnx", quantize="int8", form="auto")
    with pytest.raises(ExportError, match="expected one of"):
        export_checkpoint(ckpt, tmp_path / "y.onnx", form="fast")


def test_device_profiles_name_their_forms_and_export_follows_them(tmp_path) -> None:
    from edgernn.devices.profiles import load_profile, profile_names

    forms = {n: (load_profile(n).form, load_profile(n).int8_form) for n in profile_names()}
    assert forms["cpu"] == ("auto", "dynamic") and forms["cuda"] == ("native", "none")
    assert all(f == "native" for n, (f, _) in forms.items() if n not in ("cpu", "cpu-int8"))
    ckpt = tmp_path / "rnn.safetensors"
    save_checkpoint(ckpt, tiny_model("rnn"), {"lr": 0.01}, {"name": "textgen", "vocabulary": "ab"})
    spec, _ = export_checkpoint(ckpt, tmp_path / "gpu.onnx", validate=False, device="cuda")
    assert spec.provenance["form"] == "native" and "RNN" in op_counts(tmp_path / "gpu.onnx")
    spec, _ = export_checkpoint(ckpt, tmp_path / "cpu.onnx", validate=False, device="cpu")
    assert spec.provenance["form"] == "auto"
    export_checkpoint(ckpt, tmp_path / "cpu8.onnx", validate=False, device="cpu", quantize="int8")
    with pytest.raises(ExportError, match="--device cuda with --quantize int8"):
        export_checkpoint(ckpt, tmp_path / "n8.onnx", validate=False, device="cuda", quantize="int8")
