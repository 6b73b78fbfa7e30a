"""The third-party models against a bare ``session.run`` loop: parity and the engine's overhead.

For each model fetched by ``make thirdparty``: the engine's outputs against a plain
onnxruntime loop that carries the state by hand (step and push, 160 calls; batched
streams against their solo runs where the batch axis is free), then the time per call of
both, measured interleaved (alternating blocks of calls on the same session, one thread),
as the ratio engine / bare. Writes ``bench/results/thirdparty.json`` and the section
"Third-party models" of BENCHMARKS.md (``bench/report.py`` renders the same section from
that JSON when the whole file is regenerated).

    .venv/bin/python -m edgernn.bench.thirdparty            # ~1 minute on 2 cores
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edgernn.bench.committed import load_json
from edgernn.bench.machine import describe, pin_blas_threads
from edgernn.bench.thirdparty_models import MODELS, ROOT, BareLoop, ThirdParty, frames, missing, model_path
from edgernn.runtime import EdgeRNNError, Engine, infer_spec
from edgernn.runtime.raw import raw_pingpong

RESULTS = Path(__file__).with_name("results") / "thirdparty.json"
HEADING = "## Third-party models"
CALLS = 160


def parity(m: ThirdParty, engine: Engine) -> dict[str, float | None]:
    """Max |diff| of the engine against the bare loop: step, push, and batched members (None: batch fixed at 1)."""
    per = m.bare.per_call
    xs = frames(m, CALLS)
    stream = engine.stream()
    if per > 1 and m.bare.context:
        stepped = [stream.push(xs[t : t + per], chunk=per) for t in range(0, len(xs), per)]
        step_ref = BareLoop(engine.session, m.bare).run(xs, per)
    else:
        step_in = xs[:CALLS]
        stepped = [stream.step(x) for x in step_in]
        step_ref = BareLoop(engine.session, m.bare).run(step_in, 1)
    step = _diff(np.concatenate([np.ravel(y) for y in stepped]), step_ref)
    push = _diff(engine.stream().push(xs, chunk=per).ravel(), BareLoop(engine.session, m.bare).run(xs, per))
    batched = None
    if m.bare.batchable:
        inputs = [frames(m, CALLS, seed=10 + i) for i in range(3)]
        group = engine.batch(max_streams=3)
        members = [group.join() for _ in inputs]
        got: dict[Any, list[np.ndarray]] = {s: [] for s in members}
        for t in range(0, len(inputs[0]), per):
            outs = group.step_many({s: x[t : t + per] for s, x in zip(members, inputs)})
            for s in members:
                got[s].append(np.ravel(outs[s]))
        batched = max(
            _diff(np.concatenate(got[s]), BareLoop(engine.session, m.bare).run(x, per)) for s, x in zip(members, inputs)
        )
    return {"step": step, "push": push, "batched": batched}


def _diff(got: np.ndarray, want: np.ndarray) -> float:
    if got.shape != want.shape:
        raise RuntimeError(f"engine gave {got.shape} values, the bare loop {want.shape}")
    return float(np.abs(got - want).max())


def overhead(m: ThirdParty, engine: Engine, calls: int, rounds: int) -> dict[str, float | None]:
    """Median µs per call: the engine, a bare session.run loop and raw ping-pong on the same session, interleaved.

    Short blocks of calls, the order rotated each round; the ratio is the median of the
    per-round ratios engine / bare (robust to a neighbour's load on a shared machine).
    """
    per = m.bare.per_call
    xs = frames(m, calls, seed=3)
    chunks = [xs[t] for t in range(calls)] if per == 1 else [xs[t * per : (t + 1) * per] for t in range(calls)]
    stream = engine.stream()
    windowed = "window" in m.hints

    def run_engine(i: int) -> None:
        if per == 1 or windowed:
            stream.step(chunks[i])
        else:
            stream.push(chunks[i], chunk=per)

    contenders: dict[str, Any] = {"engine": run_engine, "bare": _bare_call(engine.session, m, chunks)}
    try:  # the engine's own binding primitive with no checks, where the runtime has one for this spec
        raw = raw_pingpong(engine, 1, per)
        shaped = [c.reshape(1, per, *m.bare.frame) for c in chunks]
        contenders["raw"] = lambda i: raw(shaped[i])
        contenders["raw"](0)
    except Exception as exc:  # noqa: BLE001 - reported as a missing column, with the reason
        contenders.pop("raw", None)
        print(f"{m.key}: no raw ping-pong ({type(exc).__name__}: {str(exc)[:100]})", file=sys.stderr)
    for fn in contenders.values():  # warm every one
        for i in range(min(50, calls)):
            fn(i)
    block = max(1, calls // rounds)
    us: dict[str, list[float]] = {k: [] for k in contenders}
    names = list(contenders)
    for r in range(rounds):
        lo = (r * block) % calls
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn = contenders[name]
            t0 = time.thread_time_ns()
            for i in range(lo, lo + block):
                fn(i % calls)
            us[name].append((time.thread_time_ns() - t0) / block / 1e3)
    ratio = statistics.median(e / b for e, b in zip(us["engine"], us["bare"]))
    out: dict[str, float | None] = {k + "_us": statistics.median(v) for k, v in us.items()}
    out.setdefault("raw_us", None)
    out["ratio"] = ratio
    return out


def _bare_call(session: ort.InferenceSession, m: ThirdParty, chunks: list[np.ndarray]) -> Any:
    """What a user writes without the engine: a feeds dict, the state swapped in by hand, the context kept."""
    bare = m.bare
    loop = BareLoop(session, bare)
    feeds: dict[str, Any] = {**bare.constants, **loop.state}
    names = loop.names
    state_names = [s for s, _, _ in bare.states]
    ctx = np.zeros((1, bare.context, *bare.frame), np.float32) if bare.context else None
    shaped = [c[None] if bare.time_axis else c[None] if c.shape == bare.frame else c[None, 0] for c in chunks]

    def call(i: int) -> np.ndarray:
        nonlocal ctx
        x = shaped[i]
        if ctx is not None:
            x = np.concatenate([ctx, x], axis=1)
            ctx = x[:, -bare.context :]
        feeds[bare.input] = x
        outs = session.run(names, feeds)
        for k, name in enumerate(state_names):
            feeds[name] = outs[k + 1]
        return outs[0]

    return call


def run(calls: int, rounds: int) -> dict[str, Any]:
    rows = []
    for m in MODELS:
        row: dict[str, Any] = {
            "key": m.key,
            "package": f"{m.package}=={m.version}",
            "upstream": m.upstream,
            "layout": m.layout,
            "hints": m.hints,
            "followed": m.followed,
            "per_call": m.bare.per_call,
        }
        try:
            engine = Engine.load(model_path(m.key), spec=infer_spec(model_path(m.key), **m.hints))
            row["parity"] = parity(m, engine)
            row.update(overhead(m, engine, calls, rounds))
            row["describe"] = _describe(engine)
        except EdgeRNNError as exc:  # reported in the table as a FAIL, with the reason
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        rows.append(row)
        print(f"{m.key}: {row.get('error') or row}", file=sys.stderr)
    machine = describe()
    return {
        "measured_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": machine.get("cpu", "?"),
        "onnxruntime": ort.__version__,
        "load": " / ".join(f"{v:.1f}" for v in os.getloadavg()),
        "calls": calls,
        "rounds": rounds,
        "models": rows,
    }


def _describe(engine: Engine) -> str:
    info = engine.describe() if hasattr(engine, "describe") else {"path": "bound" if engine.fast else "generic"}
    return str(info.get("path", "?"))


def section(res: dict[str, Any] | None = None) -> str:
    """The markdown section (empty where no result is committed)."""
    res = load_json(RESULTS) if res is None else res
    if res is None:
        return ""
    lines = [
        HEADING,
        "",
        f"Real stateful models from wheels on the package index (`make thirdparty`, docs/THIRDPARTY.md), "
        f"{res['measured_at']}, {res['cpu']}, onnxruntime {res['onnxruntime']}, one thread. Parity: max |diff| "
        f"of the engine's outputs against a bare onnxruntime loop carrying the state by hand, over {CALLS} calls "
        "(step: one frame or window a call; push: the whole input in calls of `per call` frames; batched: 3 "
        "streams in one batch, each against its solo run). Overhead: median µs per call of the engine and of a "
        "bare `session.run` loop on the same session (a feeds dict, the state and the `[context | window]` row "
        "built by hand) and of raw ping-pong (the runtime's binding primitive with no checks), in this thread's "
        "CPU time (onnxruntime runs its kernels on the calling thread at one thread; a shared machine's load "
        f"inflates wall time, not this), interleaved in {res['rounds']} rounds of short blocks, order rotated, "
        f"over {res['calls']} calls; the ratio is the "
        "median of the per-round ratios. Step for a window model is one window (512 samples); FSMN-VAD is timed "
        f"in calls of 8 frames. Load average while measured: {res.get('load', '?')}. PASS where every parity "
        "figure is <= 1e-6.",
        "",
        "| model | package | upstream | state layout | per call | step | push | batched | engine µs | bare µs "
        "| raw µs | engine / bare | path | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["models"]:
        if "error" in r:
            lines.append(
                f"| {r['key']} | {r['package']} | {r['upstream']} | {r['layout']} | {r['per_call']} "
                f"| {r['error']} | — | — | — | — | — | — | — | FAIL |"
            )
            continue
        p = r["parity"]
        ok = all(v is None or v <= 1e-6 for v in p.values())
        batched = "batch fixed at 1" if p["batched"] is None else f"{p['batched']:.1e}"
        lines.append(
            f"| {r['key']} | {r['package']} | {r['upstream']} | {r['layout']} | {r['per_call']} | {p['step']:.1e} "
            f"| {p['push']:.1e} | {batched} | {r['engine_us']:.1f} | {r['bare_us']:.1f} "
            f"| {'—' if r.get('raw_us') is None else format(r['raw_us'], '.1f')} | {r['ratio']:.2f}x "
            f"| {r['describe']} | {'PASS' if ok else 'FAIL'} |"
        )
    return "\n".join(lines) + "\n"


def update_benchmarks(text: str, path: Path, heading: str = HEADING) -> None:
    """Replace the section ``heading`` in ``path`` (or put it before "## How it is measured", else at the end)."""
    doc = path.read_text() if path.is_file() else ""
    if heading in doc:
        start = doc.index(heading)
        end = doc.find("\n## ", start + len(heading))
        doc = doc[:start] + text + ("\n" + doc[end + 1 :] if end >= 0 else "")
    elif "\n## How it is measured" in doc:
        at = doc.index("\n## How it is measured") + 1
        doc = doc[:at] + text + "\n" + doc[at:]
    else:
        doc = doc + ("\n" if doc else "") + text
    path.write_text(doc)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=2000, help="timed calls per contender")
    p.add_argument("--rounds", type=int, default=40, help="alternating blocks the calls are split into")
    p.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--json", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if missing():
        print(f"thirdparty bench: models not fetched ({', '.join(missing())}): run `make thirdparty`", file=sys.stderr)
        return 1
    pin_blas_threads(1)
    res = run(args.calls, args.rounds)
    args.json.write_text(json.dumps(res, indent=1) + "\n")
    update_benchmarks(section(res), args.out)
    print(section(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
