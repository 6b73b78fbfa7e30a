"""BENCHMARKS.md and its plot from one bench run."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgernn.bench.committed import load_json
from edgernn.bench.contenders import CONTENDERS
from edgernn.bench.scale import Floor
from edgernn.bench.suite import APPROXIMATE, CaseResult
from edgernn.bench.targets import RECORDED, Verdict

MISSING = "—"


@dataclass
class Run:
    """Everything one run measured, in the order the report shows it."""

    quick: bool
    machine_start: dict[str, Any]
    machine_end: dict[str, Any]
    settings: dict[str, Any]
    cases: list[CaseResult]
    verdicts: list[Verdict]
    streams: list[CaseResult] = field(default_factory=list)
    hiddens: list[CaseResult] = field(default_factory=list)
    memory: dict[str, Any] | None = None
    soak: dict[str, Any] | None = None
    floors: list[Floor] = field(default_factory=list)
    case_floors: dict[str, float] = field(default_factory=dict)  # case label -> arithmetic floor, µs
    note: str = ""
    seconds: float = 0.0


def _us(v: float | None) -> str:
    if v is None:
        return MISSING
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _x(v: float | None) -> str:
    return MISSING if v is None else f"{v:.2f}x"


def write(run: Run, out: Path, plot: Path | None) -> None:
    parts = [
        _header(run),
        _summary(run.cases),
        _machine(run),
        _targets(run.verdicts),
        _comparison(run.cases, run.case_floors),
        _int8(run.cases),
        qdq_section(),
        bounds_section(),
        _scale(run, plot, out),
        _memory(run),
        _floor(run.floors),
        gpu_section(),
        thirdparty_section(),
        overhead_section(),
        apps_section(),
        attention_section(),
        _method(run),
        notes_section(),
    ]
    out.write_text("\n".join(p for p in parts if p))


NOTES = Path(__file__).resolve().parent / "notes.md"
NOTES_HEADING = "## Notes (`bench/notes.md`: written by hand, kept by every regeneration)"


def notes_section() -> str:
    """The hand-written notes (bench/notes.md), appended as they are; nothing where there are none."""
    return f"{NOTES_HEADING}\n\n" + NOTES.read_text(encoding="utf-8") if NOTES.is_file() else ""


def thirdparty_section() -> str:
    """The committed third-party run (bench/thirdparty.py), or nothing where none is committed."""
    from edgernn.bench.thirdparty import section

    return section()


def overhead_section() -> str:
    """The committed engine-overhead table (bench/overhead.py), or nothing where none is committed."""
    from edgernn.bench.overhead import section

    return section()


def qdq_section() -> str:
    """The committed QDQ int8 table on OpenVINO (bench/qdq_openvino.py), or nothing where none is committed."""
    from edgernn.bench.qdq_openvino import section

    return section()


def bounds_section() -> str:
    """The committed measured bounds of the targets not met (bench/bounds.py), or nothing."""
    from edgernn.bench.bounds import section

    return section()


def apps_section() -> str:
    """The committed per-app table (bench/apps.py), or nothing where none is committed."""
    from edgernn.bench.apps import section

    return section()


def attention_section() -> str:
    """The committed KJV attention / GRU / LSTM step table (bench/attention.py), or nothing."""
    from edgernn.bench.attention import section

    return section()


def gpu_section() -> str:
    """The committed GPU check (bench/gpu_check.py on a GPU machine), or nothing where none is committed."""
    from edgernn.bench.targets import GPU_RESULTS

    res = load_json(GPU_RESULTS)
    if res is None:
        return ""
    lines = [
        "## GPU: one step, host frame in, host result out (`bench/gpu_check.py`)",
        "",
        f"{res.get('device', '?')}, {res.get('measured_at', '?')}; onnxruntime {res.get('onnxruntime', '?')}, "
        f"torch {res.get('torch', '?')}; GRU, 64 features in, 64 outputs; median (p99) µs over 2,000 calls. "
        "Parity is the max |diff| of the outputs over 200 carried steps.",
        "",
        "| batch / hidden | parity vs CPU EP | ort CUDA | ort CUDA graphs | (its run alone) | ort CPU EP "
        "| torch eager | torch CUDA graph + pinned | (its replay alone) | ort graphs / torch graph |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def us(v: dict[str, float] | None) -> str:
        return f"{v['p50_us']:.1f} ({v['p99_us']:.0f})" if v else "—"

    for case in res.get("cases", []):
        parts = case.get("parts", {})
        ort = {k: us(parts.get(k, {}).get("latency")) for k in ("ort-cuda", "ort-cuda-graph", "ort-cpu-ep")}
        run_only = us(parts.get("ort-cuda-graph", {}).get("run_only"))
        torch = {k: us(v) for k, v in parts.get("torch", {}).items()}
        par = max((parts.get(k, {}).get("vs_cpu_ep", 0.0) for k in ("parity cuda", "parity cuda-graph")), default=0.0)
        ratio = case.get("ratio_ort_graph_over_torch_graph")
        lines.append(
            f"| {case['batch']} / {case['hidden']} | {par:.1e} | {ort['ort-cuda']} | {ort['ort-cuda-graph']} "
            f"| {run_only} | {ort['ort-cpu-ep']} | {torch.get('torch-eager', '—')} "
            f"| {torch.get('torch-graph-pinned', '—')} | {torch.get('torch-graph-replay-only', '—')} "
            f"| {f'{ratio:.2f}x' if ratio else '—'} |"
        )
    return "\n".join(lines) + "\n"


def _header(run: Run) -> str:
    mode = "`edgernn bench --quick`" if run.quick else "`edgernn bench` (full run)"
    passed = sum(v.status == "PASS" for v in run.verdicts)
    failed = sum(v.status == "FAIL" for v in run.verdicts)
    recorded = sum(v.status.endswith(RECORDED) for v in run.verdicts)
    other = len(run.verdicts) - passed - failed - recorded
    return (
        "# edgernn benchmarks\n\n"
        f"Written by {mode} in {run.seconds:.0f} s on {run.machine_start.get('date_utc')}; regenerate with "
        "`make bench`. Every figure below was measured in this one run; the targets are ratios between "
        "figures of the same run (`bench/targets.toml`), never absolute times.\n\n"
        f"**Targets: {passed} PASS, {failed} FAIL, {other} not run / not measurable"
        + (f"; {recorded} recorded on another machine (GPU check, not re-judged here)" if recorded else "")
        + ".**\n"
    )


def _geomean(values: list[float]) -> float | None:
    import math

    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def _summary(cases: list[CaseResult]) -> str:
    """Geometric means of the headline ratios over every case where both sides ran."""
    rows = []
    pairs = [
        ("strongest PyTorch peer / engine (above 1: the engine is faster)", "peer"),
        ("native-op graph / engine (the auto form export writes vs --form native)", "native"),
        ("`session.run` with numpy state / engine", "session.run"),
        ("numpy reference / engine", "numpy"),
        ("engine / raw ping-pong loop (1.0: no overhead over hand-written onnxruntime)", "raw"),
        ("fp32 engine / int8 engine (above 1: int8 is faster)", "int8"),
    ]
    for label, key in pairs:
        vals: list[float] = []
        for r in cases:
            if key == "peer":
                v = r.peer_ratio()
            elif key == "native":
                v = r.ratio("engine native", "engine")
            elif key == "raw":
                v = r.ratio("engine", "raw ping-pong")
            elif key == "int8":
                v = r.ratio("engine", "engine int8")
            else:
                v = r.ratio(key, "engine")
            if v:
                vals.append(v)
        g = _geomean(vals)
        if g is not None:
            rows.append(f"| {label} | {g:.2f}x | {min(vals):.2f}x – {max(vals):.2f}x | {len(vals)} |")
    if not rows:
        return ""
    head = "## Summary\n\n| ratio | geometric mean | range | cases |\n|---|---|---|---|\n"
    return head + "\n".join(rows) + "\n"


def _machine(run: Run) -> str:
    m, end = run.machine_start, run.machine_end
    rows = [
        ("CPU", f"{m.get('cpu')} ({m.get('logical_cpus')} logical CPUs; {m.get('caches')}; {m.get('isa')})"),
        ("memory", f"{m.get('memory_gib')} GiB"),
        ("platform", m.get("platform")),
        ("load average (1/5/15 min) at start → end", f"{m.get('load_average')} → {end.get('load_average')}"),
        (
            "python / numpy / onnxruntime / torch",
            f"{m.get('python')} / {m.get('numpy')} / {m.get('onnxruntime')} / {m.get('torch')}",
        ),
        (
            "threads",
            "onnxruntime: 1 intra-op thread (CpuDefaults); torch.set_num_threads(1); numpy's OpenBLAS "
            f"pinned to 1 thread ({', '.join(run.settings.get('blas_pinned', [])) or 'not pinned'})",
        ),
        (
            "timing",
            f"up to {run.settings.get('rounds')} interleaved rounds of ~{run.settings.get('block_ms')} ms blocks "
            f"per contender (rounds cut to fit ~{run.settings.get('case_budget_s')} s per case, never below 3), "
            "order rotated each round; times are medians over all timed calls, ratios the median "
            "over rounds of each round's paired block ratio (robust to load that lasts several blocks)",
        ),
    ]
    text = "## Machine\n\n| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows) + "\n"
    if run.note:
        text += f"\n**Conditions.** {run.note}\n"
    return text


def _targets(verdicts: list[Verdict]) -> str:
    lines = [
        "## Targets (`bench/targets.toml`)",
        "",
        "| target | row | measured | figure | status | note |",
        "|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        status = f"**{v.status}**" if v.status in ("PASS", "FAIL") else v.status
        lines.append(f"| {v.target} | {v.row} | {v.measured} | {v.figure} | {status} | {v.note} |")
    return "\n".join(lines) + "\n"


def _comparison(cases: list[CaseResult], floors: dict[str, float] | None = None) -> str:
    fp32 = cases
    if not fp32:
        return ""
    names = [n for n in CONTENDERS if n not in APPROXIMATE and any(n in r.timings for r in fp32)]
    floors = floors or {}
    head = ["case (cell hidden batch chunk)", *names, "engine / raw", "session.run / engine", "peer / engine"]
    head += ["floor µs", "engine / floor"] if floors else []
    lines = [
        "## Comparison: median µs per call (a call advances `batch` streams by `chunk` frames)",
        "",
        "*engine* runs what `edgernn export` writes (the auto form: decomposed cell or native op by call "
        "shape), *engine native* the traced graph (`--form native`). *peer* is the fastest PyTorch contender "
        "in the row (eager, TorchScript-frozen, torch.compile); *peer / engine* is the median over rounds of "
        "each round's paired ratio, above 1 the engine is faster. *floor*: the arithmetic floor at the "
        "largest hidden size (the recurrent product at this machine's best 1-core sgemv / sgemm rate for "
        "that batch, plus the head; the section at the end says how). "
        f"`{MISSING}`: not run (reasons below the table).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    reasons: dict[str, set[str]] = {}
    for r in fp32:
        cells = [f"{r.case.cell} {r.case.hidden} {r.case.batch} {r.case.chunk}"]
        cells += [_us(r.median(n)) for n in names]
        engine = r.median("engine")
        cells += [
            _x(r.ratio("engine", "raw ping-pong")),
            _x(r.ratio("session.run", "engine")),
            _x(r.peer_ratio()),
        ]
        if floors:
            fl = floors.get(r.case.label)
            cells += [_us(fl), _x(engine / fl if fl and engine else None)]
        lines.append("| " + " | ".join(cells) + " |")
        for n, why in r.not_run.items():
            if n in names:
                reasons.setdefault(n, set()).add(why)
    lines.append("")
    for n, whys in reasons.items():
        lines.append(f"- `{n}` not run: " + "; ".join(sorted(whys)))
    exact = [(r.case.label, n, t.max_abs_diff) for r in fp32 for n, t in r.timings.items() if n not in APPROXIMATE]
    bad = [e for e in exact if e[2] > 1e-4]
    worst = max((e[2] for e in exact), default=0.0)
    lines.append(
        f"- Parity: every timed contender's first output matched the float64 reference within {worst:.1e} (max abs)."
        if not bad
        else "- Parity FAILED (max abs diff > 1e-4): " + ", ".join(f"{c} {n} {d:.1e}" for c, n, d in bad)
    )
    return "\n".join(lines) + "\n"


def _int8(cases: list[CaseResult]) -> str:
    rows = [r for r in cases if "engine int8" in r.timings or "engine int8" in r.not_run]
    if not rows:
        return ""
    acc, dec = "engine int8 accurate", "engine decomposed"
    lines = [
        "## fp32 vs int8 and fp32 decomposed (engine, median µs per call, timed interleaved in the same case)",
        "",
        "int8: the fast form (DynamicQuantizeLSTM; GRU / RNN decomposed, per-tensor weights). Accurate:"
        " two int8 parts per weight, what `edgernn export --validate` falls back to when the fast form"
        " misses the 2e-2 tolerance (long-trained models do: docs/ARCHITECTURE.md). fp32 decomposed:"
        " `edgernn export --decompose`, the fp32 cell as MatMuls + gate math (held to fp32 parity)."
        " *fp32*: the native-op graph (`--form native`), what the int8 targets are judged against;"
        " *auto*: the fp32 auto form `edgernn export` writes by default.",
        "",
        "| case (cell hidden batch chunk) | fp32 | int8 | fp32 / int8 | int8 accurate | fp32 / accurate "
        "| fp32 decomposed | fp32 / decomposed | fp32 auto | auto / int8 | auto / accurate "
        "| first output: max abs diff vs fp32 reference, int8 / accurate |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes: set[str] = set()
    for r in rows:
        c = r.case
        base = "engine native" if "engine native" in r.timings else "engine"
        e8, e32, ea, ed = r.median("engine int8"), r.median(base), r.median(acc), r.median(dec)
        diffs = [r.timings.get(n) for n in ("engine int8", acc)]
        diff = " / ".join(f"{t.max_abs_diff:.1e}" if t else MISSING for t in diffs)
        lines.append(
            f"| {c.cell} {c.hidden} {c.batch} {c.chunk} | {_us(e32)} | {_us(e8)} | "
            f"{_x(r.ratio(base, 'engine int8'))} | {_us(ea)} | {_x(r.ratio(base, acc))} | "
            f"{_us(ed)} | {_x(r.ratio(base, dec))} | {_us(r.median('engine'))} | "
            f"{_x(r.ratio('engine', 'engine int8'))} | {_x(r.ratio('engine', acc))} | {diff} |"
        )
        for n in ("engine int8", acc, dec):
            if n in r.not_run:
                notes.add(r.not_run[n])
    if notes:
        lines += ["", *(f"- not run: {n}" for n in sorted(notes))]
    return "\n".join(lines) + "\n"


def _scale(run: Run, plot: Path | None, out: Path) -> str:
    if not run.streams and not run.hiddens:
        return ""
    lines = ["## Scale", ""]
    if plot is not None and plot.exists():
        lines += [f"![scale]({os.path.relpath(plot, out.parent)})", ""]
    if run.streams:
        r0 = run.streams[0].case
        lines += [
            f"Concurrent streams batched into one call ({r0.cell}, hidden {r0.hidden}, chunk 1):",
            "",
            "| streams | engine p50 µs | engine p99 µs | engine stream-frames/s | raw p50 µs | raw p99 µs | "
            "raw stream-frames/s |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in run.streams:
            row = [str(r.case.batch)]
            for n in ("engine", "raw ping-pong"):
                t = r.timings.get(n)
                row += (
                    [_us(t.median_us), _us(t.p99_us), f"{r.case.batch * 1e6 / t.median_us:,.0f}"]
                    if t
                    else [MISSING] * 3
                )
            lines.append("| " + " | ".join(row) + " |")
        why = {w for r in run.streams for w in r.not_run.values()}
        lines += [*(f"\n- engine not run: {w}" for w in sorted(why)), ""]
    if run.hiddens:
        lines += [
            f"Model size ({run.hiddens[0].case.cell}, batch 1, chunk 1):",
            "",
            "| hidden | engine p50 µs | engine p99 µs | frames/s | raw p50 µs | engine / raw |",
            "|---|---|---|---|---|---|",
        ]
        for r in run.hiddens:
            e = r.timings.get("engine")
            lines.append(
                f"| {r.case.hidden} | {_us(e.median_us if e else None)} | {_us(e.p99_us if e else None)} | "
                f"{(f'{1e6 / e.median_us:,.0f}' if e else MISSING)} | {_us(r.median('raw ping-pong'))} | "
                f"{_x(r.ratio('engine', 'raw ping-pong'))} |"
            )
    return "\n".join(lines) + "\n"


def _memory(run: Run) -> str:
    m, s = run.memory, run.soak
    if m is None and s is None:
        return ""
    lines = ["## Memory (runtime-only child process: torch and onnx blocked)", ""]
    if m is not None:
        mib = 2**20
        lines += [
            f"- Bytes per idle stream ({m['model']}, {m['streams']:,} streams, state {m['state_bytes']} B): "
            f"{m['created_bytes_per_stream']:,.0f} B created, {m['stepped_bytes_per_stream']:,.0f} B after one step "
            f"(the larger of RSS growth after `malloc_trim`: {m['created_rss_per_stream']:,.0f} / "
            f"{m['stepped_rss_per_stream']:,.0f} B, and tracemalloc, in a separate child: "
            f"{m['created_traced_per_stream']:,.0f} / {m['stepped_traced_per_stream']:,.0f} B).",
            f"- Engine RSS for the {m['model']} model ({m['model_bytes'] / 1024:,.0f} KiB file): python alone "
            f"{m['rss_python'] / mib:.1f} MiB, + runtime imported {m['rss_imported'] / mib:.1f} MiB, + engine loaded "
            f"{m['rss_loaded'] / mib:.1f} MiB, + {m['streams']} streams {m['rss_with_streams'] / mib:.1f} MiB.",
        ]
    if s is not None:
        samples = ", ".join(f"{n:,}: {b / 2**20:.2f}" for n, b in s["samples"])
        trimmed = ", ".join(f"{n:,}: {b / 2**20:.2f}" for n, b in s.get("trimmed") or [])
        raw = s.get("raw_growth_bytes", s["growth_bytes"])
        lines.append(
            f"- Soak ({s['model']}, one stream, {s['steps']:,} steps): RSS MiB by step — {samples}; "
            f"growth after the first sample {raw / 1024:+.0f} KiB."
        )
        if trimmed:
            lines.append(
                f"- The same samples right after `malloc_trim(0)` (live memory; what engine-no-growth judges): "
                f"{trimmed}; growth after the first sample {s['growth_bytes'] / 1024:+.0f} KiB."
            )
        if s.get("telemetry") == "off":
            lines.append(
                "- The soak's child runs with onnxruntime's telemetry off (`ORT_DISABLE_TELEMETRY=1`): onnxruntime's "
                "Linux wheels start a telemetry uploader thread at import that grows the process once, ~9 s later, "
                "whether the engine steps or not (bench/notes.md)."
            )
        w = s.get("watch")
        if w:
            step = max(1, len(w["samples"]) // 8)
            by_time = ", ".join(f"{t:.0f} s: {b / 2**20:.2f}" for t, b in w["samples"][::step])
            grew_w = ", ".join(
                f"{k} {v:+,} KiB" for k, v in sorted(w["growth_by_mapping_kib"].items(), key=lambda kv: -abs(kv[1]))
            )
            lines.append(
                f"- With the telemetry as onnxruntime ships it, an idle child (engine loaded, stepped once, then no "
                f"work; live RSS after `malloc_trim`, MiB by second — {by_time}) grew "
                f"{w['growth_bytes'] / 1024:+,.0f} KiB in {w['seconds']:.0f} s, {w['threads']} threads at the end; "
                f"by mapping: {grew_w or 'nowhere'}."
            )
        by_map = s.get("growth_by_mapping_kib")
        if by_map is not None:
            where = ", ".join(f"{k} {v:+,} KiB" for k, v in sorted(by_map.items(), key=lambda kv: -abs(kv[1])))
            lines.append(
                "- Where it grew after the first sample, resident KiB by mapping (/proc/self/smaps: [heap] is "
                "glibc's brk heap; [anon] its mmapped blocks, Python's obmalloc arenas and onnxruntime's "
                f"allocations; files by name): {where or 'nowhere'}."
            )
    return "\n".join(lines) + "\n"


def _floor(floors: list[Floor]) -> str:
    if not floors:
        return ""
    lines = [
        f"## Against the limit: the arithmetic floor at hidden {floors[0].hidden}",
        "",
        "FLOPs per batch-1 step (input projection + recurrence + head, 2 per multiply-add) divided by the "
        "machine's best single-core float32 matrix-vector rate on the recurrent matrix's own shape "
        "(numpy/OpenBLAS sgemv in a 1-thread child process, best of many batches of 20). At these sizes the "
        "weights outgrow the core's cache, so that rate is memory-bound; the in-cache rate (a 512x256 matrix) "
        "gives the compute-bound floor beside it.",
        "",
        "| cell | MFLOP / step | GFLOP/s (shape) | floor µs | engine µs | engine / floor | raw / floor | "
        "GFLOP/s in cache | compute floor µs | engine / compute floor |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in floors:
        raw = f.raw_us / f.floor_us if f.raw_us else None
        cache = f.engine_us / f.cache_floor_us if f.engine_us and f.cache_floor_us else None
        lines.append(
            f"| {f.cell} | {f.flops / 1e6:.2f} | {f.gflops:.1f} | {f.floor_us:.1f} | {_us(f.engine_us)} | "
            f"{_x(f.engine_ratio)} | {_x(raw)} | {f.cache_gflops:.1f} | {f.cache_floor_us:.1f} | {_x(cache)} |"
        )
    return "\n".join(lines) + "\n"


def _method(run: Run) -> str:
    return (
        "## How it is measured\n\n"
        "- Models: `build_model(ModelConfig(...))` with seeded random weights (tokens in, vocabulary 64, one layer), "
        "exported by `export_model` (the real graph, native RNN/GRU/LSTM ops); int8 models from "
        "`edgernn.export.quantize.quantize_model` when it exists.\n"
        "- Contenders: **engine** (`Stream.step` / `Stream.push` at batch 1, the batched API above); **raw ping-pong** "
        "(a bare session, two pre-built IOBindings swapping the state buffers: the floor a hand-written loop "
        "reaches); **session.run** with numpy state; **engine separate** (`batch` streams each stepped alone); "
        "**torch eager** (the model on (batch, chunk)); **torchscript** (frozen: a cell at chunk 1, the whole "
        "model above); **torch.compile** (inductor; where listed); **numpy** (a float32 reference).\n"
        "- Before timing, each contender's first output is compared with the float64 reference "
        "(`reliability/reference.py`).\n"
        "- The PyTorch peers and the numpy contender (the same reference in float32) run fp32 only.\n"
        "- Serving through a real Triton server (latency over HTTP / gRPC, throughput, migration pause) is "
        "measured apart: [BENCHMARKS-triton.md](BENCHMARKS-triton.md), written by `make triton-bench`.\n"
        "- In a browser page (the JS engine on onnxruntime-web, 1 and 2 wasm threads, beside the Python engine "
        "on the same machine; session create, per step, per chunk): [BENCHMARKS-web.md](BENCHMARKS-web.md), "
        "written by `make web-bench`.\n"
    )


def plot(run: Run, path: Path) -> bool:
    """Scale (top row) and the batch-1 step comparison (bottom); False without matplotlib or data."""
    if not run.streams and not run.hiddens and not run.cases:
        return False
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(15, 8.4))
    grid = fig.add_gridspec(2, 3)
    top = [fig.add_subplot(grid[0, i]) for i in range(3)]
    _series(
        top[0],
        run.streams,
        lambda r, t: r.case.batch * 1e6 / t.median_us,
        "streams batched in one call",
        "stream-frames/s",
    )
    _series(top[1], run.streams, lambda r, t: t.p99_us, "streams batched in one call", "p99 µs per call")
    _series(
        top[2],
        run.hiddens,
        lambda r, t: t.median_us,
        "hidden size (batch 1)",
        "median µs per step",
        x=lambda r: r.case.hidden,
    )
    for f in run.floors:
        if run.hiddens and f.cell == run.hiddens[0].case.cell:
            top[2].plot([f.hidden], [f.floor_us], "k*", ms=10, label="arithmetic floor")
            top[2].legend(fontsize=8)
    _bars(fig.add_subplot(grid[1, :]), [r for r in run.cases if (r.case.batch, r.case.chunk) == (1, 1)])
    fig.suptitle(f"edgernn bench — {run.machine_start.get('cpu')}, {run.machine_start.get('date_utc')}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _bars(ax: Any, results: Sequence[CaseResult]) -> None:
    """Median µs per step at batch 1, chunk 1: one group of bars per model, one bar per contender."""
    if not results:
        ax.set_axis_off()
        return
    names = [n for n in CONTENDERS if n != "engine separate" and any(n in r.timings for r in results)]
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        xs = [j + i * width for j, r in enumerate(results) if name in r.timings]
        ys = [r.timings[name].median_us for r in results if name in r.timings]
        ax.bar(xs, ys, width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(results))])
    ax.set_xticklabels([f"{r.case.cell} h{r.case.hidden}" for r in results], fontsize=8)
    ax.set_yscale("log")
    lowest = min((t.median_us for r in results for t in r.timings.values()), default=1.0)
    ax.set_ylim(bottom=lowest / 2)
    ax.set_ylabel("median µs per step (batch 1, chunk 1)")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=len(names))


def _series(ax: Any, results: Sequence[CaseResult], y: Any, xlabel: str, ylabel: str, x: Any = None) -> None:
    x = x or (lambda r: r.case.batch)
    for name, style in (("engine", "o-"), ("raw ping-pong", "s--")):
        pts = [(x(r), y(r, r.timings[name])) for r in results if name in r.timings]
        if pts:
            ax.plot(*zip(*pts), style, label=name, ms=4)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
