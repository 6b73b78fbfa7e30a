"""The CUDA path: state stays on the GPU, CUDA graphs per ping-pong direction, pinned host buffers.

No torch. The few CUDA runtime calls needed (pinned allocation, one stream, async copies, a
sync) go through ctypes to the ``libcudart`` that onnxruntime's CUDA provider loads. One
CUDA stream per device is handed to the CUDA / TensorRT providers as their compute stream
(``user_compute_stream``), so a step is: copy the frame host→device, run, copy the result
device→host, all queued on that stream, then one synchronisation.

``CudaStream`` is what ``Engine.stream()`` returns for a profile whose ``device`` is
``"cuda"`` (through the profile's ``stream_factory`` hook). Where libcudart cannot be found
it still keeps state on the GPU, and moves frames with onnxruntime's own (pageable) copies;
``CudaStream.transfer`` says which.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import itertools
import os
import sys
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import onnxruntime as ort

from edgernn.runtime.binding import Binding, state_pairs, stream_view
from edgernn.runtime.engine import NP_DTYPES, Engine, Stream
from edgernn.runtime.errors import InputError, ProfileError, RunError, StreamError
from edgernn.runtime.snapshot import decode, encode

H2D, D2H = 1, 2  # cudaMemcpyKind
STREAM_NON_BLOCKING = 1
WARM_RUNS = 4  # runs per direction before its graph is surely captured (onnxruntime captures on the 2nd)
_graph_ids = itertools.count(1)  # process-wide: every stream captures under its own two ids
_lock = threading.Lock()


class CudaRuntime:
    """The CUDA runtime calls the stream needs, through ctypes."""

    def __init__(self, lib: ctypes.CDLL, path: str) -> None:
        self.lib = lib
        self.path = path
        self.lib.cudaGetErrorString.restype = ctypes.c_char_p
        self._streams: dict[int, int] = {}

    def check(self, code: int, what: str) -> None:
        if code != 0:
            msg = self.lib.cudaGetErrorString(code).decode()
            raise ProfileError(f"CUDA runtime ({self.path}): {what} failed: {msg} (error {code})")

    def set_device(self, device_id: int) -> None:
        self.check(self.lib.cudaSetDevice(ctypes.c_int(device_id)), f"cudaSetDevice({device_id})")

    def stream(self, device_id: int) -> int:
        """The one non-blocking stream of ``device_id`` (created once per process)."""
        with _lock:
            if device_id not in self._streams:
                self.set_device(device_id)
                handle = ctypes.c_void_p()
                self.check(
                    self.lib.cudaStreamCreateWithFlags(ctypes.byref(handle), ctypes.c_uint(STREAM_NON_BLOCKING)),
                    "cudaStreamCreateWithFlags",
                )
                self._streams[device_id] = int(handle.value or 0)
            return self._streams[device_id]

    def host_alloc(self, nbytes: int) -> int:
        ptr = ctypes.c_void_p()
        self.check(self.lib.cudaHostAlloc(ctypes.byref(ptr), ctypes.c_size_t(max(nbytes, 1)), 0), "cudaHostAlloc")
        return int(ptr.value or 0)

    def free_host(self, ptr: int) -> None:
        self.lib.cudaFreeHost(ctypes.c_void_p(ptr))

    def copy_async(self, dst: int, src: int, nbytes: int, kind: int, stream: int) -> None:
        code = self.lib.cudaMemcpyAsync(
            ctypes.c_void_p(dst), ctypes.c_void_p(src), ctypes.c_size_t(nbytes), ctypes.c_int(kind),
            ctypes.c_void_p(stream),
        )  # fmt: skip
        self.check(code, "cudaMemcpyAsync")

    def copy(self, dst: int, src: int, nbytes: int, kind: int) -> None:
        code = self.lib.cudaMemcpy(ctypes.c_void_p(dst), ctypes.c_void_p(src), ctypes.c_size_t(nbytes), kind)
        self.check(code, "cudaMemcpy")

    def device_count(self) -> int:
        """CUDA devices visible to this process (0 when the driver reports none or fails)."""
        n = ctypes.c_int(0)
        return n.value if self.lib.cudaGetDeviceCount(ctypes.byref(n)) == 0 else 0

    def synchronize(self, stream: int) -> None:
        self.check(self.lib.cudaStreamSynchronize(ctypes.c_void_p(stream)), "cudaStreamSynchronize")


def _cudart_candidates() -> list[str]:
    """Where libcudart may be: already mapped into this process, then the usual names and wheels."""
    found: list[str] = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                path = line.rsplit(" ", 1)[-1].strip()
                if "libcudart.so" in os.path.basename(path) and path not in found:
                    found.append(path)
    except OSError:
        pass
    for site in sys.path:
        found += sorted(glob.glob(os.path.join(site, "nvidia", "*", "lib", "libcudart.so*")), reverse=True)
    named = ctypes.util.find_library("cudart")
    found += [n for n in (named, "libcudart.so.13", "libcudart.so.12", "libcudart.so") if n]
    return found


_runtime: CudaRuntime | None = None
_runtime_tried = False


def cuda_runtime() -> CudaRuntime | None:
    """The CUDA runtime library, or None where there is none (no GPU build, no libcudart)."""
    global _runtime, _runtime_tried
    if _runtime_tried:
        return _runtime
    _runtime_tried = True
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return None
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:  # onnxruntime >= 1.21: load the CUDA libraries it was built against
        try:
            preload(cuda=True, cudnn=True, msvc=False)  # the CUDA RNN kernels use cuDNN
        except Exception:  # noqa: BLE001 - best effort; the search below still runs
            pass
    for path in _cudart_candidates():
        try:
            _runtime = CudaRuntime(ctypes.CDLL(path), path)
            return _runtime
        except OSError:
            continue
    return None


def no_device_reason() -> str | None:
    """Why the CUDA provider, though built in, cannot run here (no visible GPU), or None."""
    rt = cuda_runtime()
    if rt is None:
        return None  # cannot tell without libcudart: the placement check will
    if rt.device_count() == 0:
        return "onnxruntime has the CUDA provider, but no CUDA device is visible to this process"
    return None


def stream_options(provider: str, current: dict[str, str]) -> dict[str, str]:
    """Provider options that hand our CUDA stream to the CUDA / TensorRT provider (empty elsewhere)."""
    if provider not in ("CUDAExecutionProvider", "TensorrtExecutionProvider") or "user_compute_stream" in current:
        return {}
    rt = cuda_runtime()
    if rt is None:
        return {}
    stream = rt.stream(int(current.get("device_id", "0")))
    return {"user_compute_stream": str(stream), "has_user_compute_stream": "1"}


def _session_stream(session: ort.InferenceSession, rt: CudaRuntime, device_id: int) -> int:
    """Our CUDA stream if the session's CUDA provider runs on it (then copies can be queued on it), else 0."""
    opts = session.get_provider_options().get("CUDAExecutionProvider", {})
    if opts.get("has_user_compute_stream") != "1":
        return 0
    ours = rt.stream(device_id)
    try:
        theirs = int(opts.get("user_compute_stream", "0"), 0)
    except ValueError:
        return 0
    return ours if theirs == ours else 0


