"""The engine core: window streaming, the one binding primitive on every spec, fixed axes, load-time probe.

Graphs are built with onnx.helper to have the layouts third-party models have (a window model
that refuses short inputs like silero-vad, a graph with batch or time fixed at 1); each is
checked against a bare onnxruntime loop carrying the state.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgernn.runtime import Engine, InputError, SnapshotError, SpecError, StreamError  # noqa: E402
from edgernn.runtime.spec import (  # noqa: E402
    BATCH,
    SPEC_VERSION,
    TIME,
    ConstantSpec,
    ContextSpec,
    StateSpec,
    StreamSpec,
    TensorSpec,
)

F32, I64 = TensorProto.FLOAT, TensorProto.INT64
RNG = np.random.default_rng(7)
K, N = 64, 512  # context samples, window samples
W = RNG.standard_normal((K + N, 1)).astype(np.float32) / 24
V = RNG.standard_normal((2, 1, 8)).astype(np.float32)


def save(path: Path, nodes, inputs, outputs, inits) -> Path:
    graph = helper.make_graph(
        nodes, path.stem, inputs, outputs, [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def window_vad(tmp_path_factory) -> Path:
    """Like silero-vad: (batch, samples) in, state (2, batch, 8), sr constant; takes exactly K + N samples per lane."""
    n = helper.make_node
    nodes = [
        n("Reshape", ["input", "rows"], ["r"]),  # (B, K + N): refuses any other length, as silero refuses < 130
        n("MatMul", ["r", "W"], ["feat"]),  # (B, 1): depends on every sample's position in the window
        n("Cast", ["sr"], ["srf"], to=F32),
        n("Div", ["srf", "k16"], ["srs"]),
        n("Unsqueeze", ["feat", "zero"], ["u"]),  # (1, B, 1)
        n("Mul", ["u", "V"], ["d0"]),
        n("Mul", ["d0", "srs"], ["drive"]),  # (2, B, 8)
        n("Mul", ["state", "decay"], ["kept"]),
        n("Add", ["kept", "drive"], ["pre"]),
        n("Tanh", ["pre"], ["stateN"]),
        n("ReduceMean", ["stateN"], ["m"], axes=[0, 2], keepdims=0),
        n("Unsqueeze", ["m", "one"], ["m1"]),
        n("Sigmoid", ["m1"], ["output"]),  # (B, 1)
    ]
    inputs = [
        helper.make_tensor_value_info("input", F32, ["batch", "samples"]),
        helper.make_tensor_value_info("state", F32, [2, "batch", 8]),
        helper.make_tensor_value_info("sr", I64, []),
    ]
    outputs = [
        helper.make_tensor_value_info("output", F32, ["batch", 1]),
        helper.make_tensor_value_info("stateN", F32, [2, "batch", 8]),
    ]
    inits = {
        "rows": np.array([-1, K + N], np.int64), "W": W, "V": V, "zero": np.array([0], np.int64),
        "one": np.array([1], np.int64), "k16": np.float32(16000), "decay": np.float32(0.9),
    }  # fmt: skip
    return save(tmp_path_factory.mktemp("wvad") / "wvad.onnx", nodes, inputs, outputs, inits)


def window_spec(window: int | None = N) -> StreamSpec:
    return StreamSpec(
        inputs=(TensorSpec("input", "float32", (BATCH, TIME)),),
        outputs=(TensorSpec("output", "float32", (BATCH, 1)),),
        states=(StateSpec("state", "stateN", "float32", (2, BATCH, 8)),),
        constants=(ConstantSpec("sr", "int64", 16000),),
        context=ContextSpec("input", K),
        window=window,
    )


def bare_loop(path: Path, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What a user writes by hand: [context | window] rows, state carried, one session.run per window."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    state, ctx, outs = np.zeros((2, 1, 8), np.float32), np.zeros(K, np.float32), []
    for i in range(0, len(samples) - len(samples) % N, N):
        row = np.concatenate([ctx, samples[i : i + N]])[None]
        y, state = sess.run(None, {"input": row, "state": state, "sr": np.array(16000, np.int64)})
        outs.append(y[0])
        ctx = row[0, -K:]
    return np.array(outs), state


def test_window_stream_takes_any_number_of_samples_and_equals_the_bare_loop(window_vad) -> None:
    engine = Engine.load(window_vad, spec=window_spec())
    info = engine.describe()
    assert info["path"] == "bound" and info["window"] == N and "window" in info["probe"]
    samples = RNG.standard_normal(N * 160 + 100).astype(np.float32)
    s = engine.stream()
    pieces, at = [], 0
    for size in [1, 37, 511, 600, 2048, 5] * 40:  # any number per call: the remainder waits
        if at >= len(samples):
            break
        pieces.append(s.push(samples[at : at + size]))
        at += size
    pieces.append(s.push(samples[at:]))
    got = np.concatenate(pieces)
    want, state = bare_loop(window_vad, samples)
    assert got.shape == want.shape == (160, 1) and s.pending == 100
    err = float(np.abs(got - want).max())
    print(f"window stream vs bare onnxruntime loop: 160 windows, max |diff| {err:.1e}")
    assert err <= 1e-6
    np.testing.assert_allclose(s.state()["state"], state, atol=1e-6)
    tail = s.flush()  # the last 100 samples, zero-padded to a window
    padded = np.concatenate([samples, np.zeros(N - 100, np.float32)])
    want_tail, _ = bare_loop(window_vad, padded)
    assert tail.shape == (1, 1) and s.pending == 0
    np.testing.assert_allclose(tail[0], want_tail[-1], atol=1e-6)
    assert s.flush().shape == (0, 1)  # nothing pending: nothing runs


def test_window_stream_snapshot_carries_context_and_pending_samples(window_vad) -> None:
    engine = Engine.load(window_vad, spec=window_spec())
    a = engine.stream()
    a.push(RNG.standard_normal(N + 300).astype(np.float32))
    assert a.pending == 300
    b = engine.stream()
    b.restore(a.snapshot())
    c = a.fork()
    nxt = RNG.standard_normal(2 * N).astype(np.float32)
    ya = a.push(nxt)
    np.testing.assert_array_equal(ya, b.push(nxt))
    np.testing.assert_array_equal(ya, c.push(nxt))
    with pytest.raises(InputError, match="pending"):
        b.step(np.zeros(N, np.float32))
    with pytest.raises(InputError, match=f"one window of {N} items"):
        engine.stream().step(np.zeros(N - 1, np.float32))


def test_window_streams_batched_with_ragged_sample_counts_equal_solo(window_vad) -> None:
    engine = Engine.load(window_vad, spec=window_spec())
    batch = engine.batch()
    members = [batch.join() for _ in range(3)]
    solo = [engine.stream() for _ in range(3)]
    for _ in range(4):
        feeds = {m: RNG.standard_normal(int(RNG.integers(0, 3 * N))).astype(np.float32) for m in members}
        outs = batch.step_many(feeds)
        for m, alone in zip(members, solo):
            np.testing.assert_allclose(outs[m], alone.push(feeds[m]), atol=1e-6)
            assert m.pending == alone.pending
    member_out = members[0].push(RNG.standard_normal(N).astype(np.float32))  # a member's own push, same rules
    assert member_out.shape[0] in (1, 2)


def test_load_never_probes_a_shape_the_graph_refuses(window_vad) -> None:
    """silero-vad's failure: the probe fed one frame plus the context (65 samples), the graph wants 576."""
    engine = Engine.load(window_vad, spec=window_spec(window=None))  # no window: the graph refuses one frame
    assert engine.describe()["probe"].startswith("skipped: the graph refused one frame")  # the load goes on
    out = engine.stream().push(RNG.standard_normal(N).astype(np.float32), chunk=N)  # the user cuts windows
    assert out.shape == (1, 1)


