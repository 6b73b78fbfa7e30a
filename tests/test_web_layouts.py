"""The JS engine on layouts no shipped or third-party model has: two streamed inputs, one with its
time axis last ``(batch, 2, time)``, a state whose batch axis is last ``(8, batch)``, an output with
its time axis last ``(batch, 8, time)``, and a float constant. A small GRU exported here (torch,
``dynamo=False``) with a hand-written spec; JS == Python over 500 carried steps, step and pushed,
snapshots both ways, a frame of the wrong size refused with the state kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from webpage import Site, check_case, need_browser

from edgernn.runtime import Engine
from edgernn.runtime.spec import StreamSpec

SPEC = {
    "version": 2, "model": None, "task": {}, "provenance": {}, "context": None, "window": None,
    "inputs": [{"name": "a", "dtype": "float32", "shape": ["batch", "time", 3]},
               {"name": "b", "dtype": "float32", "shape": ["batch", 2, "time"]}],
    "constants": [{"name": "gain", "dtype": "float32", "shape": [1], "value": [0.5]}],
    "states": [{"input": "h", "output": "h_out", "dtype": "float32", "shape": [8, "batch"], "init": 0.0}],
    "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch", 8, "time"]}],
}  # fmt: skip


def export(path: Path) -> None:
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gru = torch.nn.GRU(5, 8, batch_first=True)

        def forward(self, a, b, gain, h):  # type: ignore[no-untyped-def]
            x = torch.cat([a, b.transpose(1, 2) * gain], dim=2)  # (batch, time, 5)
            y, hn = self.gru(x, h.transpose(0, 1).unsqueeze(0).contiguous())
            return y.transpose(1, 2), hn[0].transpose(0, 1)  # (batch, 8, time), (8, batch)

    torch.manual_seed(0)
    net = Net().eval()
    args = (torch.zeros(1, 4, 3), torch.zeros(1, 2, 4), torch.tensor([0.5]), torch.zeros(8, 1))
    axes = {"a": {0: "batch", 1: "time"}, "b": {0: "batch", 2: "time"}, "h": {1: "batch"},
            "y": {0: "batch", 2: "time"}, "h_out": {1: "batch"}}  # fmt: skip
    torch.onnx.export(net, args, str(path), input_names=["a", "b", "gain", "h"], output_names=["y", "h_out"],
                      dynamic_axes=axes, dynamo=False, opset_version=17)  # fmt: skip


def test_two_inputs_time_last_batch_last_state_and_a_constant(tmp_path: Path) -> None:
    import json

    from edgernn.web.parity import Case

    need_browser()
    model = tmp_path / "layouts.onnx"
    export(model)
    spec = StreamSpec.from_json(json.dumps(SPEC))
    site = Site(model, tmp_path / "site", spec=spec)
    engine = Engine.load(model, spec=spec)
    try:
        rng = np.random.default_rng(3)
        items = {"a": rng.normal(size=(500, 3)).astype(np.float32), "b": rng.normal(size=(500, 2)).astype(np.float32)}
        case = Case(items, steps=500, step_items=1, pushes=[70, 230, 200], chunk=64, snapshot_after=2,
                    after_start=40, after_pushes=[64, 1, 63], bad="wide")  # fmt: skip
        got = check_case(engine, site, case, "layouts")
    finally:
        site.close()
    assert got["badInput"].startswith("InputError: step: input 'a' frame 0 has 4 values, expected 3"), got["badInput"]


def test_per_stream_memory_streams_like_python(tmp_path: Path) -> None:
    """A decoder step attending over per-stream memory with a mask (spec version 3, tests/memory_models.py):
    JS == Python over 500 steps, pushed, snapshots (format 3, memory inside) both ways."""
    from memory_models import MEM, VOCAB
    from memory_models import export as export_memory

    from edgernn.web.parity import Case

    need_browser()
    model = tmp_path / "attn.onnx"
    export_memory(model)
    site = Site(model, tmp_path / "site")
    engine = Engine.load(model)
    try:
        rng = np.random.default_rng(4)
        items = rng.integers(0, VOCAB, size=500).astype(np.int64)
        memory = {"enc": rng.normal(size=(7, MEM)).astype(np.float32)}
        case = Case(items, steps=500, step_items=1, pushes=[100, 250, 150], chunk=64, snapshot_after=2,
                    after_start=120, after_pushes=[64, 16], bad=VOCAB, memory=memory)  # fmt: skip
        got = check_case(engine, site, case, "memory")
    finally:
        site.close()
    # a foreign spec has no vocabulary: the graph refuses the id, as in Python (RunError), the state kept
    assert got["badInput"].startswith("RunError: step: onnxruntime failed:"), got["badInput"]
