"""Fuzzing the public runtime API against the float64 reference, driven by hypothesis.

A ``Harness`` holds streams of one Engine and, beside each, the reference's float64 state.
Every operation (step, push, reset, snapshot, restore, fork, ragged ``step_many``, batch
join / leave / step, and bad inputs of every kind) is applied to both; outputs and states must agree within fp32
tolerance, and an operation that raises must raise a typed error and leave the stream's
state bit-for-bit as it was.

Example (what the tests and ``edgernn reliability`` run)::

    run_fuzz(engine, reference, examples=50)   # -> FuzzStats(examples=50, ops=..., errors=...)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from edgernn.reliability.reference import Reference, State
from edgernn.runtime.engine import Engine
from edgernn.runtime.errors import EdgeRNNError, SnapshotError
from edgernn.runtime.stream import Stream

ATOL = 1e-4
RTOL = 1e-4
MAX_STREAMS = 6


class FuzzFailure(AssertionError):
    """The runtime disagreed with the reference, crashed untyped, or changed state on an error."""


@dataclass
class FuzzStats:
    examples: int = 0
    ops: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # typed errors raised by bad inputs, by class
    frames: int = 0
    max_abs_err: float = 0.0

    def merge(self, other: FuzzStats) -> None:
        self.examples += other.examples
        self.ops.update(other.ops)
        self.errors.update(other.errors)
        self.frames += other.frames
        self.max_abs_err = max(self.max_abs_err, other.max_abs_err)


class Harness:
    """Streams of ``engine`` shadowed by ``reference`` states; see the module docstring."""

    def __init__(self, engine: Engine, reference: Reference, stats: FuzzStats | None = None) -> None:
        self.engine = engine
        self.ref = reference
        self.stats = stats if stats is not None else FuzzStats()
        self.streams: list[Stream] = []
        self.states: list[State] = []
        self.snaps: list[tuple[bytes, State]] = []
        self.cfg = reference.config
        self.batch: Any = None  # an engine.batch() some of the streams may join

    # -- checks ---------------------------------------------------------------------------

    def agree(self, got: np.ndarray, want: np.ndarray, what: str) -> None:
        got = np.asarray(got, dtype=np.float64)
        if got.shape != want.shape:
            raise FuzzFailure(f"{what}: shape {got.shape}, reference {want.shape}")
        err = float(np.abs(got - want).max()) if got.size else 0.0
        self.stats.max_abs_err = max(self.stats.max_abs_err, err)
        if not np.allclose(got, want, atol=ATOL, rtol=RTOL):
            raise FuzzFailure(f"{what}: max |engine - reference| = {err:.3g}")

    def agree_state(self, i: int, what: str) -> None:
        st_ = self.streams[i].state()
        for k, (name, value) in enumerate(st_.items()):
            self.agree(value, self.states[i][k], f"{what}: state {name!r} of stream {i}")

    # -- operations -------------------------------------------------------------------------

    def new_stream(self) -> int:
        self.streams.append(self.engine.stream())
        self.states.append(self.ref.initial_state(1))
        self.stats.ops["stream"] += 1
        return len(self.streams) - 1

    def step(self, i: int, x: Any) -> None:
        y = self.streams[i].step(x)
        want, self.states[i] = self.ref.step(self._as_input(x)[None], self.states[i])
        self.agree(y, want[0], f"step on stream {i}")
        self.stats.ops["step"] += 1
        self.stats.frames += 1

    def push(self, i: int, xs: Any, chunk: int) -> None:
        ys = self.streams[i].push(xs, chunk=chunk)
        arr = self._as_input(xs)
        want, self.states[i] = self.ref.run(arr, self.states[i])
        self.agree(ys, want, f"push of {len(arr)} frames (chunk {chunk}) on stream {i}")
        self.stats.ops["push"] += 1
        self.stats.frames += len(arr)

    def step_many(self, idx: list[int], frames: list[Any]) -> None:
        streams = [self.streams[i] for i in idx]
        members = [self.batch is not None and s in self.batch.streams for s in streams]
        if any(members) and not all(members):  # refused by design: one batch or loose streams
            before = [s.state() for s in streams]
            try:
                self.engine.step_many(streams, frames)
            except EdgeRNNError as exc:
                self.stats.errors[type(exc).__name__] += 1
            else:
                raise FuzzFailure("step_many over batch members and loose streams was accepted")
            for k, (s, b) in enumerate(zip(streams, before)):
                if any(not np.array_equal(v, s.state()[n]) for n, v in b.items()):
                    raise FuzzFailure(f"a refused step_many changed the state of stream {idx[k]}")
            self.stats.ops["bad step_many"] += 1
            return
        outs = self.engine.step_many(streams, frames)
        for i, xs, ys in zip(idx, frames, outs):
            want, self.states[i] = self.ref.run(self._as_input(xs), self.states[i])
            self.agree(ys, want, f"step_many: stream {i} ({len(xs)} frames)")
            self.stats.frames += len(xs)
        self.stats.ops["step_many"] += 1

    def reset(self, i: int) -> None:
        self.streams[i].reset()
        self.states[i] = self.ref.initial_state(1)
        self.agree_state(i, "reset")
        self.stats.ops["reset"] += 1

    def snapshot(self, i: int) -> None:
        self.snaps.append((self.streams[i].snapshot(), tuple(s.copy() for s in self.states[i])))
        self.stats.ops["snapshot"] += 1

    def restore(self, i: int, k: int) -> None:
        blob, state = self.snaps[k]
        self.streams[i].restore(blob)
        self.states[i] = tuple(s.copy() for s in state)
        self.agree_state(i, "restore")
        self.stats.ops["restore"] += 1

    def fork(self, i: int) -> None:
        self.streams.append(self.streams[i].fork())
        self.states.append(tuple(s.copy() for s in self.states[i]))
        self.stats.ops["fork"] += 1

    def join(self, i: int) -> None:
        """Move stream ``i`` into the harness's batch (its state moves into a lane)."""
        if self.batch is None:
            self.batch = self.engine.batch(max_streams=MAX_STREAMS)
        if self.streams[i] in self.batch.streams:
            return
        self.batch.join(self.streams[i])
        self.agree_state(i, "join")
        self.stats.ops["join"] += 1

    def leave(self, i: int) -> None:
        if self.batch is None or self.streams[i] not in self.batch.streams:
            return
        self.batch.leave(self.streams[i])
        self.agree_state(i, "leave")
        self.stats.ops["leave"] += 1

    def batch_step(self, frames: list[Any]) -> None:
        """One frame for every member, in ``batch.streams`` order, in one call."""
        members = list(self.batch.streams) if self.batch is not None else []
        if not members:
            return
        idx = [next(k for k, s in enumerate(self.streams) if s is m) for m in members]
        frames = frames[: len(members)]
        ys = self.batch.step(np.stack([np.asarray(f) for f in frames]))
        for i, x, y in zip(idx, frames, ys):
            want, self.states[i] = self.ref.step(self._as_input(x)[None], self.states[i])
            self.agree(y, want[0], f"batch.step: stream {i}")
        self.stats.ops["batch step"] += 1
        self.stats.frames += len(members)

    def refused(self, i: int, call: str, arg: Any, chunk: int = 64) -> None:
        """``call`` with a bad ``arg`` must raise a typed error and leave the state bit-for-bit."""
        stream = self.streams[i]
        before = stream.state()
        try:
            if call == "step":
                stream.step(arg)
            elif call == "push":
                stream.push(arg, chunk=chunk)
            else:
                stream.restore(arg)
        except EdgeRNNError as exc:
            self.stats.errors[type(exc).__name__] += 1
        except Exception as exc:  # the finding: an untyped error escaped the public API
            raise FuzzFailure(f"{call}({_short(arg)}) raised untyped {type(exc).__name__}: {exc}") from None
        else:
            raise FuzzFailure(f"{call}({_short(arg)}) was accepted; a typed error was expected")
        after = stream.state()
        for name in before:
            if not np.array_equal(before[name], after[name]):
                raise FuzzFailure(f"{call}({_short(arg)}) failed but changed state {name!r}")
        self.stats.ops[f"bad {call}"] += 1

    def close(self) -> None:
        for s in self.streams:
            s.close()
        if self.batch is not None:
            self.batch.close()

    def _as_input(self, xs: Any) -> np.ndarray:
        """What the engine computes on: the frames cast to the graph's dtype (then float64 in the reference)."""
        return np.asarray(xs).astype(self.engine.input_dtype)


