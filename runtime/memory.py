"""Per-stream memory: tensors a stream holds for its whole life and feeds to every call.

A spec's ``memory`` (``MemorySpec``, spec version 3) names graph inputs that are neither
streamed nor carried: each stream sets them once (``engine.stream(memory=...)``,
``stream.set_memory``, ``stream.reset(memory=...)``), e.g. the encoder outputs a decoder
step attends over. This module is the one owner of their rules:

* ``check`` turns what a caller gives (``{name: array}``, the spec's shape less the batch
  axis) into a ``Memory``: read-only graph-layout arrays with a batch axis of 1, the length
  of each length symbol, and the feeds (memory and masks) a call binds. Anything wrong is an
  ``InputError`` naming the tensor, the axis, what was expected and what came.
* ``pad`` joins several streams' memories into one call's feeds: each length axis padded
  to the longest, the mask 1.0 on a stream's own positions and 0.0 on padding. A memory
  without a mask cannot be padded: streams of different lengths are a StreamError there.

Example:
    >>> from edgernn.runtime.spec import BATCH, MemorySpec, StreamSpec, TensorSpec
    >>> spec = StreamSpec(inputs=(TensorSpec("x", "int64", (BATCH, "time")),),
    ...                   outputs=(TensorSpec("y", "float32", (BATCH, "time", 4)),), states=(),
    ...                   memory=(MemorySpec("enc", "float32", (BATCH, "src", 2), max_length=8, mask="m"),))
    >>> a = check(spec, {"enc": np.ones((3, 2))}); b = check(spec, {"enc": np.ones((5, 2))})
    >>> feeds, lengths, missing = pad(spec, [a, b])
    >>> feeds["enc"].shape, feeds["m"].tolist(), lengths
    ((2, 5, 2), [[1.0, 1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0]], {'src': 5})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgernn.runtime.dtypes import NP_DTYPES
from edgernn.runtime.errors import InputError, StreamError
from edgernn.runtime.spec import MemorySpec, StreamSpec

MASK_DTYPE = np.float32


@dataclass(frozen=True, eq=False)
class Memory:
    """One stream's memory: read-only arrays in graph layout (batch axis of size 1), lengths, call feeds."""

    arrays: Mapping[str, np.ndarray]
    lengths: Mapping[str, int]  # length symbol -> this stream's length
    feeds: Mapping[str, np.ndarray]  # arrays and masks, as one call of this stream alone binds them

    def view(self, spec: StreamSpec) -> dict[str, np.ndarray]:
        """The arrays as the caller gave them (batch axis dropped), read-only."""
        return {m.name: self.arrays[m.name].squeeze(axis=m.batch_axis) for m in spec.memory}

    @property
    def nbytes(self) -> int:
        return sum(int(a.nbytes) for a in self.feeds.values())


def missing(spec: StreamSpec, source: str = "model") -> StreamError:
    """The error of a call on a memory spec by a stream that holds no memory: says what to call."""
    names = ", ".join(f"{m.name!r}: array {list(_user_shape(m))}" for m in spec.memory)
    return StreamError(
        f"{source}: this model reads per-stream memory ({names}) and this stream holds none: call "
        f"stream.set_memory({{{names}}}) or create it with engine.stream(memory={{...}}) first"
    )


def check(spec: StreamSpec, given: Any, what: str = "memory") -> Memory:
    """``given`` (``{name: array}``, each the spec's shape less the batch axis) as a ``Memory``; InputError if wrong."""
    names = [m.name for m in spec.memory]
    if not spec.memory:
        raise InputError(f"{what}: this model's spec declares no memory; nothing to set")
    if not isinstance(given, Mapping):
        raise InputError(f"{what}: expected a dict {{name: array}} with every memory tensor {names}, "
                         f"got {type(given).__name__}")  # fmt: skip
    unknown = sorted(str(k) for k in given if k not in names)
    absent = [n for n in names if n not in given]
    if unknown or absent:
        raise InputError(
            f"{what}: the memory tensors are {names} (all set at once); "
            + (f"missing {absent}" if absent else "")
            + ("; " if absent and unknown else "")
            + (f"unknown {unknown}" if unknown else "")
        )
    arrays: dict[str, np.ndarray] = {}
    lengths: dict[str, int] = {}
    for m in spec.memory:
        arr = _one(m, given[m.name], what)
        symbol, axis = m.length_symbol, m.length_axis
        if symbol is not None and axis is not None:
            n = int(arr.shape[axis])
            if symbol in lengths and lengths[symbol] != n:
                raise InputError(
                    f"{what}: tensor {m.name!r} has length {n} on axis {symbol!r}, another memory tensor has "
                    f"{lengths[symbol]}: tensors sharing a length axis must have one length"
                )
            lengths[symbol] = n
        arrays[m.name] = arr
    feeds = dict(arrays)
    for m in spec.memory:
        if m.mask is not None and m.length_symbol is not None:
            feeds[m.mask] = _frozen(np.ones((1, lengths[m.length_symbol]), dtype=MASK_DTYPE))
    return Memory(arrays, lengths, feeds)


def example(spec: StreamSpec, length: int | None = None, seed: int = 0) -> Memory:
    """A memory of ``length`` (default: each memory's ``max_length``, the costliest a stream may hold) of
    small random values: what ``edgernn profile`` / ``devices auto`` time a memory model with."""
    rng = np.random.default_rng(seed)
    given = {}
    for m in spec.memory:
        shape = _user_shape(m, length or m.max_length or 1)
        given[m.name] = (rng.standard_normal(shape) * 0.1).astype(NP_DTYPES[m.dtype])
    return check(spec, given, "example memory")


