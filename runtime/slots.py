"""The engine's pool of bound slots: the CPU fast path for single streams.

A slot holds two state buffers per state pair, an input buffer and output buffers, and
IOBindings that read state from one buffer and write the next state into the other
(ping-pong); a call flips the slot's parity, so nothing is copied and nothing is rebound.
IOBindings are costly to build and to rebind (several µs per tensor), so they live here,
in a small pool shared by every stream of the engine, not in each stream: an idle stream
holds only its state. A stream that steps keeps its slot (its state lives there) until
another stream needs the slot and takes it over, writing the state back home first.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort

from edgernn.runtime import general
from edgernn.runtime.buffers import alloc, bind
from edgernn.runtime.errors import RunError

if TYPE_CHECKING:
    from edgernn.runtime.engine import Engine
    from edgernn.runtime.stream import Stream

MAX_BOUND_LENGTHS = 4  # chunk lengths with pre-built bindings per slot (T = 1 always among them)


class Bound:
    """Buffers and the two ping-pong IOBindings for calls of ``time`` frames on ``batch`` lanes."""

    __slots__ = ("x", "x0", "ys", "y0", "io")

    def __init__(self, engine: Engine, states: list[list[np.ndarray]], batch: int, time: int) -> None:
        spec = engine.spec
        self.x = alloc(spec.inputs[0].concrete_shape(batch, time), spec.inputs[0].dtype)
        self.ys = [alloc(o.concrete_shape(batch, time), o.dtype) for o in spec.outputs]
        # Views of the one frame in and out when batch = time = 1 (the single-step path).
        self.x0 = self.x.reshape(self.x.shape[2:]) if batch == time == 1 else self.x
        self.y0 = self.ys[0].reshape(self.ys[0].shape[2:]) if batch == time == 1 else self.ys[0]
        self.io: list[Any] = []
        for parity in (0, 1):
            io = engine.session.io_binding()
            bind(io, spec.inputs[0].name, self.x)
            for name, value in engine.constants.items():
                bind(io, name, value)
            for s, pair in zip(spec.states, states):
                bind(io, s.input, pair[parity])
                bind(io, s.output, pair[parity ^ 1], output=True)
            for o, y in zip(spec.outputs, self.ys):
                bind(io, o.name, y, output=True)
            self.io.append(io._iobinding if engine.direct_run else io)


def runner(session: ort.InferenceSession) -> tuple[Any, bool]:
    """How to run a pre-built binding, called as ``run(io, None)``, and whether it is the direct C method.

    The public ``InferenceSession.run_with_iobinding`` adds ~1 µs of Python (graph-capture
    bookkeeping for WebGPU) per call; the CPU path calls the C method it wraps when present.
    """
    inner = getattr(session, "_sess", None)
    if inner is not None and hasattr(inner, "run_with_iobinding") and hasattr(session.io_binding(), "_iobinding"):
        return inner.run_with_iobinding, True

    def run(io: Any, options: Any) -> None:
        session.run_with_iobinding(io, options)

    return run, False


class Slot:
    """Ping-pong state buffers of one stream (batch 1) plus bindings per chunk length."""

    __slots__ = ("engine", "owner", "parity", "states", "bound", "b1")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.owner: Stream | None = None
        self.parity = 0
        self.states = [[alloc(s.concrete_shape(1), s.dtype, s.init) for _ in (0, 1)] for s in engine.spec.states]
        self.b1 = Bound(engine, self.states, 1, 1)
        self.bound: dict[int, Bound] = {1: self.b1}

    def current(self) -> list[np.ndarray]:
        p = self.parity
        return [pair[p] for pair in self.states]

    def bound_for(self, time: int) -> Bound | None:
        b = self.bound.get(time)
        if b is None and len(self.bound) < MAX_BOUND_LENGTHS:
            b = self.bound[time] = Bound(self.engine, self.states, 1, time)
        return b

    def advance(self, xs: np.ndarray, chunk: int) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Run frames ``xs`` (T, *frame) in chunks; all or nothing.

        Returns the first output ``(T, ...)`` and, for a model with several outputs, each
        output's last frame (empty for one output: its last frame is the result's last row).
        """
        engine = self.engine
        n = xs.shape[0]
        if n <= chunk:
            b = self.bound_for(n)
            if b is not None:  # one bound call: nothing to roll back, the parity flips only on success
                b.x[0] = xs
                p = self.parity
                try:
                    engine.run_bound(b.io[p], None)
                except Exception as exc:  # onnxruntime raises its own untyped exceptions
                    raise wrap_run_error(engine, exc) from None
                self.parity = p ^ 1
                first = b.ys[0][0].copy()
                return first, () if engine.single_output else tuple(y[0, -1].copy() for y in b.ys)
        out = np.empty((n, *engine.out_frame_shapes[0]), dtype=self.b1.ys[0].dtype)
        start = self.parity
        saved = [pair[start].copy() for pair in self.states] if n > chunk else None
        last: tuple[np.ndarray, ...] = ()
        try:
            for t0 in range(0, n, chunk):
                t1 = min(n, t0 + chunk)
                b = self.bound_for(t1 - t0)
                p = self.parity
                if b is not None:
                    b.x[0] = xs[t0:t1]
                    try:
                        engine.run_bound(b.io[p], None)
                    except Exception as exc:  # onnxruntime raises its own untyped exceptions
                        raise wrap_run_error(engine, exc) from None
                    out[t0:t1] = b.ys[0][0]
                    last = tuple(y[0, -1].copy() for y in b.ys[1:])
                else:
                    outs, new, _ = general.call(engine, self.current(), None, {first_input(engine): xs[None, t0:t1]}, 1)
                    for pair, value in zip(self.states, new):
                        pair[p ^ 1][...] = value
                    out[t0:t1] = outs[0][0]
                    last = tuple(o[0, -1].copy() for o in outs[1:])
                self.parity = p ^ 1
        except BaseException:
            self.parity = start
            if saved is not None:
                for pair, value in zip(self.states, saved):
                    pair[start][...] = value
            raise
        return out, () if engine.single_output else (out[-1], *last)


