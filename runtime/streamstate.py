"""Where a stream's state lives, and everything about it but stepping (runtime/stream.py steps).

Exactly one of:
  * its home arrays (``_home``, batch 1, graph layout) — an idle stream holds only these;
  * an engine slot (``_slot``) while it steps on the bound fast path (home is then stale);
  * a lane of a Batch (``_batch``, ``_lane``) while it is a member (home is then None).

Here: the stream's lock (``_held``: a Batch member shares the batch's lock, re-read on entry),
its per-stream memory (``set_memory``; shared with forks, never written), ``state``,
``snapshot`` / ``restore``, ``fork``, ``reset`` and ``close``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from edgernn.runtime.buffers import alloc
from edgernn.runtime.errors import StreamError
from edgernn.runtime.memory import Memory
from edgernn.runtime.memory import check as check_memory

if TYPE_CHECKING:
    from edgernn.runtime.batch import Batch
    from edgernn.runtime.engine import Engine
    from edgernn.runtime.slots import Slot
    from edgernn.runtime.stream import Stream

CLOSED = "stream is closed; create a new one with engine.stream()"
S = TypeVar("S", bound="StreamState")


class StreamState:
    """A stream's state, memory and lock; ``Stream`` (runtime/stream.py) adds the stepping."""

    __slots__ = (
        "engine", "_lock", "_closed", "_slot", "_batch", "_lane", "_home", "_ctx", "_last", "_pending", "_memory",
        "__weakref__",
    )  # fmt: skip
    # declared here for the type checker (Stream, a subclass in another module, reads them all)
    engine: Engine
    _lock: threading.Lock | threading.RLock  # a batch member holds its batch's (re-entrant) lock
    _closed: bool
    _slot: Slot | None
    _batch: Batch | None
    _lane: int
    _home: list[np.ndarray] | None
    _ctx: np.ndarray | None
    _last: Any
    _pending: np.ndarray | None
    _memory: Memory | None

    def __init__(
        self,
        engine: Engine,
        home: list[np.ndarray] | None = None,
        ctx: np.ndarray | None = None,
        pending: np.ndarray | None = None,
        memory: Memory | None = None,
    ) -> None:
        self.engine = engine
        self._memory = memory
        self._lock = threading.Lock()
        self._closed = False
        self._slot = None
        self._batch = None
        self._lane = -1
        self._home = home if home is not None else engine.initial_state()
        self._ctx = ctx if ctx is not None or engine.spec.context is None else engine.initial_context(1)
        self._last = None
        # Window streaming: items received but not yet a whole window, ``(p, *frame)``, p < window.
        self._pending = None
        if engine.window is not None:
            self._pending = pending if pending is not None else engine.no_frames

    def reset(self, memory: Mapping[str, Any] | None = None) -> None:
        """Return to the initial state (and an empty context window); the memory is kept.

        ``memory``: new per-stream memory as for ``set_memory``, checked first (InputError:
        nothing changes), then set with the reset.
        """
        held = check_memory(self.engine.spec, memory, "reset(memory=...)") if memory is not None else None
        with self._held():
            if held is not None:
                self._install(held)
            for s, view in zip(self.engine.spec.states, self._views()):
                view.fill(s.init)
            ctx = self._ctx_view()
            if ctx is not None:
                ctx.fill(0)
            if self._pending is not None:
                self._pending = self.engine.no_frames
            self._last = None

    # -- memory ---------------------------------------------------------------------------

    def set_memory(self, memory: Mapping[str, Any]) -> None:
        """Set this stream's per-stream memory: ``{name: array}`` for every memory tensor of the spec.

        Each array has the spec's shape less the batch axis (e.g. ``(src_len, 256)`` for
        ``['batch', 'src_len', 256]``), a length of 1 to ``max_length``, finite values. Whole
        or nothing: a wrong name, dtype, shape or length is an InputError naming the tensor and
        the axis, and nothing of the stream changes. The state is not touched (``reset(memory=...)``
        sets both). The values are copied.
        """
        held = check_memory(self.engine.spec, memory, "set_memory")
        with self._held():
            self._install(held)

    @property
    def memory(self) -> dict[str, np.ndarray]:
        """The per-stream memory, read-only, as it was given (no batch axis); ``{}`` when none is set."""
        held = self._memory
        return {} if held is None else held.view(self.engine.spec)

    def _install(self, held: Memory | None) -> None:
        """Make ``held`` this stream's memory wherever its state lives (lock held); a batch may refuse it first."""
        if self._batch is not None:
            # StreamError before any change when it cannot be padded (every StreamState is a Stream)
            self._batch._member_memory(cast("Stream", self), held)
        self._memory = held
        slot = self._slot
        if slot is not None:
            if held is None:  # no memory to bind: give the slot up (the next call says what to set)
                with self.engine.pool.lock:
                    self._write_back()
            else:
                slot.use(held)

    # -- state ----------------------------------------------------------------------------

    def state(self) -> dict[str, np.ndarray]:
        """A copy of the current state, keyed by state input name (batch axis of size 1 kept)."""
        with self._held():
            return {s.input: v.copy() for s, v in zip(self.engine.spec.states, self._views())}

    @property
    def last_outputs(self) -> dict[str, np.ndarray]:
        """Every output of the latest frame, keyed by output name (empty before the first call)."""
        last = self._last
        if last is None:
            return {}
        names = self.engine.output_names[: len(self.engine.spec.outputs)]
        if self.engine.single_output:  # a push may have kept its whole result, rows (T, ...): the last row
            return {names[0]: last[-1] if last.ndim > self.engine.first_frame_rank else last}
        return dict(zip(names, last))

    def snapshot(self) -> bytes:
        """The state (and context window, pending window items) as bytes tied to the state contract, checksummed.

        See ``edgernn.runtime.snapshot``: it restores on any stream of the same state contract
        (the graph forms and precisions exported from one checkpoint, any provider).
        """
        from edgernn.runtime.snapshot import encode

        with self._held():
            view = self._ctx_view()
            ctx = view.copy() if view is not None else None
            return encode(self.engine, [v.copy() for v in self._views()], ctx, self._pending, self._memory)

    def restore(self, blob: bytes) -> None:
        """Load a snapshot taken from a stream of the same model; SnapshotError if it is foreign or damaged.

        The snapshot's memory (or its lack of one) becomes this stream's memory.
        """
        from edgernn.runtime.snapshot import decode_all

        states, ctx, pending, held = decode_all(self.engine, blob)
        with self._held():
            if self.engine.spec.memory:
                self._install(held)
            for target, value in zip(self._views(), states):
                target[...] = value
            window = self._ctx_view()
            if window is not None and ctx is not None:
                window[...] = ctx
            if self.engine.window is not None:
                self._pending = pending if pending is not None else self.engine.empty_frames()
            self._last = None

    def fork(self: S) -> S:
        """A new independent stream of the same engine, starting from this stream's current state."""
        with self._held():
            home = [v.copy() for v in self._views()]
            view = self._ctx_view()
            ctx = view.copy() if view is not None else None
            pending = self._pending.copy() if self._pending is not None else None
        return type(self)(self.engine, home, ctx, pending, self._memory)  # the memory is read-only: shared

    def close(self) -> None:
        """Release the state; any later call raises StreamError. Closing twice is allowed."""
        with self._lock_any():
            if self._closed:
                return
            if self._batch is not None:
                self._batch._drop(cast("Stream", self))  # (every StreamState is a Stream)
            if self._slot is not None:
                self.engine.pool.release(self._slot)
                self._slot = None
            self._closed = True
            self._home = None
            self._ctx = None
            self._last = None
            self._memory = None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def batch(self) -> Batch | None:
        """The Batch this stream is a member of, or None."""
        return self._batch

    # -- internals ----------------------------------------------------------------------

    def _views(self) -> list[np.ndarray]:
        """Arrays (batch 1, graph layout) holding the current state, wherever it lives. Lock held."""
        if self._closed:
            raise StreamError(CLOSED)
        if self._slot is not None:
            return self._slot.current()
        if self._batch is not None:
            return self._batch._lane_views(self._lane)
        return self._own_home()

    def _own_home(self) -> list[np.ndarray]:
        """The stream's own state arrays; a StreamError where a batch lane holds the state instead."""
        if self._home is None:
            raise StreamError("this stream's state is held by a batch (it is a member) or was released by close()")
        return self._home

    def _ctx_view(self) -> np.ndarray | None:
        """The context window ``(1, K, *frame)`` wherever it lives (a batch lane for a member), or None."""
        if self._batch is not None and self._batch._ctx is not None:
            return self._batch._ctx[self._lane : self._lane + 1]
        return self._ctx

    def _write_back(self) -> None:
        """Copy the state from the slot home and give the slot up (the pool's lock and ours are held)."""
        slot = self._slot
        if slot is None:
            return
        for home, value in zip(self._own_home(), slot.current()):
            home[...] = value
        self._slot = None
        slot.owner = None

    def _check_open(self) -> None:
        if self._closed:
            raise StreamError(CLOSED)

    def _held(self) -> _Held:
        return _Held(self, check=True)

    def _lock_any(self) -> _Held:
        return _Held(self, check=False)


class _Held:
    """Holds the stream's current lock (re-reading it: joining a batch swaps it); refuses closed streams."""

    __slots__ = ("stream", "lock", "check")

    def __init__(self, stream: StreamState, check: bool) -> None:
        self.stream = stream
        self.check = check

    def __enter__(self) -> threading.Lock | threading.RLock:
        stream = self.stream
        while True:
            lock = stream._lock
            lock.acquire()
            if lock is stream._lock:
                break
            lock.release()
        self.lock = lock
        if self.check and stream._closed:
            lock.release()
            raise StreamError(CLOSED)
        return lock

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def fresh_home(engine: Engine) -> list[np.ndarray]:
    return [alloc(s.concrete_shape(1), s.dtype, s.init) for s in engine.spec.states]
