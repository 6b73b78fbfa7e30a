"""Engine: one onnxruntime session, its stream spec and device profile, shared by many streams.

The engine is immutable after load. Per-caller state lives in ``Stream`` (stream.py); many
streams advance in one call through ``Batch`` (batch.py). The CPU hot path (slots.py)
binds preallocated buffers with two IOBindings that swap the state buffers each call
(ping-pong); graphs it cannot bind run on the generic path (general.py).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort

from edgernn.runtime import general
from edgernn.runtime.buffers import NP_DTYPES, alloc
from edgernn.runtime.errors import InputError, ModelLoadError, SpecError
from edgernn.runtime.frames import FrameCheck
from edgernn.runtime.safety import check_spec, read_model
from edgernn.runtime.session import CpuDefaults, SessionProfile, make_session
from edgernn.runtime.slots import SlotPool, runner
from edgernn.runtime.spec import BATCH, TIME, StreamSpec, TensorSpec
from edgernn.runtime.stream import Stream, fresh_home

if TYPE_CHECKING:
    from edgernn.runtime.batch import Batch

ORT_TYPES = {f"tensor({k if k != 'float32' else 'float'})": k for k in NP_DTYPES}
ORT_TYPES["tensor(double)"] = "float64"
ORT_TYPES["tensor(float16)"] = "float16"

__all__ = ["NP_DTYPES", "Engine", "Stream", "frame_shape"]


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
        if nonfinite not in ("raise", "pass"):
            raise ValueError(f"nonfinite must be 'raise' or 'pass', got {nonfinite!r}")
        self.session = session
        self.spec = spec
        self.profile = profile
        self.model_sha256 = model_sha256
        self.source = source
        self.nonfinite = nonfinite
        _check_spec_against_graph(spec, session, source)
        self.input = spec.inputs[0]
        self.frame_shape = frame_shape(self.input)
        self.input_dtype = NP_DTYPES[self.input.dtype]
        self.vocab_size = (
            spec.model.input_size if spec.model is not None and spec.model.input_kind == "tokens" else None
        )
        self.constants = {c.name: _constant(c.name, c.dtype, c.value, c.shape) for c in spec.constants}
        self.output_names = [o.name for o in spec.outputs] + [s.output for s in spec.states]
        self.checks = {
            t.name: FrameCheck(
                t.name, frame_shape(t), NP_DTYPES[t.dtype], self.vocab_size if i == 0 else None, nonfinite
            )
            for i, t in enumerate(spec.inputs)
        }
        self.multi_input = len(spec.inputs) > 1
        self.check_one = self._check_one_dict if self.multi_input else self.checks[self.input.name].one
        self.check_many = self._check_many_dict if self.multi_input else self.checks[self.input.name].many
        self.single_output = len(spec.outputs) == 1
        self.out_has_time = [o.time_axis is not None for o in spec.outputs]
        # An input without a time axis takes exactly one frame per call.
        self.max_chunk = 1 if any(t.time_axis is None for t in spec.inputs) else 1 << 30
        self.tokens = self.frame_shape == () and np.dtype(self.input_dtype).kind in "iu"
        self.run_bound, self.direct_run = runner(session)
        self.out_frame_shapes = self._probe()
        if spec.model is not None:  # our own contract is exact; a foreign spec's output shapes are advisory
            for o, got in zip(spec.outputs, self.out_frame_shapes):
                want = tuple(d for d in o.shape if d not in (BATCH, TIME))
                if o.fully_known and want != got:
                    raise SpecError(
                        f"{source}: output {o.name!r} has frame shape {got} in the graph, {want} in the spec"
                    )
        # The bound fast path preallocates every output: it needs one streamed input laid out
        # (batch, time, ...), outputs (batch, time, ...) whose declared shapes the probe call
        # confirmed, and no context window. Everything else runs on the generic path.
        self.fast = (
            not self.multi_input
            and self.input.shape[:2] == (BATCH, TIME)
            and spec.context is None
            and all(o.fully_known and o.shape[:2] == (BATCH, TIME) for o in spec.outputs)
            and all(o.concrete_shape(1, 1)[2:] == s for o, s in zip(spec.outputs, self.out_frame_shapes))
        )
        self.pool = SlotPool(self)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        profile: SessionProfile | None = None,
        spec: StreamSpec | None = None,
        nonfinite: str = "raise",
    ) -> Engine:
        """Load ``path`` with ``profile`` (CPU, one thread, by default); the spec comes from its metadata.

        For a model not made here pass ``spec``: written by hand, or from
        ``edgernn.runtime.infer.infer_spec(path, ...)``.
        """
        source = os.fspath(path)
        data = read_model(source)
        profile = profile or CpuDefaults()
        try:
            session = make_session(data, profile)
        except Exception as exc:  # onnxruntime raises its own untyped exceptions
            raise ModelLoadError(f"{source}: onnxruntime cannot load it: {exc}") from None
        if spec is None:
            meta = session.get_modelmeta().custom_metadata_map
            spec = StreamSpec.from_metadata(meta, source)
        else:  # read_model checked a spec found in the metadata; one given in code is checked here
            check_spec(spec, data, source)
        digest = hashlib.sha256(data).hexdigest()
        return cls(session, spec, profile, digest, source, nonfinite)

    # -- streams --------------------------------------------------------------------------

    def stream(self) -> Stream:
        """A new stream at the initial state; it holds only its state until it steps.

        A profile with a ``stream_factory`` (the hook in ``runtime/session.py``; the CUDA
        profiles of ``edgernn.devices`` keep state on the GPU) makes the stream instead.
        """
        factory = getattr(self.profile, "stream_factory", None)
        return factory(self) if factory is not None else Stream(self)

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

    def step_many(self, streams: Sequence[Stream], frames: Sequence[Any]) -> list[np.ndarray]:
        """Advance ``streams[i]`` by ``frames[i]`` (``(T_i, ...)``, T_i may differ or be 0) in batched calls.

        Equal to pushing each stream alone; a stream with no frames is untouched. Any streams
        of this engine (loose, or members of one Batch). Returns each stream's outputs ``(T_i, ...)``.
        """
        from edgernn.runtime.batch import step_many

        return step_many(self, streams, frames)

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
        return np.zeros((0, *self.out_frame_shapes[0]), dtype=NP_DTYPES[first.dtype])

    def join_outputs(self, parts: list[np.ndarray]) -> np.ndarray:
        """Per-call first outputs of one stream → one array: along time, or one row per call."""
        if self.out_has_time[0]:
            return np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
        return np.stack(parts)

    def last_from(self, outs: list[np.ndarray]) -> Any:
        """The latest frame of each output of one stream (stream layout less the batch axis)."""
        last = tuple(o[-1].copy() if t else o.copy() for o, t in zip(outs, self.out_has_time))
        return last[0] if self.single_output else last

    def _probe(self) -> list[tuple[int, ...]]:
        """Run one step at the initial state with zero input; the output shapes that come back.

        Declared output shapes are not trusted: the fast path is used only where they agree
        with what the graph returns; state shapes must agree or the spec is refused.
        """
        inputs = {t.name: alloc((1, 1, *frame_shape(t)), t.dtype) for t in self.spec.inputs}
        ctx = self.initial_context(1) if self.spec.context is not None else None
        try:
            outs, _, _ = general.call(self, fresh_home(self), ctx, inputs, 1)
        except SpecError as exc:
            raise SpecError(f"{self.source}: {exc}") from None
        return [tuple(o.shape[2:] if t else o.shape[1:]) for o, t in zip(outs, self.out_has_time)]


def _constant(name: str, dtype: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    try:
        arr = np.array(value, dtype=NP_DTYPES[dtype])
        return np.ascontiguousarray(arr.reshape(shape))
    except (TypeError, ValueError) as exc:
        raise SpecError(f"constant {name!r}: value {value!r} does not fit dtype {dtype} shape {shape}: {exc}") from None


def _check_spec_against_graph(spec: StreamSpec, session: ort.InferenceSession, source: str) -> None:
    """Every graph input is fed by the spec, every spec name exists in the graph, dtypes agree."""
    graph_in = {i.name: i for i in session.get_inputs()}
    graph_out = {o.name: o for o in session.get_outputs()}
    fed = [t.name for t in spec.inputs] + [s.input for s in spec.states] + [c.name for c in spec.constants]
    for name in fed:
        if name not in graph_in:
            raise SpecError(f"{source}: the spec feeds input {name!r}, the graph's inputs are {sorted(graph_in)}")
    missing = sorted(set(graph_in) - set(fed))
    if missing:
        raise SpecError(f"{source}: graph input(s) {missing} are not in the spec (not streamed, state or constant)")
    produced = [t.name for t in spec.outputs] + [s.output for s in spec.states]
    for name in produced:
        if name not in graph_out:
            raise SpecError(f"{source}: the spec reads output {name!r}, the graph's outputs are {sorted(graph_out)}")
    declared = {t.name: t.dtype for t in spec.inputs}
    declared.update({s.input: s.dtype for s in spec.states})
    declared.update({c.name: c.dtype for c in spec.constants})
    declared.update({t.name: t.dtype for t in spec.outputs})
    declared.update({s.output: s.dtype for s in spec.states})
    for name, dtype in declared.items():
        node = graph_in.get(name) or graph_out[name]
        graph_dtype = ORT_TYPES.get(node.type)
        if graph_dtype is not None and graph_dtype != dtype:
            raise SpecError(f"{source}: tensor {name!r} is {graph_dtype} in the graph, {dtype} in the spec")
