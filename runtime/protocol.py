"""The one stream protocol: what every stream object edgernn hands out implements.

``Stream`` (CPU, any spec) and ``edgernn.devices.cuda.CudaStream`` (state on the GPU) both
satisfy ``StreamLike``; applications take a ``StreamLike`` and never test for methods
(``hasattr(stream, "fork")``). Snapshots are bytes in one format, so a state moves from one
implementation to the other.

Example:
    >>> from edgernn.runtime.protocol import StreamLike
    >>> def warm_up(stream: StreamLike, frames) -> bytes:   # any stream, any device
    ...     stream.push(frames)
    ...     return stream.snapshot()
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class StreamLike(Protocol):
    """One caller's recurrent state on a shared engine."""

    def step(self, frame: Any) -> np.ndarray:
        """Advance by one frame; the first output for it."""
        ...

    def push(self, frames: Any, chunk: int = 64) -> np.ndarray:
        """Advance by any number of frames, in calls of at most ``chunk``; outputs ``(T, ...)``."""
        ...

    def reset(self, memory: Mapping[str, Any] | None = None) -> None:
        """Back to the initial state; the per-stream memory is kept, or replaced by ``memory``."""
        ...

    def set_memory(self, memory: Mapping[str, Any]) -> None:
        """Set the per-stream memory (spec ``memory``): whole or nothing, InputError naming the tensor."""
        ...

    @property
    def memory(self) -> dict[str, np.ndarray]:
        """The per-stream memory, read-only (``{}`` when none is set)."""
        ...

    def state(self) -> dict[str, np.ndarray]:
        """A host copy of the state, keyed by state input name."""
        ...

    def snapshot(self) -> bytes:
        """The state as bytes (``edgernn.runtime.snapshot``), restorable on any stream of the same contract."""
        ...

    def restore(self, blob: bytes) -> None:
        """Load a snapshot; SnapshotError (state untouched) if it is foreign or damaged."""
        ...

    def fork(self) -> StreamLike:
        """A new independent stream starting from this one's state."""
        ...

    def close(self) -> None:
        """Release the state; later calls raise StreamError."""
        ...

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        ...
