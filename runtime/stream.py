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

This module steps (``step``, ``push``, ``flush``); runtime/streamstate.py holds the rest of a
stream (``StreamState``, its base class: state, memory, snapshot / restore, fork, reset, close).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from edgernn.runtime import general
from edgernn.runtime.errors import InputError, StreamError
from edgernn.runtime.slots import Demoted, Slot, wrap_run_error
from edgernn.runtime.streamstate import CLOSED, StreamState, fresh_home

__all__ = ["CLOSED", "LAST_VIEW_BYTES", "Stream", "fresh_home"]  # CLOSED, fresh_home: streamstate.py's, as before

LAST_VIEW_BYTES = 1 << 16  # ``last_outputs`` keeps a push's result up to this size (no copy), else copies its row


class Stream(StreamState):
    """One caller's recurrent state on a shared Engine. Create with ``engine.stream()``.

    Example:
        >>> stream = engine.stream()                       # doctest: +SKIP
        >>> y = stream.step(frame)                         # (out features...)
        >>> ys = stream.push(frames)                       # (T, out features...)
        >>> blob = stream.snapshot(); stream.restore(blob)
    """

    __slots__ = ()  # the attributes are StreamState's

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
        if window is None:  # step sends only a window model's items here
            raise StreamError(f"{engine.source}: not a window model (its spec declares no window)")
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

    # -- internals ----------------------------------------------------------------------

    def _step_slow(self, x: Any, lock: threading.Lock | threading.RLock) -> np.ndarray:
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
