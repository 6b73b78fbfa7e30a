"""The parts of a stream spec (runtime/spec.py): each streamed input and output
(``TensorSpec``), state pair (``StateSpec``), constant input, context window and per-stream
memory (``MemorySpec``), each checked when it is made. Shapes hold ints and symbols:
``'batch'`` and ``'time'``, which the runtime fills in, and a memory's own length symbol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgernn.runtime.dtypes import NAMES
from edgernn.runtime.errors import SpecError

BATCH = "batch"
TIME = "time"
DTYPES = NAMES  # runtime/dtypes.py owns the table

Dim = int | str


def _check_dtype(dtype: str, where: str) -> None:
    if dtype not in DTYPES:
        raise SpecError(f"{where}: dtype {dtype!r} is not one of {', '.join(DTYPES)}")


def _shape(raw: Any, where: str) -> tuple[Dim, ...]:
    if not isinstance(raw, (list, tuple)):
        raise SpecError(f"{where}: shape must be a list, got {type(raw).__name__}")
    out: list[Dim] = []
    for i, d in enumerate(raw):
        if isinstance(d, bool) or not isinstance(d, (int, str)):
            raise SpecError(f"{where}: axis {i} must be an int or a symbol, got {d!r}")
        if isinstance(d, int) and d < 0:
            raise SpecError(f"{where}: axis {i} has negative size {d}")
        out.append(d)
    return tuple(out)


def _concrete(shape: tuple[Dim, ...], batch: int, time: int, where: str) -> tuple[int, ...]:
    dims: list[int] = []
    for d in shape:
        if d == BATCH:
            dims.append(batch)
        elif d == TIME:
            dims.append(time)
        elif isinstance(d, int):
            dims.append(d)
        else:
            raise SpecError(f"{where}: symbolic axis {d!r} has no value (only 'batch' and 'time' do)")
    return tuple(dims)


@dataclass(frozen=True)
class TensorSpec:
    """A streamed input or an output: ``shape`` holds ints and the symbols 'batch' / 'time'."""

    name: str
    dtype: str
    shape: tuple[Dim, ...]

    def __post_init__(self) -> None:
        _check_dtype(self.dtype, f"tensor {self.name!r}")
        object.__setattr__(self, "shape", _shape(self.shape, f"tensor {self.name!r}"))

    @property
    def batch_axis(self) -> int | None:
        return self.shape.index(BATCH) if BATCH in self.shape else None

    @property
    def time_axis(self) -> int | None:
        return self.shape.index(TIME) if TIME in self.shape else None

    def concrete_shape(self, batch: int = 1, time: int = 1) -> tuple[int, ...]:
        return _concrete(self.shape, batch, time, f"tensor {self.name!r}")

    @property
    def fully_known(self) -> bool:
        """True when every axis is an int, 'batch' or 'time' (the runtime can preallocate it)."""
        return all(isinstance(d, int) or d in (BATCH, TIME) for d in self.shape)


@dataclass(frozen=True)
class StateSpec:
    """A recurrent state carried from output ``output`` of one call to input ``input`` of the next."""

    input: str
    output: str
    dtype: str
    shape: tuple[Dim, ...]
    init: float = 0.0

    def __post_init__(self) -> None:
        where = f"state {self.input!r}"
        _check_dtype(self.dtype, where)
        shape = _shape(self.shape, where)
        object.__setattr__(self, "shape", shape)
        if shape.count(BATCH) != 1:
            raise SpecError(f"{where}: shape {list(shape)} must hold the 'batch' axis exactly once")
        if TIME in shape or any(isinstance(d, str) and d != BATCH for d in shape):
            raise SpecError(f"{where}: shape {list(shape)} may hold only ints and 'batch'")

    @property
    def batch_axis(self) -> int:
        return self.shape.index(BATCH)

    def concrete_shape(self, batch: int = 1) -> tuple[int, ...]:
        return _concrete(self.shape, batch, 1, f"state {self.input!r}")

    @property
    def size_per_stream(self) -> int:
        """Number of elements one stream holds."""
        n = 1
        for d in self.concrete_shape(1):
            n *= d
        return n


@dataclass(frozen=True)
class ConstantSpec:
    """An input fed the same value on every call (a sample rate, a flag)."""

    name: str
    dtype: str
    value: Any
    shape: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _check_dtype(self.dtype, f"constant {self.name!r}")
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))


@dataclass(frozen=True)
class ContextSpec:
    """The last ``frames`` items of input ``input`` (along its time axis) are prepended to the next call."""

    input: str
    frames: int

    def __post_init__(self) -> None:
        if isinstance(self.frames, bool) or not isinstance(self.frames, int) or self.frames < 1:
            raise SpecError(f"context of {self.input!r}: frames must be an int >= 1, got {self.frames!r}")


@dataclass(frozen=True)
class MemorySpec:
    """A per-stream input set once (at creation, ``reset(memory=...)`` or ``set_memory``) and fed to every call.

    ``shape`` holds ``'batch'`` once and at most one other symbol, the *length axis* (e.g.
    ``'src_len'``), whose size each stream chooses, up to ``max_length``. ``mask``, when
    given, names a float32 graph input ``[batch, length]`` the engine fills with 1.0 on a
    stream's valid positions and 0.0 on padding (streams of different lengths share a call
    padded to the longest); without one, streams in one call must have equal lengths.
    """

    name: str
    dtype: str
    shape: tuple[Dim, ...]
    max_length: int | None = None
    mask: str | None = None

    def __post_init__(self) -> None:
        where = f"memory {self.name!r}"
        _check_dtype(self.dtype, where)
        shape = _shape(self.shape, where)
        object.__setattr__(self, "shape", shape)
        symbols = [d for d in shape if isinstance(d, str) and d != BATCH]
        if shape.count(BATCH) != 1 or TIME in shape or len(symbols) > 1:
            raise SpecError(
                f"{where}: shape {list(shape)} must hold 'batch' once, at most one length symbol (e.g. 'src_len') "
                "and ints; 'time' is not a memory axis"
            )
        if symbols and self.max_length is None:
            raise SpecError(f"{where}: the length axis {symbols[0]!r} needs max_length (the longest memory accepted)")
        top = self.max_length
        if top is not None and (isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= 1 << 24):
            raise SpecError(f"{where}: max_length must be an int in [1, 2**24], got {self.max_length!r}")
        if self.mask is not None and not symbols:
            raise SpecError(f"{where}: a mask needs a length axis; shape {list(shape)} has none")

    @property
    def batch_axis(self) -> int:
        return self.shape.index(BATCH)

    @property
    def length_axis(self) -> int | None:
        """The axis of the length symbol, or None for a memory of fixed shape."""
        return next((i for i, d in enumerate(self.shape) if isinstance(d, str) and d != BATCH), None)

    @property
    def length_symbol(self) -> str | None:
        axis = self.length_axis
        return None if axis is None else str(self.shape[axis])

    def concrete_shape(self, batch: int = 1, length: int = 1) -> tuple[int, ...]:
        """The shape for ``batch`` streams of memory length ``length`` (graph layout)."""
        axis = self.length_axis
        return tuple(batch if d == BATCH else length if i == axis else int(d) for i, d in enumerate(self.shape))
