"""What ``edgernn profile`` measures, as functions: torch-free (numpy, onnxruntime, stdlib).

- ``engine_call`` / ``time_engine``: the one timed call of a model — the engine's own API
  for the call shape (``Stream.step`` / ``Stream.push`` / ``Batch``), timed by
  ``latency.time_calls``; ``edgernn profile``, ``edgernn devices auto`` (CPU profiles) and
  the bench's ``engine`` contender all time it, so their figures agree;
- ``PingPong``: a batched, chunked call loop over a bare session with two pre-built
  IOBindings that swap the state buffers each call (the raw onnxruntime floor);
- ``cold_start``: load + first step, timed;
- ``op_breakdown``: onnxruntime's own profiler (``SessionOptions.enable_profiling``), its
  JSON trace aggregated by operator type;
- ``rss_bytes`` / ``peak_rss_bytes``: memory of this process;
- ``ProgressLine``: a progress line on stderr, shown only once a run has taken a while.

Example:
    >>> p = ProgressLine("demo", quiet_for_s=1e9)   # never prints: the run is "short"
    >>> p(10, 100)
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np
import onnxruntime as ort

from edgernn.runtime.binding import Binding, Layout, state_pairs
from edgernn.runtime.dtypes import NP_DTYPES
from edgernn.runtime.engine import Engine, frame_shape
from edgernn.runtime.errors import ProfileError, SpecError
from edgernn.runtime.latency import LatencyStats, Progress, time_calls
from edgernn.runtime.memory import example as example_memory
from edgernn.runtime.memory import pad as pad_memory
from edgernn.runtime.safety import read_model
from edgernn.runtime.session import CpuDefaults, SessionProfile, safe_options
from edgernn.runtime.spec import StreamSpec


def example_input(spec: StreamSpec, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Valid input for ``spec``'s streamed input: leading axes ``shape`` (e.g. (batch, time)), then one frame."""
    rng = np.random.default_rng(seed)
    inp = spec.inputs[0]
    dtype = NP_DTYPES[inp.dtype]
    if np.dtype(dtype).kind in "iub":
        high = spec.model.input_size if spec.model is not None and spec.model.input_kind == "tokens" else 2
        return np.asarray(rng.integers(0, high, size=(*shape, *frame_shape(inp))), dtype=dtype)
    return np.asarray(rng.standard_normal((*shape, *frame_shape(inp))), dtype=dtype)


def step_shape(engine: Engine) -> tuple[int, ...]:
    """The leading axes of one ``step``: one window for a window model, else one frame."""
    window = getattr(engine, "window", None)
    return (window,) if window else ()


