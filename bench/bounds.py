"""What bounds the two targets the engine does not meet, measured (``python -m edgernn.bench.bounds``).

1. **int8 accurate in chunks of 64, RNN hidden 512** (export-int8-accurate-step, and >= 2x the auto
   form): the time loop's cost per frame split into the Scan's own dispatch with the gate math (no
   product), the fp32 recurrent Gemm (what auto runs), one per-tensor int8 DynamicQuantizeMatMul
   (the fast form), and the accurate form's two parts (HardSigmoid + two products + Sum).
2. **LSTM 128, batch 8, chunk 64** (the one peer case below 1.0x in the idle run): the native LSTM op
   (auto's branch there), the decomposed Scan, the Scan body's Gemm alone and gate math alone, the
   same graph through ``session.run`` and through the engine's batched call, and PyTorch's eager
   model, its 64 ``addmm`` alone and its gate math alone.

Every block is timed interleaved (rounds alternate their order) in thread CPU time, one thread; the
medians go to ``bench/results/bounds.md``, which BENCHMARKS.md includes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edgernn.bench.committed import markdown_section

RESULTS = Path(__file__).resolve().parent / "results" / "bounds.md"
HEADING = "## Measured bounds of the targets not met"


def _session(model: onnx.ModelProto | str) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    src = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def interleaved(calls: dict[str, Callable[[], object]], reps: int, rounds: int = 9) -> dict[str, float]:
    """Median µs per call of each, rounds alternating the order, thread CPU time."""
    per: dict[str, list[float]] = {k: [] for k in calls}
    names = list(calls)
    for r in range(rounds):
        for k in names if r % 2 == 0 else names[::-1]:
            f = calls[k]
            f()
            t = time.thread_time()
            for _ in range(reps):
                f()
            per[k].append((time.thread_time() - t) / reps * 1e6)
    return {k: statistics.median(v) for k, v in per.items()}


def _scan(nodes: list[onnx.NodeProto], inits: list[TensorProto], states: list[str], batch: int, hidden: int,
          gates: int) -> ort.InferenceSession:  # fmt: skip
    """A Scan over (batch, time, gates) inputs whose body is ``nodes`` (states in, ``*_n`` out, y)."""
    vi = helper.make_tensor_value_info
    f = TensorProto.FLOAT
    ins = [vi(s, f, [batch, hidden]) for s in states] + [vi("g", f, [batch, gates])]
    outs = [vi(f"{s}_n", f, [batch, hidden]) for s in states] + [vi("y", f, [batch, hidden])]
    body = helper.make_graph([*nodes, helper.make_node("Identity", ["h_n"], ["y"])], "body", ins, outs, inits)
    firsts, ends = [f"{s}0" for s in states], [f"{s}_end" for s in states]
    scan = helper.make_node("Scan", [*firsts, "gi"], [*ends, "ys"], body=body, num_scan_inputs=1,
                            scan_input_axes=[1], scan_output_axes=[1])  # fmt: skip
    graph = helper.make_graph(
        [scan],
        "bound",
        [vi(s, f, [batch, hidden]) for s in firsts] + [vi("gi", f, [batch, None, gates])],
        [vi(e, f, [batch, hidden]) for e in ends] + [vi("ys", f, [batch, None, hidden])],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 9
    return _session(model)


def _runner(sess: ort.InferenceSession, feed: dict[str, np.ndarray]) -> Callable[[], object]:
    return lambda: sess.run(None, feed)


def _c(name: str, value: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def rnn_int8_loop(hidden: int = 512, chunk: int = 64) -> dict[str, float]:
    """µs per frame of the RNN's time loop at batch 1: the floor, fp32 Gemm, int8 one part, two parts."""
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((hidden, hidden)) * 0.05).astype(np.float32)
    q = np.clip(np.round(w / (np.abs(w).max() / 127)), -127, 127).astype(np.int8)
    s, z = _c("s", np.array(0.01, np.float32)), _c("z", np.array(0, np.int8))
    dq = "DynamicQuantizeMatMul"
    ms = "com.microsoft"
    tanh = helper.make_node("Tanh", ["p"], ["h_n"])
    bodies = {
        "Scan + gate math, no product": ([helper.make_node("Add", ["h", "g"], ["p"]), tanh], []),
        "fp32 Gemm (the auto form)": ([helper.make_node("Gemm", ["h", "w", "g"], ["p"]), tanh], [_c("w", w)]),
        "int8, one part (the fast form)": (
            [
                helper.make_node(dq, ["h", "q", "s", "z"], ["m"], domain=ms),
                helper.make_node("Add", ["m", "g"], ["p"]),
                tanh,
            ],
            [_c("q", q), s, z],
        ),  # fmt: skip
        "int8, two parts (the accurate form)": (
            [
                helper.make_node("HardSigmoid", ["h"], ["u"], alpha=0.5, beta=0.5),
                helper.make_node(dq, ["u", "q", "s", "z"], ["m1"], domain=ms),
                helper.make_node(dq, ["u", "q2", "s", "z"], ["m2"], domain=ms),
                helper.make_node("Sum", ["g", "m1", "m2"], ["p"]),
                tanh,
            ],
            [_c("q", q), _c("q2", q), s, z],
        ),  # fmt: skip
    }
    gi = rng.standard_normal((1, chunk, hidden)).astype(np.float32)
    h0 = np.zeros((1, hidden), np.float32)
    calls: dict[str, Callable[[], object]] = {}
    for name, (nodes, inits) in bodies.items():
        calls[name] = _runner(_scan(nodes, inits, ["h"], 1, hidden, hidden), {"h0": h0, "gi": gi})
    return {k: v / chunk for k, v in interleaved(calls, reps=20).items()}


