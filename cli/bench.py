"""``edgernn bench``: the comparison suite, scale, memory and the arithmetic floor → BENCHMARKS.md.

Needs the dev install (torch and onnx build and export the models it times).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from edgernn.cli.options import add_json, add_out, choice_list, int_list, integer, number, text
from edgernn.cli.paths import emit_json, report_written, text_out

EXTRA = "all"
REQUIRES = ("torch", "onnx", "safetensors")
HELP = "Compare the engine with raw onnxruntime, PyTorch and numpy; check the speed targets; write BENCHMARKS.md."
EXAMPLE = "edgernn bench --quick -o /tmp/BENCHMARKS.md"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="the target cases on a GRU, small sweeps: about a minute")
    add_out(p, "the report (its plot is written beside it as .png)", default="BENCHMARKS.md")
    add_json(p)
    p.add_argument(
        "--cells", type=choice_list(("rnn", "gru", "lstm")), default="rnn,gru,lstm", help="cells of the full grid"
    )
    p.add_argument(
        "--hidden",
        type=int_list(1, 4096),
        default=None,
        help="hidden sizes (default 128,256,512; quick 128,512): quick uses the first for the "
        "target cases and the last for int8 and the floor",
    )
    p.add_argument(
        "--streams",
        type=int_list(1, 65_536),
        default=None,
        help="the streams sweep (default 1,2,4..1024; quick 1,16,256,1024)",
    )
    p.add_argument("--hiddens", type=int_list(1, 4096), default=None, help="the model-size sweep (default 64..1024)")
    p.add_argument("--memory-hidden", type=integer(1, 4096), default=256, help="hidden size of the memory model")
    p.add_argument(
        "--soak-hidden", type=integer(1, 4096), default=64, help="hidden size of the soak model (growth, not speed)"
    )
    p.add_argument("--no-scale", action="store_true", help="skip the sweeps, memory and the floor")
    p.add_argument(
        "--soak", type=integer(0, 10**10), default=None, help="steps of the no-growth soak (default 10^6 full, 0 quick)"
    )
    p.add_argument(
        "--compile",
        dest="compile_peer",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="time torch.compile too (default: on in the full run)",
    )
    p.add_argument(
        "--rounds", type=integer(1, 10_000), default=None, help="interleaved rounds per case (default 15; quick 10)"
    )
    p.add_argument(
        "--block-ms",
        type=number(0.0, 60_000.0, lo_open=True),
        default=None,
        help="target length of one timed block (default 15; quick 4)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when a target FAILs in this run (for CI); verdicts recorded on another machine do not count",
    )
    p.add_argument("--note", type=text(2000), default="", help="conditions to record in the report (e.g. machine load)")


def main(args: argparse.Namespace) -> int:
    import torch

    from edgernn.bench import machine, report, scale, suite
    from edgernn.bench.targets import RunFigures, evaluate, failed, load_targets

    torch.set_num_threads(1)
    pinned = machine.pin_blas_threads(1)
    t_start = time.perf_counter()
    quick = args.quick
    settings = suite.Settings(
        rounds=args.rounds or (10 if quick else 15),
        block_s=(args.block_ms or (4.0 if quick else 15.0)) / 1e3,
        min_block=3 if quick else 5,
        case_budget_s=1.5 if quick else 3.0,
    )
    start = machine.describe()
    log = _logger()

    cells = tuple(args.cells)
    hidden = args.hidden or ([128, 512] if quick else [128, 256, 512])
    compile_peer = bool(args.compile_peer) if quick else args.compile_peer is not False
    cases = suite.plan(quick, compile_peer, cells, small=hidden[0], big=hidden[-1], hiddens=hidden)
    log(f"bench: {len(cases)} cases, {settings.rounds} rounds each")
    results = [suite.run_case(c, names, settings, _numbered(log, i, len(cases))) for i, (c, names) in enumerate(cases)]

    run_cells = sorted({c.cell for c, _ in cases}, key=["rnn", "gru", "lstm"].index)
    streams_res, hidden_res, memory, floors, case_floors = [], [], None, [], {}
    if not args.no_scale:
        streams = args.streams or ([1, 16, 256, 1024] if quick else [2**i for i in range(11)])
        hiddens = args.hiddens or ([64, 256, 1024] if quick else [64, 128, 256, 512, 1024])
        log("scale: streams " + ",".join(map(str, streams)))
        streams_res = scale.streams_sweep(streams, settings, hidden=256 if 256 in hiddens else hiddens[0], log=log)
        log("scale: hidden " + ",".join(map(str, hiddens)))
        hidden_res = scale.hidden_sweep(hiddens, settings, log=log)
        log("memory")
        memory = scale.memory(hidden=args.memory_hidden, streams=1000 if quick else 5000)
        log("floor")
        floors = scale.floors(run_cells, hidden[-1], results, seconds=0.5 if quick else 2.0)
        case_floors = scale.case_floors(results, hidden[-1], seconds=0.3 if quick else 1.0)
    soak_steps = args.soak if args.soak is not None else (0 if quick else 10**6)
    soak = None
    if soak_steps > 0:
        log(f"soak: {soak_steps:,} steps")
        soak = scale.soak(soak_steps, hidden=args.soak_hidden)

    verdicts = evaluate(load_targets(), RunFigures(results, memory, soak))
    run = report.Run(
        quick=quick,
        machine_start=start,
        machine_end=machine.describe(),
        settings={
            "rounds": settings.rounds,
            "block_ms": settings.block_s * 1e3,
            "case_budget_s": settings.case_budget_s,
            "blas_pinned": pinned,
        },
        cases=results,
        verdicts=verdicts,
        streams=streams_res,
        hiddens=hidden_res,
        memory=memory,
        soak=soak,
        floors=floors,
        case_floors=case_floors,
        note=args.note,
        seconds=time.perf_counter() - t_start,
    )
    out = Path(args.out)
    png = out.with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)  # --out may name folders still to make (checked writable at parse)
    drew = report.plot(run, png)
    report.write(run, out, png if drew else None)
    shown = text_out(args.json)
    written = emit_json(args.json, json.dumps(asdict(run), indent=1, default=str))
    for v in verdicts:
        print(f"{v.status:<15} {v.target:<30} {v.row:<24} {v.measured}  (target {v.figure}) {v.note}", file=shown)
    for fl in floors:
        ratio = f"{fl.engine_ratio:.2f}x" if fl.engine_ratio else "not timed"
        print(
            f"floor {fl.cell} h{fl.hidden}: {fl.flops / 1e6:.2f} MFLOP/step at {fl.gflops:.1f} GFLOP/s = "
            f"{fl.floor_us:.1f} µs; engine {ratio} of it",
            file=shown,
        )
    if not drew:
        print("no plot: matplotlib missing", file=shown)
    report_written([out, png if drew else None, written], shown)
    bad = failed(verdicts)
    if args.check and bad:
        print(f"--check: {len(bad)} target row(s) FAIL: " + ", ".join(f"{v.target} {v.row}".strip() for v in bad))
        return 1
    return 0


def _logger() -> Callable[[str], None]:
    start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f} s] {msg}", file=sys.stderr, flush=True)

    return log


def _numbered(log: Callable[[str], None], i: int, n: int) -> Callable[[str], None]:
    return lambda msg: log(f"{i + 1}/{n} {msg}")
