"""The one binding primitive: buffers and two ping-pong IOBindings for calls of (batch, time) on any spec.

Every bound call in edgernn goes through ``Binding``: ``Stream`` (slots.py), ``Batch``,
the raw reference loop (raw.py), the profiler's ``PingPong`` (profiling.py),
``devices auto`` and the CUDA stream (devices/). A binding holds, for one call shape:

* one buffer per streamed input, laid out as the graph wants it (batch axis and time axis
  wherever the spec puts them; no time axis at all; the context window's frames first),
  and a *stream-layout view* of it, ``(batch, K + T, *frame)``, that callers write frames
  into: one strided copy per call, no ``moveaxis`` / ``ascontiguousarray`` temporaries;
* constants, bound once, and a stream's per-stream memory (``runtime/memory.py``), bound
  once per binding: a binding is built for one memory, so a stream that changes its memory
  gets new bindings (its slot's or batch's cache is rebuilt), never a rebind per call;
* one buffer per output and its stream-layout view (``(batch, T, ...)``, or ``(batch, ...)``
  for an output without a time axis);
* two IOBindings: parity ``p`` reads state buffer ``p`` and writes buffer ``p ^ 1``
  (ping-pong), so nothing is copied and nothing is rebound between calls.

Buffers are host numpy arrays by default; ``make`` can return ``onnxruntime.OrtValue`` s
instead (device memory: the CUDA stream, ``devices auto``); state buffers likewise.

Output shapes come from ``Layout``: the spec's ints and ``batch`` / ``time`` symbols, with
any other symbol filled from what the load-time probe returned. Where the graph returns
another shape, onnxruntime refuses the call (nothing is written to the state) and the
engine moves the model to the generic ``session.run`` path (``Engine.describe()`` says so).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort

from edgernn.runtime.buffers import alloc
from edgernn.runtime.dtypes import NP_DTYPES
from edgernn.runtime.errors import SpecError
from edgernn.runtime.spec import BATCH, TIME, StreamSpec, TensorSpec

Buffer = Any  # np.ndarray (host) or ort.OrtValue (device)


def runner(session: ort.InferenceSession) -> tuple[Callable[[Any, Any], None], bool]:
    """How to run a pre-built binding, called as ``run(io, options)``, and whether it is the direct C method.

    The public ``InferenceSession.run_with_iobinding`` adds ~1 µs of Python (graph-capture
    bookkeeping for WebGPU) per call; the CPU path calls the C method it wraps when present.
    """
    inner = getattr(session, "_sess", None)
    if inner is not None and hasattr(inner, "run_with_iobinding") and hasattr(session.io_binding(), "_iobinding"):
        return inner.run_with_iobinding, True

    def run(io: Any, options: Any) -> None:
        session.run_with_iobinding(io, options)

    return run, False


def bind(io: ort.IOBinding, name: str, buf: Buffer, output: bool = False) -> None:
    """Bind ``buf`` (a C-contiguous host array, or an OrtValue) to graph tensor ``name`` of ``io``."""
    if isinstance(buf, ort.OrtValue):
        (io.bind_ortvalue_output if output else io.bind_ortvalue_input)(name, buf)
        return
    if not buf.flags.c_contiguous:
        raise ValueError(f"buffer for {name!r} must be C-contiguous")  # internal invariant
    method = io.bind_output if output else io.bind_input
    method(name, "cpu", 0, buf.dtype.type, buf.shape, buf.ctypes.data)


def stream_view(t: TensorSpec, buf: np.ndarray, is_input: bool = False) -> np.ndarray:
    """A view of graph-layout buffer ``buf`` of tensor ``t`` in stream layout.

    Streamed inputs: ``(batch, T, *frame)`` (T = 1 when ``t`` has no time axis). Outputs
    with a time axis: ``(batch, T, ...)``; without: ``(batch, ...)``; without a batch axis
    (batch 1 only): the buffer with a leading axis of 1.
    """
    b, tx = t.batch_axis, t.time_axis
    if b is None:
        return buf[None]
    if tx is None:
        view = np.moveaxis(buf, b, 0)
        return view[:, None] if is_input else view
    return np.moveaxis(buf, (b, tx), (0, 1))


@dataclass(frozen=True)
class Layout:
    """Concrete shapes of a spec's tensors for a call of ``batch`` lanes and ``time`` new items.

    ``resolved`` fills symbols other than batch / time, per tensor and axis (from the probe);
    ``context`` is the number of context frames prepended to input ``context_input``.
    """

    spec: StreamSpec
    resolved: Mapping[str, Mapping[int, int]] = field(default_factory=dict)
    context: int = 0

    def shape(
        self, t: TensorSpec, batch: int, time: int, lengths: Mapping[str, int] | None = None
    ) -> tuple[int, ...]:
        """``lengths`` sizes memory length symbols (e.g. attention weights over ``src_len``) for this call."""
        fixed = self.resolved.get(t.name, {})
        ctx = self.spec.context
        extra = self.context if ctx is not None and ctx.input == t.name else 0
        dims: list[int] = []
        for axis, d in enumerate(t.shape):
            if d == BATCH:
                dims.append(batch)
            elif d == TIME:
                dims.append(time + extra)
            elif isinstance(d, int):
                dims.append(d)
            elif lengths and d in lengths:
                dims.append(lengths[d])
            elif axis in fixed:
                dims.append(fixed[axis])
            else:
                raise SpecError(f"tensor {t.name!r}: axis {axis} ({d!r}) has no size (not batch, time, or probed)")
        return tuple(dims)

    def bindable(self) -> str | None:
        """None when every tensor's shape is known for any (batch, time); else why not."""
        for t in (*self.spec.inputs, *self.spec.outputs):
            try:
                self.shape(t, 1, 1)
            except SpecError as exc:
                return str(exc)
        return None