def test_spec_version_1_still_loads_and_window_needs_version_2(window_vad) -> None:
    raw = window_spec(window=None).to_dict()
    raw["version"] = 1
    raw.pop("window")
    old = StreamSpec.from_json(json.dumps(raw))
    assert old.window is None and old.version == SPEC_VERSION  # read as the current version without a window
    raw["window"] = N
    with pytest.raises(SpecError, match="'window' needs version 2"):
        StreamSpec.from_dict(raw)
    with pytest.raises(SpecError, match=r"window: got 0 \(int\), expected an int in \[1, "):
        StreamSpec.from_dict({**window_spec().to_dict(), "window": 0})
    assert StreamSpec.from_json(window_spec().to_json()).window == N


# -- fixed axes ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fixed_one(tmp_path_factory) -> Path:
    """Batch and time fixed at 1 in the graph (many exported third-party models are)."""
    n = helper.make_node
    nodes = [n("MatMul", ["x", "A"], ["xa"]), n("Add", ["xa", "h"], ["s"]), n("Tanh", ["s"], ["h_out"])]
    nodes += [n("Identity", ["h_out"], ["y"])]
    inputs = [helper.make_tensor_value_info("x", F32, [1, 1, 4]), helper.make_tensor_value_info("h", F32, [1, 1, 4])]
    outputs = [helper.make_tensor_value_info(k, F32, [1, 1, 4]) for k in ("y", "h_out")]
    a = (RNG.standard_normal((4, 4)) / 2).astype(np.float32)
    return save(tmp_path_factory.mktemp("fixed") / "fixed.onnx", nodes, inputs, outputs, {"A": a})


