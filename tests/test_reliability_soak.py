"""Soak and concurrency, scaled down for CI (``edgernn reliability --long`` runs the full sizes)."""

from __future__ import annotations

import numpy as np
import pytest

from edgernn.reliability.reference import Reference, weights_of
from edgernn.reliability.soak import concurrency, contention, inputs, rss_bytes, soak_many_streams, soak_one_stream
from edgernn.runtime import Engine

TOL = 1e-5  # fp32 engine vs float64 reference


def setup(exported: dict, key: str) -> tuple[Engine, Reference]:
    model, path = exported[key]
    return Engine.load(path), Reference(weights_of(model), model.config)


def test_one_stream_soak_stays_on_the_reference_with_flat_memory(exported: dict) -> None:
    engine, ref = setup(exported, "frames-gru")
    r = soak_one_stream(engine, ref, steps=6000, block=500)
    assert r.calls == 6000 and len(r.rss_curve) == 12
    assert r.max_abs_err < TOL and r.state_err < TOL
    assert max(r.err_by_tenth[-3:]) < 10 * max(r.err_by_tenth[:3]) + 1e-6  # no drift
    assert r.rss_growth_mib < 4


def test_many_streams_round_robin_stay_on_the_reference(exported: dict) -> None:
    engine, ref = setup(exported, "lstm")
    r = soak_many_streams(engine, ref, streams=300, steps=8)
    assert r.calls == 2400
    assert r.max_abs_err < TOL and r.state_err < TOL
    assert r.rss_growth_mib < 4


@pytest.mark.parametrize("key", ["gru", "frames-rnn"])
def test_eight_threads_interleaved_equal_a_sequential_run(key: str, exported: dict) -> None:
    engine, ref = setup(exported, key)
    r = concurrency(engine, ref, threads=8, per_thread=100, steps=4)
    assert r.streams == 800
    assert r.identical_to_sequential
    assert r.distinct_outputs
    assert r.max_abs_err < TOL


def test_eight_threads_each_with_a_batch_equal_a_sequential_run(exported: dict) -> None:
    engine, ref = setup(exported, "frames-lstm")
    r = concurrency(engine, ref, threads=8, per_thread=100, steps=4, batched=True)
    assert r.batched and r.streams == 800
    assert r.identical_to_sequential and r.distinct_outputs
    assert r.max_abs_err < TOL


def test_threads_on_the_same_streams_lose_no_update(exported: dict) -> None:
    engine, ref = setup(exported, "gru")
    r = contention(engine, ref, threads=8, streams=6, calls_per_thread=120)
    assert r.calls == 960
    assert r.max_state_err < TOL


def test_stream_churn_does_not_grow_memory(exported: dict) -> None:
    engine, ref = setup(exported, "gru")
    xs = inputs(ref, (4,), 0)

    def churn(n: int) -> None:
        for _ in range(n):
            s = engine.stream()
            s.push(xs)
            blob = s.snapshot()
            s.fork().restore(blob)
            s.close()

    churn(500)  # warm-up: pools, caches
    before = rss_bytes()
    churn(2000)
    assert (rss_bytes() - before) / 2**20 < 4
    np.testing.assert_array_equal(engine.stream().push(xs), engine.stream().push(xs))
