"""Soak and concurrency runs: long streams, many streams, many threads, against the float64 reference.

- ``soak_one_stream``: ``steps`` calls of ``Stream.step`` on one stream; every output is
  compared with the reference; RSS is sampled along the way (the memory curve).
- ``soak_many_streams``: ``streams`` loose streams stepped round-robin ``steps`` times each
  (every call moves a different stream's state in and out of the engine's slots).
- ``concurrency``: ``threads`` threads, each interleaving its own ``per_thread`` streams in
  a shuffled order; the outputs must equal, bit for bit, a sequential run of the same
  streams, and the reference (every stream has its own inputs, so cross-talk shows).
- ``contention``: threads calling ``step`` on the *same* streams; each stream always gets
  its own constant frame, so whatever the interleaving its final state is the reference's
  after that many calls — a torn or lost update shows.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import resource
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgernn.reliability.reference import Reference
from edgernn.runtime.engine import Engine


def settled_rss_bytes() -> int:
    """RSS after returning freed heap to the system (glibc ``malloc_trim``), so that a sample shows what
    is held, not what the allocator keeps cached from the reference's large transient arrays."""
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
    return rss_bytes()


def _libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _libc()


def rss_bytes() -> int:
    """The resident set size of this process now (Linux /proc), else its peak."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def inputs(ref: Reference, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Random valid frames of ``shape`` (leading axes; the frame axis is added for frame models)."""
    cfg = ref.config
    rng = np.random.default_rng(seed)
    if cfg.input_kind == "tokens":
        return rng.integers(0, cfg.input_size, size=shape, dtype=np.int64)
    return rng.standard_normal((*shape, cfg.input_size)).astype(np.float32)


@dataclass
class SoakResult:
    name: str
    streams: int
    steps: int  # per stream
    seconds: float
    rss_curve: list[tuple[int, float]] = field(default_factory=list)  # (calls done, RSS MiB)
    rss_growth_mib: float = 0.0  # last sample - first sample after warm-up
    max_abs_err: float = 0.0  # over every output compared with the reference
    err_by_tenth: list[float] = field(default_factory=list)  # max error per tenth of the run (drift shows here)
    state_err: float = 0.0  # final state vs reference
    bytes_per_idle_stream: float = 0.0  # RSS taken by creating the streams, per stream (many-stream run)

    @property
    def calls(self) -> int:
        return self.streams * self.steps


def soak_one_stream(engine: Engine, ref: Reference, steps: int, block: int = 5000, seed: int = 0) -> SoakResult:
    """``steps`` single-frame calls on one stream; see the module docstring.

    Frames come in blocks of ``block``; after each block the reference catches up and RSS is
    sampled, so every sample sees the same transient buffers and the curve shows the engine.
    """
    stream = engine.stream()
    state = ref.initial_state(1)
    res = SoakResult("one stream", 1, steps, 0.0)
    errs = np.zeros(10)
    t0 = time.perf_counter()
    done = 0
    while done < steps:
        n = min(block, steps - done)
        xs = inputs(ref, (n,), seed + done)
        got = np.empty((n, ref.config.output_size))
        for t in range(n):
            got[t] = stream.step(xs[t])
        want, state = ref.run(xs, state)
        tenth = (np.arange(done, done + n) * 10) // steps
        np.maximum.at(errs, tenth, np.abs(got - want).max(axis=1))
        done += n
        res.rss_curve.append((done, settled_rss_bytes() / 2**20))
    res.seconds = time.perf_counter() - t0
    res.max_abs_err = float(errs.max())
    res.err_by_tenth = [float(e) for e in errs]
    res.state_err = _state_err(stream.state(), state, 0)
    _growth(res)
    return res