def fixed_spec() -> StreamSpec:
    return StreamSpec(
        inputs=(TensorSpec("x", "float32", (BATCH, TIME, 4)),),
        outputs=(TensorSpec("y", "float32", (BATCH, TIME, 4)),),
        states=(StateSpec("h", "h_out", "float32", (BATCH, 1, 4)),),
    )


def test_fixed_batch_and_time_axes_are_read_from_the_graph(fixed_one) -> None:
    engine = Engine.load(fixed_one, spec=fixed_spec())
    assert engine.describe()["fixed_batch"] == 1 and engine.describe()["max_chunk"] == 1
    xs = RNG.standard_normal((70, 4)).astype(np.float32)
    s = engine.stream()
    got = s.push(xs)  # default chunk 64: capped at the graph's time size 1
    one = engine.stream()
    np.testing.assert_allclose(got, np.stack([one.push(x[None])[0] for x in xs]), atol=1e-7)
    batch = engine.batch()
    batch.join()
    with pytest.raises(StreamError, match="fixes the batch axis to 1"):
        batch.join()
    a, b = engine.stream(), engine.stream()  # loose streams: step_many runs them one by one
    outs = engine.step_many([a, b], [xs[:3], xs[:5]])
    assert [o.shape[0] for o in outs] == [3, 5]
    np.testing.assert_allclose(outs[1], got[:5], atol=1e-6)


