"""Per-step latency of every app's shipped model in the engine, beside a bare session.run loop.

One stream, one frame per call (a token, a day, a series row, a melody event), the state
carried; the two loops run interleaved (short blocks, the order swapped each round) and are
timed in this thread's CPU time, so other processes on a shared machine stay out of the
figures. ``python -m edgernn.bench.apps`` rewrites ``bench/results/apps.md``; BENCHMARKS.md
includes it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edgernn.bench.committed import markdown_section
from edgernn.bench.overhead import cpu_name
from edgernn.runtime import Engine
from edgernn.runtime.apps import MODELS_DIR, TASKS

RESULTS = Path(__file__).resolve().parent / "results" / "apps.md"
HEADING = "## The apps' shipped models, one step each"


def _frames(engine: Engine, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    if engine.vocab_size:
        return [np.array(int(t)) for t in rng.integers(0, engine.vocab_size, size=n)]
    return [rng.standard_normal(engine.frame_shape).astype(np.float32) for _ in range(n)]


def _bare(path: Path, engine: Engine) -> tuple[ort.InferenceSession, dict[str, np.ndarray]]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    state = {s.input: np.full(s.concrete_shape(1), s.init, dtype=s.dtype) for s in engine.spec.states}
    return sess, state


def measure(task: str, calls: int = 300, rounds: int = 7) -> dict[str, Any]:
    path = MODELS_DIR / f"{task}.onnx"
    engine = Engine.load(path)
    stream = engine.stream()
    sess, state = _bare(path, engine)
    x_name, outs = engine.spec.inputs[0].name, [engine.spec.outputs[0].name] + [s.output for s in engine.spec.states]
    frames = _frames(engine, calls)
    per: dict[str, list[float]] = {"engine": [], "bare": []}

    def run_engine() -> float:
        t = time.thread_time()
        for f in frames:
            stream.step(f)
        return (time.thread_time() - t) / calls

    def run_bare() -> float:
        nonlocal state
        t = time.thread_time()
        for f in frames:
            feed = {x_name: f.reshape(1, 1, *f.shape), **state}
            got = sess.run(outs, feed)
            state = {s.input: v for s, v in zip(engine.spec.states, got[1:])}
        return (time.thread_time() - t) / calls

    for r in range(rounds):
        for name, fn in ((("engine", run_engine), ("bare", run_bare)) if r % 2 == 0 else
                         (("bare", run_bare), ("engine", run_engine))):  # fmt: skip
            per[name].append(fn())
    e, b = statistics.median(per["engine"]), statistics.median(per["bare"])
    cfg = engine.spec.model
    what = f"{cfg.cell.upper()} {cfg.hidden_size}x{cfg.num_layers}" if cfg else "?"
    return {"task": task, "model": what, "engine_us": e * 1e6, "bare_us": b * 1e6, "ratio": e / b}


def render(rows: list[dict], load: tuple[float, float]) -> str:
    lines = [
        f"CPU: {cpu_name()}; 1 intra-op thread; thread CPU time, medians of interleaved rounds; load average "
        f"{load[0]:.1f}→{load[1]:.1f} on {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "| app | model | engine step (µs) | bare session.run loop (µs) | engine / bare |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['task']} | {r['model']} | {r['engine_us']:.1f} | {r['bare_us']:.1f} | {r['ratio']:.2f}x |")
    return "\n".join(lines) + "\n"


def section() -> str:
    """The BENCHMARKS.md section: the committed table, or nothing."""
    return markdown_section(HEADING, RESULTS, "`python -m edgernn.bench.apps` regenerates it.")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("-o", "--out", default=str(RESULTS))
    args = p.parse_args(argv)
    load0 = os.getloadavg()[0]
    rows = [measure(t, args.calls, args.rounds) for t in TASKS if (MODELS_DIR / f"{t}.onnx").is_file()]
    Path(args.out).write_text(render(rows, (load0, os.getloadavg()[0])), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