def _short(arg: Any) -> str:
    text = repr(arg).replace("\n", " ")
    return text if len(text) < 80 else text[:77] + "..."


# -- strategies ---------------------------------------------------------------------------------


def good_frames(cfg: Any, n: int) -> st.SearchStrategy[Any]:
    """``n`` valid frames (n == -1: one frame, no time axis) in a random accepted dtype."""
    shape: tuple[int, ...] = () if n == -1 else (n,)
    if cfg.input_kind == "tokens":
        dtype = st.sampled_from([np.int64, np.int32, np.uint8, np.int16])
        ints = st.integers(0, min(cfg.input_size - 1, 255))
        if n == -1:
            return st.one_of(ints, st.builds(lambda v, d: np.array(v, dtype=d), ints, dtype))
        return st.builds(
            lambda v, d: np.array(v, dtype=d).reshape(shape), st.lists(ints, min_size=n, max_size=n), dtype
        )
    size = cfg.input_size
    floats = st.floats(-8, 8, allow_nan=False, allow_infinity=False, width=32)
    dtype = st.sampled_from([np.float32, np.float64, np.float16, np.int32])
    full = (*shape, size)
    count = int(np.prod(full))
    return st.builds(
        lambda v, d: np.array(v, dtype=np.float64).reshape(full).astype(d),
        st.lists(floats, min_size=count, max_size=count),
        dtype,
    )