def probe(spec: StreamSpec) -> Memory:
    """A memory of length 1, zeros, for the load-time probe call."""
    return check(spec, {m.name: np.zeros(_user_shape(m, 1), NP_DTYPES[m.dtype]) for m in spec.memory}, "probe")


def pad(spec: StreamSpec, mems: Sequence[Memory | None]) -> tuple[dict[str, np.ndarray], dict[str, int], list[int]]:
    """Feeds for one call of ``len(mems)`` streams (lane ``i`` is ``mems[i]``); (feeds, lengths, lanes without memory).

    Each length axis is padded to the longest; masks are 1.0 on a lane's own positions, 0.0 on
    padding and on lanes without memory (their memory is zeros). StreamError when a memory
    without a mask would need padding.
    """
    if len(mems) == 1 and mems[0] is not None:
        return dict(mems[0].feeds), dict(mems[0].lengths), []
    held = [m for m in mems if m is not None]
    lengths: dict[str, int] = {}
    for m in spec.memory:
        symbol = m.length_symbol
        if symbol is None:
            continue
        seen = sorted({mem.lengths[symbol] for mem in held})
        if m.mask is None and len(seen) > 1:
            raise StreamError(
                f"memory {m.name!r} has no mask in the spec, so streams of different lengths {seen} on axis "
                f"{symbol!r} cannot share a call; give the spec a mask input or batch streams of one length"
            )
        lengths[symbol] = seen[-1] if seen else 1
    n = len(mems)
    feeds: dict[str, np.ndarray] = {}
    for m in spec.memory:
        length = lengths.get(m.length_symbol, 1) if m.length_symbol is not None else 1
        buf = np.zeros(m.concrete_shape(n, length), dtype=NP_DTYPES[m.dtype])
        mask = np.zeros((n, length), dtype=MASK_DTYPE) if m.mask is not None else None
        for lane, mem in enumerate(mems):
            if mem is None:
                continue
            arr = mem.arrays[m.name]
            index: list[Any] = [slice(None)] * buf.ndim
            index[m.batch_axis] = slice(lane, lane + 1)
            if m.length_axis is not None:
                index[m.length_axis] = slice(0, arr.shape[m.length_axis])
            buf[tuple(index)] = arr
            if mask is not None and m.length_axis is not None:
                mask[lane, : arr.shape[m.length_axis]] = 1.0
        feeds[m.name] = buf
        if mask is not None and m.mask is not None:
            feeds[m.mask] = mask
    return feeds, lengths, [i for i, mem in enumerate(mems) if mem is None]


def take(spec: StreamSpec, feeds: Mapping[str, np.ndarray], lanes: np.ndarray) -> dict[str, np.ndarray]:
    """The feeds of ``lanes`` only (along each tensor's batch axis; a mask's is axis 0)."""
    out: dict[str, np.ndarray] = {}
    for m in spec.memory:
        out[m.name] = np.take(feeds[m.name], lanes, axis=m.batch_axis)
        if m.mask is not None:
            out[m.mask] = np.take(feeds[m.mask], lanes, axis=0)
    return out


def _user_shape(m: MemorySpec, length: int | None = None) -> tuple[Any, ...]:
    """The shape a caller gives: the spec's, less the batch axis (the length symbol, or ``length``)."""
    return tuple(
        (length if length is not None and i == m.length_axis else d) for i, d in enumerate(m.shape) if i != m.batch_axis
    )


def _one(m: MemorySpec, value: Any, what: str) -> np.ndarray:
    want = np.dtype(NP_DTYPES[m.dtype])
    expect = f"{m.dtype} {list(_user_shape(m))} (the spec's shape {list(m.shape)} less the batch axis)"
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what}: tensor {m.name!r} is not an array ({exc}); expected {expect}") from None
    if arr.dtype != want:
        same_kind = (arr.dtype.kind == "f" and want.kind == "f") or (arr.dtype.kind in "iu" and want.kind in "iu")
        if not same_kind or (want.kind in "iu" and arr.size and not _fits(arr, want)):
            raise InputError(f"{what}: tensor {m.name!r} has dtype {arr.dtype}, expected {expect}")
        with np.errstate(over="ignore"):
            arr = arr.astype(want)
    shape = _user_shape(m)
    if arr.ndim != len(shape):
        raise InputError(f"{what}: tensor {m.name!r} has shape {list(arr.shape)} (rank {arr.ndim}), expected {expect}")
    length_at = None if m.length_axis is None else m.length_axis - (m.length_axis > m.batch_axis)
    for axis, (got, d) in enumerate(zip(arr.shape, shape)):
        if axis == length_at:
            if not 1 <= got <= int(m.max_length or 0):
                raise InputError(
                    f"{what}: tensor {m.name!r} axis {axis} ({d!r}, the length) is {got}, expected 1 to "
                    f"{m.max_length} (the spec's max_length)"
                )
        elif got != d:
            raise InputError(f"{what}: tensor {m.name!r} axis {axis} has size {got}, expected {d} ({expect})")
    if want.kind == "f" and not np.isfinite(arr).all():
        raise InputError(f"{what}: tensor {m.name!r} holds NaN or infinite values (after the cast to {m.dtype})")
    return _frozen(np.expand_dims(arr, m.batch_axis))


def _fits(arr: np.ndarray, want: np.dtype) -> bool:
    info = np.iinfo(want)
    return bool(arr.min() >= info.min and arr.max() <= info.max)


def _frozen(arr: np.ndarray) -> np.ndarray:
    out = np.array(arr, order="C", copy=True)
    out.flags.writeable = False
    return out
