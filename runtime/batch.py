"""Many streams, one call: Batch (members whose state lives in lanes) and ragged step_many.

A ``Batch`` keeps its members' state in lane buffers laid out as the graph wants them
(batch axis wherever the spec puts it), two per state (ping-pong), so ``Batch.step`` — one
frame for every member — is one bound onnxruntime call with no gather and no scatter.
``step_many`` takes a different number of frames per stream (0 included): it runs one call
per distinct frame count, each on the lanes that still have frames (gathered with one
``np.take`` per state), and leaves the others untouched. The result equals running each
stream alone (to float rounding: batched matrix products may sum in another order).

Membership: ``join`` / ``leave`` at any time (a member's lock is the batch's lock, so a
member and a batch call never run at once); at most ``max_streams`` members; with
``idle_after`` seconds, ``join`` on a full batch first evicts members idle that long,
calling ``on_evict(stream)`` before closing each (snapshot it there to keep its state).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from edgernn.runtime import general
from edgernn.runtime.buffers import alloc, lane_index
from edgernn.runtime.errors import InputError, StreamError
from edgernn.runtime.slots import MAX_BOUND_LENGTHS, Bound, wrap_run_error
from edgernn.runtime.stream import CLOSED, Stream

if TYPE_CHECKING:
    from edgernn.runtime.engine import Engine


class Batch:
    """Up to ``max_streams`` streams of one engine advanced together. Create with ``engine.batch()``.

    Example:
        >>> batch = engine.batch(max_streams=8)            # doctest: +SKIP
        >>> a, b = batch.join(), batch.join()
        >>> ys = batch.step(frames)                         # frames[i] for batch.streams[i]
        >>> outs = batch.step_many({a: frames_a, b: []})    # b keeps its state
    """

    def __init__(
        self,
        engine: Engine,
        max_streams: int = 64,
        idle_after: float | None = None,
        on_evict: Callable[[Stream], Any] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if max_streams < 1:
            raise ValueError(f"max_streams must be >= 1, got {max_streams}")
        self.engine = engine
        self.max_streams = max_streams
        self.idle_after = idle_after
        self.on_evict = on_evict
        self.clock = clock or time.monotonic
        self._lock = threading.RLock()  # shared by the members; re-entrant so on_evict may use the stream
        self._members: list[Stream] = []
        self._bufs = [[alloc(s.concrete_shape(0), s.dtype) for _ in (0, 1)] for s in engine.spec.states]
        self._parity = 0
        self._ctx = engine.initial_context(0) if engine.spec.context is not None else None
        self._bound: dict[int, Bound] = {}
        self._used = np.zeros(0)

    # -- membership -----------------------------------------------------------------------

    @property
    def streams(self) -> tuple[Stream, ...]:
        """The members in lane order (the order ``step`` reads frames in)."""
        return tuple(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def join(self, stream: Stream | None = None) -> Stream:
        """Add ``stream`` (a loose stream of this engine; its state moves in) or a new one; return it."""
        with self._lock:
            if len(self._members) >= self.max_streams:
                self.evict_idle()
            if len(self._members) >= self.max_streams:
                raise StreamError(f"batch is full ({self.max_streams} streams); leave or close one first")
            if stream is None:
                stream = Stream(self.engine)
            if not isinstance(stream, Stream):
                raise StreamError(f"a batch takes edgernn Streams, got {type(stream).__name__} (foreign stream)")
            if stream.engine is not self.engine:
                raise StreamError("this stream belongs to another engine (foreign stream)")
            old = stream._lock
            with old:
                if stream._closed:
                    raise StreamError(CLOSED)
                if stream._batch is not None:
                    raise StreamError("this stream is already a member of a batch; leave it first")
                if stream._slot is not None:
                    with self.engine.pool.lock:
                        stream._write_back()
                self._insert(stream._own_home(), stream._ctx)
                stream._batch, stream._lane = self, len(self._members)
                stream._home = stream._ctx = None
                self._members.append(stream)
                stream._lock = self._lock
            return stream

    def leave(self, stream: Stream) -> None:
        """Take ``stream`` out; it keeps its state and goes on as a loose stream."""
        with self._lock:
            self._member(stream)
            views = self._lane_views(stream._lane)
            stream._home = [v.copy() for v in views]
            if self._ctx is not None:
                stream._ctx = self._ctx[stream._lane : stream._lane + 1].copy()
            self._remove(stream)
            stream._lock = threading.Lock()

    def evict_idle(self, now: float | None = None) -> list[Stream]:
        """Close members idle for more than ``idle_after`` seconds (calling ``on_evict`` first); return them."""
        if self.idle_after is None:
            return []
        with self._lock:
            now = self.clock() if now is None else now
            idle = [s for s in self._members if now - self._used[s._lane] > self.idle_after]
            for s in idle:
                if self.on_evict is not None:
                    self.on_evict(s)
                s.close()
            return idle

    def close(self) -> None:
        """Close every member."""
        with self._lock:
            for s in list(self._members):
                s.close()

    # -- stepping ---------------------------------------------------------------------------

    def step(self, frames: Any) -> np.ndarray:
        """One frame per member, ``frames[i]`` for ``streams[i]``; returns the first output ``(n, ...)``."""
        engine = self.engine
        xs = engine.check_many(frames)
        with self._lock:
            n = len(self._members)
            if engine.frames_count(xs) != n:
                raise InputError(f"batch.step: expected one frame per member ({n}), got {engine.frames_count(xs)}")
            if n == 0:
                return engine.empty_output()
            if engine.fast:
                b = self._bound.get(1) or self._bind(1)
                b.x[:, 0] = xs
                p = self._parity
                try:
                    engine.run_bound(b.io[p], None)
                except Exception as exc:  # onnxruntime raises its own untyped exceptions
                    raise wrap_run_error(engine, exc) from None
                self._parity = p ^ 1
                out = b.ys[0][:, 0].copy()
            else:
                inputs = (
                    {k: v[:, None] for k, v in xs.items()} if engine.multi_input else {engine.input.name: xs[:, None]}
                )
                outs = self._commit_general(inputs, np.arange(n))
                out = outs[0][:, 0] if engine.out_has_time[0] else outs[0]
            self._used.fill(self.clock())
            return out

    def step_many(self, feeds: Mapping[Stream, Any]) -> dict[Stream, np.ndarray]:
        """Advance members by different numbers of frames (``{stream: (T_i, ...)}``); others are untouched."""
        streams = list(feeds)
        outs = step_many(self.engine, streams, [feeds[s] for s in streams])
        return dict(zip(streams, outs))

    # -- internals (batch lock held) ---------------------------------------------------------

    def _member(self, stream: Stream) -> None:
        if stream._batch is not self:
            if stream._closed:
                raise StreamError(CLOSED)
            raise StreamError("this stream is not a member of this batch (foreign stream)")

    def _lane_views(self, lane: int) -> list[np.ndarray]:
        p = self._parity
        return [
            pair[p][lane_index(s.batch_axis, slice(lane, lane + 1))]
            for s, pair in zip(self.engine.spec.states, self._bufs)
        ]

    def _insert(self, home: list[np.ndarray], ctx: np.ndarray | None) -> None:
        p = self._parity
        for s, pair, value in zip(self.engine.spec.states, self._bufs, home):
            grown = np.ascontiguousarray(np.concatenate([pair[p], value], axis=s.batch_axis))
            pair[p], pair[p ^ 1] = grown, np.empty_like(grown)
        if self._ctx is not None:
            add = ctx if ctx is not None else self.engine.initial_context(1)
            self._ctx = np.concatenate([self._ctx, add])
        self._used = np.append(self._used, self.clock())
        self._bound = {}

    def _remove(self, stream: Stream) -> None:
        lane = stream._lane
        p = self._parity
        for s, pair in zip(self.engine.spec.states, self._bufs):
            kept = np.ascontiguousarray(np.delete(pair[p], lane, axis=s.batch_axis))
            pair[p], pair[p ^ 1] = kept, np.empty_like(kept)
        if self._ctx is not None:
            self._ctx = np.delete(self._ctx, lane, axis=0)
        self._used = np.delete(self._used, lane)
        del self._members[lane]
        for i, m in enumerate(self._members[lane:], start=lane):
            m._lane = i
        stream._batch, stream._lane = None, -1
        self._bound = {}

    def _drop(self, stream: Stream) -> None:
        """A member is being closed: forget its lane (called from Stream.close, lock held)."""
        self._remove(stream)

    def _bind(self, time: int) -> Bound:
        b = self._bound[time] = Bound(self.engine, self._bufs, len(self._members), time)
        return b

    def _commit_general(self, inputs: dict[str, np.ndarray], lanes: np.ndarray) -> list[np.ndarray]:
        """All lanes, one generic call; the new state is written only if the call succeeds."""
        engine = self.engine
        p = self._parity
        outs, new, new_ctx = general.call(engine, [pair[p] for pair in self._bufs], self._ctx, inputs, len(lanes))
        for pair, value in zip(self._bufs, new):
            pair[p][...] = value
        if new_ctx is not None:
            self._ctx = new_ctx
        return outs

    def _advance_member(self, stream: Stream, xs: Any, chunk: int) -> np.ndarray:
        """``stream.step`` / ``push`` on a member: a ragged call with only its lane."""
        del chunk  # one call for all of the member's frames
        return step_many(self.engine, [stream], [xs], checked=True)[0]


def step_many(
    engine: Engine, streams: Sequence[Stream], frames: Sequence[Any], checked: bool = False
) -> list[np.ndarray]:
    """See ``Engine.step_many``: ragged frames for any streams of ``engine`` (loose, or members of one batch)."""
    if len(streams) != len(frames):
        raise InputError(f"step_many: {len(streams)} streams but {len(frames)} frame sequences")
    if len({id(s) for s in streams}) != len(streams):
        raise InputError("step_many: a stream is listed twice")
    for s in streams:
        if not isinstance(s, Stream) or s.engine is not engine:
            raise StreamError("step_many: a stream belongs to another engine (foreign stream)")
    stacked = None
    if not checked and not engine.multi_input and _same_arrays(frames, engine.frame_shape):
        # Equal-length arrays of whole frames (the common batched call): stack once, validate once.
        raw = np.stack(frames)  # (n, T, *frame)
        stacked = engine.check_many(raw.reshape(-1, *engine.frame_shape)).reshape(raw.shape)
        xs: list[Any] = list(stacked)
    else:
        xs = [None if _empty(f) else (f if checked else engine.check_many(f)) for f in frames]
    counts = [0 if x is None else engine.frames_count(x) for x in xs]
    batches = {id(s._batch): s._batch for s in streams}
    batch = next(iter(batches.values())) if len(batches) == 1 else None
    if batch is not None:
        with batch._lock:
            for s in streams:
                batch._member(s)
            return _ragged_batch(batch, streams, xs, counts, stacked)
    if any(b is not None for b in batches.values()):
        raise StreamError("step_many: mix of batch members and other streams; use one batch or loose streams")
    return _ragged_loose(engine, streams, xs, counts)


def _same_arrays(frames: Sequence[Any], frame_shape: tuple[int, ...]) -> bool:
    first = frames[0] if len(frames) else None
    if type(first) is not np.ndarray or first.ndim == 0 or first.shape[0] == 0 or first.shape[1:] != frame_shape:
        return False
    return all(type(f) is np.ndarray and f.shape == first.shape and f.dtype == first.dtype for f in frames)


def _empty(f: Any) -> bool:
    return f is None or (not isinstance(f, Mapping) and len(f) == 0)


def _ragged_batch(
    batch: Batch, streams: Sequence[Stream], xs: list[Any], counts: list[int], stacked: np.ndarray | None = None
) -> list[np.ndarray]:
    engine = batch.engine
    n = len(batch._members)
    lanes = [s._lane for s in streams]
    uniform = len(streams) == n and len(set(counts)) == 1 and counts[0] > 0
    if uniform and engine.fast and (counts[0] in batch._bound or len(batch._bound) < MAX_BOUND_LENGTHS):
        # Every member, the same count: the bound path, frames in lane order.
        if stacked is not None and lanes == list(range(n)):  # given in lane order: no reordering
            return list(_bound_push(batch, stacked))
        order = np.argsort(lanes)
        out = _bound_push(batch, np.stack([xs[i] for i in order]))  # (n, T, *frame) in lane order
        back = np.empty_like(order)
        back[order] = np.arange(n)
        return [out[back[i]] for i in range(n)]
    p = batch._parity
    cur = [pair[p] for pair in batch._bufs]
    outs, new, ctx = _rounds(engine, cur, batch._ctx, lanes, xs, counts)
    for pair, value in zip(batch._bufs, new):
        pair[p][...] = value
    if ctx is not None:
        batch._ctx = ctx
    now = batch.clock()
    for lane, c in zip(lanes, counts):
        if c:
            batch._used[lane] = now
    return outs


def _bound_push(batch: Batch, xs: np.ndarray) -> np.ndarray:
    engine = batch.engine
    time_ = xs.shape[1]
    b = batch._bound.get(time_) or batch._bind(time_)
    b.x[...] = xs
    p = batch._parity
    try:
        engine.run_bound(b.io[p], None)
    except Exception as exc:  # onnxruntime raises its own untyped exceptions
        raise wrap_run_error(engine, exc) from None
    batch._parity = p ^ 1
    batch._used.fill(batch.clock())
    return b.ys[0].copy()


def _ragged_loose(engine: Engine, streams: Sequence[Stream], xs: list[Any], counts: list[int]) -> list[np.ndarray]:
    ordered = sorted(streams, key=id)  # one lock order for every caller: no deadlock
    held: list[threading.Lock] = []
    try:
        for s in ordered:
            s._lock.acquire()
            held.append(s._lock)
            if s._closed:
                raise StreamError(CLOSED)
        views = [s._views() for s in streams]
        spec = engine.spec
        cur = [np.concatenate([v[k] for v in views], axis=st.batch_axis) for k, st in enumerate(spec.states)]
        ctx = None
        if spec.context is not None:
            ctx = np.concatenate([s._ctx for s in streams if s._ctx is not None])
        outs, new, new_ctx = _rounds(engine, cur, ctx, list(range(len(streams))), xs, counts)
        for i, (s, v) in enumerate(zip(streams, views)):
            for k, st in enumerate(spec.states):
                v[k][...] = new[k][lane_index(st.batch_axis, slice(i, i + 1))]
            if new_ctx is not None:
                s._ctx = new_ctx[i : i + 1].copy()
        return outs
    finally:
        for lock in held:
            lock.release()


def _rounds(
    engine: Engine, states: list[np.ndarray], ctx: np.ndarray | None, lanes: list[int], xs: list[Any], counts: list[int]
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray | None]:
    """Pure: one generic call per distinct frame count; returns (outputs per stream, new states, new ctx)."""
    spec = engine.spec
    cur = [s.copy() for s in states]
    cur_ctx = ctx.copy() if ctx is not None else None
    parts: list[list[np.ndarray]] = [[] for _ in lanes]
    prev = 0
    levels = sorted({c for c in counts if c > 0})
    if engine.max_chunk == 1 and levels:  # an input without a time axis: one frame per call
        levels = list(range(1, levels[-1] + 1))
    for c in levels:
        who = [i for i, k in enumerate(counts) if k >= c]
        idx = np.array([lanes[i] for i in who])
        inputs = {name: np.stack([_frames(engine, xs[i], name)[prev:c] for i in who]) for name in engine.checks}
        sub = [np.take(s, idx, axis=st.batch_axis) for s, st in zip(cur, spec.states)]
        sub_ctx = cur_ctx[idx] if cur_ctx is not None else None
        outs, new, new_ctx = general.call(engine, sub, sub_ctx, inputs, len(who))
        for s, st, value in zip(cur, spec.states, new):
            s[lane_index(st.batch_axis, idx)] = value
        if cur_ctx is not None and new_ctx is not None:
            cur_ctx[idx] = new_ctx
        for j, i in enumerate(who):
            parts[i].append(outs[0][j])
        prev = c
    results = [engine.join_outputs(p) if p else engine.empty_output() for p in parts]
    return results, cur, cur_ctx


def _frames(engine: Engine, x: Any, name: str) -> np.ndarray:
    return x[name] if engine.multi_input else x
