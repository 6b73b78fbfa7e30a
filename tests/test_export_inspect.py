"""edgernn inspect: spec, inputs/outputs, operator counts, size, opset, providers; torch-free."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgernn.export.inspect import inspect_model
from edgernn.export.quantize import quantize_model


def test_inspect_reports_the_graph_and_the_spec(exported) -> None:
    model, path = exported["lstm"]
    info = inspect_model(path)
    assert info["size_bytes"] == path.stat().st_size and info["opsets"] == {"ai.onnx": 17}
    assert [(t["name"], t["shape"]) for t in info["inputs"]] == [
        ("x", ["batch", "time"]), ("h", [2, "batch", 32]), ("c", [2, "batch", 32])]
    assert [t["name"] for t in info["outputs"]] == ["y", "h_out", "c_out"]
    assert info["operators"]["LSTM"] == 2 and info["operators"]["Gather"] == 1
    n_params = sum(p.numel() for p in model.parameters())
    assert info["weights"]["float"] == n_params  # every weight, once
    assert info["spec"]["model"]["cell"] == "lstm" and info["spec"]["version"] == 1
    assert info["providers"]["CPUExecutionProvider"] == "ok"


def test_inspect_counts_ops_inside_subgraphs_and_int8_weights(exported, tmp_path) -> None:
    out = tmp_path / "gru.int8.onnx"
    quantize_model(exported["gru"][1], out)
    info = inspect_model(out, providers=False)
    assert info["operators"]["com.microsoft.DynamicQuantizeMatMul"] == 6  # 2 of them inside Scan bodies
    assert info["operators"]["Scan"] == 2 and "GRU" not in info["operators"]
    assert info["weights"]["int8"] > info["weights"]["float"]
    assert info["spec"]["provenance"]["quantization"]["dtype"] == "int8"
    assert info["providers"] == {}


def test_a_crashing_provider_is_reported_not_fatal(exported, tmp_path) -> None:
    """onnxruntime 1.32's CPU EP segfaults on fp16 graphs at ENABLE_ALL: inspect must still answer."""
    out = tmp_path / "gru.fp16.onnx"
    quantize_model(exported["frames-gru"][1], out, mode="fp16")
    info = inspect_model(out)
    assert info["weights"].get("float16", 0) > 0
    verdict = info["providers"]["CPUExecutionProvider"]
    assert verdict == "ok" or verdict.startswith(("crashed", "load failed", "run failed"))


def test_cli_inspect_runs_without_torch(exported) -> None:
    _, path = exported["rnn"]
    code = (
        "import sys\nsys.modules['torch'] = None\n"
        f"from edgernn.cli import main\nsys.exit(main(['inspect', {str(path)!r}, '--json']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["operators"]["RNN"] == 2 and info["providers"]["CPUExecutionProvider"] == "ok"
    text = subprocess.run([sys.executable, "-m", "edgernn", "inspect", str(path), "--no-providers"],
                          capture_output=True, text=True, timeout=120)
    assert "stream spec v1: rnn tokens" in text.stdout and "state h -> h_out" in text.stdout


def test_inspect_refuses_a_non_onnx_file(tmp_path) -> None:
    from edgernn.runtime import ModelLoadError

    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="not a readable ONNX model"):
        inspect_model(bad)
