"""The engine's overhead on every spec layout: Stream vs a bare session.run loop vs raw ping-pong.

For each subject (a graph and its stream spec) three loops advance one stream by one call
(one frame, or one window for a window model) from pre-generated inputs:

* ``engine``: ``Stream.step`` (or ``push`` of one window), validation and locks included;
* ``bare session.run``: what a user writes by hand: a feed dict in the graph's layout (the
  ``[context | window]`` row built by hand), the state carried from the outputs;
* ``raw ping-pong``: the runtime's binding primitive with no checks (``runtime/raw.py``);
* ``floor``: raw ping-pong plus exactly the per-call work the stream contract asks for,
  written inline with no layering: the NaN / Inf test of the input (one dot with zeros), the
  stream's lock, the ``[context | window]`` row written and the context shifted after the
  call, and the output copied out. ``engine - floor`` is the engine's own bookkeeping;
  ``floor - raw`` is what the contract costs between two onnxruntime calls (each numpy
  call there costs ~1 µs: the interpreter's and CPU's caches are cold after the session ran).

They run interleaved (short blocks, order rotated each round), timed in this thread's CPU
time (the session runs one intra-op thread, on the caller's thread), so other processes on
a shared machine do not land in the figures; the ratio is the median of the per-round
ratios. The engine's and the bare loop's outputs are compared over the same calls (max
|diff| reported; tests/test_bench_overhead.py holds them within 1e-6).

Subjects are graphs with the layouts third-party models have, built here with onnx.helper:
a GRU with its time axis first (batch second), a cell with no time axis, a batch-last state,
and a window model with a constant and a context window (silero-vad's layout). Other
subjects (the third-party models) plug in through ``Subject``.

    python -m edgernn.bench.overhead [--calls 300] [--rounds 7] [-o bench/results/overhead.md]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edgernn.bench.committed import markdown_section
from edgernn.runtime import Engine
from edgernn.runtime.binding import Binding, state_pairs, stream_view
from edgernn.runtime.raw import raw_pingpong
from edgernn.runtime.spec import BATCH, TIME, ConstantSpec, ContextSpec, StateSpec, StreamSpec, TensorSpec


@dataclass
class Subject:
    name: str
    path: Path
    spec: StreamSpec
    items: int  # time items per call (1, or the window)


@dataclass
class Row:
    name: str
    layout: str
    path: str
    engine_us: float
    bare_us: float
    raw_us: float | None
    engine_vs_bare: float
    engine_vs_raw: float | None
    max_abs_diff: float
    floor_us: float | None = None


def _save(path: Path, nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: dict[str, Any]) -> Path:
    import onnx
    from onnx import helper, numpy_helper

    graph = helper.make_graph(
        nodes, path.stem, inputs, outputs, [numpy_helper.from_array(v, k) for k, v in inits.items()]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def subjects(root: Path, hidden: int = 64) -> list[Subject]:
    """The built-in subjects: one per spec layout the old engine sent to the generic path."""
    from onnx import TensorProto, helper

    f32, rng, n = TensorProto.FLOAT, np.random.default_rng(0), helper.make_node
    vi = helper.make_tensor_value_info
    h, i = hidden, 16

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)

    out = []
    gru = _save(
        root / "gru_time_first.onnx",
        [n("GRU", ["x", "W", "R", "B", "", "h"], ["y4", "h_out"], hidden_size=h), n("Squeeze", ["y4", "one"], ["y"])],
        [vi("x", f32, ["T", "B", i]), vi("h", f32, [1, "B", h])],
        [vi("y", f32, ["T", "B", h]), vi("h_out", f32, [1, "B", h])],
        {"W": w(1, 3 * h, i), "R": w(1, 3 * h, h), "B": w(1, 6 * h), "one": np.array([1], np.int64)},
    )
    out.append(
        Subject(
            "GRU, time axis first",
            gru,
            StreamSpec(
                inputs=(TensorSpec("x", "float32", (TIME, BATCH, i)),),
                outputs=(TensorSpec("y", "float32", (TIME, BATCH, h)),),
                states=(StateSpec("h", "h_out", "float32", (1, BATCH, h)),),
            ),
            1,
        )
    )
    cell = [
        n("MatMul", ["x", "A"], ["xa"]),
        n("MatMul", ["h", "U"], ["hu"]),
        n("Add", ["xa", "hu"], ["s"]),
        n("Tanh", ["s"], ["h_out"]),
        n("MatMul", ["h_out", "O"], ["y"]),
    ]
    nt = _save(
        root / "no_time.onnx",
        cell,
        [vi("x", f32, ["B", i]), vi("h", f32, ["B", h])],
        [vi("y", f32, ["B", 8]), vi("h_out", f32, ["B", h])],
        {"A": w(i, h), "U": w(h, h), "O": w(h, 8)},
    )
    out.append(
        Subject(
            "cell, no time axis",
            nt,
            StreamSpec(
                inputs=(TensorSpec("x", "float32", (BATCH, i)),),
                outputs=(TensorSpec("y", "float32", (BATCH, 8)),),
                states=(StateSpec("h", "h_out", "float32", (BATCH, h)),),
            ),
            1,
        )
    )
    last = [
        n("Transpose", ["h"], ["ht"], perm=[1, 0]),
        *cell[:2],
        n("Add", ["xa", "hu"], ["s"]),
        n("Tanh", ["s"], ["hn"]),
        n("Transpose", ["hn"], ["h_out"], perm=[1, 0]),
        n("MatMul", ["hn", "O"], ["y"]),
    ]
    last[2] = n("MatMul", ["ht", "U"], ["hu"])
    bl = _save(
        root / "batch_last.onnx",
        last,
        [vi("x", f32, ["B", i]), vi("h", f32, [h, "B"])],
        [vi("y", f32, ["B", 8]), vi("h_out", f32, [h, "B"])],
        {"A": w(i, h), "U": w(h, h), "O": w(h, 8)},
    )
    out.append(
        Subject(
            "batch-last state",
            bl,
            StreamSpec(
                inputs=(TensorSpec("x", "float32", (BATCH, i)),),
                outputs=(TensorSpec("y", "float32", (BATCH, 8)),),
                states=(StateSpec("h", "h_out", "float32", (h, BATCH)),),
            ),
            1,
        )
    )
    k, win = 64, 512
    vad = [
        n("Reshape", ["input", "rows"], ["r"]),
        n("MatMul", ["r", "Wv"], ["f"]),
        n("Cast", ["sr"], ["srf"], to=f32),
        n("Div", ["srf", "k16"], ["srs"]),
        n("Mul", ["f", "srs"], ["fs"]),
        n("Unsqueeze", ["fs", "zero"], ["u"]),
        n("Mul", ["state", "decay"], ["kept"]),
        n("Add", ["kept", "u"], ["pre"]),
        n("Tanh", ["pre"], ["stateN"]),
        n("ReduceMean", ["stateN"], ["m"], axes=[0, 2], keepdims=0),
        n("Unsqueeze", ["m", "one"], ["m1"]),
        n("Sigmoid", ["m1"], ["output"]),
    ]
    wv = _save(
        root / "window_vad.onnx",
        vad,
        [vi("input", f32, ["B", "S"]), vi("state", f32, [2, "B", h]), vi("sr", TensorProto.INT64, [])],
        [vi("output", f32, ["B", 1]), vi("stateN", f32, [2, "B", h])],
        {
            "rows": np.array([-1, k + win], np.int64),
            "Wv": w(k + win, h),
            "k16": np.float32(16000),
            "zero": np.array([0], np.int64),
            "one": np.array([1], np.int64),
            "decay": np.float32(0.9),
        },
    )
    out.append(
        Subject(
            "window 512 + context 64 + constant",
            wv,
            StreamSpec(
                inputs=(TensorSpec("input", "float32", (BATCH, TIME)),),
                outputs=(TensorSpec("output", "float32", (BATCH, 1)),),
                states=(StateSpec("state", "stateN", "float32", (2, BATCH, h)),),
                constants=(ConstantSpec("sr", "int64", 16000),),
                context=ContextSpec("input", k),
                window=win,
            ),
            win,
        )
    )
    return out


def bare_loop(subject: Subject) -> Callable[[np.ndarray], np.ndarray]:
    """A hand-written session.run loop: feeds in the graph's layout, the state carried by name."""
    spec = subject.spec
    sess = ort.InferenceSession(str(subject.path), providers=["CPUExecutionProvider"])
    x = spec.inputs[0]
    feeds: dict[str, Any] = {
        c.name: np.asarray(c.value, dtype=np.int64 if c.dtype == "int64" else np.float32) for c in spec.constants
    }
    for s in spec.states:
        feeds[s.input] = np.full(s.concrete_shape(1), s.init, np.float32)
    k = spec.context.frames if spec.context is not None else 0
    ctx = np.zeros(k, np.float32)
    names = [spec.outputs[0].name] + [s.output for s in spec.states]
    shape = x.concrete_shape(1, subject.items + k)

    def call(items: np.ndarray) -> np.ndarray:
        nonlocal ctx
        if k:
            row = np.concatenate([ctx, items])
            ctx = row[-k:]
            feeds[x.name] = row.reshape(shape)
        else:
            feeds[x.name] = items.reshape(shape)
        got = sess.run(names, feeds)
        for s, v in zip(spec.states, got[1:]):
            feeds[s.input] = v
        return got[0]

    return call


