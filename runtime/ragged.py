"""Ragged steps: a different number of frames per stream, in as few calls as the spec allows.

``step_many(engine, streams, frames, chunk)`` equals ``push(frames[i], chunk)`` on each
stream alone (to float rounding: batched matrix products may sum in another order):

* without a context window (and no window), call boundaries do not change the result, so
  the streams advance together, one call per interval between distinct frame counts (and
  at most ``chunk`` frames per call);
* with a context window or a window, a call's boundaries are part of the result (the
  context is prepended once per call), so each stream's frames are cut exactly as ``push``
  cuts them, at multiples of ``chunk`` (the window, for a window spec), and the calls of one
  round with the same length run together;
* a graph whose batch axis is fixed (often at 1) gets calls of at most that many streams;
* window streams take any number of items: the pending remainder is prepended, whole
  windows run, the new remainder is kept; committed only when every call succeeded.

Locks (the one order of the whole runtime, see ARCHITECTURE.md): a batch's lock, then
stream locks in ``id`` order, then the engine's slot pool lock. A thread holding stream
locks never waits for a batch lock: when a stream joins a batch while ``step_many`` waits
for it, every lock taken is released and the call is refused (StreamError), not hung.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from operator import is_
from typing import TYPE_CHECKING, Any

import numpy as np

from edgernn.runtime import general
from edgernn.runtime.buffers import lane_index
from edgernn.runtime.errors import InputError, StreamError
from edgernn.runtime.memory import missing as missing_memory
from edgernn.runtime.memory import pad as pad_memory
from edgernn.runtime.memory import take as take_memory
from edgernn.runtime.slots import Demoted, run
from edgernn.runtime.stream import CLOSED, Stream

_SEQ = (list, tuple)

if TYPE_CHECKING:
    from edgernn.runtime.batch import Batch
    from edgernn.runtime.engine import Engine


def step_many(
    engine: Engine, streams: Sequence[Stream], frames: Sequence[Any], checked: bool = False, chunk: int = 64
) -> list[np.ndarray]:
    """See ``Engine.step_many``: ragged frames for any streams of ``engine`` (loose, or members of one batch)."""
    if not checked:
        outs = _members_call(engine, streams, frames, chunk)
        if outs is not None:
            return outs
    if isinstance(streams, (str, bytes, Mapping)) or not isinstance(streams, Sequence):
        raise InputError(f"step_many: streams must be a list of streams, got {type(streams).__name__}")
    if isinstance(frames, (str, bytes, Mapping)) or not isinstance(frames, Sequence):
        raise InputError(
            f"step_many: frames must be a list (one frame sequence per stream), got {type(frames).__name__}"
        )
    if len(streams) == 0:
        raise InputError("step_many: no streams given (expected at least one stream and its frames)")
    if len(streams) != len(frames):
        raise InputError(f"step_many: {len(streams)} streams but {len(frames)} frame sequences")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise InputError(f"step_many: chunk must be an int >= 1, got {chunk!r}")
    if len({id(s) for s in streams}) != len(streams):
        raise InputError("step_many: a stream is listed twice")
    for s in streams:
        if not isinstance(s, Stream) or s.engine is not engine:
            raise StreamError("step_many: a stream belongs to another engine (foreign stream)")
    xs = [f if checked else _check(engine, i, f) for i, f in enumerate(frames)]
    cut = engine.window if engine.window is not None else min(chunk, engine.max_chunk)
    windowed = engine.window is not None and not checked
    batches = {id(s._batch): s._batch for s in streams}
    batch = next(iter(batches.values())) if len(batches) == 1 else None
    if batch is not None:
        with batch._lock:
            for s in streams:
                batch._member(s)
            return _ragged_batch(batch, streams, xs, cut, windowed)
    if any(b is not None for b in batches.values()):
        raise StreamError("step_many: mix of batch members and other streams; use one batch or loose streams")
    return _ragged_loose(engine, streams, xs, cut, windowed)


def _members_call(engine: Engine, streams: Any, frames: Any, chunk: Any) -> list[np.ndarray] | None:
    """The common batched call, lean: None (nothing done) unless it is one.

    That is: ``streams`` are exactly the members of one batch in lane order, each with the
    same number ``T`` (``0 < T <= chunk``) of frames as arrays of the input's dtype and frame
    shape, on the bound path, one streamed input, no context or window. Then the frames are
    written straight into the bound input buffer, tested there once (the value tests of the
    per-stream checks) and run in one call, with no per-stream Python beyond one shape test:
    between two onnxruntime calls the interpreter's caches are cold and every line costs
    several times its warm cost. Anything else (or a frame that fails a test) returns None
    before any state is touched; the general path then checks, refuses or runs it.
    """
    if type(streams) not in _SEQ or type(frames) not in _SEQ or type(chunk) is not int or not streams:
        return None
    batch = getattr(streams[0], "_batch", None)
    if batch is None or not (batch._lean and engine.fast) or len(frames) != len(streams):
        return None
    x0 = frames[0]
    if type(x0) is not np.ndarray:
        return None
    shape, dtype = x0.shape, x0.dtype
    if not shape or shape[1:] != engine.frame_shape or not 0 < shape[0] <= min(chunk, engine.max_chunk):
        return None
    for f in frames:
        if type(f) is not np.ndarray or f.shape != shape or f.dtype is not dtype:
            return None
    with batch._lock:
        members = batch._members
        if len(members) != len(streams) or batch._mem_missing or not all(map(is_, members, streams)):
            return None
        v = batch.lean_views(shape[0])
        if dtype is not v.dtype:
            return None
        if v.flat is not None:
            np.concatenate(frames, out=v.flat)
        else:
            np.stack(frames, out=v.xin)
        if not v.test():
            return None  # the general path names the frame and what is wrong
        out = batch.lean_run(v.b, v.out)
    return None if out is None else list(out)


def _check(engine: Engine, i: int, f: Any) -> Any:
    if f is None:
        return None
    if not engine.multi_input and not isinstance(f, (np.ndarray, list, tuple)):
        raise InputError(
            f"step_many: frames[{i}] must be a sequence of frames (T, ...), got {type(f).__name__}; "
            "wrap one frame as [frame]"
        )
    if not isinstance(f, Mapping) and len(f) == 0:
        return None
    x = engine.check_many(f)
    return None if engine.frames_count(x) == 0 else x


def _count(engine: Engine, x: Any) -> int:
    return 0 if x is None else engine.frames_count(x)


def _with_pending(engine: Engine, streams: Sequence[Stream], xs: list[Any]) -> tuple[list[Any], list[np.ndarray]]:
    """Window streams: pending + new items → whole windows to run, and the new remainders (not yet kept)."""
    window = engine.window
    if window is None:  # callers take this path for window models only
        raise StreamError(f"{engine.source}: the spec has no window: step_many without window buffering")
    runs: list[Any] = []
    rests: list[np.ndarray] = []
    for s, x in zip(streams, xs):
        pending = s._pending if s._pending is not None else engine.empty_frames()
        items = pending if x is None else np.concatenate([pending, x])
        whole = items.shape[0] - items.shape[0] % window
        runs.append(items[:whole] if whole else None)
        rests.append(items[whole:].copy())
    return runs, rests


def _ragged_batch(batch: Batch, streams: Sequence[Stream], xs: list[Any], cut: int, windowed: bool) -> list[np.ndarray]:
    engine = batch.engine
    rests = None
    if windowed:
        xs, rests = _with_pending(engine, streams, xs)
    counts = [_count(engine, x) for x in xs]
    n = len(batch._members)
    lanes = [s._lane for s in streams]
    for s, c in zip(streams, counts):
        if c and s._lane in batch._mem_missing:
            raise batch._no_memory(s._lane)
    outs = None
    if len(streams) == n and len(set(counts)) == 1 and 0 < counts[0] <= cut and engine.fast:
        order = np.argsort(lanes)  # every member, the same count, one call: the bound path in lane order
        try:
            out = _bound_call(batch, [xs[i] for i in order])
            back = np.empty_like(order)
            back[order] = np.arange(n)
            outs = [out[back[i]] for i in range(n)]
        except Demoted:
            outs = None
    if outs is None:
        p = batch._parity
        cur = [pair[p] for pair in batch._bufs]
        outs, new, ctx = _rounds(engine, cur, batch._ctx, lanes, xs, counts, cut, batch._mem)
        for pair, value in zip(batch._bufs, new):
            pair[p][...] = value
        if ctx is not None:
            batch._ctx = ctx
    if rests is not None:
        for s, rest in zip(streams, rests):
            s._pending = rest
    now = batch.clock()
    for lane, c in zip(lanes, counts):
        if c:
            batch._used[lane] = now
    return outs


def _bound_call(batch: Batch, xs: list[Any]) -> np.ndarray:
    """One bound call with every member's frames (lane order); returns the first output per lane."""
    engine = batch.engine
    time_ = engine.frames_count(xs[0])
    b = batch._bound.get(time_)
    k, ci = engine.context_frames, engine.context_index
    for i, (t, view) in enumerate(zip(engine.spec.inputs, b.xv)):
        rows = np.stack([x[t.name] if engine.multi_input else x for x in xs])
        if i == ci and batch._ctx is not None:
            view[:, :k] = batch._ctx
            view[:, k:] = rows
        else:
            view[...] = rows
    p = batch._parity
    run(engine, b, p)
    batch._parity = p ^ 1
    if ci is not None and batch._ctx is not None:
        batch._ctx[...] = b.xv[ci][:, time_:]
    out = b.yv[0].copy()
    return out if engine.out_has_time[0] else out[:, None]


