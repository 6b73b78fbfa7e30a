"""Stream life cycle: snapshots, fork, close, errors that leave state untouched, slots, idle memory."""

from __future__ import annotations

import gc
import tracemalloc
from dataclasses import replace

import numpy as np
import pytest

from edgernn.export.parity import sample_inputs
from edgernn.runtime import Engine, InputError, RunError, SnapshotError, StreamError
from edgernn.runtime.raw import raw_pingpong
from edgernn.runtime.session import CpuDefaults


def same_state(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("key", ["gru", "frames-lstm"])
def test_restored_stream_continues_bit_identically(exported, key: str) -> None:
    model, path = exported[key]
    engine = Engine.load(path)
    xs = sample_inputs(model, 120, seed=1)
    a = engine.stream()
    a.push(xs[:50])
    blob = a.snapshot()
    b = Engine.load(path).stream()  # another engine of the same file
    b.restore(blob)
    assert same_state(a.state(), b.state())
    np.testing.assert_array_equal(a.push(xs[50:], chunk=7), b.push(xs[50:], chunk=7))
    np.testing.assert_array_equal(a.step(xs[0]), b.step(xs[0]))


def test_snapshot_restores_under_another_profile(exported) -> None:
    """The payload is host bytes: a snapshot from one session profile restores under another."""
    model, path = exported["frames-gru"]
    xs = sample_inputs(model, 60, seed=2)
    a = Engine.load(path).stream()
    a.push(xs[:30])
    b = Engine.load(path, profile=CpuDefaults(threads=2, name="cpu-2")).stream()
    b.restore(a.snapshot())
    assert np.abs(a.push(xs[30:]) - b.push(xs[30:])).max() <= 1e-6


def test_foreign_corrupted_and_truncated_snapshots_are_refused(exported) -> None:
    _, gru = exported["gru"]
    _, lstm = exported["lstm"]
    s = Engine.load(gru).stream()
    s.step(3)
    blob = s.snapshot()
    other = Engine.load(lstm).stream()
    with pytest.raises(SnapshotError, match="another model"):
        other.restore(blob)
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x01
    before = s.state()
    with pytest.raises(SnapshotError, match="checksum"):
        s.restore(bytes(flipped))
    with pytest.raises(SnapshotError, match="checksum|too short"):
        s.restore(blob[:-5])
    with pytest.raises(SnapshotError, match="not an edgernn snapshot"):
        s.restore(b"hello")
    assert same_state(before, s.state())


def test_fork_is_independent_and_continues_like_the_original(exported) -> None:
    model, path = exported["lstm"]
    xs = sample_inputs(model, 40, seed=3)
    a = Engine.load(path).stream()
    a.push(xs[:20])
    b = a.fork()
    np.testing.assert_array_equal(a.push(xs[20:]), b.push(xs[20:]))
    a.reset()
    assert np.abs(b.state()["h"]).max() > 0 and np.abs(a.state()["h"]).max() == 0


def test_use_after_close_is_refused(exported) -> None:
    _, path = exported["gru"]
    s = Engine.load(path).stream()
    s.step(1)
    s.close()
    s.close()  # twice is fine
    for call in (lambda: s.step(1), lambda: s.push([1, 2]), s.reset, s.state, s.snapshot, s.fork):
        with pytest.raises(StreamError, match="closed"):
            call()


def test_every_bad_input_leaves_the_state_exactly_as_it_was(exported) -> None:
    model, path = exported["frames-gru"]
    engine = Engine.load(path)
    s = engine.stream()
    s.push(sample_inputs(model, 5))
    before = s.state()
    bad = {
        r"frame axis 0 has size 4, expected 6": np.ones(4, np.float32),
        r"rank 1\), got shape \(2, 6\) \(rank 2\)": np.ones((2, 6), np.float32),
        r"expected real numbers, got dtype <U1": np.array(["a"] * 6),
        r"NaN or Inf": np.array([0, 0, np.inf, 0, 0, 0], np.float32),
    }
    for message, frame in bad.items():
        with pytest.raises(InputError, match=message):
            s.step(frame)
    with pytest.raises(InputError, match="NaN or Inf"):
        s.push(np.concatenate([np.ones((100, 6), np.float32), np.full((1, 6), np.nan, np.float32)]))
    with pytest.raises(InputError, match="chunk must be"):
        s.push(np.ones((3, 6), np.float32), chunk=0)
    assert same_state(before, s.state())
    # An overflowing dot product (the fast finiteness test) is not mistaken for Inf.
    with np.errstate(over="ignore"):
        s.step(np.full(6, 3e38, np.float32))
    passing = Engine.load(path, nonfinite="pass").stream()
    out = passing.step(np.full(6, np.nan, np.float32))  # let through to the graph: no error
    assert out.shape == (3,)


def test_onnxruntime_failure_mid_push_rolls_the_state_back(exported) -> None:
    """Without a vocabulary in the spec, an out-of-range token reaches Gather in chunk 2 and fails there."""
    _, path = exported["gru"]
    spec = Engine.load(path).spec
    engine = Engine.load(path, spec=replace(spec, model=None))
    s = engine.stream()
    s.push(np.arange(10) % 7)
    before = s.state()
    tokens = np.concatenate([np.arange(64) % 7, [10_000], np.arange(5)]).astype(np.int64)
    with pytest.raises(RunError, match="onnxruntime failed"):
        s.push(tokens, chunk=64)
    with pytest.raises(RunError):
        s.step(10_000)
    assert same_state(before, s.state())


def test_more_streams_than_slots_each_equal_running_alone(exported) -> None:
    """Slots are shared and taken over; interleaved streams still never see each other's state."""
    model, path = exported["gru"]
    engine = Engine.load(path)
    n = engine.pool.size + 3
    xs = [sample_inputs(model, 30, seed=10 + i) for i in range(n)]
    streams = [engine.stream() for _ in range(n)]
    got = np.stack([[s.step(x[t]) for s, x in zip(streams, xs)] for t in range(30)], axis=1)  # (n, T, out)
    for i in range(n):
        alone = Engine.load(path).stream()
        np.testing.assert_allclose(got[i], np.stack([alone.step(x) for x in xs[i]]), atol=1e-6)
    assert len(engine.pool.slots) == engine.pool.size


def test_idle_stream_holds_its_state_and_less_than_1_kib_more(exported) -> None:
    model, path = exported["frames-lstm"]  # 2 layers, hidden 32: h and c of (2, 1, 32) float32
    engine = Engine.load(path)
    state_bytes = sum(int(np.prod(s.concrete_shape(1))) * 4 for s in engine.spec.states)
    engine.stream().step(sample_inputs(model, 1)[0])  # slots and bindings exist before measuring
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        streams = [engine.stream() for _ in range(200)]
        fresh = (tracemalloc.get_traced_memory()[0] - base) / len(streams)
        x = sample_inputs(model, 1)[0]
        for s in streams:  # every stream steps (taking a slot over), then goes idle
            s.step(x)
        stepped = (tracemalloc.get_traced_memory()[0] - base) / len(streams)
    finally:
        tracemalloc.stop()
    print(f"state {state_bytes} B; idle stream {fresh:.0f} B fresh, {stepped:.0f} B after a step")
    assert fresh <= state_bytes + 1024
    assert stepped <= state_bytes + 1024


def test_raw_pingpong_reference_loop_computes_what_step_computes(exported) -> None:
    model, path = exported["frames-gru"]
    engine = Engine.load(path)
    xs = sample_inputs(model, 50, seed=6)
    s = engine.stream()
    for public in (True, False):
        raw = raw_pingpong(engine, batch=1, time=1, public=public)
        gc.collect()  # the loop keeps its buffers alive by itself
        got = np.stack([raw(x[None, None])[0, 0].copy() for x in xs])
        s.reset()
        np.testing.assert_array_equal(got, np.stack([s.step(x) for x in xs]))
    chunked = raw_pingpong(engine, batch=1, time=50)
    s.reset()
    assert np.abs(chunked(xs[None])[0] - s.push(xs)).max() <= 1e-6


def test_token_ids_out_of_range_are_refused_at_both_ends(exported) -> None:
    _, path = exported["gru"]
    s = Engine.load(path).stream()
    s.push(np.arange(5))
    before = s.state()
    for bad in (np.array([3, -1, 2]), np.array([10_000]), np.array(-2), -2, np.int64(10_000)):
        with pytest.raises(InputError, match=r"token ids must be in \[0, "):
            s.push(bad) if np.ndim(bad) else s.step(bad)
    assert same_state(before, s.state())