def floor_loop(engine: Engine, subject: Subject) -> Callable[[np.ndarray], np.ndarray]:
    """Raw ping-pong plus the contract's own per-call work, inline: check, lock, context, output copy."""
    spec = engine.spec
    n = subject.items
    states = state_pairs(spec, 1)
    b = Binding(engine.session, engine.layout, states, 1, n, engine.constants)
    k = engine.context_frames
    lane = b.lane0[0]
    head, body, tail = (lane[:k], lane[k:], lane[n:]) if k else (None, lane, None)
    ctx = np.zeros((k, *engine.frame_shape), engine.input_dtype) if k else None
    zero = np.zeros(n * int(np.prod(engine.frame_shape, dtype=np.int64)), engine.input_dtype)
    out = b.y0 if n == 1 else b.rows
    run, io, lock, parity = engine.run_bound, b.io, threading.Lock(), [0]
    keep = (states, b)  # the bindings point into these buffers: they must outlive every call

    def call(x: np.ndarray) -> np.ndarray:
        if not math.isfinite(x.reshape(-1).dot(zero)):
            raise ValueError("NaN or Inf")
        with lock:
            if head is not None:
                head[...] = ctx
            body[...] = x
            p = parity[0]
            run(io[p], None)
            parity[0] = p ^ 1
            if ctx is not None:
                ctx[...] = tail
            return out.copy()

    call.binding = keep  # type: ignore[attr-defined]
    return call


