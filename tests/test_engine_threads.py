"""Threads: different streams run concurrently and give the sequential results; one stream is serialised."""

from __future__ import annotations

import threading

import numpy as np

from edgernn.export.parity import sample_inputs
from edgernn.runtime import Engine


def run_threads(targets) -> None:
    errors: list[BaseException] = []

    def wrap(fn):
        def go() -> None:
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread below
                errors.append(exc)

        return go

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors


def test_concurrent_streams_equal_a_sequential_run(exported) -> None:
    """More threads than slots: slots are taken over under load, results stay per stream."""
    model, path = exported["gru"]
    engine = Engine.load(path)
    n = engine.pool.size + 4
    xs = [sample_inputs(model, 150, seed=i) for i in range(n)]
    streams = [engine.stream() for _ in range(n)]
    got: dict[int, np.ndarray] = {}

    def worker(i: int):
        def go() -> None:
            s = streams[i]
            parts = [s.step(x) for x in xs[i][:100]]
            parts.append(s.push(xs[i][100:], chunk=16))
            got[i] = np.concatenate([np.stack(parts[:100]), parts[100]])

        return go

    run_threads([worker(i) for i in range(n)])
    reference = Engine.load(path)
    for i in range(n):
        ref = reference.stream().push(xs[i], chunk=1)
        assert np.abs(got[i] - ref).max() <= 1e-6


def test_one_stream_from_two_threads_is_serialised(exported) -> None:
    """Both threads push the same frames: serialised, the result is two pushes one after the other."""
    model, path = exported["lstm"]
    engine = Engine.load(path)
    xs = sample_inputs(model, 200, seed=9)
    shared = engine.stream()
    run_threads([lambda: shared.push(xs, chunk=8), lambda: shared.push(xs, chunk=8)])
    ref = engine.stream()
    ref.push(xs, chunk=8)
    ref.push(xs, chunk=8)
    for k, v in ref.state().items():
        np.testing.assert_allclose(shared.state()[k], v, atol=1e-6)


def test_batch_and_member_calls_from_threads_are_serialised(exported) -> None:
    model, path = exported["gru"]
    engine = Engine.load(path)
    batch = engine.batch()
    members = [batch.join() for _ in range(3)]
    xs = sample_inputs(model, 60, seed=4)
    run_threads(
        [
            lambda: [batch.step(np.array([x, x, x])) for x in xs],
            lambda: [members[0].step(x) for x in xs],
        ]
    )
    # members 1 and 2 only saw the batch calls: identical states, and equal to a stream alone
    ref = engine.stream()
    ref.push(xs)
    for k, v in ref.state().items():
        np.testing.assert_allclose(members[1].state()[k], v, atol=1e-6)
        np.testing.assert_array_equal(members[1].state()[k], members[2].state()[k])
