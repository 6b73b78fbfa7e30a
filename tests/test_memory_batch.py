"""Per-stream memory in batches: streams of different source lengths share one call, padded, with the mask set.

Every batched result is compared with the same stream run alone (max |diff| <= 1e-6) on the
real masked-attention decoder of tests/memory_models.py; a control shows the padding would
change the result without the mask.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import memory_models as mm  # noqa: E402

from edgernn.runtime import Batch, Engine, Stream  # noqa: E402
from edgernn.runtime.errors import StreamError  # noqa: E402

LENGTHS = (3, 7, 12, mm.MAX_LEN)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("memory-batch")
    out = {}
    for name, masked in (("masked", True), ("unmasked", False)):
        out[name] = root / f"{name}.onnx"
        mm.export(out[name], masked=masked)
    return out


def _encs(rng: np.random.Generator, lengths=LENGTHS) -> list[np.ndarray]:
    return [rng.standard_normal((n, mm.MEM)).astype(np.float32) for n in lengths]


def alone_and_batched(engine: Engine, encs: list[np.ndarray]) -> tuple[list[Stream], Batch, list[Stream]]:
    """Each source twice: a stream run alone, and a member of one new batch."""
    alone = [engine.stream(memory={"enc": e}) for e in encs]
    batch = engine.batch()
    return alone, batch, [batch.join(engine.stream(memory={"enc": e})) for e in encs]


def test_batch_step_of_different_lengths_equals_each_stream_alone(models) -> None:
    engine = Engine.load(models["masked"])
    rng = np.random.default_rng(1)
    encs = _encs(rng)
    alone, batch, members = alone_and_batched(engine, encs)
    worst = 0.0
    for _ in range(200):
        tokens = rng.integers(0, mm.VOCAB, len(encs))
        got = batch.step(tokens)
        want = np.stack([s.step(int(t)) for s, t in zip(alone, tokens)])
        worst = max(worst, float(np.abs(got - want).max()))
    states = max(float(np.abs(m.state()["h"] - a.state()["h"]).max()) for m, a in zip(members, alone))
    print(f"batch of lengths {LENGTHS}, 200 steps: max |diff| outputs {worst:.2e}, states {states:.2e}")
    assert worst <= 1e-6 and states <= 1e-6
    assert engine.describe()["path"] == "bound"


def test_the_mask_is_what_makes_padding_harmless(models) -> None:
    """Control: the same padded call with the mask all ones gives another answer."""
    engine = Engine.load(models["masked"])
    rng = np.random.default_rng(2)
    short, long_ = _encs(rng, (3, 12))
    padded = np.zeros((2, 12, mm.MEM), np.float32)
    padded[0, :3], padded[1] = short, long_
    feeds = {"x": np.array([[4], [4]]), "h": np.zeros((1, 2, mm.HIDDEN), np.float32), "enc": padded}
    masked = engine.session.run(["y"], feeds | {"enc_mask": (np.arange(12) < np.array([[3], [12]])).astype(np.float32)})
    unmasked = engine.session.run(["y"], feeds | {"enc_mask": np.ones((2, 12), np.float32)})
    alone = engine.stream(memory={"enc": short}).step(4)
    assert np.abs(masked[0][0, 0] - alone).max() <= 1e-6
    assert np.abs(unmasked[0][0, 0] - alone).max() > 1e-3


def test_ragged_step_many_and_loose_streams_equal_each_alone(models) -> None:
    engine = Engine.load(models["masked"])
    rng = np.random.default_rng(3)
    encs = _encs(rng)
    alone, batch, members = alone_and_batched(engine, encs)
    loose = [engine.stream(memory={"enc": e}) for e in encs]
    worst = 0.0
    for _ in range(6):
        counts = rng.integers(0, 9, len(encs))
        frames = [rng.integers(0, mm.VOCAB, c) for c in counts]
        outs = batch.step_many(dict(zip(members, frames)), chunk=4)
        outs_loose = engine.step_many(loose, [list(f) for f in frames], chunk=4)
        for s, m, f, o in zip(alone, members, frames, outs_loose):
            want = s.push(f, chunk=4) if len(f) else engine.empty_output()
            worst = max(worst, float(np.abs(outs[m] - want).max(initial=0)), float(np.abs(o - want).max(initial=0)))
    print(f"ragged step_many, lengths {LENGTHS}: max |diff| vs alone {worst:.2e}")
    assert worst <= 1e-6


def test_a_member_sets_its_memory_and_leaves_with_it(models) -> None:
    engine = Engine.load(models["masked"])
    rng = np.random.default_rng(4)
    encs = _encs(rng, (4, 6))
    alone, batch, members = alone_and_batched(engine, encs)
    batch.step(np.array([1, 2]))
    [s.step(t) for s, t in zip(alone, (1, 2))]
    longer = _encs(rng, (20,))[0]
    members[0].set_memory({"enc": longer})  # the batch re-pads to 20
    alone[0].set_memory({"enc": longer})
    for _ in range(20):
        tokens = rng.integers(0, mm.VOCAB, 2)
        got = batch.step(tokens)
        want = np.stack([s.step(int(t)) for s, t in zip(alone, tokens)])
        assert np.abs(got - want).max() <= 1e-6
    batch.leave(members[0])
    np.testing.assert_array_equal(members[0].memory["enc"], longer)
    np.testing.assert_allclose(members[0].push([3, 4, 5]), alone[0].push([3, 4, 5]), atol=1e-6, rtol=0)
    np.testing.assert_allclose(batch.step(np.array([6])), alone[1].step(6)[None], atol=1e-6, rtol=0)


def test_without_a_mask_only_equal_lengths_share_a_batch(models) -> None:
    engine = Engine.load(models["unmasked"])
    assert engine.spec.memory[0].mask is None
    rng = np.random.default_rng(5)
    a, b, c = _encs(rng, (5, 5, 8))
    batch = engine.batch()
    sa = batch.join(engine.stream(memory={"enc": a}))
    batch.join(engine.stream(memory={"enc": b}))
    sc = engine.stream(memory={"enc": c})
    with pytest.raises(StreamError, match=r"'enc' has no mask in the spec, so streams of different lengths \[5, 8\]"):
        batch.join(sc)
    assert len(batch) == 2 and sc.batch is None
    with pytest.raises(StreamError, match="no mask"):
        sa.set_memory({"enc": c})
    np.testing.assert_array_equal(sa.memory["enc"], a)
    with pytest.raises(StreamError, match="no mask"):
        engine.step_many([sc, engine.stream(memory={"enc": a})], [[1], [1]])
    alone = [engine.stream(memory={"enc": e}) for e in (a, b)]
    tokens = rng.integers(0, mm.VOCAB, 2)
    got = batch.step(tokens)
    assert np.abs(got - np.stack([s.step(int(t)) for s, t in zip(alone, tokens)])).max() <= 1e-6
    assert sc.step(1).shape == (mm.VOCAB,)  # the refused stream goes on alone
