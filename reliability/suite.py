"""The reliability suite behind ``edgernn reliability`` (flags in ``edgernn.cli.reliability``).

The runs themselves live in ``faults.py`` (untrusted model files), ``fuzz.py`` (hypothesis
on the public API), ``soak.py`` (long runs, many streams, threads); this module sizes them,
records the machine and its load while they run, and renders the report
(``report.py``). ``--long`` runs the full sizes (10^6 steps on one stream,
10^4 streams x 100 steps, 8 threads x 100 streams x 100 steps); the default is a quick
scaled-down pass. Exit status 1 if any check failed (known engine findings are listed
apart and do not fail the run).
"""

from __future__ import annotations

import os
import platform
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SECTIONS = (
    "files", "fuzz", "soak", "threads", "snapshots", "spec-fuzz", "snapshot-fuzz", "bombs", "churn", "cli-fuzz",
    "api-fuzz",
)  # fmt: skip
HOSTILE_LONG = {  # cli-fuzz: every flag x every boundary value once (1,368 today), then random values
    "spec-fuzz": 1500, "snapshot-fuzz": 1000, "bombs": 200, "churn": 30, "cli-fuzz": 1500, "api-fuzz": 1100,
}  # fmt: skip
HOSTILE_QUICK = {"spec-fuzz": 150, "snapshot-fuzz": 150, "bombs": 30, "churn": 3, "cli-fuzz": 40, "api-fuzz": 150}


@dataclass(frozen=True)
class Sizes:
    mutants: int
    fuzz_examples: int
    soak_steps: int
    many_streams: int
    many_steps: int
    threads: int
    per_thread: int
    thread_steps: int
    hostile: dict[str, int] = field(default_factory=dict)  # surface -> cases (reliability/hostile.py)

    @classmethod
    def pick(cls, long: bool) -> Sizes:
        if long:
            return cls(5000, 200, 1_000_000, 10_000, 100, 8, 100, 100, dict(HOSTILE_LONG))
        return cls(300, 25, 20_000, 1_000, 20, 8, 100, 10, dict(HOSTILE_QUICK))


class LoadSampler:
    """The machine's 1-minute load average, sampled every ``every`` seconds in the background."""

    def __init__(self, every: float = 2.0) -> None:
        self.every = every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self.samples.append(os.getloadavg()[0])
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])


def machine() -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem, 1),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def _models(root: Path) -> dict[str, tuple[Any, Path]]:
    """Small real models, exported with the real exporter: (torch model, onnx path) by key."""
    import torch

    from edgernn.export.onnx_export import export_model
    from edgernn.runtime.spec import ModelConfig
    from edgernn.train.model import build_model

    out = {}
    for cell in ("gru", "lstm", "rnn"):
        for kind in ("tokens", "frames"):
            torch.manual_seed(0)
            size, outputs = (48, 48) if kind == "tokens" else (6, 3)
            cfg = ModelConfig(
                cell=cell, input_kind=kind, input_size=size, hidden_size=32, num_layers=2, output_size=outputs
            )
            model = build_model(cfg).eval()
            key = f"{cell}-{kind}"
            export_model(model, root / f"{key}.onnx")
            out[key] = (model, root / f"{key}.onnx")
    return out


def run_files(mutant_count: int) -> dict[str, Any]:
    from edgernn.export.onnx_export import attach_spec, to_onnx_proto
    from edgernn.reliability.faults import run_all, run_mutants
    from edgernn.runtime.spec import ModelConfig, StreamSpec
    from edgernn.train.model import build_model

    cfg = ModelConfig(cell="gru", input_kind="tokens", input_size=60, hidden_size=8, num_layers=1, output_size=60)
    model = build_model(cfg).eval()
    base = attach_spec(to_onnx_proto(model), StreamSpec.for_model(cfg))
    t0 = time.perf_counter()
    results = [r.to_dict() for r in run_all(base)]
    seconds = time.perf_counter() - t0
    return {"cases": results, "seconds": seconds, "mutants": run_mutants(base, mutant_count)}