def _growth(res: SoakResult) -> None:
    """RSS growth from the first sample past 10 % of the run to the last; the curve thinned to 40 points."""
    curve = res.rss_curve
    total = curve[-1][0]
    start = next((mib for k, mib in curve if k >= total // 10), curve[0][1])
    res.rss_growth_mib = curve[-1][1] - start
    if len(curve) > 40:
        keep = np.linspace(0, len(curve) - 1, 40).astype(int)
        res.rss_curve = [curve[i] for i in keep]


def soak_many_streams(engine: Engine, ref: Reference, streams: int, steps: int, seed: int = 0) -> SoakResult:
    """``streams`` loose streams, each stepped ``steps`` times, round-robin; see the module docstring."""
    before = settled_rss_bytes()
    pool = [engine.stream() for _ in range(streams)]
    created = settled_rss_bytes()
    xs = inputs(ref, (steps, streams), seed)  # (time, streams, ...)
    state = ref.initial_state(streams)
    res = SoakResult("many streams", streams, steps, 0.0, bytes_per_idle_stream=(created - before) / streams)
    errs = np.zeros(10)
    t0 = time.perf_counter()
    for t in range(steps):
        got = np.stack([s.step(x) for s, x in zip(pool, xs[t])])  # (streams, output)
        want, state = ref.step(xs[t], state)
        np.maximum.at(errs, (t * 10) // steps, np.abs(got - want).max())
        res.rss_curve.append(((t + 1) * streams, settled_rss_bytes() / 2**20))
    res.seconds = time.perf_counter() - t0
    res.max_abs_err = float(errs.max())
    res.err_by_tenth = [float(e) for e in errs]
    res.state_err = max(_state_err(s.state(), state, i) for i, s in enumerate(pool))
    _growth(res)
    for s in pool:
        s.close()
    return res


def _state_err(got: dict[str, np.ndarray], want: tuple[np.ndarray, ...], lane: int) -> float:
    return max(float(np.abs(g[:, 0] - w[:, lane]).max()) for g, w in zip(got.values(), want))


@dataclass
class ConcurrencyResult:
    threads: int
    streams: int
    steps: int
    seconds: float
    identical_to_sequential: bool
    max_abs_err: float  # concurrent outputs vs the float64 reference
    distinct_outputs: bool  # no two streams produced the same output sequence
    batched: bool = False  # streams advanced by Batch.step (equality then within 1e-6, not bitwise)


def concurrency(
    engine: Engine,
    ref: Reference,
    threads: int = 8,
    per_thread: int = 100,
    steps: int = 20,
    seed: int = 0,
    batched: bool = False,
) -> ConcurrencyResult:
    """``threads`` x ``per_thread`` streams interleaved == a sequential run == the reference.

    ``batched``: each thread holds its streams in one ``engine.batch()`` and advances them with
    one ``Batch.step`` per round (equal to the sequential run to float rounding, not bitwise:
    batched products may sum in another order).
    """
    n = threads * per_thread
    xs = inputs(ref, (n, steps), seed)  # (stream, time, ...): distinct inputs per stream
    out_c = np.empty((n, steps, ref.config.output_size), dtype=np.float32)
    streams = [engine.stream() for _ in range(n)]
    barrier = threading.Barrier(threads)
    failures: list[BaseException] = []

    def worker(w: int) -> None:
        rng = np.random.default_rng(seed + 1000 + w)
        mine = list(range(w * per_thread, (w + 1) * per_thread))
        try:
            batch = engine.batch(max_streams=per_thread) if batched else None
            if batch is not None:
                for g in mine:
                    batch.join(streams[g])
            barrier.wait()
            for t in range(steps):
                if batch is not None:
                    out_c[mine, t] = batch.step(xs[mine, t])
                    continue
                for g in rng.permutation(mine):
                    out_c[g, t] = streams[g].step(xs[g, t])
        except BaseException as exc:  # re-raised in the caller
            failures.append(exc)

    t0 = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    seconds = time.perf_counter() - t0
    if failures:
        raise failures[0]
    out_s = np.empty_like(out_c)
    for g in range(n):
        s = engine.stream()
        for t in range(steps):
            out_s[g, t] = s.step(xs[g, t])
    state = ref.initial_state(n)
    err = 0.0
    for t in range(steps):
        want, state = ref.step(xs[:, t], state)
        err = max(err, float(np.abs(out_c[:, t] - want).max()))
    flat = out_c.reshape(n, -1)
    distinct = len({row.tobytes() for row in flat}) == n
    same = np.array_equal(out_c, out_s) if not batched else np.allclose(out_c, out_s, rtol=0, atol=1e-6)
    return ConcurrencyResult(threads, n, steps, seconds, bool(same), err, distinct, batched)


@dataclass
class ContentionResult:
    threads: int
    streams: int
    calls: int
    max_state_err: float


def contention(
    engine: Engine, ref: Reference, threads: int = 8, streams: int = 8, calls_per_thread: int = 200, seed: int = 0
) -> ContentionResult:
    """Threads stepping the same streams at random; see the module docstring."""
    shared = [engine.stream() for _ in range(streams)]
    frames = inputs(ref, (streams,), seed)  # one constant frame per stream
    counts = np.zeros((threads, streams), dtype=np.int64)
    barrier = threading.Barrier(threads)
    failures: list[BaseException] = []

    def worker(w: int) -> None:
        rng = np.random.default_rng(seed + w)
        try:
            barrier.wait()
            for j in rng.integers(0, streams, size=calls_per_thread):
                shared[j].step(frames[j])
                counts[w, j] += 1
        except BaseException as exc:
            failures.append(exc)

    pool = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    if failures:
        raise failures[0]
    worst = 0.0
    for j, total in enumerate(counts.sum(axis=0)):
        _, state = ref.run(np.repeat(frames[j : j + 1], int(total), axis=0))
        worst = max(worst, _state_err(shared[j].state(), state, 0))
    return ContentionResult(threads, streams, threads * calls_per_thread, worst)
