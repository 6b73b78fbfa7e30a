"""``edgernn profile``: does a model meet its real-time budget here, where does the time go, what memory.

Needs only the runtime install (numpy + onnxruntime); matplotlib is imported only for ``--plot``.
Exit codes: 0 within budget (or no budget), 1 an error, 2 p99 over ``--budget-ms``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from edgernn.cli.options import MAX_THREADS, add_json, integer, number, text
from edgernn.cli.paths import emit_json, in_file, out_file, out_file_with, report_written, text_out
from edgernn.devices import load_profile
from edgernn.runtime.engine import Engine
from edgernn.runtime.errors import ProfileError
from edgernn.runtime.latency import LatencyStats, time_calls
from edgernn.runtime.profiling import (
    ColdStart,
    OpCost,
    ProgressLine,
    cold_start,
    engine_call,
    op_breakdown,
    peak_rss_bytes,
    rss_bytes,
    state_bytes,
)
from edgernn.runtime.session import CpuDefaults, SessionProfile

HELP = "Latency p50/p99, throughput, real-time factor, cold start, memory and per-op time of a model."
EXAMPLE = (
    "edgernn profile runs/demo/model.onnx --chunk 1 --rate 100 --budget-ms 0.5 --json prof.json --plot prof.png\n"
    "  edgernn profile runs/demo/model.onnx --trace ort-trace.json   # open in https://ui.perfetto.dev"
)
OVER_BUDGET = 2
PLOT_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg")  # what matplotlib writes, by the name's suffix


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=in_file(), help="path to an exported .onnx model")
    p.add_argument(
        "--spec", type=in_file(), help="a spec.json for a model without one in its metadata (see edgernn spec)"
    )
    p.add_argument(
        "--device",
        type=text(200),
        default="cpu",
        help="device profile: 'cpu', a name `edgernn devices` lists, or a .toml path",
    )
    p.add_argument(
        "--threads", type=integer(1, MAX_THREADS), default=1, help="intra-op threads for the default cpu profile"
    )
    p.add_argument("--batch", type=integer(1, 65_536), default=1, help="streams advanced per call")
    p.add_argument("--chunk", type=integer(1, 1_000_000), default=1, help="frames per stream per call (1: step)")
    p.add_argument("--calls", type=integer(1, 100_000_000), default=2000, help="timed calls")
    p.add_argument("--warmup", type=integer(0, 100_000_000), default=200, help="untimed calls first")
    p.add_argument(
        "--rate",
        type=number(0.0, 1e9, lo_open=True),
        help="frame rate in Hz for the real-time factor (default: the model's)",
    )
    p.add_argument(
        "--budget-ms", type=number(0.0, 1e7, lo_open=True), help="exit 2 when p99 per call exceeds this (milliseconds)"
    )
    p.add_argument(
        "--op-calls", type=integer(0, 10_000_000), default=200, help="calls under onnxruntime's profiler (0: skip)"
    )
    add_json(p)
    p.add_argument(
        "--plot", type=out_file_with(PLOT_SUFFIXES), help="write a latency histogram + timeline PNG (needs matplotlib)"
    )
    p.add_argument(
        "--trace",
        type=out_file,
        help="keep onnxruntime's profiling trace of the --op-calls run (Perfetto, chrome://tracing)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")


def resolve_profile(name: str, threads: int = 1) -> SessionProfile:
    """'cpu' is the built-in default; other names are ``edgernn.devices`` profiles."""
    if name == "cpu":
        return CpuDefaults(threads=threads)
    return load_profile(name)


def workload(engine: Engine, batch: int, chunk: int) -> tuple[Callable[[], object], str]:
    """The call to time and what it is: the engine's own API (the one call devices auto and bench time)."""
    return engine_call(engine, batch, chunk)


