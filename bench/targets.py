"""The speed targets (``bench/targets.toml``) checked against one bench run's figures.

Each target names a ``check``; the check returns one verdict per row it judges (per cell,
per chunk), PASS / FAIL against the figure, or NOT RUN with the reason when the rows it
needs could not run here, or NOT MEASURABLE when they need hardware this machine lacks.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgernn.bench.suite import CaseResult

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TARGETS_FILE = Path(__file__).with_name("targets.toml")
PASS, FAIL, NOT_RUN, NOT_MEASURABLE = "PASS", "FAIL", "NOT RUN", "NOT MEASURABLE"
RECORDED = " (recorded)"  # a verdict read from a committed result of another machine (the GPU check)


@dataclass
class RunFigures:
    """What the checks read: the timed cases, and the memory / soak measurements when made."""

    cases: list[CaseResult]
    memory: dict[str, Any] | None = None
    soak: dict[str, Any] | None = None
    gpu: bool = False

    def find(self, cell: str, hidden: int, batch: int, chunk: int) -> CaseResult | None:
        for r in self.cases:
            c = r.case
            if (c.cell, c.hidden, c.batch, c.chunk) == (cell, hidden, batch, chunk):
                return r
        return None

    def cells(self) -> list[str]:
        return sorted({r.case.cell for r in self.cases}, key=["rnn", "gru", "lstm"].index)


@dataclass
class Verdict:
    target: str
    area: str
    row: str
    status: str
    measured: str
    figure: str
    note: str = ""


@dataclass
class Target:
    id: str
    area: str
    what: str
    check: str
    params: dict[str, Any] = field(default_factory=dict)


def load_targets(path: Path = TARGETS_FILE) -> list[Target]:
    with open(path, "rb") as fh:
        raw = tomllib.load(fh)
    out = []
    for entry in raw.get("target", []):
        fixed = {k: entry[k] for k in ("id", "area", "what", "check")}
        params = {k: v for k, v in entry.items() if k not in fixed}
        out.append(Target(**fixed, params=params))
    return out


def evaluate(targets: list[Target], figures: RunFigures) -> list[Verdict]:
    verdicts: list[Verdict] = []
    for t in targets:
        check = CHECKS.get(t.check)
        if check is None:
            verdicts.append(Verdict(t.id, t.area, "", NOT_RUN, "", "", f"unknown check {t.check!r}"))
            continue
        verdicts.extend(check(t, figures))
    return verdicts


def _missing(t: Target, row: str, figure: str, r: CaseResult | None, names: tuple[str, ...]) -> Verdict | None:
    """A NOT RUN verdict when case ``r`` or any of ``names`` in it is missing, else None."""
    if r is None:
        return Verdict(t.id, t.area, row, NOT_RUN, "", figure, "case not in this run (full run: edgernn bench)")
    for name in names:
        if name not in r.timings:
            why = r.not_run.get(name, "not timed")
            return Verdict(t.id, t.area, row, NOT_RUN, "", figure, f"{name}: {why}")
    return None


def _ratio_rows(t: Target, f: RunFigures, batch: int, chunk: int, num: str, den: str, label: str) -> list[Verdict]:
    """time(num) / time(den) >= min_ratio, per cell: a throughput ratio of den over num."""
    out = []
    figure = f">= {t.params['min_ratio']}x"
    for cell in f.cells():
        row = f"{cell} h{t.params['hidden']} b{batch} c{chunk}"
        r = f.find(cell, t.params["hidden"], batch, chunk)
        miss = _missing(t, row, figure, r, (num, den))
        if miss is not None or r is None:
            out.append(miss or Verdict(t.id, t.area, row, NOT_RUN, "", figure))
            continue
        ratio = r.ratio(num, den) or 0.0
        status = PASS if ratio >= t.params["min_ratio"] else FAIL
        out.append(Verdict(t.id, t.area, row, status, f"{ratio:.2f}x {label}", figure))
    return out


def step_overhead(t: Target, f: RunFigures) -> list[Verdict]:
    out = []
    figure = f"<= raw + {t.params['max_extra_us']} µs and <= {t.params['max_ratio']}x"
    for cell in f.cells():
        row = f"{cell} h{t.params['hidden']} b1 c1"
        r = f.find(cell, t.params["hidden"], 1, 1)
        miss = _missing(t, row, figure, r, ("engine", "raw ping-pong"))
        if miss is not None or r is None:
            out.append(miss or Verdict(t.id, t.area, row, NOT_RUN, "", figure))
            continue
        e, raw = r.timings["engine"].median_us, r.timings["raw ping-pong"].median_us
        ratio = r.ratio("engine", "raw ping-pong") or 0.0
        extra = (ratio - 1.0) * raw  # the paired ratio, in µs at the raw loop's median
        ok = extra <= t.params["max_extra_us"] and ratio <= t.params["max_ratio"]
        measured = f"medians {e:.1f} vs {raw:.1f} µs; paired: {ratio:.2f}x, +{extra:.1f} µs"
        out.append(Verdict(t.id, t.area, row, PASS if ok else FAIL, measured, figure))
    return out


def batched_vs_raw(t: Target, f: RunFigures) -> list[Verdict]:
    return _ratio_rows(t, f, t.params["batch"], 1, "raw ping-pong", "engine", "of raw batched throughput")


def batched_vs_separate(t: Target, f: RunFigures) -> list[Verdict]:
    return _ratio_rows(t, f, t.params["batch"], 1, "engine separate", "engine", "the throughput of separate calls")


def push_vs_raw(t: Target, f: RunFigures) -> list[Verdict]:
    return _ratio_rows(t, f, 1, t.params["chunk"], "raw ping-pong", "engine", "of raw chunked throughput")


def idle_memory(t: Target, f: RunFigures) -> list[Verdict]:
    figure = f"<= state + {t.params['max_extra_bytes']} B"
    m = f.memory
    if m is None:
        return [Verdict(t.id, t.area, "", NOT_RUN, "", figure, "memory not measured in this run")]
    per, state = m["stepped_bytes_per_stream"], m["state_bytes"]
    status = PASS if per <= state + t.params["max_extra_bytes"] else FAIL
    row = f"{m['model']}, {m['streams']} streams"
    return [Verdict(t.id, t.area, row, status, f"{per:,.0f} B per stream (state {state} B)", figure)]


def no_growth(t: Target, f: RunFigures) -> list[Verdict]:
    figure = f"<= {t.params['max_growth_bytes'] // 1024} KiB over {t.params['steps']:,} steps"
    s = f.soak
    if s is None or s["steps"] < t.params["steps"]:
        got = "" if s is None else f" (only {s['steps']:,} steps run)"
        return [Verdict(t.id, t.area, "", NOT_RUN, "", figure, f"needs the full run or --soak{got}")]
    growth = s["growth_bytes"]
    status = PASS if growth <= t.params["max_growth_bytes"] else FAIL
    measured = f"{growth / 1024:+.0f} KiB" + (" after malloc_trim" if s.get("trimmed_growth") else " (raw RSS)")
    note = f"raw RSS {s['raw_growth_bytes'] / 1024:+.0f} KiB" if "raw_growth_bytes" in s else ""
    grew = {k: v for k, v in (s.get("growth_by_mapping_kib") or {}).items() if v > 0}
    if grew:
        note += "; grew in " + ", ".join(f"{k} {v:+,} KiB" for k, v in sorted(grew.items(), key=lambda kv: -kv[1]))
    if s.get("telemetry") == "off":
        note += "; onnxruntime telemetry off (ORT_DISABLE_TELEMETRY=1)"
    w = s.get("watch")
    if w:
        note += (
            f"; with it on, an idle child (no step) grew {w['growth_bytes'] / 1024:+,.0f} KiB "
            f"in {w['seconds']:.0f} s ({w['threads']} threads)"
        )
    return [Verdict(t.id, t.area, s["model"], status, measured, figure, note.lstrip("; "))]


def int8_speedup(t: Target, f: RunFigures) -> list[Verdict]:
    out = []
    figure = f">= {t.params['min_ratio']}x"
    for cell in t.params["cells"]:
        for chunk in t.params["chunks"]:
            row = f"{cell} h{t.params['hidden']} b1 c{chunk}"
            r = f.find(cell, t.params["hidden"], 1, chunk)
            contender = t.params.get("contender", "engine int8")
            base = t.params.get("baseline", "engine")
            miss = _missing(t, row, figure, r, (base, contender))
            if miss is not None or r is None:
                out.append(miss or Verdict(t.id, t.area, row, NOT_RUN, "", figure))
                continue
            ratio = r.ratio(base, contender) or 0.0
            status = PASS if ratio >= t.params["min_ratio"] else FAIL
            label = "fp32 native" if base == "engine native" else "fp32"
            note = ""
            if base != "engine" and "engine" in r.timings:  # beside it: against what export writes by default
                note = f"vs the fp32 auto form: {r.ratio('engine', contender) or 0.0:.2f}x"
            out.append(Verdict(t.id, t.area, row, status, f"{ratio:.2f}x ({label} / {contender} time)", figure, note))
    return out


def _peer_ratios(f: RunFigures) -> tuple[list[tuple[str, float]], list[str]]:
    """(case label, strongest PyTorch peer / engine) for every case both ran in; labels of those that did not."""
    got, missing = [], []
    for r in f.cases:
        ratio = r.peer_ratio()
        if ratio is None:
            missing.append(r.case.label)
        else:
            got.append((r.case.label, ratio))
    return got, missing


def peer_every_case(t: Target, f: RunFigures) -> list[Verdict]:
    """The engine at least ``min_ratio`` x the strongest PyTorch peer in every case of the run."""
    figure = f">= {t.params['min_ratio']}x in every case"
    got, missing = _peer_ratios(f)
    if not got:
        return [Verdict(t.id, t.area, "", NOT_RUN, "", figure, "no case with the engine and a PyTorch peer")]
    low = sorted((v, label) for label, v in got if v < t.params["min_ratio"])
    worst = min(v for _, v in got)
    row = f"{len(got)} cases" + (f" (full grid: {t.params['cases']})" if len(got) != t.params["cases"] else "")
    measured = f"min {worst:.2f}x; {len(low)} below"
    if low:
        measured += ": " + ", ".join(f"{label} {v:.2f}x" for v, label in low)
    note = f"not run: {', '.join(missing)}" if missing else ""
    return [Verdict(t.id, t.area, row, PASS if not low else FAIL, measured, figure, note)]


def peer_geomean(t: Target, f: RunFigures) -> list[Verdict]:
    import math

    figure = f">= {t.params['min_ratio']}x"
    got, _ = _peer_ratios(f)
    if not got:
        return [Verdict(t.id, t.area, "", NOT_RUN, "", figure, "no case with the engine and a PyTorch peer")]
    gm = math.exp(sum(math.log(v) for _, v in got) / len(got))
    status = PASS if gm >= t.params["min_ratio"] and len(got) == t.params["cases"] else FAIL
    note = "" if len(got) == t.params["cases"] else f"judged on the full grid only ({len(got)} of {t.params['cases']})"
    if note:
        status = NOT_RUN
    return [Verdict(t.id, t.area, f"{len(got)} cases", status, f"{gm:.2f}x geometric mean", figure, note)]


GPU_RESULTS = Path(__file__).with_name("results") / "gpu-check.json"


def needs_gpu(t: Target, f: RunFigures) -> list[Verdict]:
    """The GPU comparison is measured by bench/gpu_check.py on a GPU machine, not by this run:
    judge the committed result of its last run (device and date in the row), if there is one."""
    import json

    figure = f"<= {t.params['max_ratio']}x"
    if not GPU_RESULTS.is_file():
        note = "no GPU on this machine; bench/gpu_check.py measures it where there is one"
        return [Verdict(t.id, t.area, "", NOT_MEASURABLE, "", figure, note)]
    res = json.loads(GPU_RESULTS.read_text())
    out = []
    for case in res.get("cases", []):
        row = f"GRU batch {case['batch']} / hidden {case['hidden']}"
        ratio = case.get("ratio_ort_graph_over_torch_graph")
        note = f"{res.get('device', '?')}, {res.get('measured_at', '?')}, bench/results/gpu-check.json"
        if ratio is None:
            out.append(Verdict(t.id, t.area, row, NOT_RUN, "", figure, f"the GPU check did not finish ({note})"))
            continue
        parts = case["parts"]
        ours = parts["ort-cuda-graph"]["latency"]["p50_us"]
        peer = parts["torch"]["torch-graph-pinned"]["p50_us"]
        # judged where it was measured; a machine without a GPU reports that verdict, it does not re-judge it
        status = (PASS if ratio <= t.params["max_ratio"] else FAIL) + RECORDED
        measured = f"{ratio:.2f}x ({ours:.0f} / {peer:.0f} µs)"
        out.append(Verdict(t.id, t.area, row, status, measured, figure, note))
    return out


QDQ_RESULTS = Path(__file__).with_name("results") / "qdq_openvino.json"


def qdq_recorded(t: Target, f: RunFigures) -> list[Verdict]:
    """The QDQ int8 form on OpenVINO is measured by ``make openvino-qdq`` (its own venv: onnxruntime-openvino
    replaces onnxruntime), not by this run: judge its committed result, one row per model, each part of the
    target (parity, and the task metric where the model has a task) in it."""
    import json

    max_diff, max_rel = t.params["max_abs_normalised"], t.params["max_metric_rel"]
    figure = f"parity <= {max_diff:g}, metric within {100 * max_rel:g}%"
    if not QDQ_RESULTS.is_file():
        note = "not measured: `make openvino-qdq` writes bench/results/qdq_openvino.json"
        return [Verdict(t.id, t.area, "", NOT_RUN, "", figure, note)]
    out = []
    for row in json.loads(QDQ_RESULTS.read_text()):
        ok = row["max_abs_normalised"] <= max_diff and row.get("metric_rel", 0.0) <= max_rel
        measured = f"{row['max_abs_normalised']:.2e}"
        if "metric" in row:
            measured += f", {row['metric']} {100 * row['metric_rel']:.2f}%"
        placed = "+".join(p.replace("ExecutionProvider", "") for p in row["placed"])
        note = f"on {placed}; fp32 / qdq b1 {row['fp32_us_b1'] / row['qdq_us_b1']:.2f}x, bench/results/qdq_openvino.md"
        out.append(Verdict(t.id, t.area, row["name"], (PASS if ok else FAIL) + RECORDED, measured, figure, note))
    return out


def failed(verdicts: list[Verdict]) -> list[Verdict]:
    """The verdicts this run judged FAIL (``edgernn bench --check`` exits non-zero on any); recorded
    verdicts from another machine (the committed GPU check) are not this run's."""
    return [v for v in verdicts if v.status == FAIL]


CHECKS: dict[str, Callable[[Target, RunFigures], list[Verdict]]] = {
    "step_overhead": step_overhead,
    "batched_vs_raw": batched_vs_raw,
    "batched_vs_separate": batched_vs_separate,
    "push_vs_raw": push_vs_raw,
    "idle_memory": idle_memory,
    "no_growth": no_growth,
    "int8_speedup": int8_speedup,
    "needs_gpu": needs_gpu,
    "qdq_recorded": qdq_recorded,
    "peer_every_case": peer_every_case,
    "peer_geomean": peer_geomean,
}