def host(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """A zeroed host buffer (``Binding``'s default ``make``)."""
    return alloc(shape, dtype)


class Binding:
    """Buffers and the two ping-pong IOBindings for calls of ``time`` items on ``batch`` lanes.

    ``states[k]`` is the pair of buffers of state k (graph layout, batch ``batch``), owned by
    the caller (a slot, a batch's lanes, a device stream): running ``io[p]`` reads
    ``states[k][p]`` and writes ``states[k][p ^ 1]``; the caller flips its parity after a
    successful run. ``make(shape, dtype)`` allocates the input / output buffers (host arrays
    by default; device OrtValues leave ``xv`` / ``yv`` empty: the caller copies itself).
    """

    __slots__ = (
        "batch", "time", "xs", "xv", "ys", "yv", "x0", "y0", "lane0", "out0", "rows", "head", "body", "tail", "io",
        "raw_io", "nbytes", "__weakref__",
    )

    def __init__(
        self,
        session: ort.InferenceSession,
        layout: Layout,
        states: Sequence[Sequence[Buffer]],
        batch: int,
        time: int,
        constants: Mapping[str, Buffer] | None = None,
        make: Callable[[tuple[int, ...], str], Buffer] = host,
        direct: bool = True,
        memory: Mapping[str, Buffer] | None = None,
        lengths: Mapping[str, int] | None = None,
    ) -> None:
        spec = layout.spec
        self.batch, self.time = batch, time
        self.xs = [make(layout.shape(t, batch, time), t.dtype) for t in spec.inputs]
        self.ys = [make(layout.shape(o, batch, time, lengths), o.dtype) for o in spec.outputs]
        on_host = all(isinstance(b, np.ndarray) for b in (*self.xs, *self.ys))
        # Stream-layout views, and views of the one frame in / out at lane 0 (the single-step path).
        self.xv = [stream_view(t, x, True) for t, x in zip(spec.inputs, self.xs)] if on_host else []
        self.yv = [stream_view(o, y) for o, y in zip(spec.outputs, self.ys)] if on_host else []
        k = layout.context if spec.context is not None and spec.context.input == spec.inputs[0].name else 0
        # ``[..., ...]`` keeps a 0-d view (not a numpy scalar copy) for scalar frames. These views (and the
        # ones below) are None on device buffers, a case the host paths that read them never get: typed Any.
        self.x0: Any = self.xv[0][0, k, ...] if on_host else None
        y = self.yv[0] if on_host else None
        self.y0: Any = None if y is None else (y[0, 0, ...] if spec.outputs[0].time_axis is not None else y[0, ...])
        # Lane 0's views (a single stream's call): ``(K + T, *frame)`` per input, the first output's rows.
        self.lane0 = [v[0] for v in self.xv]
        self.out0: Any = self.yv[0][0] if on_host else None
        # The first output of lane 0 as rows, ``(T, ...)`` (one row for an output without a time axis).
        self.rows: Any = None if y is None else (y[0] if spec.outputs[0].time_axis is not None else y[0][None])
        # Lane 0's first input split at the context window: ``[head | body]``, the next call's head is ``tail``.
        # Views made once: a slice costs ~1 µs between two onnxruntime calls (the interpreter's caches are cold).
        self.head: Any = None
        self.body: Any = None
        self.tail: Any = None
        if on_host and k:
            lane = self.lane0[0]
            self.head, self.body, self.tail = lane[:k], lane[k:], lane[time:]
        self.nbytes = sum(int(b.nbytes) for b in (*self.xs, *self.ys) if isinstance(b, np.ndarray))
        self.raw_io: list[ort.IOBinding] = []
        for parity in (0, 1):
            io = session.io_binding()
            for t, x in zip(spec.inputs, self.xs):
                bind(io, t.name, x)
            for name, value in (constants or {}).items():
                bind(io, name, value)
            for name, value in (memory or {}).items():
                bind(io, name, value)
            for s, pair in zip(spec.states, states):
                bind(io, s.input, pair[parity])
                bind(io, s.output, pair[parity ^ 1], output=True)
            for o, y in zip(spec.outputs, self.ys):
                bind(io, o.name, y, output=True)
            self.raw_io.append(io)
        self.io = [io._iobinding for io in self.raw_io] if direct else self.raw_io


def state_pairs(
    spec: StreamSpec, batch: int, make: Callable[[np.ndarray], Buffer] | None = None
) -> list[list[Buffer]]:
    """Two buffers per state at the initial value, batch ``batch`` (host arrays, or ``make(array)``)."""
    out = []
    for s in spec.states:
        init = np.full(s.concrete_shape(batch), s.init, dtype=NP_DTYPES[s.dtype])
        out.append([init.copy() if make is None else make(init) for _ in (0, 1)])
    return out


class BindingCache:
    """Bindings per call length, least recently used first out, bounded in count and bytes.

    A binding bigger than ``max_bytes`` on its own is built for the call and not kept
    (``get`` returns it with ``keep=False`` semantics: the caller just uses it), so a single
    huge ``push(..., chunk=10**6)`` leaves nothing held after the call.
    """

    def __init__(self, build: Callable[[int], Binding], max_count: int = 4, max_bytes: int = 32 << 20) -> None:
        self.build = build
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.items: OrderedDict[int, Binding] = OrderedDict()
        self.bytes = 0
        self.last: Binding | None = None  # the most recently used kept binding (a repeated length skips the LRU)

    def get(self, time: int) -> Binding:
        last = self.last
        if last is not None and last.time == time:
            return last
        b = self.items.get(time)
        if b is not None:
            self.items.move_to_end(time)
            self.last = b
            return b
        b = self.build(time)
        if b.nbytes > self.max_bytes:
            return b
        self.items[time] = b
        self.bytes += b.nbytes
        while len(self.items) > self.max_count or self.bytes > self.max_bytes:
            _, old = self.items.popitem(last=False)
            self.bytes -= old.nbytes
        self.last = b if time in self.items else None
        return b

    def clear(self) -> None:
        self.items.clear()
        self.bytes = 0
        self.last = None