def lstm_chunk(hidden: int = 128, batch: int = 8, chunk: int = 64) -> dict[str, float]:
    """µs per call (batch x chunk frames) of the LSTM's ways through one chunk, ORT and PyTorch."""
    import torch

    from edgernn.bench.contenders import Case, Subject, batched_engine_call, raw_pingpong, torchscript
    from edgernn.bench.models import ModelKey, auto_path, fp32_path, torch_model
    from edgernn.export.decomposed import build_decomposed, read_weights
    from edgernn.export.quantize import read_spec
    from edgernn.runtime import Engine

    torch.set_num_threads(1)
    key = ModelKey("lstm", hidden)
    proto = onnx.load(str(fp32_path(key)))
    spec = read_spec(proto)
    native = _session(str(fp32_path(key)))
    scan = _session(build_decomposed(read_weights(proto, spec), spec, 17, quantize=False, frames="chunks"))
    auto = Engine.load(auto_path(key))
    x = np.random.default_rng(0).integers(0, 64, (batch, chunk), dtype=np.int64)
    state = {s.input: np.zeros(s.concrete_shape(batch), np.float32) for s in spec.states}
    rng = np.random.default_rng(1)
    r = _c("R", (rng.standard_normal((hidden, 4 * hidden)) * 0.05).astype(np.float32))
    splits = [_c("sp", np.array([3 * hidden, hidden], np.int64)), _c("th", np.array([hidden] * 3, np.int64))]
    gate_nodes = [
        helper.make_node("Split", ["p", "sp"], ["iof", "gc"], axis=-1),
        helper.make_node("Sigmoid", ["iof"], ["siof"]),
        helper.make_node("Split", ["siof", "th"], ["i", "o", "f"], axis=-1),
        helper.make_node("Tanh", ["gc"], ["cand"]),
        helper.make_node("Mul", ["f", "c"], ["fc"]),
        helper.make_node("Mul", ["i", "cand"], ["ic"]),
        helper.make_node("Add", ["fc", "ic"], ["c_n"]),
        helper.make_node("Tanh", ["c_n"], ["tc"]),
        helper.make_node("Mul", ["o", "tc"], ["h_n"]),
    ]
    cut = [_c("a", np.array([0], np.int64)), _c("b", np.array([hidden], np.int64)), _c("ax", np.array([1], np.int64))]
    gemm_only = _scan(
        [helper.make_node("Gemm", ["h", "R", "g"], ["p"]), helper.make_node("Slice", ["p", "a", "b", "ax"], ["h_n"]),
         helper.make_node("Identity", ["c"], ["c_n"])], [r, *cut], ["h", "c"], batch, hidden, 4 * hidden)  # fmt: skip
    gates_only = _scan([helper.make_node("Identity", ["g"], ["p"]), *gate_nodes], splits, ["h", "c"], batch, hidden,
                       4 * hidden)  # fmt: skip
    gi = np.random.default_rng(2).standard_normal((batch, chunk, 4 * hidden)).astype(np.float32)
    z = np.zeros((batch, hidden), np.float32)
    feed = {"h0": z, "c0": z, "gi": gi}
    model = torch_model(key)
    xt, git = torch.from_numpy(x), torch.from_numpy(gi)
    wr = torch.from_numpy(numpy_helper.to_array(r))

    @torch.no_grad()
    def torch_mm() -> None:
        h = torch.zeros(batch, hidden)
        for t in range(chunk):
            h = torch.addmm(git[:, t], h, wr)[:, :hidden]

    @torch.no_grad()
    def torch_gates() -> None:
        c = torch.zeros(batch, hidden)
        for t in range(chunk):
            i, f, g, o = git[:, t].chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            torch.sigmoid(o) * torch.tanh(c)

    subject = Subject(Case("lstm", hidden, batch, chunk), auto_path(key), None, model, {}, x)
    calls: dict[str, Callable[[], object]] = {
        "engine batched call (auto form)": batched_engine_call(auto, x),
        "raw ping-pong, the same graph (the runtime's binding loop, no checks)": raw_pingpong(subject),
        "session.run, the auto graph": lambda: auto.session.run(None, {"x": x, **state}),
        "ORT native LSTM op (auto's branch at batch 8)": lambda: native.run(None, {"x": x, **state}),
        "ORT decomposed Scan (whole model)": lambda: scan.run(None, {"x": x, **state}),
        "ORT Scan body: Gemm alone": lambda: gemm_only.run(None, feed),
        "ORT Scan body: gate math alone (9 nodes)": lambda: gates_only.run(None, feed),
        "PyTorch eager model (a peer)": lambda: torch.no_grad()(model)(xt),
        "PyTorch TorchScript-frozen model (a peer)": torchscript(subject),
        "PyTorch: the 64 addmm alone": torch_mm,
        "PyTorch: the 64 steps' gate math alone": torch_gates,
    }
    return interleaved(calls, reps=10)


