"""The CUDA path: state stays on the GPU, CUDA graphs per ping-pong direction, pinned host buffers.

No torch. The few CUDA runtime calls needed (pinned allocation, one stream, async copies, a
sync) go through ctypes to the ``libcudart`` that onnxruntime's CUDA provider loads
(``devices/cudart.py``). One
CUDA stream per device is handed to the CUDA / TensorRT providers as their compute stream
(``user_compute_stream``), so a step is: copy the frame host→device, run, copy the result
device→host, all queued on that stream, then one synchronisation.

``CudaStream`` is what ``Engine.stream()`` returns for a profile whose ``device`` is
``"cuda"`` (through the profile's ``stream_factory`` hook). Where libcudart cannot be found
it still keeps state on the GPU, and moves frames with onnxruntime's own (pageable) copies;
``CudaStream.transfer`` says which.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import onnxruntime as ort

from edgernn.devices.cudart import (  # noqa: F401 - re-exported: the CUDA pieces live in cudart.py
    D2H,
    H2D,
    CudaRuntime,
    PinnedArray,
    _session_stream,
    cuda_runtime,
    no_device_reason,
    stream_options,
)
from edgernn.runtime.binding import Binding, state_pairs, stream_view
from edgernn.runtime.dtypes import NP_DTYPES
from edgernn.runtime.engine import Engine, Stream
from edgernn.runtime.errors import InputError, RunError, StreamError
from edgernn.runtime.memory import check as check_memory
from edgernn.runtime.snapshot import decode, encode

WARM_RUNS = 4  # runs per direction before its graph is surely captured (onnxruntime captures on the 2nd)
_graph_ids = itertools.count(1)  # process-wide: every stream captures under its own two ids
_lock = threading.Lock()


def make_stream(engine: Engine) -> Any:
    """The stream for a ``device = "cuda"`` profile: ``CudaStream`` where the spec allows, else the CPU one.

    A spec with per-stream memory gets the runtime's ``Stream`` (its host buffers, memory
    included, bound to the CUDA session: onnxruntime copies them per call).
    """
    if engine.plain_step and not engine.spec.memory and "CUDAExecutionProvider" in engine.session.get_providers():
        return CudaStream(engine)
    return Stream(engine)


class CudaStream:
    """One caller's state (or ``lanes`` callers' in lockstep), kept on the GPU; frames cross through pinned buffers.

    It implements the runtime's stream protocol (``edgernn.runtime.protocol.StreamLike``):
    ``step``, ``push``, ``reset``, ``state``, ``snapshot``, ``restore``, ``fork``, ``close``,
    ``closed``. Snapshots are host copies in the runtime's format, so a stream moves between
    this GPU stream and a CPU ``Stream`` of the same state contract both ways. Buffers and
    the two ping-pong IOBindings are the runtime's one primitive (``runtime/binding.py``)
    over device OrtValues; with a CUDA-graph profile each binding is captured as its own
    graph (run option ``gpu_graph_id``), because a graph replays fixed addresses and the two
    directions read and write different buffers. onnxruntime failures raise RunError and
    leave the state as it was.
    """

    device_memory = "cuda"  # where state and the bound frame / result live (tests run the same logic on "cpu")

    def __init__(self, engine: Engine, lanes: int = 1) -> None:
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
            raise InputError(f"CudaStream: lanes must be an int >= 1, got {lanes!r}")
        if not engine.plain_step:
            raise StreamError(f"CudaStream: {engine.source} needs the generic path or a window: use a CPU Stream")
        if engine.spec.memory:
            raise StreamError(
                f"CudaStream: {engine.source} declares per-stream memory, which this GPU-resident stream does not "
                "hold: use the runtime's Stream (make_stream / engine.stream() picks it for such a model)"
            )
        self.engine = engine
        self.lanes = lanes
        self._lock = threading.Lock()
        self._closed = False
        self.last_outputs: dict[str, np.ndarray] = {}
        profile = engine.profile
        self.device_id = int(getattr(profile, "device_id", 0))
        self.graphs = bool(getattr(profile, "cuda_graph", False))
        spec = engine.spec
        self._dev_states = state_pairs(spec, lanes, self._device)
        self._parity = 0
        self._binding: Binding | None = Binding(
            engine.session, engine.layout, self._dev_states, lanes, 1, engine.constants,
            make=lambda shape, dtype: self._device(np.zeros(shape, NP_DTYPES[dtype])), direct=False,
        )  # fmt: skip
        self._x_dev = self._binding.xs[0]
        self._y_dev = self._binding.ys
        x0 = np.zeros(self._x_dev.shape(), dtype=engine.input_dtype)
        self.rt = cuda_runtime() if self.device_memory == "cuda" else None
        self._cuda_stream = 0
        if self.rt is not None:
            self._x_host = PinnedArray(self.rt, x0.shape, x0.dtype)
            self._y_host = [PinnedArray(self.rt, tuple(y.shape()), NP_DTYPES[o.dtype])
                            for y, o in zip(self._y_dev, spec.outputs)]  # fmt: skip
            self._cuda_stream = _session_stream(engine.session, self.rt, self.device_id)
        self.transfer = "pinned+stream" if self._cuda_stream else ("pinned" if self.rt else "pageable")
        # Each direction: synchronising run options until its graph is captured, then (graph
        # replays allocate nothing) options that leave the one synchronisation to us.
        with _lock:
            gids = [next(_graph_ids), next(_graph_ids)] if self.graphs else [0, 0]
        self._warm_options = [self._options(g, sync=True) for g in gids]
        self._run_options = [self._options(g, sync=False) for g in gids]
        self._runs = [0, 0]

    # -- the stream protocol ------------------------------------------------------------

    def step(self, frame: Any) -> np.ndarray:
        """Advance by one frame; return the first output for it (batch and time axes dropped).

        With ``lanes`` > 1, ``frame`` is one frame per lane ``(lanes, *frame)`` and the
        result is ``(lanes, *output)``: the lanes advance in lockstep, in one call.
        """
        if self.lanes == 1:
            x = np.asarray(self.engine.check_one(frame), dtype=self.engine.input_dtype)[None]
        else:
            x = self.engine.check_many(frame)
            if x.shape[0] != self.lanes:
                raise InputError(f"input {self.engine.input.name!r}: axis 0 (lanes) has size {x.shape[0]}, "
                                 f"expected {self.lanes} (one frame per lane)")  # fmt: skip
        with self._guard():
            y = self._run_step(x, self._parity)
            self._parity ^= 1
            return y

    def push(self, frames: Any, chunk: int = 64) -> np.ndarray:
        """Advance by ``len(frames)`` frames in chunks of ``chunk``; equal to stepping one by one."""
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise InputError(f"push: chunk must be an int >= 1, got {chunk!r}")
        if self.lanes != 1:
            raise InputError(f"push: this stream steps {self.lanes} lanes in lockstep; feed them with step()")
        chunk = min(chunk, self.engine.max_chunk)
        xs = np.ascontiguousarray(self.engine.check_many(frames), dtype=self.engine.input_dtype)
        if xs.shape[0] == 0:
            with self._guard():
                return self.engine.empty_output()
        with self._guard():
            return self._push_chunks(xs, chunk)

    def reset(self, memory: Mapping[str, Any] | None = None) -> None:
        """Return to the initial state (``memory``: refused, see ``set_memory``)."""
        if memory is not None:
            self.set_memory(memory)
        with self._guard():
            for s, pair in zip(self.engine.spec.states, self._dev_states):
                pair[self._parity].update_inplace(np.full(s.concrete_shape(self.lanes), s.init, NP_DTYPES[s.dtype]))

    def set_memory(self, memory: Mapping[str, Any]) -> None:
        """Per-stream memory: a CudaStream never runs a spec with memory (its constructor refuses one): InputError."""
        check_memory(self.engine.spec, memory, "CudaStream.set_memory")  # raises: the spec declares no memory

    @property
    def memory(self) -> dict[str, np.ndarray]:
        """Always empty: see ``set_memory``."""
        return {}

    def state(self) -> dict[str, np.ndarray]:
        """A host copy of the current state, keyed by state input name."""
        with self._guard():
            return {s.input: pair[self._parity].numpy() for s, pair in zip(self.engine.spec.states, self._dev_states)}

    def snapshot(self) -> bytes:
        """The state as bytes (host copies, the runtime's snapshot format): restores on a CPU Stream too."""
        self._one_lane("snapshot")
        with self._guard():
            return encode(self.engine, [pair[self._parity].numpy() for pair in self._dev_states], None)

    def restore(self, blob: bytes) -> None:
        """Load a snapshot of the same state contract (from this or a CPU stream); SnapshotError if foreign."""
        self._one_lane("restore")
        states, _, _ = decode(self.engine, blob)
        with self._guard():
            for pair, value in zip(self._dev_states, states):
                pair[self._parity].update_inplace(np.ascontiguousarray(value))
            self.last_outputs = {}

    def fork(self) -> CudaStream:
        """A new independent stream of the same engine on the device, from this stream's current state."""
        blob = self.snapshot()
        other = type(self)(self.engine)
        other.restore(blob)
        return other

    def close(self) -> None:
        """Release the bindings; any later call raises StreamError. Closing twice is allowed."""
        with self._lock:
            self._closed = True
            self._binding = None

    @property
    def closed(self) -> bool:
        return self._closed

    @contextmanager
    def _guard(self) -> Iterator[None]:
        with self._lock:
            if self._closed:
                raise StreamError("stream is closed; create a new one with engine.stream()")
            yield

    def _one_lane(self, what: str) -> None:
        if self.lanes != 1:
            raise StreamError(f"{what}: this stream holds {self.lanes} lanes; snapshots carry one stream's state")

    # -- internals ----------------------------------------------------------------------

    def _device(self, arr: np.ndarray) -> ort.OrtValue:
        # A copy each time: on the host an OrtValue would share the array (both state buffers one memory).
        return ort.OrtValue.ortvalue_from_numpy(np.array(arr, order="C", copy=True), self.device_memory, self.device_id)

    def _options(self, graph_id: int, sync: bool) -> ort.RunOptions:
        ro = ort.RunOptions()
        if self.graphs:
            ro.add_run_config_entry("gpu_graph_id", str(graph_id))
        if self._cuda_stream and not sync:  # one sync after the result's copy instead of one inside run
            ro.add_run_config_entry("disable_synchronize_execution_providers", "1")
        return ro

    def _options_for(self, parity: int) -> ort.RunOptions:
        """The run options of this call. A run that is not a graph replay can leave pinned host
        buffers (cuDNN's sequence lengths) for onnxruntime to free at the run's synchronisation;
        skipping it would let them pile up, and free them in the middle of a later graph capture
        (CUDA error 800 'operation not permitted', seen on an H200). So every run synchronises
        until the direction's graph is captured, and a stream without graphs always does."""
        if not self.graphs:
            return self._warm_options[parity]
        if self._runs[parity] >= WARM_RUNS:
            return self._run_options[parity]
        self._runs[parity] += 1
        return self._warm_options[parity]

    def _run(self, io: Any, options: ort.RunOptions) -> None:
        try:
            self.engine.session.run_with_iobinding(io, options)
        except Exception as exc:  # onnxruntime raises its own untyped exceptions
            raise RunError(f"{self.engine.source}: onnxruntime failed on the device: {exc}") from None

    def _run_step(self, x: np.ndarray, parity: int) -> np.ndarray:
        binding = self._binding
        if binding is None:
            raise StreamError("stream is closed; create a new one with engine.stream()")
        io = binding.io[parity]
        rt = self.rt
        if rt is None:
            self._x_dev.update_inplace(np.ascontiguousarray(x.reshape(self._x_dev.shape())))
            self._run(io, self._options_for(parity))
            ys = [y.numpy() for y in self._y_dev]
        else:
            xh, s = self._x_host, self._cuda_stream
            xh.array.reshape(x.shape)[...] = x
            if s:
                rt.copy_async(self._x_dev.data_ptr(), xh.ptr, xh.nbytes, H2D, s)
                self._run(io, self._options_for(parity))
                for yd, yh in zip(self._y_dev, self._y_host):
                    rt.copy_async(yh.ptr, yd.data_ptr(), yh.nbytes, D2H, s)
                rt.synchronize(s)
            else:
                rt.copy(self._x_dev.data_ptr(), xh.ptr, xh.nbytes, H2D)
                self._run(io, self._options_for(parity))
                for yd, yh in zip(self._y_dev, self._y_host):
                    rt.copy(yh.ptr, yd.data_ptr(), yh.nbytes, D2H)
            ys = [yh.array for yh in self._y_host]
        outs = {}
        for o, y in zip(self.engine.spec.outputs, ys):
            view = stream_view(o, y)  # (lanes, time=1, ...) or (lanes, ...)
            view = view[:, 0] if o.time_axis is not None else view
            outs[o.name] = (view[0] if self.lanes == 1 else view).copy()
        self.last_outputs = outs
        return outs[self.engine.spec.outputs[0].name]

    def _push_chunks(self, xs: np.ndarray, chunk: int) -> np.ndarray:
        """Chunks of frames: host buffers bound beside the device state (binding.Binding); rolled back on failure."""
        engine = self.engine
        ro = ort.RunOptions()
        if self.graphs:
            ro.add_run_config_entry("gpu_graph_id", "-1")  # chunk shapes vary: no graph capture
        start = self._parity
        saved = [pair[start].numpy() for pair in self._dev_states]
        outs: list[list[np.ndarray]] = [[] for _ in engine.spec.outputs]
        built: dict[int, Binding] = {}
        try:
            for t0 in range(0, xs.shape[0], chunk):
                part = xs[t0 : t0 + chunk]
                b = built.get(part.shape[0])
                if b is None:
                    b = built[part.shape[0]] = Binding(
                        engine.session, engine.layout, self._dev_states, 1, part.shape[0], engine.constants,
                        direct=False,
                    )  # fmt: skip
                p = self._parity
                b.xv[0][0] = part
                self._run(b.io[p], ro)
                for acc, view, o in zip(outs, b.yv, engine.spec.outputs):
                    acc.append(view[0].copy() if o.time_axis is not None else view[0][None].copy())
                self._parity ^= 1
        except Exception:
            self._parity = start
            for pair, s in zip(self._dev_states, saved):
                pair[start].update_inplace(s)
            raise
        whole = [np.concatenate(acc) for acc in outs]
        self.last_outputs = {o.name: y[-1].copy() for o, y in zip(engine.spec.outputs, whole)}
        return whole[0]
