"""How cost grows with work, what memory costs, and how far the engine is from the arithmetic floor.

Memory is measured in child processes that import the runtime only (no torch), so the
figures are what an edge install pays.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgernn.bench import machine, models
from edgernn.bench.contenders import Case
from edgernn.bench.suite import CaseResult, Settings, run_case

GATES = {"rnn": 1, "gru": 3, "lstm": 4}
SCALE_NAMES = ["engine", "raw ping-pong"]


def streams_sweep(
    streams: list[int],
    settings: Settings,
    cell: str = "gru",
    hidden: int = 256,
    log: Callable[[str], None] | None = None,
) -> list[CaseResult]:
    """Stream-frames/s and p99 as the streams batched into one call grow (chunk 1)."""
    return [run_case(Case(cell, hidden, b, 1), SCALE_NAMES, settings, log) for b in streams]


def hidden_sweep(
    hiddens: list[int], settings: Settings, cell: str = "gru", log: Callable[[str], None] | None = None
) -> list[CaseResult]:
    """Per-step cost at batch 1 as the model grows."""
    return [run_case(Case(cell, h, 1, 1), SCALE_NAMES, settings, log) for h in hiddens]


# -- memory ---------------------------------------------------------------------------------

_MEMORY_CHILD = """
import ctypes, gc, json, os, sys, tracemalloc
for name in ("torch", "onnx"):
    sys.modules[name] = None  # the edge install: runtime only
def rss_bytes():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
def settle():  # collect, and hand free heap back to the OS so new allocations show in RSS
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
base = rss_bytes()
import numpy as np
from edgernn.runtime import Engine
from edgernn.runtime.profiling import state_bytes
imported = rss_bytes()
engine = Engine.load(sys.argv[1])
loaded = rss_bytes()
n = int(sys.argv[2])
s0 = engine.stream(); s0.step(1)  # first-use costs (arena, kernels) out of the way
traced = sys.argv[3] == "traced"  # tracemalloc's own bookkeeping would inflate RSS: one or the other
measure = (lambda: tracemalloc.get_traced_memory()[0]) if traced else rss_bytes
if traced:
    tracemalloc.start()
settle(); before = measure()
streams = [engine.stream() for _ in range(n)]
settle(); created = measure()
for s in streams:
    s.step(1)
settle(); stepped = measure()
print(json.dumps({"rss_python": base, "rss_imported": imported, "rss_loaded": loaded, "streams": n,
    "created_per_stream": (created - before) / n, "stepped_per_stream": (stepped - before) / n,
    "rss_with_streams": rss_bytes(), "state_bytes": state_bytes(engine.spec)}))
"""

# Resident KiB per mapping kind, read in the memory children (the soak and the telemetry watch).
_MAPPINGS = """
def mappings():
    # resident KiB per mapping kind (/proc/self/smaps): [heap] (glibc's brk heap), [anon] (mmap: glibc's
    # large blocks and other arenas, Python's obmalloc arenas, onnxruntime's allocations), each file by name
    out, kind = {}, None
    try:
        with open("/proc/self/smaps") as fh:
            for line in fh:
                head = line.split()
                if head and "-" in head[0] and len(head) >= 5 and ":" in head[3]:
                    kind = head[5].rsplit("/", 1)[-1] if len(head) > 5 else "[anon]"
                elif head and head[0] == "Rss:":
                    out[kind] = out.get(kind, 0) + int(head[1])
    except OSError:
        pass
    return out
"""

_SOAK_CHILD = """
import json, os, sys
for name in ("torch", "onnx"):
    sys.modules[name] = None
import numpy as np
from edgernn.runtime import Engine
from edgernn.runtime.profiling import rss_bytes
engine = Engine.load(sys.argv[1])
steps, every = int(sys.argv[2]), int(sys.argv[3])
stream = engine.stream()
tokens = np.random.default_rng(0).integers(0, 64, size=4096).tolist()
import ctypes
try:
    trim = ctypes.CDLL("libc.so.6").malloc_trim
except (OSError, AttributeError):
    trim = None
MAPPINGS
n = steps // every  # the samples' lists are made before the loop: the bookkeeping allocates nothing later
samples, trimmed = [[0, 0] for _ in range(n)], [[0, 0] for _ in range(n)]
first, last = None, None
for i in range(steps):
    stream.step(tokens[i & 4095])
    if (i + 1) % every == 0:
        k = (i + 1) // every - 1
        samples[k][0], samples[k][1] = i + 1, rss_bytes()
        if trim is not None:  # glibc hands back the free pages it keeps (its high-water): what is left is live
            trim(0)
            trimmed[k][0], trimmed[k][1] = i + 1, rss_bytes()
        last = mappings()
        first = first or last
