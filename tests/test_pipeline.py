"""ONNX == PyTorch over carried steps; chunked push == steps; reset == fresh stream."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CELLS, tiny_model

from edgernn.export.parity import check_parity, sample_inputs
from edgernn.runtime import Engine, InputError, ParityError


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("kind", ["tokens", "frames"])
def test_onnx_matches_pytorch_over_500_carried_steps(exported, cell: str, kind: str) -> None:
    model, path = exported[cell if kind == "tokens" else f"frames-{cell}"]
    report = check_parity(model, path, steps=500, tolerance=1e-5)
    print(report)
    assert report.steps == 500
    assert report.max_abs <= 1e-5


def test_parity_error_names_output_and_difference(exported) -> None:
    _, path = exported["gru"]
    other = tiny_model("gru", seed=1)  # same cell and sizes, different weights: must not pass
    with pytest.raises(ParityError, match="output 'y': max"):
        check_parity(other, path, steps=50)


@pytest.mark.parametrize("cell", CELLS)
def test_chunked_push_equals_frame_by_frame(exported, cell: str) -> None:
    model, path = exported[cell]
    engine = Engine.load(path)
    xs = sample_inputs(model, 300, seed=3)
    a, b = engine.stream(), engine.stream()
    stepped = np.stack([a.step(x) for x in xs])
    pushed = np.concatenate([b.push(xs[:1]), b.push(xs[1:130], chunk=17), b.push(xs[130:], chunk=64)])
    assert pushed.shape == stepped.shape == (300, model.config.output_size)
    assert np.abs(pushed - stepped).max() <= 1e-6
    for k, v in a.state().items():
        np.testing.assert_allclose(v, b.state()[k], atol=1e-6)


def test_reset_stream_equals_fresh_stream(exported) -> None:
    model, path = exported["lstm"]
    engine = Engine.load(path)
    xs = sample_inputs(model, 50, seed=4)
    used = engine.stream()
    used.push(xs[::-1])
    assert np.abs(used.state()["h"]).max() > 0
    used.reset()
    fresh = engine.stream()
    np.testing.assert_array_equal(np.stack([used.step(x) for x in xs]), np.stack([fresh.step(x) for x in xs]))


def test_bad_frame_is_refused_and_state_is_kept(exported) -> None:
    _, path = exported["frames-gru"]
    stream = Engine.load(path).stream()
    stream.step(np.ones(6, np.float32))
    before = stream.state()
    with pytest.raises(InputError, match=r"input 'x': frame axis 0 has size 4, expected 6"):
        stream.step(np.ones(4, np.float32))
    with pytest.raises(InputError, match="NaN or Inf"):
        stream.push(np.full((3, 6), np.nan, np.float32))
    after = stream.state()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])


def test_out_of_vocabulary_token_is_refused(exported) -> None:
    model, path = exported["rnn"]
    stream = Engine.load(path).stream()
    with pytest.raises(InputError, match=r"token ids must be in \[0, "):
        stream.step(model.config.input_size)
