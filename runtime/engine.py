"""Engine (shared, immutable: session + spec + profile) and Stream (one caller's state).

The CPU hot path binds preallocated numpy buffers with two IOBindings per stream that swap
the state buffers each call (ping-pong): no allocation, no ``run_with_ort_values``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any

import numpy as np
import onnxruntime as ort

from edgernn.runtime.errors import InputError, ModelLoadError, SpecError, StreamError
from edgernn.runtime.safety import read_model
from edgernn.runtime.session import CpuDefaults, SessionProfile, make_session
from edgernn.runtime.spec import BATCH, TIME, StreamSpec, TensorSpec

NP_DTYPES: dict[str, Any] = {
    "float32": np.float32,
    "float16": np.float16,
    "float64": np.float64,
    "int64": np.int64,
    "int32": np.int32,
    "int8": np.int8,
    "uint8": np.uint8,
    "bool": np.bool_,
}
ORT_TYPES = {f"tensor({k if k != 'float32' else 'float'})": k for k in NP_DTYPES}
ORT_TYPES["tensor(double)"] = "float64"
ORT_TYPES["tensor(float16)"] = "float16"


def frame_shape(t: TensorSpec) -> tuple[int, ...]:
    """The shape of one frame of streamed input ``t``: its shape less the batch and time axes."""
    return tuple(int(d) for d in t.shape if d not in (BATCH, TIME))


class Engine:
    """A loaded model: one onnxruntime session and its stream spec, shared by many streams.

    The whole streaming loop::

        from edgernn.runtime import Engine
        engine = Engine.load("model.onnx")          # spec read from the model's metadata
        stream = engine.stream()                    # one per caller; holds the state
        for token in [5, 17, 3]:
            logits = stream.step(token)             # one frame in, one output out
        chunk_out = stream.push(np.arange(64) % 5)  # any number of frames, chunked inside
        stream.reset()                              # back to the initial state

    The engine is immutable after load and safe to share between threads; each stream
    serialises its own calls with a lock.
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
        # The fast path preallocates every output; it needs one streamed input whose axes are
        # (batch, time, ...), outputs of known shape, and no constants or context.
        self.fast = (
            len(spec.inputs) == 1
            and spec.inputs[0].shape[:2] == (BATCH, TIME)
            and not spec.constants
            and spec.context is None
            and all(o.fully_known and o.shape[:2] == (BATCH, TIME) for o in spec.outputs)
        )

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        profile: SessionProfile | None = None,
        spec: StreamSpec | None = None,
        nonfinite: str = "raise",
    ) -> Engine:
        """Load ``path`` with ``profile`` (CPU, one thread, by default); the spec comes from its metadata."""
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
        digest = hashlib.sha256(data).hexdigest()
        return cls(session, spec, profile, digest, source, nonfinite)

    def stream(self) -> Stream:
        """A new stream at the initial state.

        A profile with a ``stream_factory`` (the hook in ``runtime/session.py``; the CUDA
        profiles of ``edgernn.devices`` keep state on the GPU) makes the stream instead.
        """
        factory = getattr(self.profile, "stream_factory", None)
        return factory(self) if factory is not None else Stream(self)

    def check_frames(self, frames: Any, leading: int) -> np.ndarray:
        """Validate ``frames`` (``leading`` extra axes before one frame) and return them as a C array."""
        name = self.input.name
        arr = np.asarray(frames)
        want = self.frame_shape
        if arr.ndim != leading + len(want):
            what = "one frame" if leading == 0 else f"{leading} leading axis then one frame"
            raise InputError(
                f"input {name!r}: expected {what} of shape {want} (rank {leading + len(want)}), "
                f"got shape {arr.shape} (rank {arr.ndim})"
            )
        for axis, (got, exp) in enumerate(zip(arr.shape[leading:], want)):
            if got != exp:
                raise InputError(
                    f"input {name!r}: frame axis {axis} has size {got}, expected {exp} (frame shape {want})"
                )
        kind = np.dtype(self.input_dtype).kind
        if kind in "iu":
            if arr.dtype.kind not in "iu":
                raise InputError(f"input {name!r}: expected integer tokens, got dtype {arr.dtype}")
            if self.vocab_size is not None and arr.size and (arr.min() < 0 or arr.max() >= self.vocab_size):
                raise InputError(
                    f"input {name!r}: token ids must be in [0, {self.vocab_size}), got min {arr.min()} max {arr.max()}"
                )
        elif kind == "f":
            if arr.dtype.kind not in "fiu":
                raise InputError(f"input {name!r}: expected real numbers, got dtype {arr.dtype}")
            if self.nonfinite == "raise" and arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise InputError(f"input {name!r}: holds NaN or Inf (Engine nonfinite='raise')")
        out = np.asarray(arr, dtype=self.input_dtype)
        return out if out.flags.c_contiguous else out.copy()


