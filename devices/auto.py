"""``--device auto``: measure the model on each profile that can run here, pick the fastest, record why.

Tiny recurrent models often run faster on the CPU than on a GPU (the call is launch-bound),
so placement is measured, not assumed. Each candidate is loaded strictly (a profile whose
provider is missing, or that would fall back, is skipped with the reason), then timed for
the requested batch and chunk: host frames in, host results out, state kept where the
profile keeps it (``device``), two state buffers swapped each call as the engine does.

Example:
    >>> from edgernn.devices.auto import choose_device       # doctest: +SKIP
    >>> choice = choose_device("model.onnx", batch=1, chunk=1)  # doctest: +SKIP
    >>> choice.chosen, choice.candidates[0].p50_us               # doctest: +SKIP
    ('cpu', 23.5)
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import onnxruntime as ort

from edgernn.devices.placement import PlacementReport, load_engine
from edgernn.devices.profiles import load_profile, profile_names
from edgernn.runtime.binding import Binding, state_pairs
from edgernn.runtime.engine import Engine
from edgernn.runtime.errors import EdgeRNNError, ProfileError
from edgernn.runtime.latency import LatencyStats, measure
from edgernn.runtime.profiling import example_frames, time_engine
from edgernn.runtime.safety import read_model

AUTO_VERSION = 1


@dataclass(frozen=True)
class Candidate:
    """One profile's outcome: measured (with figures) or skipped / refused (with the reason)."""

    profile: str
    status: str  # "measured", "skipped" (cannot run here), "refused" (strict placement failed)
    reason: str = ""
    p50_us: float | None = None
    p99_us: float | None = None
    frames_per_second: float | None = None
    placement: dict[str, int] | None = None


@dataclass(frozen=True)
class AutoChoice:
    """The fastest profile for one model, batch and chunk on this machine, with every candidate's figures."""

    model: str
    model_sha256: str
    batch: int
    chunk: int
    chosen: str
    candidates: tuple[Candidate, ...]
    onnxruntime: str
    machine: str
    measured_at: str
    version: int = AUTO_VERSION

    def to_json(self) -> str:
        data = asdict(self)
        data["candidates"] = [asdict(c) for c in self.candidates]
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str) -> AutoChoice:
        data = json.loads(text)
        data["candidates"] = tuple(Candidate(**c) for c in data["candidates"])
        return cls(**data)

    def save(self, path: str | os.PathLike[str]) -> Path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(self.to_json() + "\n", encoding="utf-8")
        return out

    def __str__(self) -> str:
        lines = [f"{self.model} (batch {self.batch}, chunk {self.chunk}): chosen {self.chosen}"]
        for c in self.candidates:
            if c.status == "measured":
                lines.append(f"  {c.profile:<11} p50 {c.p50_us:9.1f} µs  p99 {c.p99_us:9.1f} µs  "
                             f"{c.frames_per_second:12,.0f} frames/s")  # fmt: skip
            else:
                lines.append(f"  {c.profile:<11} {c.status}: {c.reason}")
        return "\n".join(lines)


def default_record_path(model: str | os.PathLike[str], batch: int, chunk: int) -> Path:
    """Where the choice for ``model`` is recorded by default: beside it, named by batch and chunk."""
    p = Path(model)
    return p.with_name(f"{p.stem}.device-auto.b{batch}.t{chunk}.json")


def bench_engine(engine: Engine, batch: int, chunk: int, calls: int, warmup: int) -> LatencyStats:
    """Per-call latency of ``engine`` for ``batch`` streams × ``chunk`` frames, as a caller would run it.

    A profile whose state lives in host memory (``device = "cpu"``: the CPU, XNNPACK, OpenVINO
    ...) is timed through ``profiling.time_engine``: the engine's own call, the same one
    ``edgernn profile`` and the bench's ``engine`` row time, so the three agree
    (tests/test_timing_agree.py). A device profile streams with the CUDA stream (graphs,
    pinned buffers) at one frame, else with the runtime's binding primitive
    (``runtime/binding.py``) over state buffers on the device.
    """
    device = str(getattr(engine.profile, "device", "cpu"))
    device_id = int(getattr(engine.profile, "device_id", 0))
    session = engine.session
    if device == "cpu":
        if batch > 1 and not engine.fast:
            raise ProfileError(f"--device auto: {engine.source} runs on the generic path ({engine.path_note})")
        return time_engine(engine, batch, chunk, calls, warmup)[0]
    if device == "cuda" and chunk == 1 and engine.plain_step and "CUDAExecutionProvider" in session.get_providers():
        from edgernn.devices.cuda import CudaStream  # what a CUDA profile streams with: graphs, pinned buffers

        lanes = CudaStream(engine, lanes=batch)
        x = example_frames(engine, (batch,))
        frame = x[0] if batch == 1 else x
        return measure(lambda: lanes.step(frame), calls, warmup, frames_per_call=1)
    if not engine.fast:
        raise ProfileError(f"--device auto: {engine.source} runs on the generic path ({engine.path_note})")
    time_ = engine.window or chunk
    states = state_pairs(engine.spec, batch, lambda a: ort.OrtValue.ortvalue_from_numpy(a, device, device_id))
    binding = Binding(session, engine.layout, states, batch, time_, engine.constants, direct=False)
    k = engine.context_frames if engine.context_index == 0 else 0
    binding.xv[0][:, k:] = example_frames(engine, (batch, time_))
    # Run options only where needed: passing any RunOptions object cost ~30 µs a call on the
    # CPU provider (onnxruntime 1.32, measured: 40 vs 8.3 µs on weather.onnx).
    ro = None
    if getattr(engine.profile, "cuda_graph", False):
        ro = ort.RunOptions()
        ro.add_run_config_entry("gpu_graph_id", "-1")  # host inputs: no fixed addresses to capture
    flip = [0]

    def call() -> None:
        session.run_with_iobinding(binding.io[flip[0]], ro)
        flip[0] ^= 1

    return measure(call, calls, warmup, frames_per_call=time_)


