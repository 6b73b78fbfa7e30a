"""Engine: one onnxruntime session, its stream spec and device profile, shared by many streams.

The engine is immutable after load. Per-caller state lives in ``Stream`` (stream.py); many
streams advance in one call through ``Batch`` (batch.py). The CPU hot path (slots.py)
binds preallocated buffers with two IOBindings that swap the state buffers each call
(ping-pong); graphs it cannot bind run on the generic path (general.py).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort

from edgernn.runtime import args, general
from edgernn.runtime.binding import Layout, runner
from edgernn.runtime.buffers import alloc
from edgernn.runtime.dtypes import NP_DTYPES
from edgernn.runtime.errors import InputError, ModelLoadError, ProfileError, RunError, SpecError
from edgernn.runtime.frames import FrameCheck
from edgernn.runtime.graph import check_against_graph
from edgernn.runtime.memory import check as memory_check
from edgernn.runtime.memory import probe as memory_probe
from edgernn.runtime.ragged import step_many as ragged_step_many
from edgernn.runtime.safety import check_spec, read_model_and_spec
from edgernn.runtime.session import CpuDefaults, SessionProfile, make_session
from edgernn.runtime.slots import SlotPool
from edgernn.runtime.spec import BATCH, TIME, StreamSpec, TensorSpec
from edgernn.runtime.specfile import read_spec
from edgernn.runtime.stream import Stream, fresh_home

NONFINITE = ("raise", "pass")  # Engine.load(nonfinite=...): refuse NaN/Inf frames, or let them through

if TYPE_CHECKING:
    from edgernn.runtime.batch import Batch

__all__ = ["Engine", "Stream", "frame_shape"]


def frame_shape(t: TensorSpec) -> tuple[int, ...]:
    """The shape of one frame of streamed input ``t``: its shape less the batch and time axes."""
    return tuple(int(d) for d in t.shape if d not in (BATCH, TIME))


class Engine:
    """A loaded model: one onnxruntime session and its stream spec, shared by many streams.

    The whole streaming loop::

        import numpy as np
        from edgernn.runtime import Engine
        engine = Engine.load("model.onnx")          # spec read from the model's metadata
        stream = engine.stream()                    # one per caller; holds the state
        for token in [5, 17, 3]:
            logits = stream.step(token)             # one frame in, one output out
        chunk_out = stream.push(np.arange(64) % 5)  # any number of frames, chunked inside
        blob = stream.snapshot()                    # bytes: save, move, restore elsewhere
        other = engine.stream(); other.restore(blob)
        stream.reset()                              # back to the initial state
        stream.close()

        batch = engine.batch(max_streams=64)        # many streams, one call per step
        a, b = batch.join(), batch.join()
        ys = batch.step(np.array([1, 2]))           # one frame per member, in batch.streams order
        outs = batch.step_many({a: [4, 5, 6], b: []})  # ragged: b has nothing, its state is untouched

    The engine is immutable after load and safe to share between threads; each stream
    serialises its own calls with a lock (a second thread waits, it is not refused).
    """

    def __init__(
        self,
        session: ort.InferenceSession,
        spec: StreamSpec,
        profile: SessionProfile,
        model_sha256: str,
        source: str = "model",
        nonfinite: str = "raise",
    ) -> None:
        args.choice("Engine", "nonfinite", nonfinite, NONFINITE)
        self.session = session
        self.spec = spec
        self.profile = profile
        self.model_sha256 = model_sha256
        self.source = source
        self.nonfinite = nonfinite
        self.graph = check_against_graph(spec, session, source)  # the one spec-vs-graph check (graph.py)
        self.input = spec.inputs[0]
        self.frame_shape = frame_shape(self.input)
        self.input_dtype = NP_DTYPES[self.input.dtype]
        self.vocab_size = (
            spec.model.input_size if spec.model is not None and spec.model.input_kind == "tokens" else None
        )
        self.constants = {c.name: _constant(c.name, c.dtype, c.value, c.shape) for c in spec.constants}
        self.output_names = [o.name for o in spec.outputs] + [s.output for s in spec.states]
        self.tokens = self.frame_shape == () and np.dtype(self.input_dtype).kind in "iu"
        self.checks = {
            t.name: FrameCheck(
                t.name,
                frame_shape(t),
                NP_DTYPES[t.dtype],
                self.vocab_size if i == 0 else None,
                nonfinite,
                token_ids=i == 0 and self.tokens,
            )
            for i, t in enumerate(spec.inputs)
        }
        self.multi_input = len(spec.inputs) > 1
        # The checked frame(s): an array, or a dict name -> array when multi_input (the callers branch on that flag,
        # which the type checker cannot follow: hence Any).
        self.check_one: Callable[[Any], Any] = (
            self._check_one_dict if self.multi_input else self.checks[self.input.name].one
        )
        self.check_many: Callable[[Any], Any] = (
            self._check_many_dict if self.multi_input else self.checks[self.input.name].many
        )
        self.single_output = len(spec.outputs) == 1
        self.out_has_time = [o.time_axis is not None for o in spec.outputs]
        first = spec.outputs[0]  # the rank of one frame of the first output (batch and time axes dropped)
        self.first_frame_rank = len(first.shape) - (first.batch_axis is not None) - (first.time_axis is not None)
        self.context_frames = spec.context.frames if spec.context is not None else 0
        # Items of the time axis per call: the spec's window, else the graph's fixed time size
        # (a graph fixed at one frame per call is not a window model: its calls just hold one frame).
        fixed_time = self.graph.fixed_time
        self.window = spec.window or (fixed_time if fixed_time is not None and fixed_time > 1 else None)
        self.max_batch = self.graph.fixed_batch  # None: any number of lanes
        if self.window is not None:
            self.max_chunk = self.window
        elif fixed_time == 1 or any(t.time_axis is None for t in spec.inputs):
            self.max_chunk = 1  # an input without a time axis takes exactly one frame per call
        else:
            self.max_chunk = 1 << 30
        if self.window is not None and self.multi_input:
            raise SpecError(f"{source}: window streaming takes one streamed input; this spec has {len(spec.inputs)}")
        names = [t.name for t in spec.inputs]
        self.context_index = names.index(spec.context.input) if spec.context is not None else None
        self.no_frames = self.empty_frames()  # shared, never written: a window stream with nothing pending
        self.no_frames.flags.writeable = False
        self.run_bound, self.direct_run = runner(session)
        self.probe_note, self.out_frame_shapes, resolved = self._probe()
        self.layout = Layout(spec, resolved, self.context_frames)
        self.fast, self.path_note = self._choose_path()
        self.pool = SlotPool(self)

    @property
    def plain_step(self) -> bool:
        """One frame per call, no context, no window: ``Stream.step``'s shortest path applies."""
        return self.fast and self.context_index is None and self.window is None and not self.multi_input

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        profile: SessionProfile | str | None = None,
        spec: StreamSpec | str | os.PathLike[str] | None = None,
        nonfinite: str = "raise",
    ) -> Engine:
        """Load ``path`` with ``profile`` (CPU, one thread, by default; ``"cpu"`` says the same).

        ``spec``: a StreamSpec, or the path of a spec.json (``edgernn spec -o``), for a model
        whose metadata holds none.

        The spec comes from the model's metadata; for a model not made here pass ``spec``:
        written by hand, or from ``edgernn.runtime.infer_spec(path, ...)``. Other device
        profiles (``"cuda"``, ``"cpu-int8"``...) load through ``edgernn.devices.load_engine``.
        """
        source = args.path("Engine.load", "path", path)  # every argument checked before any work
        checked_profile = args.profile("Engine.load", profile)
        checked_spec = args.spec("Engine.load", spec, StreamSpec)
        args.choice("Engine.load", "nonfinite", nonfinite, NONFINITE)
        given: StreamSpec | None = read_spec(checked_spec) if isinstance(checked_spec, str) else checked_spec
        if isinstance(checked_profile, str):
            if checked_profile != "cpu":
                raise ProfileError(
                    f"Engine.load: profile {checked_profile!r} is a device profile name; the runtime alone knows "
                    f"only 'cpu'. Use edgernn.devices.load_engine({source!r}, {checked_profile!r})"
                )
            checked_profile = None
        data, embedded = read_model_and_spec(source)  # the metadata's spec, parsed and checked once
        if given is None and embedded is None:
            StreamSpec.from_metadata({}, source)  # raises the SpecError that says how to bring a spec
        chosen: SessionProfile = checked_profile or CpuDefaults()
        try:
            session = make_session(data, chosen)
        except Exception as exc:  # onnxruntime raises its own untyped exceptions
            raise ModelLoadError(f"{source}: onnxruntime cannot load it: {exc}") from None
        if given is None:
            if embedded is None:  # from_metadata raised above otherwise
                raise SpecError(f"{source}: no spec given and none in the model's metadata")
            given = embedded
        else:  # read_model checked a spec found in the metadata; one given in code is checked here
            check_spec(given, data, source)
        digest = hashlib.sha256(data).hexdigest()
        return cls(session, given, chosen, digest, source, nonfinite)

    def describe(self) -> dict[str, Any]:
        """Which call path this model runs on and why; the window, fixed axes and what the load-time probe did."""
        return {
            "path": "bound" if self.fast else "generic",
            "why": self.path_note,
            "probe": self.probe_note,
            "window": self.window,
            "context": self.context_frames,
            "max_chunk": self.max_chunk,
            "fixed_batch": self.max_batch,
            "memory": [
                {"name": m.name, "dtype": m.dtype, "shape": list(m.shape), "max_length": m.max_length, "mask": m.mask}
                for m in self.spec.memory
            ],
        }

    def demote(self, exc: BaseException) -> bool:
        """A bound call failed: if the graph returned another output shape than bound, use the generic path.

        onnxruntime refuses such a call before any state is written, so the caller retries it
        on the generic path; True when that is the case (the engine stays on that path).
        """
        if "computed output shape" not in str(exc):
            return False
        if self.fast:  # a stream still holding a slot may meet it again after another stream demoted the engine
            self.fast = False
            self.path_note = f"generic: the graph returns output shapes that vary per call ({str(exc)[:160]})"
        return True

    # -- streams --------------------------------------------------------------------------

    def stream(self, memory: Mapping[str, Any] | None = None) -> Stream:
        """A new stream at the initial state; it holds only its state until it steps.

        ``memory``: for a spec with per-stream memory (``spec.memory``), ``{name: array}``
        with each array the spec's shape less the batch axis (see ``Stream.set_memory``);
        InputError if it does not fit, and no stream is made.

        A profile with a ``stream_factory`` (the hook in ``runtime/session.py``; the CUDA
        profiles of ``edgernn.devices`` keep state on the GPU) makes the stream instead.
        """
        held = memory_check(self.spec, memory, "engine.stream(memory=...)") if memory is not None else None
        factory = getattr(self.profile, "stream_factory", None)
        if factory is None:
            return Stream(self, memory=held)
        stream = factory(self)
        if memory is not None:
            stream.set_memory(memory)
        return stream

    def batch(
        self,
        max_streams: int = 64,
        idle_after: float | None = None,
        on_evict: Any = None,
        clock: Any = None,
    ) -> Batch:
        """A group of up to ``max_streams`` streams advanced in one call; see ``edgernn.runtime.batch.Batch``."""
        from edgernn.runtime.batch import Batch

        return Batch(self, max_streams=max_streams, idle_after=idle_after, on_evict=on_evict, clock=clock)

    def step_many(self, streams: Sequence[Stream], frames: Sequence[Any], chunk: int = 64) -> list[np.ndarray]:
        """Advance ``streams[i]`` by ``frames[i]`` (``(T_i, ...)``, T_i may differ or be 0) in batched calls.

        Equal to ``streams[i].push(frames[i], chunk)`` for each stream alone; a stream with no
        frames is untouched. Any streams of this engine (loose, or members of one Batch).
        Returns each stream's outputs ``(T_i, ...)``. See ``edgernn.runtime.ragged``.
        """
        return ragged_step_many(self, streams, frames, chunk=chunk)

    # -- helpers for Stream / Batch (internal) ------------------------------------------

    def initial_state(self) -> list[np.ndarray]:
        return fresh_home(self)

    def initial_context(self, n: int) -> np.ndarray:
        ctx = self.spec.context
        if ctx is None:
            raise SpecError(f"{self.source}: the spec declares no context window")
        t = next(t for t in self.spec.inputs if t.name == ctx.input)
        return alloc((n, ctx.frames, *frame_shape(t)), t.dtype)

    def _check_one_dict(self, frame: Any) -> dict[str, np.ndarray]:
        if not isinstance(frame, Mapping):
            raise InputError(f"this model has several streamed inputs {list(self.checks)}: feed a dict name -> frame")
        self._same_names(frame)
        return {name: np.asarray(check.one(frame[name]), dtype=check.dtype) for name, check in self.checks.items()}

    def _check_many_dict(self, frames: Any) -> dict[str, np.ndarray]:
        if not isinstance(frames, Mapping):
            raise InputError(f"this model has several streamed inputs {list(self.checks)}: feed a dict name -> frames")
        self._same_names(frames)
        out = {name: check.many(frames[name]) for name, check in self.checks.items()}
        lengths = {name: a.shape[0] for name, a in out.items()}
        if len(set(lengths.values())) > 1:
            raise InputError(f"streamed inputs must have the same number of frames, got {lengths}")
        return out

    def _same_names(self, given: Mapping[str, Any]) -> None:
        if set(given) != set(self.checks):
            raise InputError(f"streamed inputs are {sorted(self.checks)}, got {sorted(given)}")

    def frames_count(self, xs: Any) -> int:
        return int(next(iter(xs.values())).shape[0]) if self.multi_input else int(xs.shape[0])

    def one_as_many(self, x: Any) -> Any:
        if self.multi_input:
            return {k: v[None] for k, v in x.items()}
        return np.asarray(x, dtype=self.input_dtype).reshape(1, *self.frame_shape)

    def slice_frames(self, xs: Any, t0: int, t1: int) -> dict[str, np.ndarray]:
        """Frames ``t0:t1`` of one stream in stream layout ``(1, T, *frame)``, keyed by input name."""
        if self.multi_input:
            return {k: v[None, t0:t1] for k, v in xs.items()}
        return {self.input.name: xs[None, t0:t1]}

    def empty_output(self) -> np.ndarray:
        first = self.spec.outputs[0]
        shape = self.out_frame_shapes[0] if self.out_frame_shapes[0] is not None else ()
        return np.zeros((0, *shape), dtype=NP_DTYPES[first.dtype])

    def empty_frames(self) -> np.ndarray:
        """No frames of the (first) streamed input: ``(0, *frame)``."""
        return np.zeros((0, *self.frame_shape), dtype=self.input_dtype)

    def join_outputs(self, parts: list[np.ndarray]) -> np.ndarray:
        """Per-call first outputs of one stream → one array: along time, or one row per call."""
        try:
            if self.out_has_time[0]:
                return np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
            return np.stack(parts) if len(parts) > 1 else parts[0][None]
        except ValueError as exc:  # a graph whose output width varies per call
            raise RunError(
                f"{self.source}: output {self.spec.outputs[0].name!r} changes shape between calls "
                f"({[p.shape for p in parts]}): push with one call (a larger chunk) or step ({exc})"
            ) from None

    def last_from(self, outs: list[np.ndarray]) -> Any:
        """The latest frame of each output of one stream (stream layout less the batch axis)."""
        last = tuple(o[-1].copy() if t else o.copy() for o, t in zip(outs, self.out_has_time))
        return last[0] if self.single_output else last

    def _probe(self) -> tuple[str, list[tuple[int, ...] | None], dict[str, dict[int, int]]]:
        """One call at the initial state with zero input, on a shape the graph takes; what comes back.

        The probe's time length is the window (the spec's, or the graph's fixed time size),
        else one frame. A foreign graph with a free time axis and no window may refuse one
        frame (silero-vad refuses fewer than 130 samples): then the load goes on without the
        probe, the output shapes are the spec's, and ``describe()`` says so and why. Returns
        (what was done, output frame shapes, sizes of the outputs' other symbolic axes).
        """
        spec = self.spec
        time = self.window or 1
        how = f"ran at the window ({time} items, " if self.window is not None else "ran at one frame ("
        inputs = {t.name: alloc((1, time, *frame_shape(t)), t.dtype) for t in spec.inputs}
        ctx = self.initial_context(1) if spec.context is not None else None
        mem = memory_probe(spec).feeds if spec.memory else None  # length 1, zeros, mask 1.0
        try:
            outs, _, _, raw = general.call(
                self, fresh_home(self), ctx, inputs, 1, keep_raw=True, quiet=True, memory=mem
            )
        except SpecError as exc:
            raise SpecError(f"{self.source}: {exc}") from None
        except RunError as exc:
            if spec.model is not None or self.window is not None or self.max_chunk == 1:
                raise  # a shape the spec says the graph takes: the model itself fails
            note = (
                f"skipped: the graph refused one frame ({str(exc)[:120]}); output shapes are the spec's. "
                "A model that takes a fixed number of items per call wants window=N in its spec"
            )
            return note, [_declared_frame(o) for o in spec.outputs], {}
        shapes: list[tuple[int, ...] | None] = [
            tuple(o.shape[2:] if t else o.shape[1:]) for o, t in zip(outs, self.out_has_time)
        ]
        resolved: dict[str, dict[int, int]] = {}
        for o, r in zip(spec.outputs, raw):
            fill = {a: int(r.shape[a]) for a, d in enumerate(o.shape) if isinstance(d, str) and d not in (BATCH, TIME)}
            # a memory length symbol is sized per call from the memory bound (binding.Layout), not from the probe
            if fill and len(o.shape) == r.ndim:
                resolved[o.name] = fill
        if spec.model is not None:  # our own contract is exact; a foreign spec's output shapes are advisory
            for o, got in zip(spec.outputs, shapes):
                want = tuple(d for d in o.shape if d not in (BATCH, TIME))
                if o.fully_known and want != got:
                    raise SpecError(
                        f"{self.source}: output {o.name!r} has frame shape {got} in the graph, {want} in the spec"
                    )
        return f"{how}batch 1; {self.context_frames} context frames)", shapes, resolved

    def _choose_path(self) -> tuple[bool, str]:
        """The bound path serves every spec whose output shapes are known for each call shape."""
        why = self.layout.bindable()
        if why is not None:
            return False, f"generic: an output shape is unknown ({why})"
        for o, got in zip(self.spec.outputs, self.out_frame_shapes):
            bound = tuple(self.layout.shape(o, 1, 1)[i] for i, d in enumerate(o.shape) if d not in (BATCH, TIME))
            if got is not None and bound != got:
                return False, f"generic: output {o.name!r} comes back as {got}, the spec says {bound}"
        return True, "bound: two pre-built IOBindings per call shape, state buffers swapped (ping-pong)"


def _declared_frame(o: TensorSpec) -> tuple[int, ...] | None:
    dims = [d for d in o.shape if d not in (BATCH, TIME)]
    return tuple(int(d) for d in dims) if all(isinstance(d, int) for d in dims) else None


def _constant(name: str, dtype: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    try:
        arr = np.array(value, dtype=NP_DTYPES[dtype])
        return np.ascontiguousarray(arr.reshape(shape))
    except (TypeError, ValueError) as exc:
        raise SpecError(f"constant {name!r}: value {value!r} does not fit dtype {dtype} shape {shape}: {exc}") from None