def _engine_call(engine: Engine, subject: Subject) -> Callable[[np.ndarray], np.ndarray]:
    stream = engine.stream()
    return stream.push if subject.items > 1 else stream.step


def compare(subject: Subject, calls: int = 200, seed: int = 1) -> float:
    """Max |engine - bare session.run| over ``calls`` calls from the initial state."""
    engine = Engine.load(subject.path, spec=subject.spec)
    ins = _inputs(engine, subject, calls, seed)
    eng, bare = _engine_call(engine, subject), bare_loop(subject)
    out = subject.spec.outputs[0]
    diff = 0.0
    for x in ins:
        got = np.asarray(eng(x)).reshape(-1)
        want = stream_view(out, bare(x)).reshape(-1)
        diff = max(diff, float(np.abs(got - want).max()))
    return diff


def _inputs(engine: Engine, subject: Subject, calls: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (subject.items, *engine.frame_shape) if subject.items > 1 else engine.frame_shape
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(calls)]


def measure(subject: Subject, calls: int = 300, rounds: int = 7) -> Row:
    engine = Engine.load(subject.path, spec=subject.spec)
    ins = _inputs(engine, subject, calls, 2)
    loops: dict[str, Callable[[np.ndarray], Any]] = {
        "engine": _engine_call(engine, subject),
        "bare": bare_loop(subject),
    }
    if engine.fast:
        raw = raw_pingpong(engine, 1, subject.items, public=False)
        loops["raw"] = lambda x: raw(x.reshape(1, subject.items, *engine.frame_shape))
        floor = floor_loop(engine, subject)
        loops["floor"] = lambda x: floor(x.reshape(subject.items, *engine.frame_shape))
    per: dict[str, list[float]] = {name: [] for name in loops}
    for r in range(rounds + 1):
        order = list(loops)[r % len(loops) :] + list(loops)[: r % len(loops)]
        for name in order:
            fn = loops[name]
            t0 = time.thread_time()  # this thread's CPU time: onnxruntime runs on it (1 thread)
            for x in ins:
                fn(x)
            if r:  # round 0 warms every loop up
                per[name].append((time.thread_time() - t0) / calls * 1e6)
    med = {name: float(np.median(v)) for name, v in per.items()}
    ratio = float(np.median(np.asarray(per["engine"]) / np.asarray(per["bare"])))
    raw_ratio = float(np.median(np.asarray(per["engine"]) / np.asarray(per["raw"]))) if "raw" in per else None
    return Row(
        subject.name,
        _layout(subject.spec),
        engine.describe()["path"],
        med["engine"],
        med["bare"],
        med.get("raw"),
        ratio,
        raw_ratio,
        compare(subject),
        med.get("floor"),
    )


