"""The one place the runtime allocates and binds state / IO buffers.

Every buffer a Stream or a Batch hands to onnxruntime comes from ``alloc`` and is bound with
``bind``. Today they are host (numpy) buffers for the CPU EP; a device variant (CUDA buffers
bound through OrtValues) plugs in here, keyed by ``SessionProfile.device``, without touching
the engine's bookkeeping.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort

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


def alloc(shape: tuple[int, ...], dtype: str | Any, fill: float = 0.0) -> np.ndarray:
    """A C-contiguous host buffer of ``shape`` filled with ``fill``."""
    dt = NP_DTYPES[dtype] if isinstance(dtype, str) else dtype
    return np.full(shape, fill, dtype=dt)


def bind(io: ort.IOBinding, name: str, arr: np.ndarray, output: bool = False) -> None:
    """Bind host buffer ``arr`` (C-contiguous) to graph tensor ``name`` of ``io``."""
    if not arr.flags.c_contiguous:
        raise ValueError(f"buffer for {name!r} must be C-contiguous")  # internal invariant
    method = io.bind_output if output else io.bind_input
    method(name, "cpu", 0, arr.dtype.type, arr.shape, arr.ctypes.data)


def lane_index(axis: int, lanes: slice | np.ndarray | int) -> tuple[Any, ...]:
    """An index selecting ``lanes`` along ``axis`` (the batch axis of a state) and everything else."""
    return (slice(None),) * axis + (lanes,)
