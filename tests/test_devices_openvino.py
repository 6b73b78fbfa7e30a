"""The OpenVINO execution provider for real (``make openvino``: onnxruntime-openvino in .venv-openvino).

onnxruntime-openvino replaces onnxruntime, so these tests run in their own environment, on
models exported beforehand by the main one (``tests/devices_models.py``; this module needs
no torch). The default suite collects them and skips them with the reason.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from edgernn.devices import load_engine
from edgernn.devices.auto import choose_device
from edgernn.devices.profiles import ProviderEntry, load_profile
from edgernn.runtime.errors import ProfileError
from edgernn.runtime.latency import measure

pytestmark = [
    pytest.mark.openvino,
    pytest.mark.skipif(
        "OpenVINOExecutionProvider" not in ort.get_available_providers(),
        reason="OpenVINOExecutionProvider is not in this onnxruntime: run `make openvino` (its own venv)",
    ),
]
MODELS = Path(os.environ.get("EDGERNN_DEVICE_MODELS", "build/device-models"))
CELLS = ("rnn", "gru", "lstm")
RESULTS = Path(os.environ.get("EDGERNN_OPENVINO_RESULTS", "build/openvino-results.json"))


def model(name: str) -> Path:
    path = MODELS / f"{name}.onnx"
    if not path.is_file():
        pytest.skip(f"{path} is missing: export with `.venv/bin/python tests/devices_models.py {MODELS}`")
    return path


def frames(path: Path, n: int, seed: int = 0) -> np.ndarray:
    engine, _ = load_engine(path, "cpu")
    rng = np.random.default_rng(seed)
    if engine.vocab_size is not None:
        return rng.integers(0, engine.vocab_size, size=n, dtype=np.int64)
    return rng.standard_normal((n, *engine.frame_shape)).astype(np.float32)


@pytest.mark.parametrize("name", ["rnn", "gru", "lstm", "frames-gru"])
def test_every_node_runs_on_openvino(name: str) -> None:
    _, report = load_engine(model(name), "openvino")
    assert report.ok, str(report)
    assert set(report.counts()) == {"OpenVINOExecutionProvider"}
    assert report.registered[0] == "OpenVINOExecutionProvider"


@pytest.mark.parametrize("cell", CELLS)
def test_openvino_matches_cpu_over_500_carried_steps(cell: str) -> None:
    path = model(f"frames-{cell}")
    xs = frames(path, 500, seed=1)
    ov, _ = load_engine(path, "openvino")
    cpu, _ = load_engine(path, "cpu")
    a, b = ov.stream(), cpu.stream()
    stepped = np.stack([a.step(x) for x in xs])
    ref = np.stack([b.step(x) for x in xs])
    err = float(np.abs(stepped - ref).max())
    pushed = ov.stream().push(xs, chunk=50)
    err_push = float(np.abs(pushed - ref).max())
    print(f"{cell}: openvino vs cpu over 500 carried steps: step max |diff| {err:.2e}, push(50) {err_push:.2e}")
    assert stepped.shape == ref.shape == (500, 3)
    assert err <= 1e-5 and err_push <= 1e-5
    for k, v in a.state().items():
        np.testing.assert_allclose(v, b.state()[k], atol=1e-5)


def test_strict_mode_catches_openvinos_silent_fallback() -> None:
    """An unknown device makes onnxruntime drop the OpenVINO provider and run on the CPU without an error."""
    bad = load_profile("openvino").with_changes(
        provider_entries=(ProviderEntry("OpenVINOExecutionProvider", {"device_type": "NPU", "precision": "FP32"}),)
    )
    with pytest.raises(ProfileError, match=r"did not start in this session.*node\(s\) fell back to CPUExecutionPro"):
        load_engine(model("frames-gru"), bad)


def test_openvino_latency_against_the_cpu_provider() -> None:
    """Per-step latency, batch 1, and the auto choice at batch 1 and batch 16 × chunk 16; written to RESULTS."""
    path = model("frames-gru")
    x = frames(path, 1)[0]
    out: dict[str, object] = {"onnxruntime": ort.__version__, "model": "frames-gru hidden 64, 2 layers"}
    p50 = {}
    for name in ("cpu", "openvino"):
        stream = load_engine(path, name)[0].stream()
        stats = measure(lambda s=stream: s.step(x), calls=2000, warmup=200)
        p50[name] = stats.p50_us
        out[f"step_{name}"] = {"p50_us": stats.p50_us, "p99_us": stats.p99_us}
    out["openvino_over_cpu"] = p50["openvino"] / p50["cpu"]
    for batch, chunk in ((1, 1), (16, 16)):
        choice = choose_device(path, batch, chunk, calls=300, names=["cpu", "openvino"])
        out[f"auto_b{batch}_t{chunk}"] = {
            "chosen": choice.chosen,
            **{c.profile: c.p50_us for c in choice.candidates},
        }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    assert 0 < p50["cpu"] < 10_000 and 0 < p50["openvino"] < 10_000
    assert {"cpu", "openvino"} >= {out["auto_b1_t1"]["chosen"]}  # type: ignore[index]


# Char models: max |qdq - fp32| of the softmax probabilities; frames models: of y / rms(fp32 y). These
# are untrained, 2 layers: the frames RNN's outputs are tiny (its dynamic int8 form is held to 5e-2 in
# tests/test_export_quantize.py for the same reason), so its bound is looser and its states are held
# to 1e-2; the trained models' figures (bench/results/qdq_openvino.md) are under 2e-2.
@pytest.mark.parametrize(
    ("name", "bound"),
    [("rnn", 2e-2), ("gru", 2e-2), ("lstm", 2e-2), ("frames-rnn", 6e-2), ("frames-gru", 2e-2), ("frames-lstm", 2e-2)],
)
def test_qdq_int8_runs_whole_on_openvino_close_to_fp32_over_1000_carried_steps(name: str, bound: float) -> None:
    """The openvino profile's int8 form (static QDQ, one step per call) against the fp32 graph on OpenVINO."""
    from edgernn.export.validate import normaliser

    fp32, _ = load_engine(model(name), "openvino")
    qdq, report = load_engine(model(f"{name}.qdq"), "openvino")
    assert report.ok and set(report.counts()) == {"OpenVINOExecutionProvider"}, str(report)
    xs = frames(model(name), 1000, seed=4)
    a, b = fp32.stream(), qdq.stream()
    ref = np.stack([a.step(x) for x in xs])[None]
    got = np.stack([b.step(x) for x in xs])[None]
    first = fp32.spec.outputs[0].name
    norm = normaliser(fp32.spec, {first: ref})
    err = float(np.abs(norm(first, got) - norm(first, ref)).max())
    pushed = qdq.stream().push(xs, chunk=64)  # the runtime loops time one frame per call: the same values
    state_err = max(float(np.abs(v - b.state()[k]).max()) for k, v in a.state().items() if k.startswith("h"))
    print(f"{name}: qdq int8 vs fp32 on OpenVINO over 1000 carried steps: max |diff| (normalised) {err:.2e}, "
          f"h {state_err:.2e}")  # fmt: skip
    assert 0.0 < err <= bound and state_err <= 1e-2  # > 0: the products really are int8
    np.testing.assert_allclose(pushed, got[0], rtol=0, atol=1e-6)
