"""The engine's pool of bound slots: the bound path for single streams.

A slot holds two state buffers per state pair and, per call length, a ``Binding``
(binding.py: input and output buffers, two IOBindings that read state from one buffer and
write the next state into the other); a call flips the slot's parity, so nothing is copied
and nothing is rebound. IOBindings are costly to build and to rebind (several µs per tensor), so they live here,
in a small pool shared by every stream of the engine, not in each stream: an idle stream
holds only its state. A stream that steps keeps its slot (its state lives there) until
another stream needs the slot and takes it over, writing the state back home first.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from edgernn.runtime.binding import Binding, BindingCache
from edgernn.runtime.buffers import alloc
from edgernn.runtime.errors import RunError
from edgernn.runtime.memory import Memory
from edgernn.runtime.memory import missing as missing_memory

if TYPE_CHECKING:
    from edgernn.runtime.engine import Engine
    from edgernn.runtime.stream import Stream

MAX_BOUND_LENGTHS = 4  # call lengths with kept bindings per slot or batch (least recently used out)
MAX_BOUND_BYTES = 32 << 20  # and at most this many bytes of input / output buffers among them


class Demoted(Exception):
    """A bound call met an output shape it was not bound for; nothing was committed: rerun on the generic path."""


def bindings(
    engine: Engine,
    states: list[list[np.ndarray]],
    batch: int,
    memory: Mapping[str, np.ndarray] | None = None,
    lengths: Mapping[str, int] | None = None,
) -> BindingCache:
    """The bounded cache of ``engine``'s bindings over ``states`` for ``batch`` lanes, keyed by call length.

    ``memory``: the per-stream memory feeds of these lanes (runtime/memory.py), bound in every binding.
    """

    def build(time: int) -> Binding:
        return Binding(
            engine.session, engine.layout, states, batch, time, engine.constants, direct=engine.direct_run,
            memory=memory, lengths=lengths,
        )  # fmt: skip

    return BindingCache(build, MAX_BOUND_LENGTHS, MAX_BOUND_BYTES)


def run(engine: Engine, b: Binding, parity: int) -> None:
    """Run binding ``b`` in direction ``parity``; RunError (or Demoted) on failure, nothing committed."""
    try:
        engine.run_bound(b.io[parity], None)
    except Exception as exc:  # onnxruntime raises its own untyped exceptions
        if engine.demote(exc):
            raise Demoted(str(exc)) from None
        raise wrap_run_error(engine, exc) from None


class Slot:
    """Ping-pong state buffers of one stream (batch 1) plus its bindings per call length."""

    __slots__ = ("engine", "owner", "parity", "states", "cache", "b1", "memory")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.owner: Stream | None = None
        self.parity = 0
        self.states = [[alloc(s.concrete_shape(1), s.dtype, s.init) for _ in (0, 1)] for s in engine.spec.states]
        self.memory: Memory | None = None  # the memory its bindings bind (set by ``use`` before any call)
        self.cache = bindings(engine, self.states, 1)
        self.b1 = self.cache.get(1) if engine.plain_step and not engine.spec.memory else None

    def use(self, memory: Memory) -> None:
        """Bind ``memory`` (its owner's): new bindings unless they already bind this very memory."""
        if memory is self.memory:
            return
        engine = self.engine
        self.memory = memory
        self.cache = bindings(engine, self.states, 1, memory.feeds, memory.lengths)
        self.b1 = self.cache.get(1) if engine.plain_step else None

    def current(self) -> list[np.ndarray]:
        p = self.parity
        return [pair[p] for pair in self.states]

    def advance(self, xs: Any, chunk: int, ctx: np.ndarray | None) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Run frames ``xs`` (``(T, *frame)``, or a dict of them) in calls of ``chunk``; all or nothing.

        ``ctx`` is the stream's context window ``(1, K, *frame)`` (updated in place) or None.
        Returns the first output (``(T, ...)``, or one row per call for an output without a
        time axis) and, for a model with several outputs, each output's last frame.
        """
        engine = self.engine
        n = engine.frames_count(xs)
        if n <= chunk and not engine.multi_input:  # one call of one input: the short way
            out = self.one(xs, n, ctx)
            return out, (() if engine.single_output else self.last_of(n))
        start = self.parity
        # One call changes nothing until it succeeded; several are rolled back from these copies.
        saved = [pair[start].copy() for pair in self.states] if n > chunk else None
        saved_ctx = ctx.copy() if ctx is not None and n > chunk else None
        parts: list[np.ndarray] = []
        last: tuple[np.ndarray, ...] = ()
        k = engine.context_frames
        ci = engine.context_index if ctx is not None else None
        ctx0 = ctx[0] if ctx is not None else None
        srcs = [xs[t.name] for t in engine.spec.inputs] if engine.multi_input else [xs]
        try:
            for t0 in range(0, n, chunk):
                t1 = min(n, t0 + chunk)
                b = self.cache.get(t1 - t0)
                for i, (view, src) in enumerate(zip(b.lane0, srcs)):
                    if i == ci:
                        view[:k] = ctx0
                        view[k:] = src[t0:t1]
                    else:
                        view[...] = src[t0:t1]
                p = self.parity
                run(engine, b, p)
                self.parity = p ^ 1
                if ci is not None and ctx0 is not None:
                    ctx0[...] = b.lane0[ci][t1 - t0 :]
                parts.append(b.out0.copy())
                if not engine.single_output:
                    last = tuple((y[0, -1] if t else y[0]).copy() for y, t in zip(b.yv, engine.out_has_time))
        except BaseException:
            self.parity = start
            if saved is not None:
                for pair, value in zip(self.states, saved):
                    pair[start][...] = value
            if ctx is not None and saved_ctx is not None:
                ctx[...] = saved_ctx
            raise
        return engine.join_outputs(parts), last


    def one(self, xs: np.ndarray, n: int, ctx: np.ndarray | None, frame: bool = False) -> np.ndarray:
        """One call of ``n`` frames of the one streamed input; its first output as rows ``(n, ...)`` (a copy).

        The short way every single-call ``push`` and window ``step`` takes (``frame=True``:
        the first frame only, what ``Stream.step`` returns): the binding for ``n`` and its
        context views are made once, the context window ``ctx`` (``(1, K, *frame)``, or None)
        is written in, run, and shifted in place. Nothing changes unless the call succeeds
        (RunError or Demoted otherwise).
        """
        engine = self.engine
        b = self.cache.last
        if b is None or b.time != n:
            b = self.cache.get(n)
        if ctx is None:
            b.lane0[0][...] = xs
        else:  # ``ctx`` is (1, K, *frame), the head (K, *frame): numpy drops the leading 1 (no view made)
            b.head[...] = ctx
            b.body[...] = xs
        p = self.parity
        try:  # run() written out: this is every single-call step's path, one call saved
            engine.run_bound(b.io[p], None)
        except Exception as exc:  # onnxruntime raises its own untyped exceptions
            if engine.demote(exc):
                raise Demoted(str(exc)) from None
            raise wrap_run_error(engine, exc) from None
        self.parity = p ^ 1
        if ctx is not None:
            ctx[...] = b.tail
        return b.y0.copy() if frame else b.rows.copy()

    def last_of(self, n: int) -> tuple[np.ndarray, ...]:
        """Each output's last frame of the latest call of ``n`` frames (copies; several outputs only)."""
        b = self.cache.get(n)
        return tuple((y[0, -1] if t else y[0]).copy() for y, t in zip(b.yv, self.engine.out_has_time))


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
        """A slot for ``stream`` (whose lock the caller holds), loaded with its state (and memory)."""
        memory = stream._memory
        if self.engine.spec.memory and memory is None:
            raise missing_memory(self.engine.spec, self.engine.source)
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
        if memory is not None:
            slot.use(memory)
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
