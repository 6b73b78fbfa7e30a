"""The reference loops the engine is measured against: bare onnxruntime, no checks, no locks.

``raw_pingpong(engine, batch, time)`` returns a function ``call(frames) -> outputs`` that
copies ``frames`` into a pre-bound input buffer, runs one of two pre-built IOBindings (the
one reading the state buffer the previous call wrote) and returns a view of the first
output buffer. It is what a hand-written loop would do; the benchmark compares
``Stream.step`` (batch 1, time 1), ``Batch.step`` (batch N, time 1) and ``Stream.push``
(batch 1, time = chunk) against it. ``public=True`` calls ``InferenceSession.run_with_iobinding``
as user code would; ``public=False`` calls the C method it wraps (what the engine does).

Example:
    >>> call = raw_pingpong(engine, batch=1, time=1)      # doctest: +SKIP
    >>> y = call(frame[None, None])                        # (1, 1, *out)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from edgernn.runtime.buffers import alloc, bind

if TYPE_CHECKING:
    from edgernn.runtime.engine import Engine


def raw_pingpong(
    engine: Engine, batch: int = 1, time: int = 1, public: bool = True
) -> Callable[[np.ndarray], np.ndarray]:
    """A bare ping-pong loop over ``engine``'s session for calls of ``(batch, time, *frame)``."""
    spec = engine.spec
    session = engine.session
    x = alloc(spec.inputs[0].concrete_shape(batch, time), spec.inputs[0].dtype)
    ys = [alloc(o.concrete_shape(batch, time), o.dtype) for o in spec.outputs]
    states = [[alloc(s.concrete_shape(batch), s.dtype, s.init) for _ in (0, 1)] for s in spec.states]
    bindings = []
    for parity in (0, 1):
        io = session.io_binding()
        bind(io, spec.inputs[0].name, x)
        for name, value in engine.constants.items():
            bind(io, name, value)
        for s, pair in zip(spec.states, states):
            bind(io, s.input, pair[parity])
            bind(io, s.output, pair[parity ^ 1], output=True)
        for o, y in zip(spec.outputs, ys):
            bind(io, o.name, y, output=True)
        bindings.append(io)
    y0 = ys[0]
    parity = 0
    keep = (states, ys, bindings)  # the bindings point into these buffers: they must outlive every call
    if public:
        run = session.run_with_iobinding
        io0, io1 = bindings

        def call(frames: np.ndarray) -> np.ndarray:
            nonlocal parity
            x[...] = frames
            run(io1 if parity else io0)
            parity ^= 1
            return y0

    else:
        crun = session._sess.run_with_iobinding
        c0, c1 = (io._iobinding for io in bindings)

        def call(frames: np.ndarray) -> np.ndarray:
            nonlocal parity
            x[...] = frames
            crun(c1 if parity else c0, None)
            parity ^= 1
            return y0

    call.buffers = keep  # type: ignore[attr-defined]
    return call
