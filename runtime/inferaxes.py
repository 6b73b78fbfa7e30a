"""How infer_spec (runtime/infer.py) reads the axes of a foreign graph's tensors: which axis of
each streamed input, output and state is the batch, which the time, and what every other axis
is; whatever it cannot tell goes on the ``Asks`` list with the hint that settles it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgernn.runtime.errors import SpecError
from edgernn.runtime.graphio import Dims
from edgernn.runtime.spec import BATCH, TIME

_BATCH_NAME = re.compile(r"^(batch.*|.*_batch|b|n|bs|num_streams)$", re.IGNORECASE)
_TIME_NAME = re.compile(r"(time|seq|len|frame|sample|step|^t$|chunk)", re.IGNORECASE)


@dataclass
class Asks:
    """Everything infer_spec could not tell: one line per tensor and the hints that settle them."""

    lines: list[str] = field(default_factory=list)
    hints: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, line: str, kind: str = "", key: str = "", value: Any = None) -> None:
        self.lines.append(line)
        if kind:
            self.hints.setdefault(kind, {})[key] = value


@dataclass
class BatchAxis:
    """The streamed inputs' batch axis: its symbol, or fixed at 1 (then ``axis`` is its position)."""

    symbol: str | None = None
    fixed: bool = False
    axis: int | None = None
    time_symbol: str | None = None
    time_axis: int | None = None
    time_fixed: bool = False

    def note(self, dims: Dims, b: int | None, t: int | None) -> None:
        if b is None or self.axis is not None:
            return
        self.axis, self.time_axis = b, t
        self.symbol = dims[b] if isinstance(dims[b], str) else None
        self.fixed = dims[b] == 1
        self.time_symbol = dims[t] if t is not None and isinstance(dims[t], str) else None
        self.time_fixed = t is not None and isinstance(dims[t], int)


def _symbolic(dims: Dims) -> list[int]:
    return [k for k, d in enumerate(dims) if not isinstance(d, int)]


def _named(dims: Dims, k: int, pattern: re.Pattern[str]) -> bool:
    return isinstance(dims[k], str) and bool(pattern.search(str(dims[k])))


def input_axes(
    name: str, dims: Dims, batch_axes: Mapping[str, int], time_axes: Mapping[str, int], asks: Asks
) -> tuple[int | None, int | None]:
    sym = _symbolic(dims)
    timeish = [k for k in sym if _named(dims, k, _TIME_NAME) and not _named(dims, k, _BATCH_NAME)]
    if name in batch_axes:
        b: int | None = _axis(name, batch_axes[name], len(dims))
    else:
        batchish = [k for k in sym if _named(dims, k, _BATCH_NAME)]
        neutral = [k for k in sym if k not in timeish]
        ones = [k for k, d in enumerate(dims) if d == 1]
        b = next(iter(batchish or neutral), None)
        if b is None and len(ones) == 1:
            b = ones[0]  # the graph fixes its batch at 1
        elif b is None:
            b = ones[0] if ones else 0  # asked below; taken for now, so the other tensors are read against it
            why = f"axes {ones} have size 1" if ones else "no axis has size 1"
            asks.add(
                f"input {name!r} shape {show(dims)}: no symbolic axis to be the batch axis, {why}: "
                f"batch_axes={{{name!r}: {b}}}",
                "batch_axes",
                name,
                b,
            )
    if name in time_axes:
        t = None if time_axes[name] < 0 else _axis(name, time_axes[name], len(dims))
    else:
        rest = [k for k in timeish + sym if k != b]
        t = rest[0] if rest else None
    return b, t