def main(args: argparse.Namespace) -> int:
    if args.trace and args.op_calls == 0:
        raise ProfileError("--trace keeps the trace of the --op-calls run: give --op-calls above 0")
    if args.plot:
        _require_matplotlib()
    profile = resolve_profile(args.device, args.threads)
    engine, cold = cold_start(args.model, profile, spec=args.spec)
    call, path = workload(engine, args.batch, args.chunk)
    progress = None if args.quiet else ProgressLine("profile")
    us = time_calls(call, args.calls, args.warmup, progress)
    stats = LatencyStats.from_us(us, frames_per_call=args.chunk, streams=args.batch)
    ops: list[OpCost] = []
    op_run_us = 0.0
    if args.op_calls > 0:
        ops, op_run_us = op_breakdown(
            args.model, args.batch, args.chunk, args.op_calls, profile, trace=args.trace, spec=engine.spec
        )
    rate = args.rate if args.rate is not None else _task_rate(engine)
    report = build_report(args, engine, path, stats, cold, ops, op_run_us, rate)
    out = text_out(args.json)
    print(render(report), file=out)
    written = [emit_json(args.json, json.dumps(report, indent=2))]
    if args.plot:
        plot_latency(
            us, args.plot, plot_title(args.model, engine.profile.name, args.batch, args.chunk, path), args.budget_ms
        )
        written.append(args.plot)
    written.append(args.trace)
    report_written(written, out)
    if args.budget_ms is not None and stats.p99_us > args.budget_ms * 1e3:
        print(f"over budget: p99 {stats.p99_us / 1e3:.3f} ms > {args.budget_ms} ms", file=sys.stderr)
        return OVER_BUDGET
    return 0


def _task_rate(engine: Engine) -> float | None:
    task = engine.spec.task or {}
    for key in ("frame_rate", "rate_hz", "sample_rate"):
        value = task.get(key)
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
    return None


def build_report(
    args: argparse.Namespace,
    engine: Engine,
    path: str,
    stats: LatencyStats,
    cold: ColdStart,
    ops: list[OpCost],
    op_run_us: float,
    rate: float | None,
) -> dict[str, Any]:
    """Every figure, JSON-ready."""
    rtf = rtf_p99 = None
    if rate:
        audio_us = args.chunk / rate * 1e6  # signal time one call covers
        rtf, rtf_p99 = stats.mean_us / audio_us, stats.p99_us / audio_us
    return {
        "model": args.model,
        "device": engine.profile.name,
        "path": path,
        "batch": args.batch,
        "chunk": args.chunk,
        "warmup": args.warmup,
        "latency_us": {k: getattr(stats, k) for k in ("min_us", "p50_us", "p90_us", "p99_us", "max_us", "mean_us")},
        "calls": stats.calls,
        "frames_per_second": stats.frames_per_second,
        "stream_frames_per_second": stats.stream_frames_per_second,
        "rate_hz": rate,
        "real_time_factor": rtf,
        "real_time_factor_p99": rtf_p99,
        "cold_start_ms": {"load": cold.load_ms, "first_call": cold.first_call_ms, "total": cold.total_ms},
        "memory": {
            "peak_rss_bytes": peak_rss_bytes(),
            "rss_bytes": rss_bytes(),
            "model_bytes": os.path.getsize(args.model),
            "state_bytes_per_stream": state_bytes(engine.spec),
        },
        "ops": [vars(o) for o in ops],
        "ops_mean_run_us": op_run_us,
        "budget_ms": args.budget_ms,
        "within_budget": None if args.budget_ms is None else stats.p99_us <= args.budget_ms * 1e3,
    }


def render(r: dict[str, Any]) -> str:
    """The human-readable summary."""
    lat, mem, cold = r["latency_us"], r["memory"], r["cold_start_ms"]
    lines = [
        f"{r['model']} on {r['device']}: batch {r['batch']}, chunk {r['chunk']} — {r['path']}",
        f"  latency per call ({r['calls']} calls after {r['warmup']} warm-up): min {lat['min_us']:.1f}  "
        f"p50 {lat['p50_us']:.1f}  p90 {lat['p90_us']:.1f}  p99 {lat['p99_us']:.1f}  max {lat['max_us']:.1f} µs",
        f"  throughput: {r['frames_per_second']:,.0f} frames/s per stream, "
        f"{r['stream_frames_per_second']:,.0f} stream-frames/s",
    ]
    if r["real_time_factor"] is not None:
        lines.append(
            f"  real-time factor at {r['rate_hz']:g} Hz: {r['real_time_factor']:.4f} (mean), "
            f"{r['real_time_factor_p99']:.4f} (p99); below 1 keeps up"
        )
    lines += [
        f"  cold start: load {cold['load']:.1f} ms + first call {cold['first_call']:.2f} ms = {cold['total']:.1f} ms",
        f"  memory: peak RSS {mem['peak_rss_bytes'] / 2**20:.1f} MiB, model {mem['model_bytes'] / 1024:.1f} KiB, "
        f"state {mem['state_bytes_per_stream']} B per stream",
    ]
    if r["ops"]:
        lines.append(f"  per operator (onnxruntime profiler, session.run {r['ops_mean_run_us']:.1f} µs per call):")
        for o in r["ops"]:
            lines.append(
                f"    {o['op']:<28} {o['share'] * 100:5.1f} %  {o['per_call_us']:8.2f} µs/call  ({o['nodes']} nodes)"
            )
    if r["budget_ms"] is not None:
        verdict = "within" if r["within_budget"] else "OVER"
        lines.append(f"  budget {r['budget_ms']} ms per call: p99 {lat['p99_us'] / 1e3:.3f} ms — {verdict}")
    return "\n".join(lines)


