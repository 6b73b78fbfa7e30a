"""Three-step validation (names, shapes, values) over >= 1000 carried steps, batch 1 and batch 3."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import CELLS, tiny_model

from edgernn.export.errors import OutputNameError, OutputShapeError, OutputValueError
from edgernn.export.parity import check_parity, sample_batch, torch_outputs
from edgernn.export.validate import check_shapes, random_chunks
from edgernn.runtime import ParityError


@pytest.mark.parametrize("cell", CELLS)
def test_1000_carried_steps_all_modes_all_outputs(exported, cell: str) -> None:
    model, path = exported[cell]
    report = check_parity(model, path, steps=1000, tolerance=1e-5, batch=3)
    print(cell, report)
    assert report.steps == 1000 and report.batch == 3
    assert set(report.modes) == {"step/b1", "chunks/b1", "step/b3", "chunks/b3"}
    want = {"y", "h_out", "c_out"} if cell == "lstm" else {"y", "h_out"}
    assert set(report.outputs) == want
    assert 0.0 <= report.max_abs <= 1e-5
    assert report.to_dict()["max_abs"] == report.max_abs


def test_random_chunks_cover_the_steps_exactly() -> None:
    sizes = random_chunks(1000, np.random.default_rng(0))
    assert sum(sizes) == 1000 and min(sizes) >= 1 and max(sizes) <= 96 and len(set(sizes)) > 5


def test_step1_names_a_missing_state_output(exported) -> None:
    gru, path = exported["gru"]
    lstm = tiny_model("lstm")  # the torch side promises c / c_out, the graph has none
    with pytest.raises(OutputNameError, match=r"missing \['c'\]|missing \['c_out'\]"):
        check_parity(lstm, path, steps=20)


def test_step2_names_the_output_and_both_shapes() -> None:
    got = {"y": np.zeros((1, 3, 5)), "h_out": np.zeros((2, 1, 8))}
    want = {"y": np.zeros((1, 3, 5)), "h_out": np.zeros((2, 1, 9))}
    with pytest.raises(OutputShapeError, match=r"output 'h_out': shape \(2, 1, 8\), the reference has \(2, 1, 9\)"):
        check_shapes(got, want, "probe")


def test_step3_names_output_and_max_difference(exported) -> None:
    _, path = exported["rnn"]
    other = tiny_model("rnn", seed=3)
    says = r"output 'y': max \|reference - onnx\| [0-9.e+-]+ exceeds the effective tolerance 1e-05"
    with pytest.raises(OutputValueError, match=says):
        check_parity(other, path, steps=30)


def test_a_tampered_weight_is_caught_and_is_a_parity_error(exported, tmp_path) -> None:
    model, path = exported["frames-gru"]
    proto = onnx.load(str(path))
    head = next(i for i in proto.graph.initializer if i.name == "model.head.bias")
    values = onnx.numpy_helper.to_array(head).copy()
    values[0] += 1e-3
    head.CopyFrom(onnx.numpy_helper.from_array(values, head.name))
    bad = tmp_path / "bad.onnx"
    onnx.save(proto, str(bad))
    with pytest.raises(ParityError) as info:
        check_parity(model, bad, steps=20)
    assert "output 'y'" in str(info.value) and "1e-05" in str(info.value)


def test_batch_reference_lane0_equals_single_lane(exported) -> None:
    model, _ = exported["lstm"]
    xs = sample_batch(model, 40, 3, seed=5)
    batched = torch_outputs(model, xs)
    single = torch_outputs(model, xs[:1])
    assert np.abs(batched["y"][:1] - single["y"]).max() <= 1e-6
    assert batched["c_out"].shape == (2, 3, 32)