def example_frames(engine: Engine, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Valid input for ``engine`` with leading axes ``shape`` (e.g. (batch, time)) before one frame."""
    return example_input(engine.spec, shape, seed)


def engine_call(
    engine: Engine, batch: int = 1, chunk: int = 1, x: np.ndarray | None = None
) -> tuple[Callable[[], object], str]:
    """The call to time for ``batch`` streams x ``chunk`` frames, and what it is: the engine's own API.

    ``x`` is the input, ``(batch, chunk, *frame)`` (default: ``example_frames``). Batch 1 is
    ``Stream.step`` (chunk 1) or ``Stream.push``; a batch is ``Batch.step`` / ``Batch.step_many``.
    """
    memory = example_memory(engine.spec).view(engine.spec) if engine.spec.memory else None  # at max_length
    if batch == 1 and chunk == 1 and x is None and step_shape(engine):  # a window model: one step is one window
        stream = engine.stream(memory=memory)
        window = example_frames(engine, step_shape(engine))
        return (lambda: stream.step(window)), f"engine Stream.step (one window of {engine.window})"
    xs = example_frames(engine, (batch, chunk)) if x is None else x
    if batch == 1:
        stream = engine.stream(memory=memory)
        if chunk == 1:
            frame = xs[0, 0, ...]  # a 0-d view for scalar frames, as a caller holding an array passes it
            return (lambda: stream.step(frame)), "engine Stream.step"
        frames = xs[0]
        return (lambda: stream.push(frames, chunk=chunk)), f"engine Stream.push ({chunk} frames)"
    make_batch = getattr(engine, "batch", None)
    if callable(make_batch):
        group = make_batch(max_streams=batch)
        members = [group.join(engine.stream(memory=memory)) for _ in range(batch)]
        if chunk == 1:
            frames = np.ascontiguousarray(xs[:, 0])
            return (lambda: group.step(frames)), f"engine Batch.step ({batch} streams)"
        ragged = {m: xs[i] for i, m in enumerate(members)}
        return (lambda: group.step_many(ragged)), f"engine Batch.step_many ({batch} streams x {chunk} frames)"
    if not engine.fast:
        raise ProfileError(f"--batch {batch}: this graph needs the engine's general path, which runs batch 1 only")
    loop = PingPong(engine.session, engine.spec, batch, chunk)
    return (lambda: loop(xs)), f"raw ping-pong IOBinding loop at batch {batch} (this engine has no batched API)"


def time_engine(
    engine: Engine,
    batch: int = 1,
    chunk: int = 1,
    calls: int = 2000,
    warmup: int = 200,
    progress: Progress | None = None,
) -> tuple[LatencyStats, np.ndarray, str]:
    """Per-call latency of ``engine`` at ``batch`` x ``chunk``: its stats, the per-call µs, and what was timed."""
    call, label = engine_call(engine, batch, chunk)
    us = time_calls(call, calls, warmup, progress)
    return LatencyStats.from_us(us, frames_per_call=chunk, streams=batch), us, label


class PingPong:
    """``batch`` streams advanced ``chunk`` frames per call on a bare session, state buffers swapped.

    The loop a careful hand-written caller would run: no allocation, no validation, one
    ``run_with_iobinding`` per call, on the runtime's one binding primitive
    (``binding.Binding``): any spec whose output shapes are known (``layout`` from the
    engine, else read from the spec), constants bound once.
    """

    def __init__(
        self,
        session: ort.InferenceSession,
        spec: StreamSpec,
        batch: int = 1,
        chunk: int = 1,
        layout: Layout | None = None,
        constants: dict[str, np.ndarray] | None = None,
    ) -> None:
        layout = layout or Layout(spec, {}, spec.context.frames if spec.context is not None else 0)
        why = layout.bindable()
        if why is not None:
            raise ProfileError(f"PingPong: the graph's output shapes are not known: {why}")
        if constants is None:
            constants = {c.name: np.asarray(c.value, dtype=NP_DTYPES[c.dtype]).reshape(c.shape) for c in spec.constants}
        self.session = session
        self.states = state_pairs(spec, batch)
        self.binding = Binding(session, layout, self.states, batch, chunk, constants, direct=False)
        k = layout.context if spec.context is not None and spec.context.input == spec.inputs[0].name else 0
        self.x = self.binding.xv[0][:, k:]
        self.ys = self.binding.yv
        self.bindings = self.binding.io
        self.parity = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """One call: ``x`` (batch, chunk, ...) in, the first output (batch, chunk, ...) out (a view, reused)."""
        self.x[...] = x
        self.session.run_with_iobinding(self.bindings[self.parity])
        self.parity ^= 1
        return self.ys[0]


@dataclass(frozen=True)
class ColdStart:
    """Time to a first result: reading + building the session, then the first step."""

    load_ms: float
    first_call_ms: float

    @property
    def total_ms(self) -> float:
        return self.load_ms + self.first_call_ms


def cold_start(
    path: str, profile: SessionProfile | None = None, spec: StreamSpec | str | None = None
) -> tuple[Engine, ColdStart]:
    """Load ``path`` (with ``spec``: a StreamSpec or a spec.json, for a model without one) and time one step."""
    t0 = time.perf_counter()
    engine = Engine.load(path, profile, spec=spec)
    t1 = time.perf_counter()
    memory = example_memory(engine.spec).view(engine.spec) if engine.spec.memory else None
    engine.stream(memory=memory).step(example_frames(engine, step_shape(engine)))
    t2 = time.perf_counter()
    return engine, ColdStart(load_ms=(t1 - t0) * 1e3, first_call_ms=(t2 - t1) * 1e3)


@dataclass(frozen=True)
class OpCost:
    """One operator type's share of the kernel time onnxruntime's profiler recorded."""

    op: str
    nodes: int  # distinct graph nodes of this type
    total_us: float
    per_call_us: float
    share: float  # of all kernel time


def op_breakdown(
    path: str,
    batch: int = 1,
    chunk: int = 1,
    calls: int = 200,
    profile: SessionProfile | None = None,
    trace: str | os.PathLike[str] | None = None,
    spec: StreamSpec | None = None,
) -> tuple[list[OpCost], float]:
    """Run ``calls`` calls with onnxruntime's profiler on; return per-op costs and the mean run time (µs).

    A separate session is used (the profiler slows the run it watches); the shares are what
    to read, not the absolute times. Feeds go through ``session.run`` with carried state.
    ``trace``: keep onnxruntime's own trace there (Chrome trace JSON: Perfetto, chrome://tracing).
    """
    profile = profile or CpuDefaults()
    opts = profile.session_options()
    with tempfile.TemporaryDirectory(prefix="edgernn-prof-") as tmp:
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(tmp, "ort")
        providers = profile.providers()
        data = read_model(path)
        session = ort.InferenceSession(
            data,
            sess_options=safe_options(data, opts, [n for n, _ in providers]),
            providers=[n for n, _ in providers],
            provider_options=[o for _, o in providers],
        )
        spec = spec or _spec_of(session, path)
        x = graph_input(spec, batch, chunk)
        states = {s.input: np.full(s.concrete_shape(batch), s.init, dtype=NP_DTYPES[s.dtype]) for s in spec.states}
        consts = {c.name: np.array(c.value, dtype=NP_DTYPES[c.dtype]).reshape(c.shape) for c in spec.constants}
        names = [s.output for s in spec.states]
        memory = pad_memory(spec, [example_memory(spec)] * batch)[0] if spec.memory else {}
        for _ in range(calls):
            new = session.run(names, {spec.inputs[0].name: x, **consts, **states, **memory})
            states = {s.input: v for s, v in zip(spec.states, new)}
        written = session.end_profiling()
        with open(written) as fh:
            events = json.load(fh)
        if trace is not None:
            shutil.copyfile(written, trace)
    return aggregate_trace(events, calls)


def graph_input(spec: StreamSpec, batch: int, chunk: int) -> np.ndarray:
    """One call's streamed input in the graph's layout: ``chunk`` frames (the window, where the spec has one)
    plus the context frames, the batch and time axes where the spec puts them."""
    inp = spec.inputs[0]
    window = getattr(spec, "window", None)
    time_items = (window or chunk) + (spec.context.frames if spec.context is not None else 0)
    x = example_input(spec, (batch, time_items))  # (batch, time, *frame)
    b, t = inp.batch_axis, inp.time_axis
    if b is None:  # StreamSpec refuses a streamed input without a batch axis
        raise SpecError(f"input {inp.name!r}: no batch axis in the spec")
    if t is None:
        return np.ascontiguousarray(np.moveaxis(x[:, 0], 0, b))
    return np.ascontiguousarray(np.moveaxis(x, (0, 1), (b, t)))


def _spec_of(session: ort.InferenceSession, source: str) -> StreamSpec:
    return StreamSpec.from_metadata(session.get_modelmeta().custom_metadata_map, source)


def aggregate_trace(events: list[dict[str, Any]], calls: int) -> tuple[list[OpCost], float]:
    """Sum onnxruntime profiler events by operator type; also the mean ``model_run`` duration (µs)."""
    totals: dict[str, float] = {}
    nodes: dict[str, set[str]] = {}
    runs = [float(e["dur"]) for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time"):
            continue
        op = str(e.get("args", {}).get("op_name", "?"))
        totals[op] = totals.get(op, 0.0) + float(e["dur"])
        nodes.setdefault(op, set()).add(str(e["name"]))
    grand = sum(totals.values()) or 1.0
    costs = [
        OpCost(op=op, nodes=len(nodes[op]), total_us=t, per_call_us=t / max(calls, 1), share=t / grand)
        for op, t in totals.items()
    ]
    costs.sort(key=lambda c: -c.total_us)
    return costs, (sum(runs) / len(runs) if runs else 0.0)


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (0 where unavailable)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def state_bytes(spec: StreamSpec) -> int:
    """Bytes of recurrent state one stream carries (one copy)."""
    return sum(s.size_per_stream * np.dtype(NP_DTYPES[s.dtype]).itemsize for s in spec.states)


class ProgressLine:
    """``progress(done, total)`` callback: silent for the first ``quiet_for_s`` seconds, then a line at most 2/s."""

    def __init__(self, label: str, quiet_for_s: float = 1.5, out: TextIO | None = None) -> None:
        self.label = label
        self.quiet_for_s = quiet_for_s
        self.out = out or sys.stderr
        self.start = time.perf_counter()
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter() - self.start
        if now < self.quiet_for_s or (now - self.last < 0.5 and done < total):
            return
        self.last = now
        self.shown = True
        eta = now / max(done, 1) * (total - done)
        end = "\n" if done >= total or not self.out.isatty() else ""
        self.out.write(f"\r{self.label}: {done}/{total} calls, {now:.0f} s, ~{eta:.0f} s left{end}")
        self.out.flush()


__all__ = [
    "ColdStart",
    "OpCost",
    "PingPong",
    "ProgressLine",
    "aggregate_trace",
    "cold_start",
    "engine_call",
    "example_frames",
    "example_input",
    "op_breakdown",
    "peak_rss_bytes",
    "rss_bytes",
    "state_bytes",
    "time_engine",
]