def _require_matplotlib() -> None:
    if importlib.util.find_spec("matplotlib") is None:
        raise ProfileError("--plot needs matplotlib, which is not installed: pip install matplotlib (or edgernn[dev])")


def plot_title(model: str, device: str, batch: int, chunk: int, path: str) -> str:
    return f"{os.path.basename(model)} on {device}: batch {batch}, chunk {chunk}\n{path}"


def plot_latency(us: np.ndarray, out: str, title: str, budget_ms: float | None = None) -> None:
    """A histogram of per-call latency and the timeline of calls, one PNG."""
    import matplotlib.pyplot as plt

    fig = latency_figure(us, title, budget_ms)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def latency_figure(us: np.ndarray, title: str, budget_ms: float | None = None) -> Any:
    """The figure of ``plot_latency``: the histogram spans the bulk of the calls (up to 4x p99;
    rarer outliers are counted in a note), the timeline every call; a budget outside the data is
    named, not drawn at the far end of a stretched axis.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (hist, line) = plt.subplots(1, 2, figsize=(11, 4))
    p50, p99 = float(np.percentile(us, 50)), float(np.percentile(us, 99))
    lo, top = max(float(us.min()), 1e-3), max(float(us.max()), 1e-3)
    hi = min(top, 4 * p99)
    bulk = us[us <= hi]
    hist.hist(bulk, bins=np.geomspace(lo, hi * 1.0001, 60) if hi > lo else 10, color="#4878a8")
    hist.set_xscale("log")
    hist.set_xlim(lo / 1.05, hi * 1.05)
    hist.set_xlabel("latency per call (µs, log)")
    hist.set_ylabel("calls")
    notes = [f"{us.size - bulk.size} calls above {hi:.0f} µs (max {top:.0f})"] if bulk.size < us.size else []
    line.plot(np.arange(us.size), us, ".", ms=1.5, color="#4878a8", label="call")
    window = max(1, us.size // 100)
    if us.size >= window * 2:
        rolling = np.convolve(us, np.ones(window) / window, mode="valid")
        line.plot(np.arange(rolling.size) + window // 2, rolling, color="#c44e52", lw=1, label=f"mean of {window}")
    line.set_yscale("log")
    line.set_ylim(lo / 1.05, top * 1.05)
    line.set_xlabel("call")
    line.set_ylabel("latency per call (µs, log)")
    for v, q, style in ((p50, 50, "--"), (p99, 99, ":")):
        hist.axvline(v, color="k", ls=style, lw=1, label=f"p{q} {v:.1f} µs")
        line.axhline(v, color="k", ls=style, lw=1)
    if budget_ms is not None:
        b = budget_ms * 1e3
        if lo / 1.05 <= b <= hi * 1.05:
            hist.axvline(b, color="#c44e52", lw=1.5, label=f"budget {budget_ms:g} ms")
        else:
            notes.append(f"budget {budget_ms:g} ms ({b / p99:.2g}x the p99): off this axis")
        if lo / 1.05 <= b <= top * 1.05:
            line.axhline(b, color="#c44e52", lw=1.5, label=f"budget {budget_ms:g} ms")
    if notes:
        hist.text(0.98, 0.97, "\n".join(notes), transform=hist.transAxes, ha="right", va="top", fontsize=8)
    hist.legend(fontsize=8, loc="center right")
    line.legend(fontsize=8, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
