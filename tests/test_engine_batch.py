"""Many streams in one call: equal to each stream alone, ragged frame counts, membership, eviction."""

from __future__ import annotations

import numpy as np
import pytest

from edgernn.export.parity import sample_inputs
from edgernn.runtime import Engine, InputError, StreamError


def alone(path, frames: np.ndarray, start: bytes | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    s = Engine.load(path).stream()
    if start is not None:
        s.restore(start)
    out = s.push(frames) if len(frames) else np.zeros((0,))
    return out, s.state()


@pytest.mark.parametrize("key", ["gru", "frames-lstm"])
def test_batch_step_equals_each_stream_alone(exported, key: str) -> None:
    model, path = exported[key]
    engine = Engine.load(path)
    batch = engine.batch(max_streams=8)
    members = [batch.join() for _ in range(5)]
    xs = np.stack([sample_inputs(model, 40, seed=i) for i in range(5)])  # (5, 40, ...)
    got = np.stack([batch.step(xs[:, t]) for t in range(40)], axis=1)  # (5, 40, out)
    for i, m in enumerate(members):
        ref, state = alone(path, xs[i])
        assert np.abs(got[i] - ref).max() <= 1e-6
        for k, v in m.state().items():
            assert np.abs(v - state[k]).max() <= 1e-6


def test_ragged_step_many_equals_alone_and_leaves_idle_streams_untouched(exported) -> None:
    model, path = exported["frames-gru"]
    engine = Engine.load(path)
    batch = engine.batch()
    members = [batch.join() for _ in range(5)]
    warm = batch.step(np.stack([sample_inputs(model, 1, seed=i)[0] for i in range(5)]))
    assert warm.shape == (5, 3)
    starts = [m.snapshot() for m in members]
    counts = [3, 0, 7, 1, 0]
    frames = [sample_inputs(model, c, seed=20 + i) if c else [] for i, c in enumerate(counts)]
    untouched = {i: members[i].state() for i, c in enumerate(counts) if c == 0}
    outs = batch.step_many({m: f for m, f in zip(members, frames)})
    for i, m in enumerate(members):
        if counts[i] == 0:
            assert outs[m].shape == (0, 3)
            for k, v in m.state().items():
                np.testing.assert_array_equal(v, untouched[i][k])  # bit-identical: not even rewritten
            continue
        ref, state = alone(path, frames[i], starts[i])
        assert outs[m].shape == (counts[i], 3)
        assert np.abs(outs[m] - ref).max() <= 1e-6
        assert max(np.abs(m.state()[k] - state[k]).max() for k in state) <= 1e-6


def test_step_many_on_loose_streams_and_uniform_counts(exported) -> None:
    model, path = exported["lstm"]
    engine = Engine.load(path)
    loose = [engine.stream() for _ in range(3)]
    frames = [sample_inputs(model, c, seed=c) for c in (4, 4, 9)]
    outs = engine.step_many(loose, frames)
    for s, f, o in zip(loose, frames, outs):
        ref, state = alone(path, f)
        assert np.abs(o - ref).max() <= 1e-6
        assert max(np.abs(s.state()[k] - state[k]).max() for k in state) <= 1e-6
    batch = engine.batch()
    members = [batch.join() for _ in range(3)]
    same = [sample_inputs(model, 6, seed=40 + i) for i in range(3)]
    outs = engine.step_many(members[::-1], same[::-1])  # every member, same count: the bound path
    for f, o in zip(same[::-1], outs):
        ref, _ = alone(path, f)
        assert np.abs(o - ref).max() <= 1e-6


def test_join_and_leave_at_any_time_keep_every_state(exported) -> None:
    model, path = exported["gru"]
    engine = Engine.load(path)
    batch = engine.batch(max_streams=4)
    xs = sample_inputs(model, 30, seed=5)
    a = engine.stream()
    a.push(xs[:10])  # a loose stream with history joins
    ref = a.fork()
    batch.join(a)
    b = batch.join()
    out = batch.step(np.array([xs[10], xs[10]]))
    np.testing.assert_allclose(out[0], ref.step(xs[10]), atol=1e-6)
    a.step(xs[11])  # a member stepping alone
    ref.step(xs[11])
    batch.leave(b)
    c = batch.join()
    batch.step(np.array([xs[12], xs[0]]))
    ref.step(xs[12])
    batch.leave(a)
    assert a.batch is None and batch.streams == (c,)
    np.testing.assert_allclose(a.push(xs[13:]), ref.push(xs[13:]), atol=1e-6)


def test_max_streams_and_idle_eviction_with_callback(exported) -> None:
    _, path = exported["gru"]
    engine = Engine.load(path)
    now = [0.0]
    saved: dict[int, bytes] = {}
    batch = engine.batch(
        max_streams=2, idle_after=5.0, on_evict=lambda s: saved.update({id(s): s.snapshot()}), clock=lambda: now[0]
    )
    a, b = batch.join(), batch.join()
    now[0] = 4.0
    with pytest.raises(StreamError, match="batch is full"):
        batch.join()
    batch.step_many({a: [1, 2]})  # a was used at t=4, b at t=0
    now[0] = 7.0
    c = batch.join()  # b is idle for 7 s > 5: evicted to make room
    assert b.closed and id(b) in saved and batch.streams == (a, c)
    restored = engine.stream()
    restored.restore(saved[id(b)])
    with pytest.raises(StreamError, match="closed"):
        b.step(1)


def test_bad_frames_for_one_stream_change_no_stream(exported) -> None:
    model, path = exported["frames-gru"]
    engine = Engine.load(path)
    batch = engine.batch()
    members = [batch.join() for _ in range(3)]
    batch.step(np.ones((3, 6), np.float32))
    before = [m.state() for m in members]
    with pytest.raises(InputError, match="NaN or Inf"):
        batch.step_many({members[0]: np.ones((2, 6), np.float32), members[1]: np.full((1, 6), np.nan, np.float32)})
    with pytest.raises(InputError, match="one frame per member"):
        batch.step(np.ones((2, 6), np.float32))
    other = Engine.load(path).stream()
    with pytest.raises(StreamError, match="foreign"):
        engine.step_many([members[0], other], [np.ones((1, 6), np.float32)] * 2)
    with pytest.raises(StreamError, match="mix of batch members"):
        engine.step_many([members[0], engine.stream()], [np.ones((1, 6), np.float32)] * 2)
    with pytest.raises(StreamError, match="another engine"):
        batch.join(other)
    for m, b in zip(members, before):
        for k in b:
            np.testing.assert_array_equal(m.state()[k], b[k])


def test_equal_length_frames_are_checked_as_strictly_as_ragged_ones(exported) -> None:
    _, path = exported["frames-gru"]
    engine = Engine.load(path)
    batch = engine.batch()
    members = [batch.join() for _ in range(3)]
    with pytest.raises(InputError, match="frame axis 0 has size 4, expected 6"):
        engine.step_many(members, [np.ones((6, 4), np.float32)] * 3)  # 3*6*4 elements would reshape to (12, 6)
    ints = [np.ones((2, 6), np.int64)] * 3  # converted to float32 like any other frames
    floats = [np.ones((2, 6), np.float32)] * 3
    twin = engine.batch()
    twins = [twin.join() for _ in range(3)]
    for a, b in zip(engine.step_many(members, ints), engine.step_many(twins, floats)):
        np.testing.assert_array_equal(a, b)


def test_onnxruntime_failure_in_a_later_round_changes_no_stream(exported) -> None:
    """Without a vocabulary in the spec, a bad token reaches Gather in the second round and fails there."""
    from dataclasses import replace

    from edgernn.runtime import RunError

    _, path = exported["gru"]
    engine = Engine.load(path, spec=replace(Engine.load(path).spec, model=None))
    batch = engine.batch()
    members = [batch.join() for _ in range(3)]
    batch.step(np.array([1, 2, 3]))
    loose = [engine.stream() for _ in range(2)]
    for s in loose:
        s.push(np.arange(4))
    everyone = members + loose
    before = [s.state() for s in everyone]
    with pytest.raises(RunError, match="onnxruntime failed"):
        batch.step_many({members[0]: np.array([1, 2]), members[1]: np.array([1, 2, 3, 10_000])})
    with pytest.raises(RunError):
        batch.step(np.array([1, 2, 10_000]))
    with pytest.raises(RunError):
        engine.step_many(loose, [np.array([5]), np.array([5, 10_000])])
    for s, b in zip(everyone, before):
        for k in b:
            np.testing.assert_array_equal(s.state()[k], b[k])