def test_zero_length_axes_are_refused_without_reaching_onnxruntime(tmp_path) -> None:
    """A spec whose time axis is fixed to 0 made the probe run a GRU on 0 frames: SIGABRT. Run in a child."""
    import subprocess
    import sys

    torch = pytest.importorskip("torch")
    model = torch.nn.GRU(4, 8, batch_first=True)
    path = tmp_path / "gru.onnx"
    torch.onnx.export(
        model, (torch.zeros(1, 3, 4), torch.zeros(1, 1, 8)), str(path), input_names=["x", "h"],
        output_names=["y", "h_out"], dynamic_axes={"x": {0: "b", 1: "t"}, "h": {1: "b"}}, dynamo=False,
    )  # fmt: skip
    code = f"""
from edgernn.runtime import Engine, SpecError
from edgernn.runtime.spec import StreamSpec, TensorSpec, StateSpec
spec = StreamSpec(inputs=(TensorSpec("x", "float32", ("batch", 0, 4)),),
                  outputs=(TensorSpec("y", "float32", ("batch", "time", 8)),),
                  states=(StateSpec("h", "h_out", "float32", (1, "batch", 8)),))
try:
    Engine.load({str(path)!r}, spec=spec)
    print("LOADED")
except SpecError as exc:
    print("SpecError:", exc)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"child died with {proc.returncode}: {proc.stderr[-400:]}"
    assert "SpecError:" in proc.stdout and "size 0" in proc.stdout


def test_a_symbolic_frame_axis_is_a_spec_error_not_a_value_error_later(fixed_one) -> None:
    with pytest.raises(SpecError, match=r"input 'x' has shape \['batch', 'time', 'd1'\]"):
        spec = StreamSpec(
            inputs=(TensorSpec("x", "float32", (BATCH, TIME, "d1")),),
            outputs=fixed_spec().outputs,
            states=fixed_spec().states,
        )
        Engine.load(fixed_one, spec=spec)


def test_snapshot_format_1_still_restores(window_vad) -> None:
    """A snapshot written by the previous format (tied to the graph's sha256) loads into the same graph."""
    import hashlib
    import struct

    engine = Engine.load(window_vad, spec=window_spec(window=None))
    state = RNG.standard_normal((2, 1, 8)).astype(np.float32)
    ctx = RNG.standard_normal((1, K)).astype(np.float32)
    header = {
        "model_sha256": engine.model_sha256, "spec_version": 1,
        "tensors": [{"name": "state", "dtype": "float32", "shape": [2, 1, 8]},
                    {"name": "__context__", "dtype": "float32", "shape": [1, K]}],
    }  # fmt: skip
    head = json.dumps(header, sort_keys=True).encode()
    blob = b"EDGERNN-SNAP" + struct.pack("<II", 1, len(head)) + head + state.tobytes() + ctx.tobytes()
    blob += hashlib.sha256(blob).digest()
    s = engine.stream()
    s.restore(blob)
    np.testing.assert_array_equal(s.state()["state"], state)
    other = Engine.load(window_vad, spec=window_spec())  # another state contract (a window): refused
    with pytest.raises(SnapshotError):
        other.stream().restore(s.snapshot())


def test_a_batch_member_push_honours_chunk_with_a_context_window(window_vad) -> None:
    """A member's push(frames, chunk=K) ran all its frames in one call (chunk ignored): wrong with a context."""
    engine = Engine.load(window_vad, spec=window_spec(window=None))
    member = engine.batch().join()
    loose = engine.stream()
    xs = RNG.standard_normal(3 * N).astype(np.float32)
    got = member.push(xs, chunk=N)
    np.testing.assert_array_equal(got, loose.push(xs, chunk=N))
    want, _ = bare_loop(window_vad, xs)
    np.testing.assert_allclose(got, want, atol=1e-6)
    outs = engine.step_many([loose, engine.stream()], [xs, xs[:N]], chunk=N)  # ragged: cut at multiples of N
    assert [o.shape[0] for o in outs] == [3, 1]


def test_silero_vad_streams_any_number_of_samples_with_its_window() -> None:
    """The real model (fetched by `make thirdparty`): window=512 in its spec; pushes of any size == the bare loop."""
    from edgernn.bench.thirdparty_models import missing, model_path
    from edgernn.runtime import infer_spec

    if "silero_vad" in missing():
        pytest.skip("silero-vad not fetched: run `make thirdparty`")
    import dataclasses

    path = model_path("silero_vad")
    spec = dataclasses.replace(infer_spec(path, constants={"sr": 16000}, context={"input": 64}), window=512)
    engine = Engine.load(path, spec=spec)
    assert engine.describe()["probe"].startswith("ran at the window") and engine.describe()["path"] == "bound"
    x = (np.random.default_rng(3).standard_normal(512 * 160 + 77) * 0.1).astype(np.float32)
    s, outs, at = engine.stream(), [], 0
    for size in [300, 1000, 17, 5000] * 100:
        if at >= len(x):
            break
        outs.append(s.push(x[at : at + size]))
        at += size
    got = np.concatenate(outs).ravel()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    state, ctx, ref = np.zeros((2, 1, 128), np.float32), np.zeros(64, np.float32), []
    for i in range(0, 512 * 160, 512):
        row = np.concatenate([ctx, x[i : i + 512]])[None]
        y, state = sess.run(None, {"input": row, "state": state, "sr": np.array(16000, np.int64)})
        ref.append(y.ravel())
        ctx = row[0, -64:]
    err = float(np.abs(got - np.concatenate(ref)).max())
    print(f"silero-vad window stream vs bare loop: 160 windows, max |diff| {err:.1e}, pending {s.pending}")
    assert got.shape == (160,) and err <= 1e-6 and s.pending == 77
    t = engine.stream()
    t.restore(s.snapshot())
    tail = RNG.standard_normal(700).astype(np.float32) * 0.1
    np.testing.assert_array_equal(s.push(tail), t.push(tail))
    np.testing.assert_array_equal(s.flush(), t.flush())


def test_last_outputs_is_the_latest_frame_after_step_push_and_a_huge_push() -> None:
    """A push keeps its (small) result whole instead of copying a row; last_outputs still gives the last frame."""
    path = Path(__file__).resolve().parent / "fixtures" / "gru-frames.onnx"
    engine = Engine.load(path)
    xs = np.random.default_rng(3).standard_normal((9, 3)).astype(np.float32)
    s, ref = engine.stream(), engine.stream()
    want = np.stack([ref.step(x) for x in xs])
    got = s.push(xs[:5])
    np.testing.assert_array_equal(s.last_outputs["y"], want[4])
    assert s.last_outputs["y"].shape == (2,)
    y = s.step(xs[5])
    np.testing.assert_array_equal(s.last_outputs["y"], y)
    np.testing.assert_array_equal(s.push(xs[6:], chunk=2), want[6:])  # several calls: the last row copied
    np.testing.assert_array_equal(s.last_outputs["y"], want[8])
    np.testing.assert_array_equal(got, want[:5])
    big = np.zeros((20_000, 3), np.float32)  # 160 KB of outputs: the row is copied, the result not held
    out = s.push(big, chunk=20_000)
    assert s._last.base is None and s._last.shape == (2,)
    np.testing.assert_array_equal(s.last_outputs["y"], out[-1])
