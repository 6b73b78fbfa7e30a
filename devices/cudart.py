"""The CUDA runtime through ctypes (no torch): pinned host memory, one CUDA stream per device, async copies.

The few calls the CUDA stream (``devices/cuda.py``) needs go to the ``libcudart`` that
onnxruntime's CUDA provider loads; where there is none, ``cuda_runtime()`` is None and the
stream falls back to onnxruntime's own (pageable) copies.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import sys
import threading
import weakref
from typing import Any

import numpy as np
import onnxruntime as ort

from edgernn.runtime.errors import ProfileError

H2D, D2H = 1, 2  # cudaMemcpyKind
STREAM_NON_BLOCKING = 1
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
