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

from edgernn.runtime.binding import Binding, state_pairs

if TYPE_CHECKING:
    from edgernn.runtime.engine import Engine


def raw_pingpong(
    engine: Engine, batch: int = 1, time: int = 1, public: bool = True
) -> Callable[[np.ndarray], np.ndarray]:
    """A bare ping-pong loop over ``engine``'s session for calls of ``(batch, time, *frame)``.

    The buffers and bindings are the engine's own primitive (``binding.Binding``) over fresh
    state; constants are bound once, the context window (if any) stays at zeros.
    """
    states = state_pairs(engine.spec, batch)
    b = Binding(engine.session, engine.layout, states, batch, time, engine.constants, direct=not public)
    k = engine.context_frames if engine.context_index == 0 else 0
    xv = b.xv[0][:, k:]
    y0 = b.yv[0]
    parity = 0
    keep = (states, b)  # the bindings point into these buffers: they must outlive every call
    io0, io1 = b.io
    if public:
        run = engine.session.run_with_iobinding

        def call(frames: np.ndarray) -> np.ndarray:
            nonlocal parity
            xv[...] = frames
            run(io1 if parity else io0)
            parity ^= 1
            return y0

    else:
        crun = engine.session._sess.run_with_iobinding

        def call(frames: np.ndarray) -> np.ndarray:
            nonlocal parity
            xv[...] = frames
            crun(io1 if parity else io0, None)
            parity ^= 1
            return y0

    call.buffers = keep  # type: ignore[attr-defined]
    return call