grew = {k: last.get(k, 0) - first.get(k, 0) for k in set(first or {}) | set(last or {})}
grew = {k: v for k, v in grew.items() if v}  # which mapping grew after the first sample (KiB)
print(json.dumps({"steps": steps, "samples": samples, "trimmed": trimmed if trim is not None else [],
                  "growth_by_mapping_kib": grew, "threads": len(os.listdir("/proc/self/task")),
                  "telemetry_env": os.environ.get("ORT_DISABLE_TELEMETRY")}))
"""


# The idle watch: the runtime imported, an engine loaded and stepped once, then no work at all, the
# live RSS sampled every ``every`` seconds for ``seconds``: what grows here grows without any step.
_WATCH_CHILD = """
import json, os, sys, time
for name in ("torch", "onnx"):
    sys.modules[name] = None
from edgernn.runtime import Engine
from edgernn.runtime.profiling import rss_bytes
import ctypes
trim = ctypes.CDLL("libc.so.6").malloc_trim
MAPPINGS
engine = Engine.load(sys.argv[1])
engine.stream().step(0)
seconds, every = float(sys.argv[2]), float(sys.argv[3])
t0 = time.monotonic()
samples, first, last = [], None, None
while True:
    trim(0)
    samples.append([round(time.monotonic() - t0, 2), rss_bytes()])
    last = mappings()
    first = first or last
    if time.monotonic() - t0 >= seconds:
        break
    time.sleep(every)
grew = {k: last.get(k, 0) - first.get(k, 0) for k in set(first) | set(last)}
print(json.dumps({"seconds": seconds, "samples": samples, "threads": len(os.listdir("/proc/self/task")),
                  "growth_by_mapping_kib": {k: v for k, v in grew.items() if v},
                  "telemetry_env": os.environ.get("ORT_DISABLE_TELEMETRY")}))
