"""Latency in a real browser page vs the Python engine on the same machine → BENCHMARKS-web.md.

    python -m edgernn.web.bench [--rounds 3] [--out BENCHMARKS-web.md]      (make web-bench)

Models: the shipped textgen.onnx (GRU 256, one token per step, chunks of 200 tokens) and, where
``make thirdparty`` fetched it, silero-vad (one 512-sample window per step with a 64-sample
context; a chunk is a push of 4096 samples = 8 windows). Each round runs, interleaved: the page
with 1 wasm thread, the page with 2 threads (the site is served with cross-origin isolation, so
threads are allowed; the page reports ``crossOriginIsolated``), and the Python engine (1 thread);
medians over rounds. The page is the parity page (web/parity.py's case) timed with
``performance.now()`` in real time: it is driven over the DevTools protocol, not a virtual time budget.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgernn.runtime import Engine
from edgernn.runtime.spec import StreamSpec
from edgernn.web.driver import Browser
from edgernn.web.parity import Case, take, write_case
from edgernn.web.site import build_site, serve

MODELS = Path(__file__).resolve().parents[1] / "runtime" / "models"
STEPS, CHUNKS = 500, 3


@dataclass
class Bench:
    name: str  # the model, as the table says it
    path: Path
    spec: StreamSpec | None
    chunk: int  # items per push (the "chunk")
    step_items: int  # items per step (1, or the window)
    what: str  # what one step and one chunk are


def models() -> list[Bench]:
    out = [Bench("textgen (GRU 256, tokens)", MODELS / "textgen.onnx", None, 200, 1, "1 token; 200 tokens")]
    from edgernn.bench.thirdparty_models import by_key, missing, model_path
    from edgernn.runtime.infer import infer_spec

    if "silero_vad" not in missing():
        path = model_path("silero_vad")
        spec = infer_spec(path, **by_key("silero_vad").hints)
        out.append(Bench("silero-vad (window 512 + context 64)", path, spec, 4096, 512, "512 samples; 4096 samples"))
    return out


def cpu() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        return next(ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def case_for(engine: Engine, b: Bench) -> Case:
    rng = np.random.default_rng(0)
    n = max(STEPS * b.step_items, CHUNKS * b.chunk)
    if engine.tokens:
        items = rng.integers(0, engine.vocab_size or 2, size=n).astype(np.int64)
    else:
        items = (rng.standard_normal((n, *engine.frame_shape)) * 0.1).astype(np.float32)
    return Case(items, steps=STEPS, step_items=b.step_items, pushes=[b.chunk] * CHUNKS, chunk=b.chunk,
                snapshot_after=1, after_start=0, after_pushes=[], bad=10**6 if engine.tokens else "nan",
                python_snapshot=engine.stream().snapshot())  # fmt: skip


def python_times(engine: Engine, case: Case) -> tuple[float, float]:
    """(ms per step, ms per chunk) on a Python stream, the same calls as the page."""
    s, k, xs = engine.stream(), case.step_items, case.items
    one: Any = (lambda i: take(xs, i * k, (i + 1) * k)) if k > 1 else (lambda i: xs[i])
    t = time.perf_counter()
    for i in range(case.steps):
        s.step(one(i))
    step = (time.perf_counter() - t) / case.steps * 1e3
    s = engine.stream()
    t = time.perf_counter()
    for i, n in enumerate(case.pushes):
        s.push(take(xs, i * n, (i + 1) * n), chunk=case.chunk)
    return step, (time.perf_counter() - t) / len(case.pushes) * 1e3


def run(b: Bench, browser: Browser, rounds: int, load: list[float]) -> dict[str, Any]:
    engine = Engine.load(b.path, spec=b.spec)
    case = case_for(engine, b)
    names = ("page, 1 thread", "page, 2 threads", "Python engine")
    rows: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
    isolated = True
    with tempfile.TemporaryDirectory() as tmp:
        build_site(b.path, tmp, spec=b.spec)
        write_case(Path(tmp), case)
        server = serve(tmp)
        url = f"http://127.0.0.1:{server.server_address[1]}/parity.html"
        try:
            for _ in range(rounds):
                for threads in (1, 2):
                    page = browser.open(f"{url}?threads={threads}")
                    browser.wait(page, "document.title === 'done' || document.title === 'error'", timeout=300)
                    r = json.loads(browser.eval(page, "document.getElementById('out').textContent"))
                    browser.close_page(page)
                    if "error" in r:
                        raise RuntimeError(r["error"])
                    isolated = isolated and bool(r["isolated"])
                    rows[names[threads - 1]].append((r["createMs"], r["stepMs"], r["pushMs"]))
                t = time.perf_counter()
                Engine.load(b.path, spec=b.spec)
                create = (time.perf_counter() - t) * 1e3
                rows["Python engine"].append((create, *python_times(engine, case)))
                load.append(os.getloadavg()[0])
        finally:
            server.shutdown()
    med = {k: [statistics.median(x[i] for x in v) for i in range(3)] for k, v in rows.items()}
    return {"bench": b, "rows": med, "isolated": isolated}


def render(results: list[dict[str, Any]], load: list[float], rounds: int, finished: str) -> str:
    busy = " (a shared, busy machine: ratios, not absolute times)." if max(load) > 2 else "."
    lines = [
        "# edgernn in the browser: latency",
        "",
        "Generated by `make web-bench` (`python -m edgernn.web.bench`, see `web/bench.py`): the JS engine",
        "(`web/edgernn.mjs`) on onnxruntime-web 1.30.0 (wasm) in headless Chromium driven over the DevTools",
        "protocol, against the Python engine (onnxruntime, CPU provider, 1 thread) in the same run,",
        f"interleaved; medians of {rounds} rounds. Session create is the page's `Engine.load` (fetch + wasm",
        "session) and Python's `Engine.load` (session + load-time probe). 2 threads: the site is served with",
        "COOP/COEP, so the page is cross-origin isolated and onnxruntime-web may use a second wasm thread.",
        f"CPU: {cpu()}; load average during the run {min(load):.1f}-{max(load):.1f} on {os.cpu_count()} cores{busy}",
        f"Run finished {finished}.",
    ]
    for res in results:
        b, py = res["bench"], res["rows"]["Python engine"]
        step, chunk = b.what.split("; ")
        lines += [
            "",
            f"## {b.name}",
            "",
            f"One step = {step}; one chunk = {chunk}."
            + ("" if res["isolated"] else " (The page was NOT cross-origin isolated: 2 threads fell back to 1.)"),
            "",
            "| where | session create (ms) | one step (ms) | one chunk (ms) | step vs Python | chunk vs Python |",
            "|---|---|---|---|---|---|",
        ]
        for name, (create, st, ch) in res["rows"].items():
            lines.append(f"| {name} | {create:.1f} | {st:.3f} | {ch:.2f} | {st / py[1]:.1f}x | {ch / py[2]:.1f}x |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default="BENCHMARKS-web.md")
    args = p.parse_args(argv)
    load = [os.getloadavg()[0]]
    with Browser() as browser:
        results = [run(b, browser, args.rounds, load) for b in models()]
    Path(args.out).write_text(render(results, load, args.rounds, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
