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

Per-stream memory (``spec.memory``): the members' memories are padded into one buffer per
memory tensor, each length axis to the members' longest, with the mask 0.0 on the padding
(``runtime/memory.pad``); rebuilt when a member joins, leaves or sets its memory.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from edgernn.runtime import args, general
from edgernn.runtime.binding import Binding, BindingCache
from edgernn.runtime.buffers import alloc, lane_index
from edgernn.runtime.errors import InputError, StreamError
from edgernn.runtime.memory import Memory
from edgernn.runtime.memory import missing as missing_memory
from edgernn.runtime.memory import pad as pad_memory
from edgernn.runtime.ragged import step_many
from edgernn.runtime.slots import Demoted, bindings, run
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
        self.engine = engine
        self.max_streams = args.count("Engine.batch", "max_streams", max_streams, lo=1)  # checked before any work
        self.idle_after = args.seconds("Engine.batch", "idle_after", idle_after)
        self.on_evict = args.function("Engine.batch", "on_evict", on_evict)
        self.clock = args.function("Engine.batch", "clock", clock) or time.monotonic
        self._lock = threading.RLock()  # shared by the members; re-entrant so on_evict may use the stream
        self._members: list[Stream] = []
        self._bufs = [[alloc(s.concrete_shape(0), s.dtype) for _ in (0, 1)] for s in engine.spec.states]
        self._parity = 0
        self._ctx = engine.initial_context(0) if engine.spec.context is not None else None
        self._bound: BindingCache = bindings(engine, self._bufs, 0)
        self._used = np.zeros(0)
        self._mem: dict[str, np.ndarray] | None = None  # the members' memory feeds, padded (memory specs)
        self._mem_missing: list[int] = []  # lanes whose stream holds no memory yet
        self._used_all = -math.inf  # when a call last advanced every member (``_used`` holds the others)
        # The lean all-members calls (``lean_views``): one streamed input, no context window, no window.
        self._lean = not (engine.multi_input or engine.window is not None or engine.context_index is not None)
        self._views: LeanViews | None = None

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
            cap = self.engine.max_batch
            if cap is not None and len(self._members) >= cap:
                raise StreamError(
                    f"{self.engine.source}: the graph fixes the batch axis to {cap}: a batch of this model holds "
                    f"at most {cap} stream(s); step the others as loose streams (engine.step_many runs them one by one)"
                )
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
                if self.engine.spec.memory:  # refused before any change when it cannot be padded
                    pad_memory(self.engine.spec, [m._memory for m in self._members] + [stream._memory])
                if stream._slot is not None:
                    with self.engine.pool.lock:
                        stream._write_back()
                self._insert(stream._own_home(), stream._ctx)
                stream._batch, stream._lane = self, len(self._members)
                stream._home = stream._ctx = None
                self._members.append(stream)
                stream._lock = self._lock
                self._rebind()
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
        now = args.seconds("Batch.evict_idle", "now", now, minimum=None)
        if self.idle_after is None:
            return []
        with self._lock:
            now = self.clock() if now is None else now
            idle = [s for s in self._members if now - max(self._used[s._lane], self._used_all) > self.idle_after]
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
        with self._lock:
            out = self._lean_step(frames)
        if out is not None:
            return out
        xs = engine.check_many(frames)
        with self._lock:
            n = len(self._members)
            if engine.frames_count(xs) != n:
                raise InputError(f"batch.step: expected one frame per member ({n}), got {engine.frames_count(xs)}")
            if n == 0:
                return engine.empty_output()
            if engine.window is not None:
                raise InputError("batch.step: this model takes windows; use step_many({stream: items}) or push")
            if self._mem_missing:
                raise self._no_memory(self._mem_missing[0])
            out = None
            if engine.fast and engine.context_index is None:
                b = self._bound.get(1)
                for t, view in zip(engine.spec.inputs, b.xv):
                    view[:, 0] = xs[t.name] if engine.multi_input else xs
                p = self._parity
                try:
                    run(engine, b, p)
                    self._parity = p ^ 1
                    out = (b.yv[0][:, 0] if engine.out_has_time[0] else b.yv[0]).copy()
                except Demoted:
                    out = None
            if out is None:
                inputs = (
                    {k: v[:, None] for k, v in xs.items()} if engine.multi_input else {engine.input.name: xs[:, None]}
                )
                outs = self._commit_general(inputs, np.arange(n))
                out = outs[0][:, 0] if engine.out_has_time[0] else outs[0]
            self._used_all = self.clock()
            return out

    def _lean_step(self, frames: Any) -> np.ndarray | None:
        """``step`` in the common case, lean (see ``lean_views``); None (nothing done) unless it is one.

        The frames (an array of the input's dtype, one frame per member) go straight into the
        bound input buffer and are tested there; anything else, or frames that fail a test,
        return None and ``step`` checks, refuses or runs them the general way.
        """
        engine = self.engine
        n = len(self._members)
        if not (self._lean and engine.fast) or type(frames) is not np.ndarray or not n or self._mem_missing:
            return None
        shape = frames.shape
        if not shape or shape[0] != n or shape[1:] != engine.frame_shape:
            return None
        v = self.lean_views(1)
        if frames.dtype is not v.dtype:
            return None
        v.step_in[...] = frames
        if not v.test():
            return None
        return self.lean_run(v.b, v.step_out)

    def lean_run(self, b: Any, out: np.ndarray) -> np.ndarray | None:
        """One lean call on binding ``b`` (its input already written and tested; lock held): a copy of
        ``out``, or None when the slot demoted (nothing changed: the caller takes the general path)."""
        p = self._parity
        try:
            run(self.engine, b, p)
        except Demoted:
            return None
        self._parity = p ^ 1
        res = out.copy()  # the caller's: the next call writes the bound buffer again
        self._used_all = self.clock()
        return res

    def lean_views(self, time: int) -> LeanViews:
        """The views of this batch's binding for calls of ``time`` frames, made once per binding (lock held)."""
        b = self._bound.get(time)
        v = self._views
        if v is None or v.b is not b:
            v = self._views = LeanViews(self.engine, b)
        return v

    def step_many(self, feeds: Mapping[Stream, Any], chunk: int = 64) -> dict[Stream, np.ndarray]:
        """Advance members by different numbers of frames (``{stream: (T_i, ...)}``); others are untouched.

        Equal to ``push(frames, chunk)`` on each member alone (see ``edgernn.runtime.batch.step_many``).
        """
        if not isinstance(feeds, Mapping):
            raise InputError(f"batch.step_many takes a dict {{stream: frames}}, got {type(feeds).__name__}")
        streams = list(feeds)
        outs = step_many(self.engine, streams, [feeds[s] for s in streams], chunk=chunk)
        return dict(zip(streams, outs))

    # -- internals (batch lock held) ---------------------------------------------------------

    def _member(self, stream: Stream) -> None:
        if getattr(stream, "_batch", None) is not self:
            if not isinstance(stream, Stream):
                raise StreamError(f"a batch takes edgernn Streams, got {type(stream).__name__} (foreign stream)")
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
        self._rebind()

    def _rebind(self) -> None:
        """Bindings for the current members (and their memories, padded); after every change of either."""
        self._bind_memory([m._memory for m in self._members])

    def _bind_memory(self, mems: list[Memory | None]) -> None:
        spec = self.engine.spec
        feeds: dict[str, np.ndarray] | None = None
        lengths: dict[str, int] | None = None
        missing: list[int] = []
        if spec.memory and mems:
            feeds, lengths, missing = pad_memory(spec, mems)
        self._bound = bindings(self.engine, self._bufs, len(mems), feeds, lengths)
        self._views = None
        self._mem, self._mem_missing = feeds, missing

    def _member_memory(self, stream: Stream, held: Memory | None) -> None:
        """Member ``stream`` sets its memory to ``held``: re-pad (StreamError before any change if it cannot)."""
        self._member(stream)
        self._bind_memory([held if m is stream else m._memory for m in self._members])

    def _no_memory(self, lane: int) -> StreamError:
        err = missing_memory(self.engine.spec, self.engine.source)
        return StreamError(f"batch member {lane} (batch.streams[{lane}]): {err}")

    def _drop(self, stream: Stream) -> None:
        """A member is being closed: forget its lane (called from Stream.close, lock held)."""
        self._remove(stream)

    def _commit_general(self, inputs: dict[str, np.ndarray], lanes: np.ndarray) -> list[np.ndarray]:
        """All lanes, one generic call; the new state is written only if the call succeeds."""
        engine = self.engine
        p = self._parity
        outs, new, new_ctx = general.call(
            engine, [pair[p] for pair in self._bufs], self._ctx, inputs, len(lanes), memory=self._mem
        )
        for pair, value in zip(self._bufs, new):
            pair[p][...] = value
        if new_ctx is not None:
            self._ctx = new_ctx
        return outs

    def _advance_member(self, stream: Stream, xs: Any, chunk: int) -> np.ndarray:
        """``stream.step`` / ``push`` on a member: its lane alone, in calls of at most ``chunk`` frames."""
        return step_many(self.engine, [stream], [xs], checked=True, chunk=chunk)[0]




class LeanViews:
    """One binding's views for the lean calls of every member (``Batch.lean_views``), made once.

    A slice or a method call costs several times its warm cost between two onnxruntime
    calls (the interpreter's caches are cold there), so the all-members calls (``Batch.step``,
    ``step_many`` with equal frame counts in lane order) use these: the input in stream
    layout ``(batch, T, *frame)`` and, where the graph's layout lets it, flat ``(batch * T,
    *frame)`` (one concatenate writes every stream's frames); the first output; the one-frame
    views; and the input's value test over the whole buffer (``FrameCheck.buffer_test``).
    """

    __slots__ = ("b", "dtype", "xin", "flat", "out", "step_in", "step_out", "test")

    def __init__(self, engine: Engine, b: Binding) -> None:
        check = engine.checks[engine.input.name]
        self.b = b
        self.dtype = check.dtype
        self.xin = b.xv[0]
        self.flat = b.xs[0].reshape(-1, *engine.frame_shape) if self.xin.flags.c_contiguous else None
        y = b.yv[0]
        self.out = y if engine.out_has_time[0] else y[:, None]
        self.step_in = self.xin[:, 0]
        self.step_out = y[:, 0] if engine.out_has_time[0] else y
        self.test = check.buffer_test(b.xs[0])
