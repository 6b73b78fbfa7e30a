"""The lean all-members calls (Batch.step, step_many with equal counts in lane order): same results, same refusals.

They write every member's frames straight into the bound input buffer and test the values
there once; these tests check that they are taken (the general path is made to fail), that
they equal each stream run alone, that what they return stays the caller's, and that a bad
value or an onnxruntime failure changes no state, exactly as on the general path.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edgernn.export.parity import sample_inputs
from edgernn.runtime import Engine, InputError, RunError
from edgernn.runtime import ragged as ragged_module


def alone(path, frames: np.ndarray, start: bytes | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    s = Engine.load(path).stream()
    if start is not None:
        s.restore(start)
    return s.push(frames), s.state()


def no_general_path(monkeypatch: pytest.MonkeyPatch, engine: Engine) -> None:
    """Make the general paths fail loudly: a call that still works took the lean path."""

    def boom(*_: object, **__: object) -> None:
        raise AssertionError("took the general path")

    monkeypatch.setattr(ragged_module, "_ragged_batch", boom)
    monkeypatch.setattr(engine, "check_many", boom)


@pytest.mark.parametrize("key", ["gru", "frames-lstm"])
def test_lean_calls_are_taken_and_equal_each_stream_alone(exported, monkeypatch, key: str) -> None:
    model, path = exported[key]
    engine = Engine.load(path)
    batch = engine.batch()
    members = [batch.join() for _ in range(4)]
    starts = [m.snapshot() for m in members]
    chunks = [np.ascontiguousarray(sample_inputs(model, 7, seed=i)) for i in range(4)]
    steps = np.stack([sample_inputs(model, 1, seed=10 + i)[0] for i in range(4)])
    no_general_path(monkeypatch, engine)
    outs = engine.step_many(members, chunks)
    stepped = batch.step(steps)
    monkeypatch.undo()
    for i, m in enumerate(members):
        frames = np.concatenate([chunks[i], steps[i : i + 1]])
        ref, state = alone(path, frames, starts[i])
        worst = max(np.abs(outs[i] - ref[:7]).max(), np.abs(stepped[i] - ref[7]).max())
        assert worst <= 1e-6, f"member {i}: max |diff| vs alone {worst:.2e}"
        assert max(np.abs(m.state()[k] - state[k]).max() for k in state) <= 1e-6


def test_lean_outputs_stay_the_callers_after_the_next_call(exported) -> None:
    model, path = exported["lstm"]
    engine = Engine.load(path)
    batch = engine.batch()
    members = [batch.join() for _ in range(3)]
    chunks = [sample_inputs(model, 5, seed=i) for i in range(3)]
    first = engine.step_many(members, chunks)
    kept = [o.copy() for o in first]
    step = batch.step(np.array([1, 2, 3]))
    kept_step = step.copy()
    engine.step_many(members, chunks)  # the same bound buffers are written again
    batch.step(np.array([4, 5, 6]))
    for o, k in zip(first, kept):
        np.testing.assert_array_equal(o, k)
    np.testing.assert_array_equal(step, kept_step)


def test_lean_calls_refuse_bad_values_like_the_general_path_and_change_nothing(exported) -> None:
    model, path = exported["gru"]
    engine = Engine.load(path)
    vocab = engine.vocab_size
    batch = engine.batch()
    members = [batch.join() for _ in range(3)]
    batch.step(np.array([1, 2, 3]))
    before = [m.snapshot() for m in members]
    good = [np.array([1, 2, 3]), np.array([4, 5, 6]), np.array([7, 8, 9])]
    for bad in (vocab, -1, 1 << 62):
        frames = [good[0], np.array([1, bad, 2]), good[2]]
        with pytest.raises(InputError, match="token ids must be in"):
            engine.step_many(members, frames)
        with pytest.raises(InputError, match="token ids must be in"):
            batch.step(np.array([1, bad, 2]))
    with pytest.raises(InputError, match="expected integer tokens"):
        batch.step(np.array([True, False, True]))
    for m, b in zip(members, before):
        assert m.snapshot() == b
    small = engine.step_many(members, [g.astype(np.int32) for g in good])  # converted, as the general path does
    for i in range(len(members)):
        ref, _ = alone(path, good[i], before[i])
        assert np.abs(small[i] - ref).max() <= 1e-6

    model, path = exported["frames-gru"]
    engine = Engine.load(path)
    batch = engine.batch()
    members = [batch.join() for _ in range(2)]
    before = [m.snapshot() for m in members]
    ok = np.ones((3, 6), np.float32)
    for bad in (np.nan, np.inf, -np.inf):
        hole = ok.copy()
        hole[1, 4] = bad
        with pytest.raises(InputError, match="NaN or Inf"):
            engine.step_many(members, [ok, hole])
        with pytest.raises(InputError, match="NaN or Inf"):
            batch.step(hole[:2])
    for m, b in zip(members, before):
        assert m.snapshot() == b


def test_lean_call_failing_in_onnxruntime_changes_nothing(exported) -> None:
    """Without a vocabulary in the spec no id test runs; a bad id fails in Gather: RunError, no state changed."""
    model, path = exported["gru"]
    engine = Engine.load(path, spec=replace(Engine.load(path).spec, model=None))
    batch = engine.batch()
    members = [batch.join() for _ in range(3)]
    batch.step(np.array([1, 2, 3]))
    before = [m.snapshot() for m in members]
    with pytest.raises(RunError, match="onnxruntime failed"):
        engine.step_many(members, [np.array([1, 2]), np.array([3, 10_000]), np.array([4, 5])])
    with pytest.raises(RunError):
        batch.step(np.array([1, 10_000, 3]))
    for m, b in zip(members, before):
        assert m.snapshot() == b
    outs = engine.step_many(members, [np.array([1, 2]), np.array([3, 4]), np.array([4, 5])])
    for i, f in enumerate(([1, 2], [3, 4], [4, 5])):
        ref, _ = alone(path, np.array(f), before[i])
        assert np.abs(outs[i] - ref).max() <= 1e-6


def test_lean_views_follow_membership_and_idle_times(exported) -> None:
    model, path = exported["rnn"]
    engine = Engine.load(path)
    now = [0.0]
    batch = engine.batch(idle_after=5.0, clock=lambda: now[0])
    a, b = batch.join(), batch.join()
    now[0] = 1.0
    batch.step(np.array([1, 2]))  # both used at 1
    now[0] = 3.0
    batch.step_many({a: [3]})  # a alone at 3
    c = batch.join()  # joins at 3, after the lean views were made: new views
    start = c.snapshot()
    outs = engine.step_many([a, b, c], [np.array([5, 6])] * 3)
    ref, _ = alone(path, np.array([5, 6]), start)
    assert np.abs(outs[2] - ref).max() <= 1e-6
    now[0] = 7.5  # the last call (at 3) advanced every member: none idle for more than 5 s
    assert batch.evict_idle() == []
    now[0] = 8.5
    batch.step_many({a: [3]})  # a at 8.5; b and c last advanced at 3
    assert set(batch.evict_idle()) == {b, c} and batch.streams == (a,)
