"""Models not made here, built with onnx.helper: a VAD, a speech enhancer, a state with its batch axis last."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgernn.runtime import Engine, InputError, SpecError  # noqa: E402
from edgernn.runtime.infer import infer_spec  # noqa: E402
from edgernn.runtime.spec import BATCH, TIME, StateSpec, StreamSpec, TensorSpec  # noqa: E402

F32 = TensorProto.FLOAT
RNG = np.random.default_rng(0)


def save(path: Path, nodes, inputs, outputs, inits) -> Path:
    graph = helper.make_graph(
        nodes, path.stem, inputs, outputs, [numpy_helper.from_array(v, k) for k, v in inits.items()]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def const(name: str, value) -> tuple[str, np.ndarray]:
    return name, np.asarray(value)


# -- a voice-activity detector: LSTM-like state (2, batch, 128), int64 sample rate, 64 samples of context


VAD_W = RNG.standard_normal((2, 1, 128)).astype(np.float32)


@pytest.fixture(scope="module")
def vad(tmp_path_factory) -> Path:
    n = helper.make_node
    nodes = [
        n("ReduceMean", ["input"], ["m"], axes=[1], keepdims=1),  # (B, 1)
        n("Slice", ["input", "zero", "one", "one"], ["first"]),  # the oldest sample: from the context
        n("Add", ["m", "first"], ["feat"]),
        n("Unsqueeze", ["feat", "zero"], ["u"]),  # (1, B, 1)
        n("Cast", ["sr"], ["srf"], to=F32),
        n("Div", ["srf", "k16"], ["srs"]),
        n("Mul", ["u", "W"], ["d0"]),
        n("Mul", ["d0", "srs"], ["drive"]),  # (2, B, 128)
        n("Mul", ["state", "decay"], ["kept"]),
        n("Add", ["kept", "drive"], ["pre"]),
        n("Tanh", ["pre"], ["stateN"]),
        n("ReduceMean", ["stateN"], ["r"], axes=[0, 2], keepdims=0),  # (B,)
        n("Unsqueeze", ["r", "one"], ["r1"]),
        n("Sigmoid", ["r1"], ["output"]),  # (B, 1)
    ]
    inputs = [
        helper.make_tensor_value_info("input", F32, ["batch", "samples"]),
        helper.make_tensor_value_info("state", F32, [2, "batch", 128]),
        helper.make_tensor_value_info("sr", TensorProto.INT64, []),
    ]
    outputs = [  # declared wrong on purpose: (batch, 7); the graph returns (batch, 1)
        helper.make_tensor_value_info("output", F32, ["batch", 7]),
        helper.make_tensor_value_info("stateN", F32, [2, "batch", 128]),
    ]
    inits = dict(
        [
            const("zero", [0]),
            const("one", [1]),
            const("k16", np.float32(16000)),
            const("W", VAD_W),
            const("decay", np.float32(0.9)),
        ]
    )
    return save(tmp_path_factory.mktemp("vad") / "vad.onnx", nodes, inputs, outputs, inits)


def vad_reference(chunks: list[np.ndarray], sr: int = 16000) -> tuple[list[float], np.ndarray]:
    state, ctx, outs = np.zeros((2, 1, 128), np.float32), np.zeros(64, np.float32), []
    for x in chunks:
        full = np.concatenate([ctx, x])
        feat = np.float32(full.mean() + full[0])
        state = np.tanh(state * np.float32(0.9) + feat * VAD_W * np.float32(sr / 16000))
        outs.append(float(1 / (1 + np.exp(-state.mean()))))
        ctx = full[-64:]
    return outs, state


def vad_spec(path: Path) -> StreamSpec:
    return infer_spec(path, constants={"sr": 16000}, context={"input": 64})


def test_vad_spec_is_inferred_and_streams_with_its_context(vad) -> None:
    spec = vad_spec(vad)
    assert [(s.input, s.output, s.shape) for s in spec.states] == [("state", "stateN", (2, BATCH, 128))]
    assert spec.inputs[0].shape == (BATCH, TIME) and spec.constants[0].value == 16000
    engine = Engine.load(vad, spec=spec)
    chunks = [RNG.standard_normal(512).astype(np.float32) for _ in range(3)]
    s = engine.stream()
    got = s.push(np.concatenate(chunks), chunk=512)  # one probability per call of 512 samples
    ref, ref_state = vad_reference(chunks)
    assert got.shape == (3, 1)
    np.testing.assert_allclose(got[:, 0], ref, atol=1e-6)
    np.testing.assert_allclose(s.state()["state"], ref_state, atol=1e-6)
    blob = s.snapshot()  # the context window travels with the state
    t = engine.stream()
    t.restore(blob)
    nxt = RNG.standard_normal(512).astype(np.float32)
    np.testing.assert_array_equal(s.push(nxt, chunk=512), t.push(nxt, chunk=512))


def test_vad_streams_batched_with_ragged_sample_counts(vad) -> None:
    engine = Engine.load(vad, spec=vad_spec(vad))
    batch = engine.batch()
    members = [batch.join() for _ in range(3)]
    feeds = {
        members[0]: RNG.standard_normal(512).astype(np.float32),
        members[1]: RNG.standard_normal(1024).astype(np.float32),
        members[2]: [],
    }
    outs = batch.step_many(feeds, chunk=512)  # with a context window, calls are cut as push(chunk=512) cuts them
    ref0, _ = vad_reference([feeds[members[0]]])
    ref1, state1 = vad_reference([feeds[members[1]][:512], feeds[members[1]][512:]])
    np.testing.assert_allclose(outs[members[0]][:, 0], ref0, atol=1e-6)
    np.testing.assert_allclose(outs[members[1]][:, 0], ref1, atol=1e-6)
    np.testing.assert_allclose(members[1].state()["state"], state1, atol=1e-6)
    assert np.abs(members[2].state()["state"]).max() == 0


def test_inference_errors_name_the_ambiguity(vad, tmp_path) -> None:
    with pytest.raises(SpecError, match=r"input 'sr' is a scalar: give its value with constants=\{'sr': VALUE\}"):
        infer_spec(vad)
    n = helper.make_node
    ambiguous = save(
        tmp_path / "amb.onnx",
        [n("Add", ["x", "h"], ["h_out"]), n("Identity", ["h_out"], ["hn"]), n("Identity", ["h_out"], ["y"])],
        [helper.make_tensor_value_info("x", F32, ["B", 4]), helper.make_tensor_value_info("h", F32, ["B", 4])],
        [helper.make_tensor_value_info(k, F32, ["B", 4]) for k in ("h_out", "hn", "y")],
        {},
    )
    with pytest.raises(SpecError, match=r"state input 'h' could pair with outputs \['h_out', 'hn'\] by name"):
        infer_spec(ambiguous)
    assert infer_spec(ambiguous, pairs={"h": "hn"}).states[0].output == "hn"
    fixed = save(
        tmp_path / "fixed.onnx",
        [n("Add", ["x", "h"], ["h_out"]), n("Identity", ["h_out"], ["y"])],
        [helper.make_tensor_value_info("x", F32, [1, 1]), helper.make_tensor_value_info("h", F32, [1, 1])],
        [helper.make_tensor_value_info(k, F32, [1, 1]) for k in ("h_out", "y")],
        {},
    )
    with pytest.raises(SpecError, match=r"input 'x' shape \[1, 1\]: no symbolic axis to be the batch axis"):
        infer_spec(fixed)
    spec = infer_spec(fixed, batch_axes={"x": 0}, time_axes={"x": 1})  # batch fixed at 1: the state's axis of size 1
    assert spec.inputs[0].shape == (BATCH, TIME) and spec.states[0].shape in ((BATCH, 1), (1, BATCH))


# -- a speech enhancer: three caches of ranks 2, 3 and 4 (batch axis 1 in the last), one frame per call


@pytest.fixture(scope="module")
def enhancer(tmp_path_factory) -> Path:
    n = helper.make_node
    w = {
        k: RNG.standard_normal(s).astype(np.float32) * 0.3
        for k, s in {"Wh": (32, 32), "Wx": (16, 32), "W3": (32, 8), "Wo": (32, 16), "W4": (8, 16)}.items()
    }
    nodes = [
        n("MatMul", ["gru_h", "Wh"], ["a"]),
        n("MatMul", ["mix", "Wx"], ["b"]),
        n("Add", ["a", "b"], ["ab"]),
        n("Tanh", ["ab"], ["gru_h_out"]),  # (B, 32)
        n("Slice", ["conv_cache", "one", "four", "one"], ["tail"]),
        n("Unsqueeze", ["mix", "one"], ["mx"]),
        n("Concat", ["tail", "mx"], ["conv_cache_out"], axis=1),  # (B, 4, 16)
        n("MatMul", ["gru_h_out", "W3"], ["g"]),
        n("Unsqueeze", ["g", "zero_one"], ["g4"]),  # (1, B, 1, 8)
        n("Mul", ["att_cache", "half"], ["att_half"]),
        n("Add", ["att_half", "g4"], ["att_cache_out"]),
        n("MatMul", ["gru_h_out", "Wo"], ["o1"]),
        n("ReduceMean", ["conv_cache_out"], ["o2"], axes=[1], keepdims=0),
        n("ReduceMean", ["att_cache_out"], ["am"], axes=[0, 2], keepdims=0),
        n("MatMul", ["am", "W4"], ["o3"]),
        n("Add", ["o1", "o2"], ["o12"]),
        n("Add", ["o12", "o3"], ["o123"]),
        n("Sigmoid", ["o123"], ["gate"]),
        n("Mul", ["mix", "gate"], ["enhanced"]),
    ]
    inputs = [
        helper.make_tensor_value_info("mix", F32, ["B", 16]),
        helper.make_tensor_value_info("gru_h", F32, ["B", 32]),
        helper.make_tensor_value_info("conv_cache", F32, ["B", 4, 16]),
        helper.make_tensor_value_info("att_cache", F32, [2, "B", 3, 8]),
    ]
    outputs = [
        helper.make_tensor_value_info("enhanced", F32, ["B", 16]),
        helper.make_tensor_value_info("gru_h_out", F32, ["B", 32]),
        helper.make_tensor_value_info("conv_cache_out", F32, ["B", 4, 16]),
        helper.make_tensor_value_info("att_cache_out", F32, [2, "B", 3, 8]),
    ]
    inits = dict([const("one", [1]), const("four", [4]), const("zero_one", [0, 2]), const("half", np.float32(0.5))])
    inits.update(w)
    return save(tmp_path_factory.mktemp("enh") / "enhancer.onnx", nodes, inputs, outputs, inits)


def test_enhancer_three_caches_stream_batched_and_snapshot(enhancer) -> None:
    spec = infer_spec(enhancer)
    assert [(s.input, s.shape) for s in spec.states] == [
        ("gru_h", (BATCH, 32)),
        ("conv_cache", (BATCH, 4, 16)),
        ("att_cache", (2, BATCH, 3, 8)),
    ]
    engine = Engine.load(enhancer, spec=spec)
    xs = [RNG.standard_normal((12, 16)).astype(np.float32) for _ in range(3)]
    a = engine.stream()
    stepped = np.stack([a.step(x) for x in xs[0]])
    b = engine.stream()
    np.testing.assert_array_equal(b.push(xs[0]), stepped)  # no time axis: pushed one frame per call
    batch = engine.batch()
    members = [batch.join() for _ in range(3)]
    outs = batch.step_many({m: x[: 4 * (i + 1)] for i, (m, x) in enumerate(zip(members, xs))})
    for i, m in enumerate(members):
        ref = engine.stream()
        np.testing.assert_allclose(outs[m], ref.push(xs[i][: 4 * (i + 1)]), atol=1e-6)
        for k, v in ref.state().items():
            np.testing.assert_allclose(m.state()[k], v, atol=1e-6)
    c = engine.stream()
    c.restore(a.snapshot())
    np.testing.assert_array_equal(c.push(xs[1]), a.push(xs[1]))
    before = [m.snapshot() for m in members]  # one frame per member, on the generic path
    ys = batch.step(np.stack([x[0] for x in xs]))
    for i, (x, blob) in enumerate(zip(xs, before)):
        ref = engine.stream()
        ref.restore(blob)
        np.testing.assert_allclose(ys[i], ref.step(x[0]), atol=1e-6)


# -- a state whose batch axis is last, an output laid out (time, batch, ...), a spec written by hand


@pytest.fixture(scope="module")
def batch_last(tmp_path_factory) -> Path:
    n = helper.make_node
    nodes = [
        n("MatMul", ["x", "W"], ["z"]),
        n("CumSum", ["z", "axis1"], ["c"]),  # (B, T, 8)
        n("Transpose", ["s"], ["st"], perm=[1, 0]),
        n("Unsqueeze", ["st", "one"], ["st1"]),
        n("Add", ["c", "st1"], ["S"]),
        n("Transpose", ["S"], ["y"], perm=[1, 0, 2]),  # (T, B, 8)
        n("Gather", ["S", "minus1"], ["last"], axis=1),
        n("Transpose", ["last"], ["s_out"], perm=[1, 0]),  # (8, B)
    ]
    inputs = [helper.make_tensor_value_info("x", F32, ["B", "T", 4]), helper.make_tensor_value_info("s", F32, [8, "B"])]
    outputs = [
        helper.make_tensor_value_info("y", F32, ["T", "B", 8]),
        helper.make_tensor_value_info("s_out", F32, [8, "B"]),
    ]
    inits = dict(
        [
            const("W", RNG.standard_normal((4, 8)).astype(np.float32)),
            const("axis1", np.int64(1)),
            const("one", [1]),
            const("minus1", np.int64(-1)),
        ]
    )
    return save(tmp_path_factory.mktemp("bl") / "batch_last.onnx", nodes, inputs, outputs, inits)


def test_state_with_batch_axis_last_by_hand_and_inferred(batch_last) -> None:
    hand = StreamSpec(
        inputs=(TensorSpec("x", "float32", (BATCH, TIME, 4)),),
        outputs=(TensorSpec("y", "float32", (TIME, BATCH, 8)),),
        states=(StateSpec("s", "s_out", "float32", (8, BATCH)),),
    )
    assert infer_spec(batch_last) == hand
    engine = Engine.load(batch_last, spec=hand)
    xs = [RNG.standard_normal((20, 4)).astype(np.float32) for _ in range(4)]
    a = engine.stream()
    stepped = np.stack([a.step(x) for x in xs[0]])
    b = engine.stream()
    assert np.abs(b.push(xs[0], chunk=6) - stepped).max() <= 1e-5
    batch = engine.batch()
    members = [batch.join() for _ in range(4)]
    outs = batch.step_many({m: x[: 5 * i] for i, (m, x) in enumerate(zip(members, xs))})
    for i, m in enumerate(members):
        ref = engine.stream()
        expect = ref.push(xs[i][: 5 * i]) if i else np.zeros((0, 8))
        assert outs[m].shape == (5 * i, 8)
        assert np.abs(outs[m] - expect).max(initial=0) <= 1e-5
        np.testing.assert_allclose(m.state()["s"], ref.state()["s"], atol=1e-5)


def test_two_streamed_inputs_are_fed_by_name(tmp_path) -> None:
    n = helper.make_node
    w1, w2 = RNG.standard_normal((2, 4)).astype(np.float32), RNG.standard_normal((3, 4)).astype(np.float32)
    path = save(
        tmp_path / "two.onnx",
        [
            n("MatMul", ["a", "W1"], ["za"]),
            n("MatMul", ["b", "W2"], ["zb"]),
            n("Add", ["za", "zb"], ["z"]),
            n("CumSum", ["z", "axis1"], ["c"]),
            n("Unsqueeze", ["h", "one"], ["h1"]),
            n("Add", ["c", "h1"], ["y"]),  # (B, T, 4)
            n("Gather", ["y", "minus1"], ["h_out"], axis=1),
        ],
        [
            helper.make_tensor_value_info("b", F32, ["B", "T", 3]),  # declared first: never fed by position
            helper.make_tensor_value_info("a", F32, ["B", "T", 2]),
            helper.make_tensor_value_info("h", F32, ["B", 4]),
        ],
        [helper.make_tensor_value_info("y", F32, ["B", "T", 4]), helper.make_tensor_value_info("h_out", F32, ["B", 4])],
        dict(
            [
                const("W1", w1),
                const("W2", w2),
                const("axis1", np.int64(1)),
                const("one", [1]),
                const("minus1", np.int64(-1)),
            ]
        ),
    )
    engine = Engine.load(path, spec=infer_spec(path))
    a, b = RNG.standard_normal((10, 2)).astype(np.float32), RNG.standard_normal((10, 3)).astype(np.float32)
    s = engine.stream()
    stepped = np.stack([s.step({"a": a[t], "b": b[t]}) for t in range(10)])
    expect = np.cumsum(a @ w1 + b @ w2, axis=0)
    np.testing.assert_allclose(stepped, expect, atol=1e-5)
    np.testing.assert_allclose(engine.stream().push({"b": b, "a": a}, chunk=4), expect, atol=1e-5)
    with pytest.raises(InputError, match=r"streamed inputs are \['a', 'b'\], got \['a'\]"):
        s.step({"a": a[0]})
    with pytest.raises(InputError, match="same number of frames"):
        s.push({"a": a, "b": b[:3]})
    np.testing.assert_allclose(s.state()["h"][0], expect[-1], atol=1e-5)


def test_two_outputs_on_the_bound_fast_path_and_last_outputs(tmp_path) -> None:
    n = helper.make_node
    w = RNG.standard_normal((3, 4)).astype(np.float32)
    path = save(
        tmp_path / "two_out.onnx",
        [
            n("MatMul", ["x", "W"], ["z"]),
            n("CumSum", ["z", "axis1"], ["c"]),
            n("Unsqueeze", ["s", "one"], ["s1"]),
            n("Add", ["c", "s1"], ["y"]),  # (B, T, 4)
            n("ReduceSum", ["y", "two"], ["total"], keepdims=1),  # (B, T, 1)
            n("Gather", ["y", "minus1"], ["s_out"], axis=1),
        ],
        [helper.make_tensor_value_info("x", F32, ["B", "T", 3]), helper.make_tensor_value_info("s", F32, ["B", 4])],
        [
            helper.make_tensor_value_info("y", F32, ["B", "T", 4]),
            helper.make_tensor_value_info("total", F32, ["B", "T", 1]),
            helper.make_tensor_value_info("s_out", F32, ["B", 4]),
        ],
        dict(
            [
                const("W", w),
                const("axis1", np.int64(1)),
                const("one", [1]),
                const("two", [2]),
                const("minus1", np.int64(-1)),
            ]
        ),
    )
    engine = Engine.load(path, spec=infer_spec(path))
    assert engine.fast and [o.name for o in engine.spec.outputs] == ["y", "total"]
    xs = RNG.standard_normal((9, 3)).astype(np.float32)
    expect = np.cumsum(xs @ w, axis=0)
    s = engine.stream()
    assert s.last_outputs == {}
    y = s.step(xs[0])
    np.testing.assert_allclose(y, expect[0], atol=1e-5)
    np.testing.assert_allclose(s.last_outputs["total"], [expect[0].sum()], atol=1e-5)
    ys = s.push(xs[1:], chunk=3)
    np.testing.assert_allclose(ys, expect[1:], atol=1e-5)
    last = s.last_outputs
    np.testing.assert_allclose(last["y"], expect[-1], atol=1e-5)
    np.testing.assert_allclose(last["total"], [expect[-1].sum()], atol=1e-5)


def test_a_vad_batch_member_snapshots_its_context_window(vad) -> None:
    engine = Engine.load(vad, spec=vad_spec(vad))
    batch = engine.batch()
    member, other = batch.join(), batch.join()
    chunk = RNG.standard_normal(512).astype(np.float32)
    batch.step_many({member: chunk, other: chunk[::-1].copy()}, chunk=512)
    loose = engine.stream()
    loose.restore(member.snapshot())  # state and context travel out of the lane
    nxt = RNG.standard_normal(512).astype(np.float32)
    np.testing.assert_allclose(loose.push(nxt, chunk=512), batch.step_many({member: nxt}, chunk=512)[member], atol=1e-6)
    member.reset()
    fresh = engine.stream()
    np.testing.assert_allclose(member.push(nxt, chunk=512), fresh.push(nxt, chunk=512), atol=1e-6)