class PinnedArray:
    """A numpy array in page-locked host memory (``cudaHostAlloc``), freed when collected."""

    def __init__(self, rt: CudaRuntime, shape: tuple[int, ...], dtype: Any) -> None:
        dt = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        self.ptr = rt.host_alloc(nbytes)
        self.nbytes = nbytes
        raw = (ctypes.c_byte * max(nbytes, 1)).from_address(self.ptr)
        self.array = np.frombuffer(raw, dtype=np.uint8, count=nbytes).view(dt).reshape(shape)
        self._finalizer = weakref.finalize(self, rt.free_host, self.ptr)


def make_stream(engine: Engine) -> Any:
    """The stream for a ``device = "cuda"`` profile: ``CudaStream`` where the spec allows, else the CPU one."""
    if engine.plain_step and "CUDAExecutionProvider" in engine.session.get_providers():
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

    memory = "cuda"  # where state and the bound frame / result live (tests run the same logic on "cpu")

    def __init__(self, engine: Engine, lanes: int = 1) -> None:
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
            raise InputError(f"CudaStream: lanes must be an int >= 1, got {lanes!r}")
        if not engine.plain_step:
            raise StreamError(f"CudaStream: {engine.source} needs the generic path or a window: use a CPU Stream")
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
        self.rt = cuda_runtime() if self.memory == "cuda" else None
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

    def reset(self) -> None:
        """Return to the initial state."""
        with self._guard():
            for s, pair in zip(self.engine.spec.states, self._dev_states):
                pair[self._parity].update_inplace(np.full(s.concrete_shape(self.lanes), s.init, NP_DTYPES[s.dtype]))

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
        return ort.OrtValue.ortvalue_from_numpy(np.array(arr, order="C", copy=True), self.memory, self.device_id)

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