def output_axes(
    name: str, dims: Dims, batch: BatchAxis, batch_axes: Mapping[str, int], time_axes: Mapping[str, int], asks: Asks
) -> tuple[int | None, int | None]:
    if not dims:
        return None, None
    b: int | None
    if name in batch_axes:
        b = _axis(name, batch_axes[name], len(dims))
    elif batch.symbol is not None and batch.symbol in dims:
        b = dims.index(batch.symbol)
    elif batch.fixed:
        ones = [k for k, d in enumerate(dims) if d == 1]
        b = batch.axis if batch.axis in ones else (ones[0] if ones else None)
        if b is None:
            asks.add(
                f"output {name!r} shape {show(dims)}: no axis of size 1 to hold the batch (fixed at 1): "
                f"batch_axes={{{name!r}: 0}}",
                "batch_axes",
                name,
                0,
            )
    else:
        neutral = [
            k
            for k in _symbolic(dims)
            if not _named(dims, k, _TIME_NAME) and (dims[k] is None or dims[k] != batch.time_symbol)
        ]
        b = neutral[0] if neutral else None
        if b is None:
            asks.add(
                f"output {name!r} shape {show(dims)}: no axis carries the batch: batch_axes={{{name!r}: 0}}",
                "batch_axes",
                name,
                0,
            )
    if name in time_axes:
        t = None if time_axes[name] < 0 else _axis(name, time_axes[name], len(dims))
    elif batch.time_axis is None:
        t = None
    elif batch.time_symbol is not None and batch.time_symbol in dims:
        t = dims.index(batch.time_symbol)
    else:
        rest = [k for k in _symbolic(dims) if k != b]
        ta = batch.time_axis
        same = ta if batch.time_fixed and ta < len(dims) and ta != b and dims[ta] == 1 else None
        t = rest[0] if rest else same
    return b, t


def state_batch_axis(name: str, dims: Dims, batch: BatchAxis, batch_axes: Mapping[str, int], asks: Asks) -> int | None:
    if name in batch_axes:
        return _axis(name, batch_axes[name], len(dims))
    if batch.symbol is not None and dims.count(batch.symbol) == 1:
        return dims.index(batch.symbol)
    sym = _symbolic(dims)
    if len(sym) == 1:
        return sym[0]
    ones = [k for k, d in enumerate(dims) if d == 1]
    if not sym and len(ones) == 1:
        return ones[0]
    if not sym and ones and batch.fixed:  # a graph whose batch is 1: any axis of size 1 holds it alike
        return batch.axis if batch.axis in ones else ones[0]
    cands = sym or ones
    why = f"axes {cands} could be" if cands else "no axis has size 1 or is symbolic, so none can be"
    asks.add(
        f"state {name!r} shape {show(dims)}: {why} the batch axis: batch_axes={{{name!r}: {cands[0] if cands else 0}}}",
        "batch_axes",
        name,
        cands[0] if cands else 0,
    )
    return None


def state_dims(name: str, dims: Dims, out_dims: Dims, b: int | None, asks: Asks) -> tuple[int | str, ...]:
    if b is None:
        return (BATCH,)  # already asked; a placeholder never returned
    new: list[int | str] = []
    for k, d in enumerate(dims):
        if k == b:
            new.append(BATCH)
        elif isinstance(d, int):
            new.append(d)
        elif k < len(out_dims) and isinstance(out_dims[k], int):
            new.append(out_dims[k])
        else:
            asks.add(
                f"state {name!r} shape {show(dims)}: axis {k} is symbolic and not the batch: "
                f"give its size with shapes={{{name!r}: {_suggest(dims, b, None)}}}",
                "shapes",
                name,
                _suggest(dims, b, None),
            )
            new.append(1)
    return tuple(new)


def resolve(name: str, role: str, dims: Dims, b: int | None, t: int | None, asks: Asks) -> tuple[int | str, ...]:
    """The spec shape: 'batch' at b, 'time' at t, ints elsewhere; a symbol left is asked for, never kept."""
    out: list[int | str] = []
    left = []
    for k, d in enumerate(dims):
        if k == b:
            out.append(BATCH)
        elif k == t:
            out.append(TIME)
        elif isinstance(d, int):
            out.append(d)
        else:
            left.append(k)
            out.append(1)
    if left and b is not None:
        asks.add(
            f"{role} {name!r} shape {show(dims)}: axis {left[0] if len(left) == 1 else left} is symbolic "
            f"but neither batch nor time: give its size with shapes={{{name!r}: {_suggest(dims, b, t)}}}",
            "shapes",
            name,
            _suggest(dims, b, t),
        )
    return tuple(out) if b is not None or role == "output" else (BATCH,)


def _suggest(dims: Dims, b: int | None, t: int | None) -> list[int | str]:
    return [BATCH if k == b else TIME if k == t else d if isinstance(d, int) else 512 for k, d in enumerate(dims)]


def _axis(name: str, axis: int, rank: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, int) or not -rank <= axis < rank:
        raise SpecError(f"tensor {name!r} has rank {rank}: axis {axis!r} is out of range")
    return axis % rank


def show(dims: Dims) -> str:
    return "[" + ", ".join(repr(d) if isinstance(d, str) else str(d) for d in dims) + "]"