def _acquire_loose(streams: Sequence[Stream]) -> list[threading.Lock | threading.RLock]:
    """Every stream's own lock, in id order, never waiting while holding one; all released on any refusal.

    The first lock is waited for holding nothing; each next one is only tried: when it is
    busy, every lock taken is released, the busy one is waited for (holding nothing), and
    the round starts again. So this call never waits while holding a lock, and cannot take
    part in a deadlock, whatever lock a stream holds at that moment (its own, or a batch's
    after it joined). A stream that is, or becomes, a batch member is a StreamError.
    """
    order = sorted(streams, key=id)
    while True:
        held: list[threading.Lock | threading.RLock] = []
        busy: threading.Lock | threading.RLock | None = None
        try:
            for s in order:
                if s._batch is not None:
                    raise StreamError("step_many: mix of batch members and loose streams; use one batch or loose ones")
                lock = s._lock
                if not lock.acquire(blocking=not held):
                    busy = lock
                    break
                held.append(lock)
                if lock is not s._lock or s._batch is not None:  # joined a batch meanwhile
                    raise StreamError("step_many: a stream joined a batch during the call; call the batch instead")
                if s._closed:
                    raise StreamError(CLOSED)
        except BaseException:
            for lock in reversed(held):
                lock.release()
            raise
        if busy is None:
            return held
        for lock in reversed(held):
            lock.release()
        with busy:  # wait for it holding nothing, then try the whole round again
            pass


