"""edgernn export end to end, and bad input: foreign / broken checkpoints, outputs that exist or cannot be written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import tiny_model
from safetensors.torch import load_file, save_file

from edgernn.cli import main
from edgernn.export.errors import ExportError
from edgernn.export.pipeline import export_checkpoint
from edgernn.runtime import CheckpointError, Engine, ParityError
from edgernn.train.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "gru.safetensors"
    save_checkpoint(path, tiny_model("gru", layers=1), {"lr": 0.01}, {"name": "textgen", "vocabulary": "ab"})
    return path


def rewrite(src: Path, dst: Path, meta_edit=None, tensor_edit=None) -> Path:
    from safetensors import safe_open

    with safe_open(str(src), framework="pt") as fh:
        meta = json.loads(fh.metadata()["edgernn"])
    tensors = load_file(str(src))
    if meta_edit:
        meta_edit(meta)
    if tensor_edit:
        tensor_edit(tensors)
    save_file(tensors, str(dst), metadata={"edgernn": json.dumps(meta)})
    return dst


def test_cli_export_validate_int8_triton(ckpt, tmp_path, capsys) -> None:
    out = tmp_path / "m.int8.onnx"
    code = main(["export", str(ckpt), "-o", str(out), "--validate", "--steps", "1000", "--quantize", "int8",
                 "--triton", str(tmp_path / "repo")])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "parity over 1000 carried steps (batch 1 and 3)" in printed and "int8 vs fp32" in printed
    spec = Engine.load(out).spec  # the runtime streams the int8 graph unchanged
    parity = spec.provenance["parity"]
    assert parity["steps"] == 1000 and parity["max_abs"] <= 1e-5 and set(parity["outputs"]) == {"y", "h_out"}
    quant = spec.provenance["quantization"]
    assert quant["dtype"] == "int8" and 0 < quant["parity_vs_fp32"]["max_abs_normalised"] <= 2e-2
    assert len(spec.provenance["checkpoint_sha256"]) == 64 and len(spec.provenance["train_config_digest"]) == 16
    assert (tmp_path / "repo" / "m_int8" / "config.pbtxt").is_file()
    assert (tmp_path / "repo" / "m_int8" / "1" / "model.onnx").is_file()
    twin = Engine.load(tmp_path / "repo" / "m_int8_twin" / "1" / "model.onnx")  # the Python-backend twin's graph
    tokens = np.arange(50) % spec.model.input_size
    np.testing.assert_array_equal(twin.stream().push(tokens), Engine.load(out).stream().push(tokens))


def test_existing_output_needs_force_and_is_left_alone(ckpt, tmp_path, capsys) -> None:
    out = tmp_path / "m.onnx"
    out.write_bytes(b"precious")
    assert main(["export", str(ckpt), "-o", str(out)]) == 1
    assert "OutputExistsError" in capsys.readouterr().err and out.read_bytes() == b"precious"
    with pytest.raises(FileExistsError):  # still a FileExistsError for callers that catch that
        export_checkpoint(ckpt, out, validate=False)
    export_checkpoint(ckpt, out, validate=False, force=True)
    assert onnx.load(str(out)).graph.node


def test_unwritable_output_is_refused_before_any_work(ckpt, tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ExportError, match="cannot write into"):
        export_checkpoint(ckpt, blocker / "m.onnx", validate=False)
    with pytest.raises(ExportError, match="is a folder"):
        export_checkpoint(ckpt, tmp_path, validate=False)


def test_failed_validation_leaves_nothing_behind(ckpt, tmp_path) -> None:
    out = tmp_path / "new" / "folder" / "m.onnx"
    with pytest.raises(ParityError):
        export_checkpoint(ckpt, out, validate=True, steps=50, tolerance=0.0)  # not bit-identical: must fail
    assert list(tmp_path.iterdir()) == []


OTHER_CELL = r"tensor 'rnn\.\w+' has shape \(96(, 32)?,?\), the config needs \(128"  # GRU 3H vs LSTM 4H


@pytest.mark.parametrize(
    ("meta_edit", "tensor_edit", "message"),
    [
        (lambda m: m["model"].update(cell="lstm"), None, OTHER_CELL),
        (lambda m: m.update(format=99), None, "checkpoint format 99 is not supported"),
        (lambda m: m["model"].update(hidden_size=48), None, r"tensor 'encoder.weight' has shape \(60, 32\)"),
        (lambda m: m["model"].update(color="red"), None, r"unknown field\(s\) \['color'\]"),
        (None, lambda t: t.pop("head.bias"), r"missing \['head.bias'\]"),
        (None, lambda t: t.update(extra=torch.zeros(2)), r"unexpected \['extra'\]"),
        (None, lambda t: t.update({"head.weight": torch.zeros(60, 31)}), r"tensor 'head.weight' has shape \(60, 31\)"),
    ],
    ids=["other-cell", "other-version", "other-config", "unknown-field", "missing", "extra", "wrong-shape"],
)
def test_bad_checkpoint_is_a_typed_error_naming_the_tensor(ckpt, tmp_path, meta_edit, tensor_edit, message) -> None:
    bad = rewrite(ckpt, tmp_path / "bad.safetensors", meta_edit, tensor_edit)
    out = tmp_path / "m.onnx"
    with pytest.raises(CheckpointError, match=message):
        export_checkpoint(bad, out, validate=False)
    assert not out.exists()


def test_cli_prints_a_typed_error_not_a_traceback(ckpt, tmp_path, capsys) -> None:
    bad = rewrite(ckpt, tmp_path / "bad.safetensors", tensor_edit=lambda t: t.pop("head.bias"))
    assert main(["export", str(bad), "-o", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("edgernn export: CheckpointError:") and "head.bias" in err and "Traceback" not in err


def test_fp16_export_validates_against_fp32(ckpt, tmp_path) -> None:
    out = tmp_path / "m.fp16.onnx"
    spec, report = export_checkpoint(ckpt, out, validate=True, steps=300, quantize="fp16")
    quant = spec.provenance["quantization"]
    assert quant["dtype"] == "float16" and report is not None and report.max_abs <= 1e-5
    assert 0 < quant["parity_vs_fp32"]["max_abs_normalised"] <= 1e-2  # softmax probabilities, 300 steps
    weights = {i.data_type for i in onnx.load(str(out)).graph.initializer if len(i.dims) >= 2}
    assert weights == {onnx.TensorProto.FLOAT16}


def test_a_run_directory_exports_its_checkpoint(ckpt, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_bytes(ckpt.read_bytes())
    out = tmp_path / "m.onnx"
    from_run, _ = export_checkpoint(run, out, validate=False)
    from_file, _ = export_checkpoint(ckpt, out, validate=False, force=True)
    assert from_run.provenance["checkpoint_sha256"] == from_file.provenance["checkpoint_sha256"]
    (tmp_path / "empty").mkdir()
    assert main(["export", str(tmp_path / "empty"), "-o", str(tmp_path / "e.onnx")]) == 1
    err = capsys.readouterr().err
    assert "CheckpointError" in err and "without model.safetensors" in err and not (tmp_path / "e.onnx").exists()


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_decompose_writes_the_cell_as_matmuls_and_passes_the_same_parity_suite(cell, tmp_path, capsys) -> None:
    """--decompose: no native cell op, the same spec, validated against PyTorch like the native graph."""
    ckpt = tmp_path / f"{cell}.safetensors"
    save_checkpoint(ckpt, tiny_model(cell, layers=2), {"lr": 0.01}, {"name": "textgen", "vocabulary": "ab"})
    out = tmp_path / "m.onnx"
    assert main(["export", str(ckpt), "-o", str(out), "--validate", "--steps", "1000", "--decompose"]) == 0
    assert "fp32 decomposed" in capsys.readouterr().out
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert not ops & {"RNN", "GRU", "LSTM"} and "If" in ops  # If(time == 1): the step once, else a Scan
    engine = Engine.load(out)
    native = tmp_path / "native.onnx"
    export_checkpoint(ckpt, native, validate=False)
    reference = Engine.load(native).spec
    assert engine.spec.states == reference.states and engine.spec.outputs == reference.outputs
    parity = engine.spec.provenance["parity"]
    assert parity["steps"] == 1000 and parity["max_abs"] <= 1e-5 and "decomposed" in engine.spec.provenance["exporter"]
    with pytest.raises(ExportError, match="--decompose"):
        export_checkpoint(ckpt, tmp_path / "q.onnx", quantize="int8", decompose=True)