"""

# onnxruntime's Linux wheels start a telemetry uploader (OneDS) when imported: a thread that ~9 s
# later resolves mobile.events.data.microsoft.com, pages in its code and takes its own malloc arena
# (+0.6-0.9 MiB once, measured with no step at all). ORT_DISABLE_TELEMETRY=1 before the import
# turns it off; the soak runs so, and the idle watch measures the step with it on.
NO_TELEMETRY = "ORT_DISABLE_TELEMETRY"


def _child(code: str, *args: str, timeout: float = 600, env: dict[str, str] | None = None) -> dict[str, Any]:
    code = code.replace("MAPPINGS", _MAPPINGS)
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench child failed: {proc.stderr.strip()[-400:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def memory(hidden: int = 256, streams: int = 2000, cell: str = "gru") -> dict[str, Any]:
    """Bytes per idle stream (created, and after one step), engine RSS: a runtime-only child process."""
    path = models.fp32_path(models.ModelKey(cell, hidden))
    out = _child(_MEMORY_CHILD, str(path), str(streams), "rss")
    traced = _child(_MEMORY_CHILD, str(path), str(streams), "traced")
    # RSS (after malloc_trim) counts everything but rounds to pages; tracemalloc counts Python
    # and numpy allocations exactly but not onnxruntime's. The figure is the larger of the two.
    for when in ("created", "stepped"):
        out[f"{when}_rss_per_stream"] = out.pop(f"{when}_per_stream")
        out[f"{when}_traced_per_stream"] = traced[f"{when}_per_stream"]
        out[f"{when}_bytes_per_stream"] = max(out[f"{when}_rss_per_stream"], out[f"{when}_traced_per_stream"])
    out.update(model=f"{cell}-h{hidden}", model_bytes=path.stat().st_size)
    return out


def soak(steps: int, hidden: int = 256, cell: str = "gru", watch_s: float | None = None) -> dict[str, Any]:
    """RSS sampled every steps/10 over ``steps`` steps of one stream, raw and right after ``malloc_trim(0)``.

    ``growth_bytes``: the trimmed RSS's growth after the first sample (the warm-up window), i.e.
    live memory; ``raw_growth_bytes``: the raw RSS's, which also counts the free pages glibc keeps
    after its heap's high-water mark (not a leak: a trim returns them; a leak it cannot).

    The soak's child runs with onnxruntime's telemetry off (``NO_TELEMETRY``): its uploader
    thread grows the process once, ~9 s after the import, whether the engine steps or not.
    That step is measured beside it (``watch``: ``watch_s`` seconds of an idle child with
    telemetry as onnxruntime ships it; default 15 s for 10^5 steps or more, else none).
    """
    path = models.fp32_path(models.ModelKey(cell, hidden))
    quiet = {**os.environ, NO_TELEMETRY: "1"}
    out = _child(_SOAK_CHILD, str(path), str(steps), str(max(1, steps // 10)), timeout=3600, env=quiet)
    samples, trimmed = out["samples"], out.get("trimmed") or []
    out["raw_growth_bytes"] = samples[-1][1] - samples[0][1] if samples else 0
    out["growth_bytes"] = trimmed[-1][1] - trimmed[0][1] if trimmed else out["raw_growth_bytes"]
    out["trimmed_growth"] = bool(trimmed)
    out["model"] = f"{cell}-h{hidden}"
    out["telemetry"] = "off"
    seconds = (15.0 if steps >= 10**5 else 0.0) if watch_s is None else watch_s
    if seconds > 0:
        out["watch"] = watch(path, seconds)
    return out


def watch(path: Any, seconds: float, every: float = 1.0) -> dict[str, Any]:
    """Live RSS of an idle child (engine loaded, stepped once, then nothing) with onnxruntime's telemetry as
    shipped (``NO_TELEMETRY`` unset); ``growth_bytes`` from the first sample to the last."""
    env = {k: v for k, v in os.environ.items() if k != NO_TELEMETRY}
    out = _child(_WATCH_CHILD, str(path), str(seconds), str(every), timeout=seconds + 120, env=env)
    samples = out["samples"]
    out["growth_bytes"] = samples[-1][1] - samples[0][1] if samples else 0
    return out


# -- against the limit ------------------------------------------------------------------------


@dataclass(frozen=True)
class Floor:
    cell: str
    hidden: int
    flops: int  # per step, batch 1: input projection + recurrence + head
    gflops: float  # the machine's best single-core float32 matrix-vector rate on the recurrent shape
    floor_us: float
    engine_us: float | None
    raw_us: float | None
    cache_gflops: float = 0.0  # the same on a (512, 256) matrix, which sits in cache: the compute bound

    @property
    def cache_floor_us(self) -> float:
        return self.flops / (self.cache_gflops * 1e3) if self.cache_gflops else 0.0

    @property
    def engine_ratio(self) -> float | None:
        return self.engine_us / self.floor_us if self.engine_us else None


def step_flops(cell: str, hidden: int, width: int | None = None, vocab: int = models.VOCAB) -> int:
    """Multiply-adds x 2 of one batch-1 step of the bench models (one layer)."""
    g, width = GATES[cell], width or hidden
    return 2 * (g * hidden * width + g * hidden * hidden + vocab * hidden)


def floors(cells: list[str], hidden: int, results: list[CaseResult], seconds: float = 1.0) -> list[Floor]:
    """The arithmetic floor of a batch-1 step per cell, and the engine's measured ratio to it.

    The rate is measured on the recurrent matrix's own shape (gates*hidden, hidden) in a
    single-threaded child; the floor is FLOPs / rate, a bound no step can beat on one core.
    """
    out = []
    cache_rate = machine.matvec_rate(512, 256, seconds)["gflops"]
    for cell in cells:
        rate = machine.matvec_rate(GATES[cell] * hidden, hidden, seconds)["gflops"]
        flops = step_flops(cell, hidden)
        hit = next(
            (r for r in results if (r.case.cell, r.case.hidden, r.case.batch, r.case.chunk) == (cell, hidden, 1, 1)),
            None,
        )
        engine_us = hit.median("engine") if hit else None
        raw_us = hit.median("raw ping-pong") if hit else None
        out.append(Floor(cell, hidden, flops, rate, flops / (rate * 1e3), engine_us, raw_us, cache_rate))
    return out


def case_floors(results: list[CaseResult], hidden: int, seconds: float = 0.5) -> dict[str, float]:
    """The arithmetic floor in µs of every timed case at ``hidden``, keyed by case label.

    The recurrent product (batch x hidden by hidden x gates*hidden, once per frame) at the machine's
    best single-core float32 rate (numpy / OpenBLAS, one thread, best of many): sgemv on that
    matrix at batch 1 (memory-bound once the weights leave the cache), and for a batch the best
    sgemm rate measured at any batch (so the bound holds where OpenBLAS's own small-batch kernel is
    slower than onnxruntime's); plus the head at the best rate of all. The input product is not
    counted: for token inputs it folds into the embedding table (the auto form does), so nothing
    has to compute it per frame; PyTorch computes it anyway.
    """
    cases = [r.case for r in results if r.case.hidden == hidden]
    rates: dict[tuple[str, int], float] = {}
    for c in cases:
        key = (c.cell, c.batch)
        if key not in rates:
            g = GATES[c.cell]
            rates[key] = machine.matvec_rate(g * hidden, hidden, seconds, batch=0 if c.batch == 1 else c.batch)[
                "gflops"
            ]
    out = {}
    for c in cases:
        best = max(v for (cell, _), v in rates.items() if cell == c.cell)
        rate = rates[(c.cell, 1)] if c.batch == 1 and (c.cell, 1) in rates else best
        rec = 2.0 * GATES[c.cell] * hidden * hidden * c.batch * c.chunk
        head = 2.0 * 64 * hidden * c.batch * c.chunk  # the bench models' 64-symbol vocabulary
        out[c.label] = (rec / rate + head / best) / 1e3
    return out
