"""The machine a bench ran on, BLAS threads pinned to one, and its single-core matrix-vector rate."""

from __future__ import annotations

import ctypes
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

# Symbols that set OpenBLAS's thread count, in the builds numpy and torch ship.
_BLAS_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)


def pin_blas_threads(n: int = 1) -> list[str]:
    """Set every loaded OpenBLAS to ``n`` threads (numpy's BLAS otherwise spins on tiny matmuls).

    Returns the libraries it set. Linux only (reads /proc/self/maps); elsewhere it does nothing.
    """
    done: list[str] = []
    try:
        with open("/proc/self/maps") as fh:
            libs = {line.split()[-1] for line in fh if "openblas" in line.lower() and line.rstrip().endswith(".so")}
    except OSError:
        return done
    for lib in sorted(libs):
        try:
            handle = ctypes.CDLL(lib)
        except OSError:
            continue
        for sym in _BLAS_SETTERS:
            fn = getattr(handle, sym, None)
            if fn is not None:
                fn(ctypes.c_int(n))
                done.append(os.path.basename(lib))
                break
    return done


def describe() -> dict[str, Any]:
    """CPU model, cores, load, library versions: what BENCHMARKS.md says about the machine."""
    import numpy
    import onnxruntime

    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "caches": _caches(),
        "isa": _isa(),
        "memory_gib": _mem_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "onnxruntime": onnxruntime.__version__,
        "load_average": _load(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _caches() -> str:
    """e.g. 'L1d 48K, L2 2048K, L3 307200K' (Linux sysfs; '' elsewhere)."""
    out = []
    root = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in sorted(os.listdir(root)):
            if not entry.startswith("index"):
                continue
            kind, level, size = (_read(os.path.join(root, entry, f)) for f in ("type", "level", "size"))
            if kind != "Instruction":
                out.append(f"L{level}{'d' if kind == 'Data' else ''} {size}")
    except OSError:
        return ""
    return ", ".join(out)


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read().strip()


def _isa() -> str:
    """The vector extensions that matter to onnxruntime's kernels, from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:
        return ""
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16")
    return " ".join(f for f in wanted if f in flags)


def _mem_gib() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            kib = next(int(line.split()[1]) for line in fh if line.startswith("MemTotal"))
    except (OSError, StopIteration, ValueError):
        return None
    return round(kib / 2**20, 1)


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


_MATVEC_CHILD = """
import json, sys, time
import numpy as np
rows, cols, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
batch = int(sys.argv[4]) if len(sys.argv) > 4 else 0
rng = np.random.default_rng(0)
w = rng.standard_normal((rows, cols)).astype(np.float32)
v = rng.standard_normal((cols, batch) if batch else cols).astype(np.float32)
out = np.empty((rows, batch) if batch else rows, np.float32)
best = float("inf")
end = time.perf_counter() + seconds
while time.perf_counter() < end:
    t = time.perf_counter_ns()
    for _ in range(20):
        np.dot(w, v, out=out)
    best = min(best, (time.perf_counter_ns() - t) / 20)
print(json.dumps({"rows": rows, "cols": cols, "batch": max(batch, 1), "best_ns": best,
                  "gflops": 2 * rows * cols * max(batch, 1) / best}))
"""


def matvec_rate(rows: int, cols: int, seconds: float = 1.0, batch: int = 0) -> dict[str, Any]:
    """Best single-core float32 matrix-vector rate (GFLOP/s) for a (rows, cols) matrix, in a child process
    (``batch`` > 0: the matrix-matrix rate with that many columns on the right).

    The child runs with OPENBLAS_NUM_THREADS=1 (and OMP/MKL likewise); the best of many
    20-call batches is kept, which is the machine's rate when the core is not shared.
    """
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", _MATVEC_CHILD, str(rows), str(cols), str(seconds), str(batch)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"matvec child failed: {proc.stderr.strip()[-300:]}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result