# Findings of this fuzz, fixed in runtime/frames.py (bd2f7ee); probed on their own by the report too.
RAGGED = [[1, 2], [3]]  # ragged nested lists: np.asarray raised a bare ValueError
OVERFLOW = 1e39  # a finite float64 that is Inf in float32: passed nonfinite='raise'...


def bad_frames(cfg: Any, many: bool) -> st.SearchStrategy[Any]:
    """Inputs the runtime must refuse with a typed error: shapes, dtypes, values, types."""
    lead = (3,) if many else ()
    if cfg.input_kind == "tokens":
        vocab = cfg.input_size
        values = st.sampled_from([-1, vocab, vocab + 7, 2**31, 2**62, -(2**62)])
        cases = [
            st.builds(lambda v: np.full(lead, v, dtype=np.int64), values),
            st.just(np.zeros((*lead, 2), dtype=np.int64)),  # one axis too many
            st.just(np.array([1.5] * (3 if many else 1)).reshape(lead) if many else np.float64(1.5)),
            st.just(np.array(["a"] * 3) if many else "a"),
            st.just(np.array([1 + 2j] * 3) if many else np.complex128(1 + 2j)),
            st.just(None),
            st.just(object()),
            st.just(np.array([2**64 - 1] * 3, dtype=np.uint64) if many else np.uint64(2**64 - 1)),
        ]
        if many:
            cases += [st.just(np.zeros((3, 1), dtype=np.int64)), st.just(7), st.just(RAGGED)]
        else:
            cases += [st.just(np.zeros(0, dtype=np.int64)), st.just([1, 2])]
        return st.one_of(cases)
    size = cfg.input_size
    special = st.sampled_from([np.nan, np.inf, -np.inf])
    pos = st.integers(0, size - 1)
    cases = [
        st.builds(lambda v, p: _with(np.zeros((*lead, size), np.float32), p, v), special, pos),
        st.builds(lambda v, p: _with(np.zeros((*lead, size), np.float64), p, v), special, pos),
        st.just(np.zeros((*lead, size + 1), np.float32)),
        st.just(np.zeros((*lead, size - 1), np.float32)),
        st.just(np.zeros((*lead, 1, size), np.float32)),
        st.just(np.zeros(lead, np.float32)),
        st.just(np.full((*lead, size), "x")),
        st.just(np.zeros((*lead, size), np.complex64)),
        st.just(None),
        st.just([[0.0] * size, [0.0]]),  # ragged
        st.just(np.full((*lead, size), OVERFLOW, dtype=np.float64)),  # Inf once cast to float32
    ]
    return st.one_of(cases)


def _with(arr: np.ndarray, pos: int, value: float) -> np.ndarray:
    arr.reshape(-1, arr.shape[-1])[-1, pos] = value
    return arr


