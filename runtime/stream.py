"""Stream: one caller's recurrent state on a shared Engine.

Where a stream's state lives, exactly one of:
  * its home arrays (``_home``, batch 1, graph layout) — an idle stream holds only these;
  * an engine slot (``_slot``) while it steps on the bound fast path (home is then stale);
  * a lane of a Batch (``_batch``, ``_lane``) while it is a member (home is then None).

A stream of a spec with per-stream memory (``spec.memory``) also holds its ``Memory``
(runtime/memory.py): read-only arrays, set whole by ``set_memory``, kept by ``reset()``,
shared with forks (never written), bound by the slot or batch that runs the stream.

Threads: calls on one stream are serialised by its lock (a Batch member shares the batch's
lock); calls on different streams run concurrently. Every call runs whole or not at all.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from edgernn.runtime import general
from edgernn.runtime.buffers import alloc
from edgernn.runtime.errors import InputError, StreamError
from edgernn.runtime.memory import Memory
from edgernn.runtime.memory import check as check_memory
from edgernn.runtime.slots import Demoted, Slot, wrap_run_error

if TYPE_CHECKING:
    from edgernn.runtime.batch import Batch
    from edgernn.runtime.engine import Engine

CLOSED = "stream is closed; create a new one with engine.stream()"
LAST_VIEW_BYTES = 1 << 16  # ``last_outputs`` keeps a push's result up to this size (no copy), else copies its row


class Stream:
    """One caller's recurrent state on a shared Engine. Create with ``engine.stream()``.

    Example:
        >>> stream = engine.stream()                       # doctest: +SKIP
        >>> y = stream.step(frame)                         # (out features...)
        >>> ys = stream.push(frames)                       # (T, out features...)
        >>> blob = stream.snapshot(); stream.restore(blob)
    """

    __slots__ = (
        "engine", "_lock", "_closed", "_slot", "_batch", "_lane", "_home", "_ctx", "_last", "_pending", "_memory",
        "__weakref__",
    )

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
        self._slot: Slot | None = None
        self._batch: Batch | None = None
        self._lane = -1
        self._home: list[np.ndarray] | None = home if home is not None else engine.initial_state()
        self._ctx = ctx if ctx is not None or engine.spec.context is None else engine.initial_context(1)
        self._last: Any = None
        # Window streaming: items received but not yet a whole window, ``(p, *frame)``, p < window.
        self._pending: np.ndarray | None = None
        if engine.window is not None:
            self._pending = pending if pending is not None else engine.no_frames

    # -- stepping -----------------------------------------------------------------------

    def step(self, frame: Any) -> np.ndarray:
        """Advance by one frame; return the first output for it (batch and time axes dropped).

        A model with several streamed inputs takes a dict ``{input name: frame}``. A model
        with a window (``engine.window`` items per call) takes exactly one window,
        ``(window, *frame)``, with nothing pending (see ``push`` / ``flush``).
        """
        engine = self.engine
        if engine.window is not None:
            xs = engine.check_many(frame)
            lock = self._lock
            if xs.shape[0] == engine.window and engine.single_output:
                with lock:  # the hot case first: a loose stream holding a slot, nothing pending
                    slot = self._slot
                    if slot is not None and lock is self._lock and not self._pending.shape[0]:  # type: ignore[union-attr]
                        try:
                            y = slot.one(xs, engine.window, self._ctx, frame=True)
                        except Demoted:
                            pass  # nothing was committed: the path below runs it on the generic path
                        else:
                            self._last = y
                            return y
            return self._step_window(xs)
        x = engine.check_one(frame)
        lock = self._lock
        lock.acquire()
        try:
            slot = self._slot
            if slot is None or lock is not self._lock:
                if lock is not self._lock or self._closed or self._batch is not None or not engine.plain_step:
                    return self._step_slow(x, lock)
                slot = engine.pool.take(self)
            b = slot.b1
            if b is None:
                return self._step_slow(x, lock)
            b.x0[...] = x
            p = slot.parity
            try:
                engine.run_bound(b.io[p], None)
            except Exception as exc:  # onnxruntime raises its own untyped exceptions
                if engine.demote(exc):
                    return self._step_slow(x, lock)
                raise wrap_run_error(engine, exc) from None
            slot.parity = p ^ 1
            y = b.y0.copy()
            if not engine.single_output:
                rest = ((v[0, 0] if t else v[0]).copy() for v, t in zip(b.yv[1:], engine.out_has_time[1:]))
                self._last = (y, *rest)
            else:
                self._last = y
            return y
        finally:
            lock.release()

    def push(self, frames: Any, chunk: int = 64) -> np.ndarray:
        """Advance by ``len(frames)`` frames in calls of at most ``chunk``; equal to stepping one by one.

        Returns the first output per frame, ``(T, ...)``. For an output without a time axis
        (one value per call) it returns one row per call instead. ``chunk`` is capped at the
        time size the graph fixes, if any.

        Window streaming (a spec with ``window = N``, or a graph whose time axis is fixed at
        N): ``frames`` is any number of items (samples); they are appended to the ones still
        pending, the model runs once per whole window of N (``chunk`` does not apply) and the
        remainder (< N items) waits for the next push. Returns the outputs of the windows
        that ran (possibly none). ``flush()`` runs the remainder zero-padded.

        The returned array is the caller's own (a copy); ``last_outputs`` may share its memory.
        """
        if type(chunk) is not int or chunk < 1:  # bool and numpy ints are refused as before
            raise InputError(f"push: chunk must be an int >= 1, got {chunk!r}")
        engine = self.engine
        xs = engine.check_many(frames)
        window = engine.window
        if window is not None:
            if xs.shape[0] == window and engine.single_output:  # (a window model has one streamed input)
                lock = self._lock
                with lock:  # the hot case first: a loose stream holding a slot, nothing pending, one window
                    slot = self._slot
                    if slot is not None and lock is self._lock and not self._pending.shape[0]:  # type: ignore[union-attr]
                        try:
                            out = slot.one(xs, window, self._ctx)
                        except Demoted:
                            pass  # nothing was committed: the path below runs it on the generic path
                        else:
                            self._last = out if out.nbytes <= LAST_VIEW_BYTES else out[-1].copy()
                            return out
            return self._push_window(xs)
        n = len(next(iter(xs.values()))) if engine.multi_input else xs.shape[0]
        if n == 0:
            self._check_open()
            return engine.empty_output()
        if chunk > engine.max_chunk:
            chunk = engine.max_chunk
        lock = self._lock
        with lock:  # the hot case first: a loose stream that holds a slot
            slot = self._slot
            if slot is not None and lock is self._lock:
                if n <= chunk and not engine.multi_input:
                    return self._one(slot, xs, n)
                return self._advance_slot(slot, xs, chunk)
        with self._held():
            return self._advance(xs, chunk)

    @property
    def pending(self) -> int:
        """Items received by ``push`` that do not yet fill a window (0 without a window)."""
        p = self._pending
        return 0 if p is None else int(p.shape[0])

    def flush(self) -> np.ndarray:
        """Run the pending items as one last window, zero-padded to the window size; return its output.

        The padding is zeros after the pending items (what an audio model sees as silence);
        the state and context window advance as for any window. With nothing pending (or no
        window) it returns an empty result and changes nothing.
        """
        engine = self.engine
        with self._held():
            pending = self._pending
            if engine.window is None or pending is None or pending.shape[0] == 0:
                return engine.empty_output()
            padded = np.zeros((engine.window, *engine.frame_shape), dtype=engine.input_dtype)
            padded[: pending.shape[0]] = pending
            out = self._advance(padded, engine.window)
            self._pending = engine.no_frames
            return out

    def _step_window(self, xs: np.ndarray) -> np.ndarray:
        """``step`` of a window model off its hot path (checked items ``xs``): errors, batches, the generic path."""
        engine = self.engine
        window = engine.window
        if xs.shape[0] != window:
            raise InputError(
                f"input {engine.input.name!r}: step takes one window of {window} items, got {xs.shape[0]}; "
                "push(items) takes any number (the remainder waits for the next push or flush())"
            )
        with self._held():
            if self.pending:
                raise InputError(
                    f"step: {self.pending} items are pending from push(); keep feeding with push() or flush() first"
                )
            return self._advance(xs, window)[0]

    def _one(self, slot: Slot, xs: np.ndarray, n: int) -> np.ndarray:
        """One bound call of ``n`` frames on this stream's slot (its lock held): the hot path of push and step."""
        try:
            out = slot.one(xs, n, self._ctx)
        except Demoted:  # nothing was committed; the engine now runs this model on the generic path
            with self.engine.pool.lock:
                self._write_back()
            return self._advance_general(xs, n)
        if self.engine.single_output:  # a small result (the caller's) is kept whole, no copy; of a large one, a copy
            self._last = out if out.nbytes <= LAST_VIEW_BYTES else out[-1].copy()  # of its last row
        else:
            self._last = slot.last_of(n)
        return out

    def _push_window(self, xs: np.ndarray) -> np.ndarray:
        engine = self.engine
        window = engine.window
        if window is None:  # push takes this path for window models only
            raise StreamError(f"{engine.source}: the spec has no window to buffer samples into")
        with self._held():
            pending = self._pending if self._pending is not None else xs[:0]  # a window stream always has one
            have = pending.shape[0] + xs.shape[0]
            whole = have - have % window
            if whole == 0:
                self._pending = np.concatenate([pending, xs]) if xs.shape[0] else pending
                return engine.empty_output()
            run = np.concatenate([pending, xs[: whole - pending.shape[0]]]) if pending.shape[0] else xs[:whole]
            out = self._advance(run, window)  # all or nothing: the pending items change only after it
            rest = xs.shape[0] - (whole - pending.shape[0])
            self._pending = xs[xs.shape[0] - rest :].copy() if rest else engine.no_frames
            return out

    def _advance(self, xs: Any, chunk: int) -> np.ndarray:
        """Frames through whichever path holds this stream's state (its lock held)."""
        engine = self.engine
        if self._batch is not None:
            return self._batch._advance_member(self, xs, chunk)
        if engine.fast:
            slot = self._slot or engine.pool.take(self)
            return self._advance_slot(slot, xs, chunk)
        if self._slot is not None:  # the engine left the bound path since this stream took its slot
            with engine.pool.lock:
                self._write_back()
        return self._advance_general(xs, chunk)

    def _advance_slot(self, slot: Slot, xs: Any, chunk: int) -> np.ndarray:
        engine = self.engine
        try:
            out, last = slot.advance(xs, chunk, self._ctx)
        except Demoted:  # nothing was committed; the engine now runs this model on the generic path
            with engine.pool.lock:
                self._write_back()
            return self._advance_general(xs, chunk)
        self._last = out[-1].copy() if engine.single_output else last
        return out

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
            self._batch._member_memory(self, held)  # StreamError before any change when it cannot be padded
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

    def fork(self) -> Stream:
        """A new independent stream of the same engine, starting from this stream's current state."""
        with self._held():
            home = [v.copy() for v in self._views()]
            view = self._ctx_view()
            ctx = view.copy() if view is not None else None
            pending = self._pending.copy() if self._pending is not None else None
        return Stream(self.engine, home, ctx, pending, self._memory)  # the memory is read-only: shared

    def close(self) -> None:
        """Release the state; any later call raises StreamError. Closing twice is allowed."""
        with self._lock_any():
            if self._closed:
                return
            if self._batch is not None:
                self._batch._drop(self)
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

    def _step_slow(self, x: Any, lock: threading.Lock) -> np.ndarray:
        """Called holding ``lock``: a stream in a batch, closed, or on the generic path."""
        if lock is not self._lock:  # joined a batch while we waited: retry under the batch lock
            lock.release()
            try:
                return self.step(x)
            finally:
                lock.acquire()
        if self._closed:
            raise StreamError(CLOSED)
        return self._advance(self.engine.one_as_many(x), 1)[0]

    def _advance_general(self, xs: Any, chunk: int) -> np.ndarray:
        """The generic path for a loose stream (lock held): calls of ``chunk`` frames, committed at the end."""
        engine = self.engine
        states, ctx = self._own_home(), self._ctx
        mem = self._memory.feeds if self._memory is not None else None
        parts: list[np.ndarray] = []
        last: list[np.ndarray] = []
        n = engine.frames_count(xs)
        for t0 in range(0, n, chunk):
            inputs = engine.slice_frames(xs, t0, min(n, t0 + chunk))
            outs, states, new_ctx = general.call(engine, states, ctx, inputs, 1, memory=mem)
            ctx = new_ctx if new_ctx is not None else ctx
            parts.append(outs[0][0])
            last = [o[0] for o in outs]
        joined = engine.join_outputs(parts)  # before committing: RunError when the widths differ per call
        self._home, self._ctx = states, ctx
        self._last = engine.last_from(last)
        return joined

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

    def __init__(self, stream: Stream, check: bool) -> None:
        self.stream = stream
        self.check = check

    def __enter__(self) -> threading.Lock:
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