def _ragged_loose(
    engine: Engine, streams: Sequence[Stream], xs: list[Any], cut: int, windowed: bool
) -> list[np.ndarray]:
    held = _acquire_loose(streams)
    try:
        rests = None
        if windowed:
            xs, rests = _with_pending(engine, streams, xs)
        counts = [_count(engine, x) for x in xs]
        views = [s._views() for s in streams]
        spec = engine.spec
        cur = [np.concatenate([v[k] for v in views], axis=st.batch_axis) for k, st in enumerate(spec.states)]
        ctx = None
        if spec.context is not None:
            ctx = np.concatenate([s._ctx_view() for s in streams])
        mem = None
        if spec.memory:  # lanes with frames need memory; the others ride along as zeros, masked
            if any(c and s._memory is None for s, c in zip(streams, counts)):
                raise missing_memory(spec, engine.source)
            mem = pad_memory(spec, [s._memory for s in streams])[0]
        outs, new, new_ctx = _rounds(engine, cur, ctx, list(range(len(streams))), xs, counts, cut, mem)
        for i, (s, v) in enumerate(zip(streams, views)):
            for k, st in enumerate(spec.states):
                v[k][...] = new[k][lane_index(st.batch_axis, slice(i, i + 1))]
            if new_ctx is not None and s._ctx is not None:
                s._ctx[...] = new_ctx[i : i + 1]
            if rests is not None:
                s._pending = rests[i]
        return outs
    finally:
        for lock in reversed(held):
            lock.release()