def render(rnn: dict[str, float], lstm: dict[str, float], load: tuple[float, float], took_s: float = 0.0) -> str:
    from edgernn.bench.overhead import cpu_name

    base = rnn["fp32 Gemm (the auto form)"]
    lines = [
        f"CPU: {cpu_name()}; 1 thread; thread CPU time, medians of interleaved rounds; load average "
        f"{load[0]:.1f}→{load[1]:.1f} on {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"the run took {took_s:.0f} s.",
        "",
        "**int8 accurate, RNN hidden 512, batch 1, chunks of 64**: the time loop per frame (the input product is a",
        "Gather from the folded table outside the loop in every form).",
        "",
        "| loop body | µs per frame | auto (fp32 Gemm) / this |",
        "|---|---|---|",
        *(f"| {k} | {v:.2f} | {base / v:.2f}x |" for k, v in rnn.items()),
        "",
        "One int8 product costs about half the fp32 Gemm at this shape, so the two-part accurate form costs",
        "what fp32 costs: it cannot reach 2x the auto form while it runs two products. Its two parts side by",
        "side in one product (one (512, 1024) matrix, per-column scales) ran slower still (0.78x auto, per-column",
        "scales take onnxruntime's slower kernel); a 2x needs one int8 product per step, the fast form, which",
        "misses the 2e-2 parity on long-trained models.",
        "",
        "**LSTM hidden 128, batch 8, chunk 64**: µs per call (512 stream-frames).",
        "",
        "| path | µs per call |",
        "|---|---|",
        *(f"| {k} | {v:,.0f} |" for k, v in lstm.items()),
    ]
    return "\n".join(lines) + "\n"


def section() -> str:
    """The BENCHMARKS.md section: the committed table, or nothing."""
    return markdown_section(HEADING, RESULTS, "`python -m edgernn.bench.bounds` regenerates it.")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--out", default=str(RESULTS))
    args = p.parse_args(argv)
    load0, t0 = os.getloadavg()[0], time.monotonic()
    rnn = rnn_int8_loop()
    lstm = lstm_chunk()
    took = time.monotonic() - t0
    Path(args.out).write_text(render(rnn, lstm, (load0, os.getloadavg()[0]), took), encoding="utf-8")
    print(Path(args.out).read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
