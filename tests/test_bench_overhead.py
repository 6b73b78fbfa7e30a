"""bench/overhead.py: the engine, a bare session.run loop and raw ping-pong compute the same, on every layout."""

from __future__ import annotations

import pytest

pytest.importorskip("onnx")

from edgernn.bench.overhead import compare, measure, subjects, table  # noqa: E402


def test_engine_equals_the_bare_session_run_loop_on_every_layout(tmp_path) -> None:
    subs = subjects(tmp_path)
    assert len(subs) == 4
    for s in subs:
        diff = compare(s, calls=150)
        print(f"{s.name}: engine vs bare session.run over 150 calls, max |diff| {diff:.1e}")
        assert diff <= 1e-6, s.name


def test_every_layout_runs_on_the_bound_path_and_the_table_renders(tmp_path) -> None:
    rows = [measure(s, calls=5, rounds=1) for s in subjects(tmp_path)]
    assert [r.path for r in rows] == ["bound"] * 4
    assert all(r.raw_us is not None and r.floor_us is not None and r.engine_us > 0 for r in rows)
    text = table(rows, "test cpu")
    assert text.count("| bound |") == 4 and "CPU: test cpu" in text


def test_the_floor_loop_computes_what_the_engine_does(tmp_path) -> None:
    """The floor contender (raw + the contract's own work, inline) carries state and context as the engine does."""
    import numpy as np

    from edgernn.bench.overhead import _engine_call, _inputs, floor_loop
    from edgernn.runtime import Engine

    for s in subjects(tmp_path):
        engine = Engine.load(s.path, spec=s.spec)
        eng, floor = _engine_call(engine, s), floor_loop(engine, s)
        for x in _inputs(engine, s, 40, 5):
            want = np.asarray(eng(x)).reshape(-1)
            got = floor(x.reshape(s.items, *engine.frame_shape)).reshape(-1)
            np.testing.assert_array_equal(got, want, err_msg=s.name)