def _calls(engine: Engine, counts: list[int], cut: int) -> list[list[tuple[int, int, int]]]:
    """Per round, the calls ``(stream index, t0, t1)``; one stream at most once per round, rounds in order."""
    top = max(counts)
    if engine.context_index is not None or engine.window is not None:
        return [[(i, t0, min(c, t0 + cut)) for i, c in enumerate(counts) if c > t0] for t0 in range(0, top, cut)]
    marks = sorted({c for c in counts if c} | set(range(cut, top, cut)))
    rounds, prev = [], 0
    for m in marks:
        rounds.append([(i, prev, m) for i, c in enumerate(counts) if c >= m])
        prev = m
    return rounds


def _rounds(
    engine: Engine,
    states: list[np.ndarray],
    ctx: np.ndarray | None,
    lanes: list[int],
    xs: list[Any],
    counts: list[int],
    cut: int,
    memory: dict[str, np.ndarray] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray | None]:
    """Pure: the calls of ``_calls``, same-length calls of a round together; (outputs per stream, states, ctx).

    ``memory``: the padded memory feeds indexed by ``lanes`` (memory specs)."""
    spec = engine.spec
    cur = [s.copy() for s in states]
    cur_ctx = ctx.copy() if ctx is not None else None
    parts: list[list[np.ndarray]] = [[] for _ in lanes]
    cap = engine.max_batch or len(lanes)
    for calls in _calls(engine, counts, cut) if any(counts) else []:
        groups: dict[int, list[tuple[int, int, int]]] = {}
        for call in calls:
            groups.setdefault(call[2] - call[1], []).append(call)
        for group in groups.values():
            for g0 in range(0, len(group), cap):
                sub_calls = group[g0 : g0 + cap]
                who = [i for i, _, _ in sub_calls]
                idx = np.array([lanes[i] for i in who])
                inputs = {
                    name: np.stack([_frames(engine, xs[i], name)[t0:t1] for i, t0, t1 in sub_calls])
                    for name in engine.checks
                }
                sub = [np.take(s, idx, axis=st.batch_axis) for s, st in zip(cur, spec.states)]
                sub_ctx = cur_ctx[idx] if cur_ctx is not None else None
                sub_mem = take_memory(spec, memory, idx) if memory is not None else None
                outs, new, new_ctx = general.call(engine, sub, sub_ctx, inputs, len(who), memory=sub_mem)
                for s, st, value in zip(cur, spec.states, new):
                    s[lane_index(st.batch_axis, idx)] = value
                if cur_ctx is not None and new_ctx is not None:
                    cur_ctx[idx] = new_ctx
                for j, i in enumerate(who):
                    parts[i].append(outs[0][j])
    results = [engine.join_outputs(p) if p else engine.empty_output() for p in parts]
    return results, cur, cur_ctx


def _frames(engine: Engine, x: Any, name: str) -> np.ndarray:
    return x[name] if engine.multi_input else x