def bad_snapshots(good: bytes) -> st.SearchStrategy[Any]:
    """Damaged or foreign snapshot blobs."""
    n = len(good)
    return st.one_of(
        st.builds(lambda k: good[:k], st.integers(0, n - 1)),
        st.builds(
            lambda k, b: good[:k] + bytes([good[k] ^ (1 << b)]) + good[k + 1 :],
            st.integers(0, n - 1),
            st.integers(0, 7),
        ),
        st.just(good + b"\0"),
        st.just(b""),
        st.just("not bytes"),
        st.just(None),
        st.binary(max_size=64),
    )


def play(h: Harness, data: st.DataObject, max_ops: int = 24) -> None:
    """Draw and apply ``max_ops`` or fewer operations on a few streams."""
    cfg = h.cfg
    for _ in range(data.draw(st.integers(1, 3), label="streams")):
        h.new_stream()
    can_snap = hasattr(Stream, "snapshot")
    ops = ["step", "push", "reset", "bad step", "bad push", "bad chunk", "step_many", "join", "leave", "batch step"]
    ops += ["snapshot", "restore", "fork", "bad restore"] if can_snap else []
    for _ in range(data.draw(st.integers(1, max_ops), label="ops")):
        op = data.draw(st.sampled_from(ops), label="op")
        i = data.draw(st.integers(0, len(h.streams) - 1), label="stream")
        if op == "step":
            h.step(i, data.draw(good_frames(cfg, -1), label="frame"))
        elif op == "push":
            n = data.draw(st.one_of(st.integers(0, 40), st.integers(60, 300)), label="T")
            h.push(i, data.draw(good_frames(cfg, n), label="frames"), data.draw(st.integers(1, 70), label="chunk"))
        elif op == "reset":
            h.reset(i)
        elif op == "bad step":
            h.refused(i, "step", data.draw(bad_frames(cfg, False), label="bad frame"))
        elif op == "bad push":
            h.refused(i, "push", data.draw(bad_frames(cfg, True), label="bad frames"))
        elif op == "bad chunk":
            chunk = data.draw(st.sampled_from([0, -1, -(2**40)]), label="chunk")
            h.refused(i, "push", data.draw(good_frames(cfg, 2)), chunk=chunk)
        elif op == "step_many":
            idx = data.draw(st.lists(st.integers(0, len(h.streams) - 1), min_size=1, max_size=4, unique=True))
            frames = [data.draw(good_frames(cfg, data.draw(st.integers(0, 5)))) for _ in idx]
            h.step_many(idx, frames)
        elif op == "join":
            h.join(i)
        elif op == "leave":
            h.leave(i)
        elif op == "batch step":
            h.batch_step([data.draw(good_frames(cfg, -1), label="frame") for _ in range(MAX_STREAMS)])
        elif op == "snapshot":
            h.snapshot(i)
        elif op == "restore" and h.snaps:
            h.restore(i, data.draw(st.integers(0, len(h.snaps) - 1), label="snapshot"))
        elif op == "fork" and len(h.streams) < MAX_STREAMS:
            h.fork(i)
        elif op == "bad restore":
            good = h.streams[i].snapshot()
            h.refused(i, "restore", data.draw(bad_snapshots(good), label="blob"))
        h.agree_state(i, f"after {op}")


def run_fuzz(engine: Engine, reference: Reference, examples: int, rng_seed: int = 0) -> FuzzStats:
    """Run ``examples`` hypothesis examples of ``play``; raise FuzzFailure (shrunk) on the first finding."""
    stats = FuzzStats()

    @seed(rng_seed)
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def example(data: st.DataObject) -> None:
        h = Harness(engine, reference, FuzzStats())
        try:
            play(h, data)
        finally:
            h.close()
        h.stats.examples = 1
        stats.merge(h.stats)

    example()
    return stats


def foreign_snapshot_refused(a: Engine, b: Engine) -> str:
    """A snapshot of engine ``a`` restored on engine ``b`` must raise SnapshotError; returns its message."""
    blob = a.stream().snapshot()
    try:
        b.stream().restore(blob)
    except SnapshotError as exc:
        return str(exc)
    raise FuzzFailure("a snapshot of another model was accepted")