def run_fuzz_all(models: dict[str, tuple[Any, Path]], examples: int) -> dict[str, Any]:
    import numpy as np

    from edgernn.reliability.fuzz import OVERFLOW, RAGGED, FuzzFailure, run_fuzz
    from edgernn.reliability.reference import Reference, weights_of
    from edgernn.reliability.report import LARGE_FRAME
    from edgernn.runtime.engine import Engine
    from edgernn.runtime.errors import EdgeRNNError

    per_model = {}
    runs = [(key, model, Engine.load(path)) for key, (model, path) in models.items()]
    model, path = models["gru-frames"]
    runs.append(("gru-frames, generic path", model, _generic_engine(path)))
    for i, (key, model, engine) in enumerate(runs):
        t0 = time.perf_counter()
        try:
            stats = run_fuzz(engine, Reference(weights_of(model), model.config), examples, rng_seed=i)
            per_model[key] = {
                "ok": True,
                "examples": stats.examples,
                "ops": dict(stats.ops),
                "errors": dict(stats.errors),
                "frames": stats.frames,
                "max_abs_err": stats.max_abs_err,
                "seconds": time.perf_counter() - t0,
            }
        except FuzzFailure as exc:
            per_model[key] = {"ok": False, "failure": str(exc), "seconds": time.perf_counter() - t0}
    engine = Engine.load(models["gru-tokens"][1])
    frames_engine = Engine.load(models["gru-frames"][1])
    probes = {}
    for name, call in (
        ("ragged nested list to push", lambda: engine.stream().push(RAGGED)),
        ("float64 frame of 1e39 (inf in float32)", lambda: frames_engine.stream().step(np.full(6, OVERFLOW))),
        (LARGE_FRAME, lambda: frames_engine.stream().step(np.full(6, 1e30, np.float32))),
    ):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # as a caller who treats warnings as errors runs it
                call()
            probes[name] = "accepted"
        except EdgeRNNError as exc:
            probes[name] = f"typed: {type(exc).__name__}"
        except Exception as exc:  # the finding itself
            probes[name] = f"untyped: {type(exc).__name__}: {str(exc)[:90]}"
    return {"models": per_model, "probes": probes}


def _generic_engine(path: Path) -> Any:
    """The model with its output size left symbolic in the spec, held on the generic path (``session.run``
    fed by name), the path the engine demotes to when a graph's output shape varies per call."""
    from edgernn.runtime.engine import Engine
    from edgernn.runtime.spec import StreamSpec, TensorSpec

    spec = Engine.load(path).spec
    y = TensorSpec(spec.outputs[0].name, spec.outputs[0].dtype, ("batch", "time", "features"))
    engine = Engine.load(path, spec=StreamSpec(inputs=spec.inputs, outputs=(y,), states=spec.states))
    engine.fast = False  # the probe sizes 'features' and binds it; the generic path is what a demotion runs
    return engine


def run_soak(models: dict[str, tuple[Any, Path]], sizes: Sizes, part: str = "both") -> dict[str, Any]:
    """The soak: ``part`` "one" (one stream, many steps), "many" (many streams round-robin) or both."""
    from edgernn.reliability.reference import Reference, weights_of
    from edgernn.reliability.soak import soak_many_streams, soak_one_stream
    from edgernn.runtime.engine import Engine

    out: dict[str, Any] = {}
    if part in ("one", "both"):
        model, path = models["gru-frames"]
        ref = Reference(weights_of(model), model.config)
        out["one"] = asdict(soak_one_stream(Engine.load(path), ref, sizes.soak_steps)) | {"model": "gru-frames"}
    if part in ("many", "both"):
        model, path = models["lstm-tokens"]
        ref = Reference(weights_of(model), model.config)
        many = soak_many_streams(Engine.load(path), ref, sizes.many_streams, sizes.many_steps)
        out["many"] = asdict(many) | {"model": "lstm-tokens"}
    return out


def run_threads(models: dict[str, tuple[Any, Path]], sizes: Sizes) -> dict[str, Any]:
    from edgernn.reliability.reference import Reference, weights_of
    from edgernn.reliability.soak import concurrency, contention
    from edgernn.runtime.engine import Engine

    out: dict[str, Any] = {}
    for key, batched in (("gru-tokens", False), ("rnn-frames", False), ("lstm-frames", True)):
        model, path = models[key]
        engine, ref = Engine.load(path), Reference(weights_of(model), model.config)
        res = concurrency(engine, ref, sizes.threads, sizes.per_thread, sizes.thread_steps, batched=batched)
        name = f"{key} (Batch.step)" if batched else key
        out[name] = asdict(res) | {"contention": asdict(contention(engine, ref, threads=sizes.threads, streams=8))}
    return out