class Stream:
    """One caller's recurrent state on a shared Engine. Create with ``engine.stream()``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        spec = engine.spec
        self._states = [
            [np.full(s.concrete_shape(1), s.init, dtype=NP_DTYPES[s.dtype]) for _ in range(2)] for s in spec.states
        ]
        self._parity = 0  # which buffer of each pair holds the current state
        self._lock = threading.Lock()
        self._closed = False
        self._bindings: list[ort.IOBinding] | None = None
        self._x = np.zeros((1, 1, *engine.frame_shape), dtype=engine.input_dtype)
        self._ys = [np.zeros(o.concrete_shape(1, 1), dtype=NP_DTYPES[o.dtype]) for o in spec.outputs]
        self.last_outputs: dict[str, np.ndarray] = {}

    # -- public API ---------------------------------------------------------------------

    def step(self, frame: Any) -> np.ndarray:
        """Advance by one frame; return the first output for it (batch and time axes dropped)."""
        x = self.engine.check_frames(frame, leading=0)
        with self._guard():
            if not self.engine.fast:
                return self._run_general(x[None, None])[0]
            if self._bindings is None:
                self._bindings = [self._build_binding(p) for p in (0, 1)]
            self._x[0, 0] = x
            self.engine.session.run_with_iobinding(self._bindings[self._parity])
            self._parity ^= 1
            self.last_outputs = {o.name: y[0, 0].copy() for o, y in zip(self.engine.spec.outputs, self._ys)}
            return self._ys[0][0, 0].copy()

    def push(self, frames: Any, chunk: int = 64) -> np.ndarray:
        """Advance by ``len(frames)`` frames in chunks of ``chunk``; equal to stepping one by one."""
        if chunk < 1:
            raise InputError(f"push: chunk must be >= 1, got {chunk}")
        xs = self.engine.check_frames(frames, leading=1)
        n = xs.shape[0]
        if n == 0:
            first = self.engine.spec.outputs[0]
            return np.zeros((0, *first.concrete_shape(1, 1)[2:]), dtype=NP_DTYPES[first.dtype])
        with self._guard():
            if not self.engine.fast:
                return self._run_general(xs[None])[0]
            return self._push_fast(xs[None], chunk)[0][0]

    def reset(self) -> None:
        """Return to the initial state."""
        with self._guard():
            for spec, pair in zip(self.engine.spec.states, self._states):
                pair[self._parity].fill(spec.init)

    def state(self) -> dict[str, np.ndarray]:
        """A copy of the current state, keyed by state input name."""
        with self._guard():
            return {s.input: pair[self._parity].copy() for s, pair in zip(self.engine.spec.states, self._states)}

    def close(self) -> None:
        """Release the buffers; any later call raises StreamError."""
        with self._lock:
            self._closed = True
            self._bindings = None

    # -- internals ----------------------------------------------------------------------

    def _guard(self) -> _Guard:
        return _Guard(self)

    def _build_binding(self, parity: int) -> ort.IOBinding:
        engine = self.engine
        io = engine.session.io_binding()
        _bind_in(io, engine.input.name, self._x)
        for spec, pair in zip(engine.spec.states, self._states):
            _bind_in(io, spec.input, pair[parity])
            _bind_out(io, spec.output, pair[parity ^ 1])
        for o, y in zip(engine.spec.outputs, self._ys):
            _bind_out(io, o.name, y)
        return io

    def _push_fast(self, xs: np.ndarray, chunk: int) -> list[np.ndarray]:
        """Run (1, T, ...) frames in chunks; on failure the state is rolled back."""
        engine = self.engine
        n = xs.shape[1]
        outs = [np.empty(o.concrete_shape(1, n), dtype=NP_DTYPES[o.dtype]) for o in engine.spec.outputs]
        start_parity = self._parity
        saved = [pair[start_parity].copy() for pair in self._states]
        io = engine.session.io_binding()
        try:
            for t0 in range(0, n, chunk):
                t1 = min(n, t0 + chunk)
                p = self._parity
                _bind_in(io, engine.input.name, xs[:, t0:t1])
                for spec, pair in zip(engine.spec.states, self._states):
                    _bind_in(io, spec.input, pair[p])
                    _bind_out(io, spec.output, pair[p ^ 1])
                for o, y in zip(engine.spec.outputs, outs):
                    _bind_out(io, o.name, y[:, t0:t1])
                engine.session.run_with_iobinding(io)
                self._parity ^= 1
        except Exception:
            self._parity = start_parity
            for pair, s in zip(self._states, saved):
                pair[start_parity][...] = s
            raise
        self.last_outputs = {o.name: y[0, -1].copy() for o, y in zip(engine.spec.outputs, outs)}
        return outs

    def _run_general(self, xs: np.ndarray) -> list[np.ndarray]:
        """Any spec: feed by name with session.run (used for graphs the fast path cannot bind)."""
        engine = self.engine
        feeds: dict[str, np.ndarray] = {engine.input.name: xs}
        for spec, pair in zip(engine.spec.states, self._states):
            feeds[spec.input] = pair[self._parity]
        for c in engine.spec.constants:
            feeds[c.name] = np.asarray(c.value, dtype=NP_DTYPES[c.dtype]).reshape(c.shape)
        names = [o.name for o in engine.spec.outputs] + [s.output for s in engine.spec.states]
        results = engine.session.run(names, feeds)
        n_out = len(engine.spec.outputs)
        for spec, pair, new in zip(engine.spec.states, self._states, results[n_out:]):
            if new.shape != pair[self._parity].shape:
                raise SpecError(
                    f"state {spec.output!r}: the graph returned shape {new.shape}, "
                    f"the spec says {pair[self._parity].shape}"
                )
            pair[self._parity ^ 1][...] = new
        self._parity ^= 1
        self.last_outputs = {o.name: r[0] for o, r in zip(engine.spec.outputs, results[:n_out])}
        return [r[0] for r in results[:n_out]]


class _Guard:
    """Serialises calls on one stream and refuses calls after close."""

    __slots__ = ("stream",)

    def __init__(self, stream: Stream) -> None:
        self.stream = stream

    def __enter__(self) -> None:
        self.stream._lock.acquire()
        if self.stream._closed:
            self.stream._lock.release()
            raise StreamError("stream is closed; create a new one with engine.stream()")

    def __exit__(self, *exc: object) -> None:
        self.stream._lock.release()


def _bind_in(io: ort.IOBinding, name: str, arr: np.ndarray) -> None:
    io.bind_input(name, "cpu", 0, arr.dtype.type, arr.shape, arr.ctypes.data)


def _bind_out(io: ort.IOBinding, name: str, arr: np.ndarray) -> None:
    io.bind_output(name, "cpu", 0, arr.dtype.type, arr.shape, arr.ctypes.data)


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
    declared.update({t.name: t.dtype for t in spec.outputs})
    declared.update({s.output: s.dtype for s in spec.states})
    for name, dtype in declared.items():
        node = graph_in.get(name) or graph_out[name]
        graph_dtype = ORT_TYPES.get(node.type)
        if graph_dtype is not None and graph_dtype != dtype:
            raise SpecError(f"{source}: tensor {name!r} is {graph_dtype} in the graph, {dtype} in the spec")
