"""The windowed-attention cell under the stream contract: streamed == whole sequence, ONNX ==
PyTorch over 1000 carried steps (step and chunks, batch > 1), the engine's snapshots and batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgernn.runtime import Engine  # noqa: E402
from edgernn.runtime.errors import SpecError  # noqa: E402
from edgernn.runtime.spec import ModelConfig, StreamSpec  # noqa: E402
from edgernn.train.model import build_model  # noqa: E402

CFG = ModelConfig(cell="attention", input_kind="tokens", input_size=30, hidden_size=32, num_layers=2,
                  output_size=30, window=16, heads=4)  # fmt: skip


def test_state_is_bounded_and_declared_in_the_spec() -> None:
    spec = StreamSpec.for_model(CFG)
    assert [(s.input, s.output, s.shape) for s in spec.states] == [
        ("k", "k_out", (2, "batch", 16, 32)), ("v", "v_out", (2, "batch", 16, 32)), ("pos", "pos_out", (1, "batch", 1))]
    assert StreamSpec.from_json(spec.to_json()) == spec
    assert "window" not in StreamSpec.for_model(ModelConfig("gru", "tokens", 30, 32, 1, 30)).to_dict()["model"]
    with pytest.raises(SpecError, match="heads >= 1 dividing"):
        ModelConfig(cell="attention", input_kind="tokens", input_size=30, hidden_size=30, num_layers=1,
                    output_size=30, window=8, heads=4)  # fmt: skip


def test_streaming_equals_the_whole_sequence_and_the_window_bounds_memory() -> None:
    torch.manual_seed(0)
    model = build_model(CFG).eval()
    x = torch.randint(0, 30, (3, 120))
    with torch.no_grad():
        whole, _ = model(x)
        state, steps = None, []
        for t in range(120):
            y, state = model.step(x[:, t], state)
            steps.append(y)
        # a token more than `window` back is invisible: change it and nothing after the window moves
        x2 = x.clone()
        x2[:, 10] = (x2[:, 10] + 1) % 30
        other, _ = model(x2)
    d = float((torch.stack(steps, 1) - whole).abs().max())
    print(f"attention: stepped vs whole sequence over 120 tokens: max |diff| {d:.2e}")
    assert d < 1e-5
    past = 10 + CFG.window * CFG.num_layers + 1  # each layer looks `window` back: the receptive field
    assert float((other[:, past:] - whole[:, past:]).abs().max()) == 0.0
    assert float((other[:, 10] - whole[:, 10]).abs().max()) > 0


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from edgernn.export.pipeline import export_checkpoint
    from edgernn.train.checkpoint import save_checkpoint

    torch.manual_seed(1)
    model = build_model(CFG)
    root = tmp_path_factory.mktemp("attention")
    save_checkpoint(root / "model.safetensors", model, {}, {"name": "test"})
    report = export_checkpoint(root / "model.safetensors", root / "a.onnx", steps=1000)
    return root / "a.onnx", report


def test_onnx_equals_pytorch_over_1000_carried_steps(exported: tuple) -> None:
    path, report = exported
    parity = Engine.load(path).spec.provenance["parity"]
    print(f"attention export: ONNX vs PyTorch over 1000 carried steps, max |diff| {parity['modes']}")
    assert parity["steps"] == 1000 and parity["max_abs"] < 1e-5 and set(parity["modes"]) >= {"step/b3", "chunks/b3"}


def test_the_engine_snapshots_and_batches_the_attention_stream(exported: tuple) -> None:
    engine = Engine.load(exported[0])
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 30, size=(3, 200))
    alone = [engine.stream().push(tokens[i], chunk=32) for i in range(3)]
    batch = engine.batch()
    for _ in range(3):
        batch.join()
    together = np.stack([batch.step(tokens[:, t]) for t in range(200)], axis=1)
    worst = max(float(np.abs(together[i] - alone[i]).max()) for i in range(3))
    s = engine.stream()
    s.push(tokens[0, :90])
    blob = s.snapshot()
    want = s.push(tokens[0, 90:])
    t = engine.stream()
    t.restore(blob)
    print(f"attention: 3 streams batched vs alone over 200 tokens: max |diff| {worst:.2e}; snapshot {len(blob)} bytes")
    assert worst <= 1e-5 and np.array_equal(t.push(tokens[0, 90:]), want)