def run_snapshots(models: dict[str, tuple[Any, Path]], root: Path) -> dict[str, str]:
    """Damaged, foreign, forged and pickle-bearing snapshots and checkpoints: what each load says."""
    from edgernn.reliability.faults import pickle_bomb
    from edgernn.runtime.engine import Engine
    from edgernn.runtime.errors import EdgeRNNError
    from edgernn.train.checkpoint import load_checkpoint, save_checkpoint

    engine = Engine.load(models["lstm-tokens"][1])
    stream = engine.stream()
    stream.step(3)
    blob = stream.snapshot()
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 1
    ckpt = save_checkpoint(root / "ck.safetensors", models["gru-tokens"][0], {}, {})
    data = ckpt.read_bytes()
    (root / "half.safetensors").write_bytes(data[: len(data) // 2])
    (root / "evil.safetensors").write_bytes(pickle_bomb(root / "PWNED"))
    weights_flip = bytearray(data)
    weights_flip[-5] ^= 0x10
    (root / "flip.safetensors").write_bytes(bytes(weights_flip))
    trials = {
        "snapshot truncated by one byte": lambda: engine.stream().restore(blob[:-1]),
        "snapshot with one bit flipped": lambda: engine.stream().restore(bytes(flipped)),
        "snapshot of another model": lambda: engine.stream().restore(
            Engine.load(models["gru-tokens"][1]).stream().snapshot()
        ),
        "pickle given as a snapshot": lambda: engine.stream().restore(pickle_bomb(root / "PWNED")),
        "checkpoint cut in half": lambda: load_checkpoint(root / "half.safetensors"),
        "pickle named .safetensors": lambda: load_checkpoint(root / "evil.safetensors"),
        "checkpoint with one weight bit flipped": lambda: load_checkpoint(root / "flip.safetensors"),
    }
    out = {}
    for name, call in trials.items():
        try:
            call()
            out[name] = "accepted"
        except EdgeRNNError as exc:
            out[name] = f"{type(exc).__name__}: {str(exc)[:110]}"
    out["pickle code ran"] = "yes" if (root / "PWNED").exists() else "no"
    return out


STEPS = (  # what runs in the worker processes, longest first (cli-fuzz takes one lane, the rest the other)
    "cli-fuzz", "soak-one", "soak-many", "fuzz", "files", "threads", "spec-fuzz", "api-fuzz", "bombs",
    "snapshot-fuzz", "churn", "snapshots",
)  # fmt: skip
JOBS = 2  # worker processes: the 2 cores this suite is sized for (the hostile surfaces' own children wait on them)
_MODELS: dict[str, dict[str, tuple[Any, Path]]] = {}  # per worker process: the exported models, built once


def _worker_models(tmp: str) -> dict[str, tuple[Any, Path]]:
    if tmp not in _MODELS:
        folder = Path(tmp) / f"worker-{os.getpid()}"  # each worker exports its own copies: no shared writes
        folder.mkdir(exist_ok=True)
        _MODELS[tmp] = _models(folder)
    return _MODELS[tmp]


def run_step(name: str, sizes: Sizes, tmp: str) -> tuple[str, Any, float]:
    """One step of the suite in a worker process: (name, its results, seconds)."""
    from edgernn.reliability.hostile import SURFACES, run_surface

    warnings.resetwarnings()
    t0 = time.perf_counter()
    if name in SURFACES:
        out: Any = run_surface(name, sizes.hostile[name])
    elif name == "files":
        out = run_files(sizes.mutants)
    elif name == "fuzz":
        out = run_fuzz_all(_worker_models(tmp), sizes.fuzz_examples)
    elif name in ("soak-one", "soak-many"):
        out = run_soak(_worker_models(tmp), sizes, part=name.split("-")[1])
    elif name == "threads":
        out = run_threads(_worker_models(tmp), sizes)
    elif name == "snapshots":
        folder = Path(tmp) / f"snapshots-{os.getpid()}"
        folder.mkdir(exist_ok=True)
        out = run_snapshots(_worker_models(tmp), folder)
    else:
        raise ValueError(f"unknown step {name!r}")
    return name, out, time.perf_counter() - t0


def collect(sizes: Sizes, skip: list[str], long: bool, jobs: int = JOBS) -> dict[str, Any]:
    """Run every section not in ``skip`` on ``jobs`` worker processes; the results, in section order."""
    import multiprocessing
    import tempfile
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from edgernn.reliability.report import git_commit

    results: dict[str, Any] = {"long": long, "sizes": asdict(sizes), "machine": machine(), "jobs": jobs}
    results["commit"] = git_commit()
    section = {"soak-one": "soak", "soak-many": "soak"}
    steps = [n for n in STEPS if section.get(n, n) not in skip and (n in sizes.hostile or n not in HOSTILE_LONG)]
    done: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    with LoadSampler() as load, tempfile.TemporaryDirectory(prefix="edgernn-reliability-") as tmp:
        spawn = multiprocessing.get_context("spawn")  # fresh interpreters: no state shared with this one
        with ProcessPoolExecutor(max_workers=jobs, mp_context=spawn) as pool:
            futures = [pool.submit(run_step, name, sizes, tmp) for name in steps]
            print(f"reliability: {len(steps)} steps on {jobs} worker processes: {', '.join(steps)}", flush=True)
            for future in as_completed(futures):
                name, out, took = future.result()
                done[name], seconds[name] = out, took
                print(f"reliability: {name} done in {took:.0f} s", flush=True)
    if "soak-one" in done or "soak-many" in done:
        done["soak"] = {k: v for part in ("soak-one", "soak-many") for k, v in done.pop(part, {}).items()}
        seconds["soak"] = seconds.pop("soak-one", 0.0) + seconds.pop("soak-many", 0.0)
    for name in SECTIONS:  # section order, whatever order the workers finished in
        if name in done:
            results[name] = done[name]
    results["seconds"] = {name: round(seconds[name], 1) for name in SECTIONS if name in seconds}
    results["load"] = {"samples": load.samples, "mean": sum(load.samples) / len(load.samples), "max": max(load.samples)}
    results["total_seconds"] = time.perf_counter() - t0
    results["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return results
