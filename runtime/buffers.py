"""Host buffers: the dtype table, ``alloc`` and lane indexing. Binding them is ``binding.py``'s job.

Every host buffer a Stream, a Batch or a Binding hands to onnxruntime comes from ``alloc``;
``binding.bind`` binds it (or a device OrtValue) to a graph tensor.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgernn.runtime.dtypes import NP_DTYPES


def alloc(shape: tuple[int, ...], dtype: str | Any, fill: float = 0.0) -> np.ndarray:
    """A C-contiguous host buffer of ``shape`` filled with ``fill``."""
    dt = NP_DTYPES[dtype] if isinstance(dtype, str) else dtype
    return np.full(shape, fill, dtype=dt)


def lane_index(axis: int, lanes: slice | np.ndarray | int) -> tuple[Any, ...]:
    """An index selecting ``lanes`` along ``axis`` (the batch axis of a state) and everything else."""
    return (slice(None),) * axis + (lanes,)
