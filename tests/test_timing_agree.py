"""One timing path: ``edgernn devices auto``, ``edgernn profile`` and ``edgernn bench`` time one call alike.

On the shipped text model, batch 1, one frame per call, in one process, interleaved over
several rounds (order rotated each round): the CPU candidate's p50 from ``devices auto``,
the p50 ``edgernn profile`` reports (its JSON), and the bench's ``engine`` median (its
interleaved loop). The medians over rounds must agree within a generous band (the machine
is shared and loaded): before the timings shared one path, auto read 3.5x the others.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import edgernn
from edgernn.bench.contenders import Case, Subject
from edgernn.bench.contenders import engine as bench_engine_call
from edgernn.bench.suite import Settings, _interleave
from edgernn.cli import main as cli_main
from edgernn.devices.auto import choose_device
from edgernn.runtime.engine import Engine
from edgernn.runtime.profiling import example_frames

MODEL = Path(edgernn.__file__).parent / "runtime" / "models" / "textgen.onnx"
ROUNDS = 7
CALLS = 1000
BAND = 1.5  # every pair of medians within this ratio


def _auto(_: Path) -> float:
    choice = choose_device(MODEL, batch=1, chunk=1, calls=CALLS, warmup=100, names=["cpu"])
    (cpu,) = [c for c in choice.candidates if c.profile == "cpu"]
    assert cpu.status == "measured" and cpu.p50_us is not None
    return cpu.p50_us


def _profile(tmp: Path) -> float:
    out = tmp / "profile.json"
    argv = ["profile", str(MODEL), "--calls", str(CALLS), "--warmup", "100", "--op-calls", "0", "--quiet"]
    assert cli_main([*argv, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["path"] == "engine Stream.step"
    return float(report["latency_us"]["p50_us"])


def _bench(_: Path) -> float:
    x = example_frames(Engine.load(MODEL), (1, 1))  # tokens (1, 1): what profile and auto feed
    subject = Subject(Case("textgen", 0, 1, 1), MODEL, None, None, {}, x)
    times = _interleave({"engine": bench_engine_call(subject)}, Settings(rounds=1, warmup=100))
    return float(np.median(np.concatenate(times["engine"])))


def test_auto_profile_and_bench_agree_on_one_model(tmp_path: Path) -> None:
    paths = {"devices auto": _auto, "profile": _profile, "bench": _bench}
    figures: dict[str, list[float]] = {name: [] for name in paths}
    names = list(paths)
    for r in range(ROUNDS):
        for name in names[r % 3 :] + names[: r % 3]:
            figures[name].append(paths[name](tmp_path))
    medians = {name: float(np.median(v)) for name, v in figures.items()}
    for name, v in figures.items():
        print(f"{name:<13} median {medians[name]:6.1f} µs  rounds " + " ".join(f"{t:.1f}" for t in v))
    worst = max(medians.values()) / min(medians.values())
    print(f"largest ratio between the three: {worst:.2f}x (band {BAND}x)")
    assert worst <= BAND, f"timing paths disagree: {medians} (ratio {worst:.2f}x > {BAND}x)"
