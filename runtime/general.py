"""The generic call: any stream spec, fed by name with ``session.run``.

Used for graphs the bound path cannot serve (output shapes that vary per call, or that
neither the spec nor the probe gives), for ragged batches (a different number of frames
per stream), and for the one probe call ``Engine.load`` makes. Declared output shapes are not trusted: the
returned arrays are checked against the batch size and the state shapes, and outputs are
read in whatever length the graph returns.

Layouts. The *stream layout* of a streamed input is ``(n, T, *frame)``; of an output it is
``(n, T, ...)`` when the output has a time axis, else ``(n, ...)``. States and lane buffers
keep the *graph layout* (batch axis wherever the spec puts it).

``call`` is pure: it returns new states and never writes into the arrays it was given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort

from edgernn.runtime.errors import InputError, RunError, SpecError
from edgernn.runtime.memory import missing as missing_memory
from edgernn.runtime.spec import TensorSpec

if TYPE_CHECKING:
    from edgernn.runtime.engine import Engine


_QUIET = ort.RunOptions()
_QUIET.log_severity_level = 4  # fatal only


def to_graph(t: TensorSpec, arr: np.ndarray) -> np.ndarray:
    """Stream layout ``(n, T, *frame)`` → the graph layout of streamed input ``t``."""
    b, tax = t.batch_axis, t.time_axis
    if b is None:  # StreamSpec refuses such a spec; kept for specs built around its checks
        raise SpecError(f"input {t.name!r} has no 'batch' axis in {list(t.shape)}")
    if tax is None:
        if arr.shape[1] != 1:
            raise SpecError(f"input {t.name!r} has no time axis: feed one frame per call")
        return np.ascontiguousarray(np.moveaxis(arr[:, 0], 0, b))
    return np.ascontiguousarray(np.moveaxis(arr, (0, 1), (b, tax)))


def from_graph(t: TensorSpec, arr: np.ndarray, n: int) -> np.ndarray:
    """A returned output in graph layout → stream layout, checking its batch axis holds ``n``."""
    b, tax = t.batch_axis, t.time_axis
    if b is None:
        if n != 1:
            raise SpecError(f"output {t.name!r} has no 'batch' axis in the spec; it cannot be split per stream")
        return arr[None]
    if arr.ndim != len(t.shape):
        raise SpecError(
            f"output {t.name!r}: the graph returned rank {arr.ndim} (shape {arr.shape}), the spec says "
            f"rank {len(t.shape)} {list(t.shape)}"
        )
    if arr.shape[b] != n:
        raise SpecError(f"output {t.name!r}: batch axis {b} has size {arr.shape[b]}, expected {n} streams")
    if tax is None:
        return np.moveaxis(arr, b, 0)
    return np.moveaxis(arr, (b, tax), (0, 1))


def call(
    engine: Engine,
    states: Sequence[np.ndarray],
    ctx: np.ndarray | None,
    inputs: Mapping[str, np.ndarray],
    n: int,
    keep_raw: bool = False,
    quiet: bool = False,
    memory: Mapping[str, np.ndarray] | None = None,
) -> Any:
    """One session.run for ``n`` streams; returns (outputs in stream layout, new states, new context).

    ``inputs``: stream layout per streamed input; ``states``: graph layout, batch ``n``;
    ``ctx``: ``(n, K, *frame)`` for the context input, or None. ``keep_raw`` adds the
    outputs as the graph returned them (a fourth item); ``quiet`` keeps onnxruntime's own
    error log off stderr (the load-time probe, whose failure the engine reports itself).
    ``memory``: the per-stream memory feeds of the ``n`` lanes (``runtime/memory.py``), for a
    spec that declares memory.
    """
    spec = engine.spec
    feeds: dict[str, Any] = dict(engine.constants)
    if spec.memory:
        if memory is None:
            raise missing_memory(spec, engine.source)
        feeds.update(memory)
    new_ctx = None
    for t in spec.inputs:
        arr = inputs[t.name]
        if 0 in arr.shape[:2]:  # onnxruntime's recurrent kernels abort on zero-length inputs
            raise InputError(f"input {t.name!r}: a call needs at least one stream and one frame, got {arr.shape[:2]}")
        if ctx is not None and spec.context is not None and t.name == spec.context.input:
            arr = np.concatenate([ctx, arr], axis=1)
            new_ctx = arr[:, arr.shape[1] - ctx.shape[1] :].copy()
        feeds[t.name] = to_graph(t, arr)
    for s, value in zip(spec.states, states):
        feeds[s.input] = value
    try:
        results = engine.session.run(engine.output_names, feeds, _QUIET if quiet else None)
    except Exception as exc:  # onnxruntime raises its own untyped exceptions
        raise RunError(f"{engine.source}: onnxruntime failed: {exc}") from None
    n_out = len(spec.outputs)
    new_states = []
    for s, old, new in zip(spec.states, states, results[n_out:]):
        if new.shape != old.shape:
            raise SpecError(f"state {s.output!r}: the graph returned shape {new.shape}, the spec says {old.shape}")
        new_states.append(np.ascontiguousarray(new, dtype=old.dtype))
    outputs = [from_graph(o, r, n) for o, r in zip(spec.outputs, results[:n_out])]
    if keep_raw:
        return outputs, new_states, new_ctx, results[:n_out]
    return outputs, new_states, new_ctx