def _layout(spec: StreamSpec) -> str:
    x, s = spec.inputs[0], spec.states[0]
    return f"in {list(x.shape)}, state {list(s.shape)}"


def table(rows: list[Row], cpu: str, load: str | None = None) -> str:
    when = f" Load average while measured: {load}." if load else ""
    lines = [
        f"Engine overhead per call, 1 stream, 1 thread, thread CPU time, interleaved (median of per-round "
        f"ratios). CPU: {cpu}.{when}",
        "",
        "| subject | layout | engine path | engine µs | bare session.run µs | raw ping-pong µs | floor µs "
        "| engine / bare | engine - raw µs | floor - raw µs | engine - floor µs | max abs diff vs bare |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def gap(a: float | None, b: float | None) -> str:
        return "—" if a is None or b is None else f"{a - b:+.1f}"

    for r in rows:
        raw = f"{r.raw_us:.1f}" if r.raw_us is not None else "—"
        floor = f"{r.floor_us:.1f}" if r.floor_us is not None else "—"
        lines.append(
            f"| {r.name} | `{r.layout}` | {r.path} | {r.engine_us:.1f} | {r.bare_us:.1f} | {raw} | {floor} | "
            f"{r.engine_vs_bare:.2f}x | {gap(r.engine_us, r.raw_us)} | {gap(r.floor_us, r.raw_us)} "
            f"| {gap(r.engine_us, r.floor_us)} | {r.max_abs_diff:.1e} |"
        )
    return "\n".join(lines) + "\n"


HEADING = "## Engine overhead per spec layout (`bench/overhead.py`)"
RESULTS = Path(__file__).with_name("results") / "overhead.md"


def section() -> str:
    """The BENCHMARKS.md section: the committed table (``bench/results/overhead.md``), or nothing."""
    return markdown_section(
        HEADING,
        RESULTS,
        "One stream, one call (a frame, or one 512-sample window); `python -m edgernn.bench.overhead`"
        " regenerates it. Every layout runs on the bound path; outputs equal the bare loop's. *floor* is raw"
        " ping-pong plus the per-call work the stream contract asks for, written inline (the NaN / Inf test as one"
        " dot, the lock, the context window written and shifted, the output copied): `floor - raw` is what the"
        " contract costs between two onnxruntime calls, `engine - floor` the engine's own bookkeeping.",
    )


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgernn.bench.overhead", description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("-o", "--out", default="bench/results/overhead.md")
    args = p.parse_args(argv)
    if args.calls < 1 or args.rounds < 1:
        p.error("--calls and --rounds must be >= 1")
    with tempfile.TemporaryDirectory(prefix="edgernn-overhead-") as tmp:
        rows = [measure(s, args.calls, args.rounds) for s in subjects(Path(tmp))]
    text = table(rows, cpu_name(), " / ".join(f"{v:.1f}" for v in os.getloadavg()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