def choose_device(
    model: str | os.PathLike[str],
    batch: int = 1,
    chunk: int = 1,
    calls: int = 500,
    warmup: int = 50,
    names: list[str] | None = None,
) -> AutoChoice:
    """Measure ``model`` on every profile that can run here (or ``names``), pick the lowest median call time.

    Profiles for another precision than the model's (``cpu-int8`` for an fp32 model) are
    refused by the placement check, with the reason recorded.
    """
    if batch < 1 or chunk < 1:
        raise ProfileError(f"--device auto: batch and chunk must be >= 1, got batch {batch}, chunk {chunk}")
    candidates: list[Candidate] = []
    sha = ""
    for name in names or profile_names():
        profile = load_profile(name)
        missing = profile.missing_providers()
        if missing:
            candidates.append(Candidate(name, "skipped", "; ".join(f"{p}: {r}" for p, r in missing)))
            continue
        try:
            engine, report = load_engine(model, profile, strict=True)
        except ProfileError as exc:
            candidates.append(Candidate(name, "refused", str(exc).splitlines()[0].split(" refused: ")[-1]))
            continue
        sha = engine.model_sha256
        try:
            stats = bench_engine(engine, batch, chunk, calls, warmup)
        except (EdgeRNNError, RuntimeError, ValueError) as exc:  # onnxruntime raises RuntimeError subclasses
            candidates.append(Candidate(name, "refused", f"failed while measuring: {exc}"))
            continue
        fps = stats.frames_per_second * batch
        candidates.append(Candidate(name, "measured", "", stats.p50_us, stats.p99_us, fps, report.counts()))
    measured = [c for c in candidates if c.status == "measured"]
    if not measured:
        why = "; ".join(f"{c.profile}: {c.reason}" for c in candidates)
        raise ProfileError(f"{os.fspath(model)}: no device profile can run it here ({why})")
    best = min(measured, key=lambda c: c.p50_us or float("inf"))
    ordered = sorted(candidates, key=lambda c: (c.status != "measured", c.p50_us or 0.0, c.profile))
    return AutoChoice(
        model=os.fspath(model),
        model_sha256=sha,
        batch=batch,
        chunk=chunk,
        chosen=best.profile,
        candidates=tuple(ordered),
        onnxruntime=ort.__version__,
        machine=f"{platform.machine()} {platform.processor() or platform.system()}, {os.cpu_count()} cpus",
        measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )


def recorded_choice(model: str | os.PathLike[str], batch: int, chunk: int, sha256: str) -> AutoChoice | None:
    """The recorded choice for this exact model (by hash), batch and chunk, if one exists and is readable."""
    path = default_record_path(model, batch, chunk)
    if not path.is_file():
        return None
    try:
        choice = AutoChoice.from_json(path.read_text(encoding="utf-8"))
    except (ValueError, TypeError, KeyError):
        return None
    if choice.model_sha256 != sha256 or choice.version != AUTO_VERSION or choice.onnxruntime != ort.__version__:
        return None
    return choice


def auto_engine(
    model: str | os.PathLike[str], batch: int = 1, chunk: int = 1, remeasure: bool = False, calls: int = 500
) -> tuple[Engine, PlacementReport, AutoChoice]:
    """``model`` on its fastest profile here: the recorded choice for this very model, else measured and recorded."""
    sha = hashlib.sha256(read_model(model)).hexdigest()
    choice = None if remeasure else recorded_choice(model, batch, chunk, sha)
    if choice is None:
        choice = choose_device(model, batch, chunk, calls=calls)
        choice.save(default_record_path(model, batch, chunk))
    engine, report = load_engine(model, choice.chosen)
    return engine, report, choice
