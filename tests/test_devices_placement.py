"""No silent fallback: where nodes run is reported; strict profiles refuse a missing provider or a fallback."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from edgernn.cli import main as edgernn_main
from edgernn.devices import FallbackWarning, load_engine
from edgernn.devices.placement import is_quantized_op
from edgernn.export.parity import sample_inputs
from edgernn.runtime import Engine
from edgernn.runtime.errors import ProfileError

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


def test_cpu_profile_places_every_node_on_the_cpu_provider(exported) -> None:
    _, path = exported["gru"]
    engine, report = load_engine(path, "cpu")
    assert report.ok and report.missing == () and report.fallback_nodes == ()
    assert report.registered == ("CPUExecutionProvider",)
    assert set(report.counts()) == {"CPUExecutionProvider"}
    assert sum(report.counts().values()) == len(report.nodes) >= 2
    assert sum(n.op == "GRU" for n in report.nodes) == 2  # one GRU node per layer (layers=2)
    assert engine.session.end_profiling() == ""  # profiling stopped after the probe: later calls pay nothing
    assert str(report).startswith(f"cpu: all {len(report.nodes)} node(s) on the profile's providers")


def test_loaded_engine_streams_like_a_plain_engine(exported) -> None:
    model, path = exported["frames-lstm"]
    xs = sample_inputs(model, 40, seed=1)
    engine, _ = load_engine(path, "cpu")
    plain = Engine.load(path)
    a, b = engine.stream(), plain.stream()
    np.testing.assert_array_equal(np.stack([a.step(x) for x in xs]), np.stack([b.step(x) for x in xs]))


@pytest.mark.skipif(HAS_CUDA, reason="CUDA is available here: the missing-provider path cannot be shown")
def test_strict_profile_with_a_missing_provider_refuses_with_reason(exported) -> None:
    _, path = exported["gru"]
    with pytest.raises(ProfileError, match=r"profile 'cuda' needs CUDAExecutionProvider: needs the onnxruntime-gpu"):
        load_engine(path, "cuda")
    assert edgernn_main(["devices", "check", str(path), "--device", "tensorrt"]) == 1


@pytest.mark.skipif(HAS_CUDA, reason="CUDA is available here: the fallback path cannot be shown")
def test_non_strict_fallback_is_reported_node_by_node(exported) -> None:
    model, path = exported["frames-gru"]
    with pytest.warns(FallbackWarning, match=r"cuda: NOT as requested"):
        engine, report = load_engine(path, "cuda", strict=False)
    assert not report.ok
    assert [m[0] for m in report.missing] == ["CUDAExecutionProvider"]
    assert len(report.fallback_nodes) == len(report.nodes) > 0
    assert {n.provider for n in report.fallback_nodes} == {"CPUExecutionProvider"}
    assert "missing CUDAExecutionProvider" in report.summary()
    assert f"{len(report.nodes)} node(s) fell back to CPUExecutionProvider" in report.summary()
    assert "<- fallback" in str(report)
    stream = engine.stream()  # state stays on the host: the CUDA stream is not used without CUDA
    assert type(stream).__name__ == "Stream"
    xs = sample_inputs(model, 20, seed=2)
    ref = Engine.load(path).stream()
    np.testing.assert_allclose(stream.push(xs), ref.push(xs), atol=1e-6)


def test_int8_profile_refuses_an_fp32_model(exported) -> None:
    _, path = exported["lstm"]
    with pytest.raises(ProfileError, match=r"'cpu-int8' \(strict\) refused: precision int8, but the model has no quan"):
        load_engine(path, "cpu-int8")


def test_int8_profile_accepts_a_quantized_model(exported, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model, path = exported["frames-lstm"]
    q = tmp_path / "lstm.int8.onnx"
    quantize_dynamic(str(path), str(q), weight_type=QuantType.QInt8)
    engine, report = load_engine(q, "cpu-int8")
    assert report.ok
    assert any(n.op == "DynamicQuantizeLSTM" for n in report.quantized_nodes)
    xs = sample_inputs(model, 100, seed=5)
    err = np.abs(engine.stream().push(xs) - Engine.load(path).stream().push(xs)).max()
    assert 0 < err < 0.05  # int8 is close to fp32, and not identical


def test_quantized_op_names() -> None:
    assert all(map(is_quantized_op, ["DynamicQuantizeMatMul", "MatMulInteger", "QLinearConv", "MatMulNBits"]))
    assert not any(map(is_quantized_op, ["MatMul", "GRU", "LSTM", "Gemm"]))


def test_devices_check_cli_prints_the_report(exported, capsys: pytest.CaptureFixture[str]) -> None:
    _, path = exported["gru"]
    assert edgernn_main(["devices", "check", str(path), "--device", "cpu"]) == 0
    assert "CPUExecutionProvider: " in capsys.readouterr().out
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the CLI prints the report itself, it does not warn twice
        code = edgernn_main(["devices", "check", str(path), "--device", "openvino", "--no-strict", "--json"])
    out = capsys.readouterr().out
    if "OpenVINOExecutionProvider" not in ort.get_available_providers():
        assert code == 1 and '"ok": false' in out and '"provider": "OpenVINOExecutionProvider"' in out


def test_allow_on_cpu_lets_only_the_listed_op_types_stay_on_the_cpu() -> None:
    from edgernn.devices.placement import NodePlacement, PlacementReport

    nodes = (
        NodePlacement("/rnn/GRU", "GRU", "CUDAExecutionProvider"),
        NodePlacement("/Shape", "Shape", "CPUExecutionProvider"),
        NodePlacement("/head/MatMul", "MatMul", "CPUExecutionProvider"),
    )
    base = {"profile": "cuda", "requested": ("CUDAExecutionProvider",), "registered": ("CUDAExecutionProvider",
            "CPUExecutionProvider"), "missing": (), "allowed": ("CUDAExecutionProvider",), "nodes": nodes}  # fmt: skip
    plain = PlacementReport(**base)  # type: ignore[arg-type]
    assert [n.node for n in plain.fallback_nodes] == ["/Shape", "/head/MatMul"] and not plain.ok
    lenient = PlacementReport(**base, allow_on_cpu=("Shape",))  # type: ignore[arg-type]
    assert [n.node for n in lenient.fallback_nodes] == ["/head/MatMul"]
    assert lenient.summary() == "1 node(s) fell back to CPUExecutionProvider"
    assert "CPUExecutionProvider: 2 node(s)  <- 1 fallback: /Shape (Shape), /head/MatMul (MatMul)" in str(lenient)
    assert PlacementReport(**base, allow_on_cpu=("Shape", "MatMul")).ok  # type: ignore[arg-type]
