"""Per-step latency and per-stream memory of the KJV comparison's models: windowed attention beside
GRU and LSTM, the models trained by ``python -m edgernn.train.results --only attention``.

One stream, one token per call, the state carried, through the engine (``Stream.step``, the call
``edgernn profile`` and the other bench rows time). The models are timed interleaved (short
blocks, the order rotated each round) in this thread's CPU time, so other processes on a shared
machine stay out of the figures; the wall-clock median of every call is given beside it.
``python -m edgernn.bench.attention`` writes ``bench/results/attention.json`` and the section of
BENCHMARKS.md (``bench/report.py`` renders the same section on a full regeneration), and each
model's row beside its run (``latency.json``), which docs/TRAINING_RESULTS.md's attention section reads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgernn.bench.overhead import cpu_name
from edgernn.bench.thirdparty import update_benchmarks
from edgernn.runtime import Engine, Stream
from edgernn.runtime.latency import time_calls
from edgernn.runtime.profiling import state_bytes
from edgernn.train.results_attention import TEXT_RUNS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "attention.json"
RUNS = Path("runs/results")
HEADING = "## Windowed attention beside GRU and LSTM, one step each (KJV models)"
NAMES = tuple(name for name, _ in TEXT_RUNS)  # both budgets' runs: the same architectures, timed together


def describe(engine: Engine) -> str:
    m = engine.spec.model
    if m is None:
        return "?"
    if m.cell == "attention":
        return f"attention {m.hidden_size}x{m.num_layers}, window {m.window}, {m.heads} heads"
    return f"{m.cell.upper()} {m.hidden_size}x{m.num_layers}"


def _stepper(stream: Stream, tokens: Iterator[np.ndarray]) -> Callable[[], np.ndarray]:
    """One call: ``stream.step`` of the next token."""
    return lambda: stream.step(next(tokens))


def budget(run: Path) -> float | None:
    """The CPU-seconds a run trained for (its ``config.json``), or None where it has none."""
    f = run / "config.json"
    return json.loads(f.read_text())["train"].get("max_seconds") if f.is_file() else None


def measure(paths: dict[str, Path], calls: int = 200, rounds: int = 9) -> list[dict[str, Any]]:
    """Per model: median thread-CPU µs per step over ``rounds`` interleaved blocks of ``calls``
    steps, the median wall µs of every call, and the bytes of state one stream holds."""
    engines = {name: Engine.load(p) for name, p in paths.items()}
    streams = {name: e.stream() for name, e in engines.items()}
    tokens = [np.array(int(t)) for t in np.random.default_rng(0).integers(0, 50, size=calls)]
    cpu: dict[str, list[float]] = {n: [] for n in paths}
    wall: dict[str, list[np.ndarray]] = {n: [] for n in paths}
    names = list(paths)
    for name in names:  # warm-up, and every cache filled: a stream past its window
        for _ in range(300):
            streams[name].step(np.array(1))
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            s, it = streams[name], iter(tokens)
            t = time.thread_time()
            wall[name].append(time_calls(_stepper(s, it), calls))
            cpu[name].append((time.thread_time() - t) / calls)
    return [
        {
            "name": name,
            "model": describe(engines[name]),
            "trained_cpu_s": budget(paths[name].parent),
            "step_cpu_us": round(statistics.median(cpu[name]) * 1e6, 1),
            "step_wall_us_p50": round(float(np.median(np.concatenate(wall[name]))), 1),
            "state_bytes": state_bytes(engines[name].spec),
            "onnx_bytes": paths[name].stat().st_size,
        }
        for name in names
    ]


def section(res: dict[str, Any] | None = None) -> str:
    """The markdown section (empty where no result is committed)."""
    if res is None:
        if not RESULTS.is_file():
            return ""
        res = json.loads(RESULTS.read_text())
    lines = [
        HEADING,
        "",
        "`python -m edgernn.bench.attention` regenerates it (after `python -m edgernn.train.results --only "
        "attention`, which trains the models; their accuracy: docs/TRAINING_RESULTS.md).",
        "",
        f"CPU: {res['cpu']}; 1 intra-op thread; one stream, one token per call (`Stream.step`), state carried "
        f"past the window; thread CPU time per step, median of {res['rounds']} interleaved rounds of "
        f"{res['calls']} steps (wall: median of every call); load average {res['load'][0]:.1f}→{res['load'][1]:.1f} "
        f"on {res['cores']} cores; {res['measured_at']}.",
        "",
        "| model | trained (CPU s) | engine step, thread CPU (µs) | wall p50 (µs) | state per stream | ONNX file |",
        "|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        trained = f"{r['trained_cpu_s']:.0f}" if r.get("trained_cpu_s") else "?"
        lines.append(
            f"| {r['model']} | {trained} | {r['step_cpu_us']:.1f} | {r['step_wall_us_p50']:.1f} | "
            f"{r['state_bytes'] / 1024:,.1f} KiB | {r['onnx_bytes'] / 2**20:.2f} MiB |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, default=RUNS, help="the run directories (each with model.onnx)")
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--json", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    paths = {n: args.runs / n / "model.onnx" for n in NAMES if (args.runs / n / "model.onnx").is_file()}
    if not paths:
        print(f"attention bench: no models under {args.runs} (train them first)", file=sys.stderr)
        return 1
    load0 = os.getloadavg()[0]
    rows = measure(paths, args.calls, args.rounds)
    res = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "load": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "calls": args.calls,
        "rounds": args.rounds,
        "rows": rows,
    }
    args.json.write_text(json.dumps(res, indent=1) + "\n")
    for r in rows:  # beside each run, for docs/TRAINING_RESULTS.md (the library does not read the tools' files)
        (args.runs / r["name"] / "latency.json").write_text(json.dumps(r) + "\n")
    update_benchmarks(section(res), args.out, HEADING)
    print(section(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