def first_input(engine: Engine) -> str:
    return engine.spec.inputs[0].name


class SlotPool:
    """Slots shared by the streams of one engine; a stream keeps its slot until another takes it over."""

    def __init__(self, engine: Engine, size: int = 4) -> None:
        self.engine = engine
        self.size = size
        self.slots: list[Slot] = []
        self.lock = threading.Lock()
        self.next = 0

    def take(self, stream: Stream) -> Slot:
        """A slot for ``stream`` (whose lock the caller holds), loaded with its state."""
        with self.lock:
            slot = next((s for s in self.slots if s.owner is None), None)
            if slot is None and len(self.slots) >= self.size:
                slot = self._take_over()
            if slot is None:
                slot = Slot(self.engine)
                self.slots.append(slot)
            slot.owner = stream
        for pair, value in zip(slot.states, stream._own_home()):
            pair[slot.parity][...] = value
        stream._slot = slot
        return slot

    def _take_over(self) -> Slot | None:
        """Take the next slot whose owner is not running (its lock is free); write its state home."""
        n = len(self.slots)
        for k in range(n):
            i = (self.next + k) % n
            slot = self.slots[i]
            victim = slot.owner
            if victim is not None and victim._lock.acquire(blocking=False):
                try:
                    victim._write_back()
                finally:
                    victim._lock.release()
                self.next = (i + 1) % n
                return slot
        return None

    def release(self, slot: Slot) -> None:
        with self.lock:
            slot.owner = None


def wrap_run_error(engine: Engine, exc: Exception) -> RunError:
    return RunError(f"{engine.source}: onnxruntime failed: {exc}")
