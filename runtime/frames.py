"""Validation of frames at the boundary: fast for the common case, exact names in every error.

``FrameCheck.one`` takes one frame (no batch / time axes), ``FrameCheck.many`` a sequence
of frames (one leading time axis). Both return an array of the input's dtype, or raise
``InputError`` naming the tensor and the axis. The fast path (an ndarray of the right
dtype and shape, or a Python int token) skips ``np.asarray`` and tests finiteness with one
dot product (NaN / Inf propagate; an overflow falls back to the exact test).
"""

from __future__ import annotations

from collections.abc import Callable
from math import isfinite
from typing import Any, cast

import numpy as np

from edgernn.runtime.errors import InputError

_MAX = np.maximum.reduce  # the ufunc itself: skips ndarray.max's Python wrapper
_UNSIGNED = {np.dtype(t): np.dtype(u) for t, u in ((np.int64, np.uint64), (np.int32, np.uint32), (np.int8, np.uint8))}


class FrameCheck:
    """Checks frames of one streamed input: shape, dtype kind, token range, NaN / Inf."""

    __slots__ = (
        "name", "shape", "dtype", "vocab", "check_finite", "tokens", "floating", "plain", "one", "many", "zero", "zmany"
    )

    def __init__(
        self, name: str, shape: tuple[int, ...], dtype: Any, vocab: int | None, nonfinite: str, token_ids: bool = False
    ) -> None:
        self.name = name
        self.shape = shape
        self.dtype = np.dtype(dtype)
        if token_ids and vocab is None:  # a foreign token model: ids are still ids, in [0, dtype max]
            vocab = int(np.iinfo(self.dtype).max) + 1
        self.vocab = vocab
        # x . 0 is 0 for every finite x and NaN otherwise: a finiteness test that cannot overflow (1e30 . 1e30 does).
        # Flat zeros: one frame (``one``), and as many items as the latest ``many`` call had (grown on demand).
        # One BLAS dot is the cheapest test between two onnxruntime calls (a ufunc reduction or
        # ``np.errstate`` costs several µs there, with the interpreter's caches cold).
        flat = shape if len(shape) <= 1 else (int(np.prod(shape, dtype=np.int64)),)
        self.zero = np.zeros(flat, dtype=self.dtype) if self.dtype.kind == "f" else None
        self.zmany: np.ndarray | None = None
        self.floating = self.dtype.kind == "f"
        self.tokens = self.dtype.kind in "iu"
        self.check_finite = nonfinite == "raise" and self.floating
        self.plain = self.check_finite and vocab is None  # the common case: one dot, nothing else
        if self.plain:
            self.one = self._fast_one()
        elif self.tokens and not shape:
            self.one = self._token_one()
        else:
            self.one = self.checked_one
        self.many = self._fast_many() if self.plain else self.checked_many

    def _fast_one(self) -> Any:
        """``one`` for the common case (real-valued vector frames, NaN / Inf refused) as a closure: no lookups."""
        nd, shape, dtype, checked = np.ndarray, self.shape, self.dtype, self.checked_one
        zero = cast(np.ndarray, self.zero)  # set for real-valued frames, the only ones this path takes

        if len(shape) <= 1:  # a frame ``dot`` takes as it is

            def one(frame: Any) -> Any:
                if type(frame) is nd and frame.shape == shape and frame.dtype is dtype:
                    try:
                        if isfinite(frame.dot(zero)):
                            return frame
                    except RuntimeWarning:  # NaN / Inf under warnings 'error': the exact test below says which
                        pass
                return checked(frame)

            return one

        def one_nd(frame: Any) -> Any:
            if type(frame) is nd and frame.shape == shape and frame.dtype is dtype:
                try:
                    if isfinite(frame.reshape(-1).dot(zero)):
                        return frame
                except RuntimeWarning:
                    pass
            return checked(frame)

        return one_nd

    def _token_one(self) -> Any:
        """``one`` for a token model (one id per frame): a Python / numpy int or a 0-d array, as a closure."""
        vocab, checked = self.vocab if self.vocab is not None else 1 << 63, self.checked_one
        nd, i64, dtype = np.ndarray, np.int64, self.dtype

        def one(frame: Any) -> Any:
            t = type(frame)
            if t is int or t is i64:
                v = frame
            elif t is nd and frame.dtype is dtype and frame.shape == ():
                v = int(frame)
            else:
                return checked(frame)
            if 0 <= v < vocab:
                return v
            return checked(frame)

        return one

    def checked_one(self, frame: Any) -> Any:
        """One frame; a token model also takes a Python int (returned as is)."""
        if type(frame) is np.ndarray and frame.shape == self.shape and frame.dtype is self.dtype:
            if self.check_finite:
                if not _finite(frame):
                    raise InputError(f"input {self.name!r}: holds NaN or Inf (Engine nonfinite='raise')")
            if self.vocab is not None:
                self._range(frame)
            return frame
        if self.tokens and isinstance(frame, (int, np.integer)) and not isinstance(frame, bool) and not self.shape:
            if self.vocab is not None and not 0 <= int(frame) < self.vocab:
                raise InputError(f"input {self.name!r}: token ids must be in [0, {self.vocab}), got {frame}")
            return frame
        return self.slow(frame, 0)

    def _fast_many(self) -> Any:
        """``many`` for the common case (real-valued frames, NaN / Inf refused) as a closure: one dot."""
        nd, shape, dtype, checked, name = np.ndarray, self.shape, self.dtype, self.checked_many, self.name

        def many(frames: Any) -> np.ndarray:
            if type(frames) is nd and frames.dtype is dtype and frames.shape[1:] == shape and frames.flags.c_contiguous:
                flat = frames.reshape(-1)
                zero = self.zmany
                if zero is None or zero.size != flat.size:
                    zero = self._zeros(flat.size)
                try:
                    if isfinite(flat.dot(zero)):
                        return frames
                except RuntimeWarning:  # Inf under warnings 'error'
                    pass
                if not _finite(frames):
                    raise InputError(f"input {name!r}: holds NaN or Inf (Engine nonfinite='raise')")
                return frames
            return checked(frames)

        return many

    def checked_many(self, frames: Any) -> np.ndarray:
        """Frames with one leading (time) axis, as a C-contiguous array of the input's dtype."""
        if (
            type(frames) is np.ndarray
            and frames.dtype is self.dtype
            and frames.shape[1:] == self.shape
            and frames.flags.c_contiguous
        ):
            if self.check_finite and not self._finite_many(frames) and not _finite(frames):
                raise InputError(f"input {self.name!r}: holds NaN or Inf (Engine nonfinite='raise')")
            if self.vocab is not None:
                self._range(frames)
            return frames
        return self.slow(frames, 1)

    def buffer_test(self, buf: np.ndarray) -> Callable[[], bool]:
        """A test of what ``buf`` holds when called: do all its values pass ``many``'s value tests?

        ``buf`` is a buffer frames are written into (a batched call's input buffer: this
        input's dtype, C-contiguous, any shape); the test is made once per buffer and called
        per call (finite where NaN / Inf are refused, token ids in range), one reduction over
        every stream's frames at once. False means "check each stream's frames" (the general
        path then says what is wrong and where), not an error.
        """
        if buf.dtype != self.dtype or not buf.flags.c_contiguous:
            return _never
        flat = buf.reshape(-1)
        if not flat.size:
            return _always
        finite = self.check_finite
        zero = np.zeros(flat.size, self.dtype) if finite else None
        vocab = self.vocab
        unsigned = _UNSIGNED.get(self.dtype) if vocab is not None else None
        if vocab is not None and unsigned is None:
            return _never
        ids = flat.view(unsigned) if unsigned is not None else None
        # The largest id seen as unsigned (a negative id is huge): argmax and one item, not a ufunc
        # reduction (~4x cheaper, most of all with the caches cold between two onnxruntime calls).
        top, item = (ids.argmax, ids.item) if ids is not None else (None, None)
        if zero is None and top is not None and item is not None:

            def ids_test() -> bool:
                return bool(item(top()) < vocab)

            return ids_test

        def test() -> bool:
            try:
                if zero is not None and not isfinite(flat.dot(zero)):
                    return False
            except RuntimeWarning:  # Inf under warnings 'error'
                return False
            return top is None or item is None or bool(item(top()) < vocab)

        return test

    def _zeros(self, size: int) -> np.ndarray:
        """Flat zeros of ``size`` items for the many-frames test, kept for the next call of the same size."""
        zero = self.zmany = np.zeros(size, self.dtype)
        return zero

    def _finite_many(self, frames: np.ndarray) -> bool:
        """The fast finiteness test (one dot with zeros); False means "test exactly", not "not finite"."""
        flat = frames.reshape(-1)
        zero = self.zmany
        if zero is None or zero.size != flat.size:
            zero = self._zeros(flat.size)
        try:
            return isfinite(flat.dot(zero))
        except RuntimeWarning:  # Inf under warnings 'error'
            return False

    def slow(self, frames: Any, leading: int) -> np.ndarray:
        try:
            arr = np.asarray(frames)
        except (ValueError, TypeError) as exc:  # ragged nested lists, objects numpy cannot read
            raise InputError(f"input {self.name!r}: cannot be read as an array: {exc}") from None
        want = self.shape
        if arr.ndim != leading + len(want):
            what = "one frame" if leading == 0 else f"{leading} leading axis then one frame"
            raise InputError(
                f"input {self.name!r}: expected {what} of shape {want} (rank {leading + len(want)}), "
                f"got shape {arr.shape} (rank {arr.ndim})"
            )
        for axis, (got, exp) in enumerate(zip(arr.shape[leading:], want)):
            if got != exp:
                raise InputError(
                    f"input {self.name!r}: frame axis {axis} has size {got}, expected {exp} (frame shape {want})"
                )
        if self.tokens:
            if arr.dtype.kind not in "iu":
                raise InputError(f"input {self.name!r}: expected integer tokens, got dtype {arr.dtype}")
        elif self.floating:
            if arr.dtype.kind not in "fiu":
                raise InputError(f"input {self.name!r}: expected real numbers, got dtype {arr.dtype}")
        elif arr.dtype != self.dtype:
            raise InputError(f"input {self.name!r}: expected dtype {self.dtype}, got {arr.dtype}")
        if self.tokens and self.vocab is not None:
            self._range(arr)
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow in the cast is reported below
            out = np.asarray(arr, dtype=self.dtype)
        out = out if out.flags.c_contiguous else out.copy()
        if self.check_finite and not np.isfinite(out).all():  # checked after the cast: 1e300 is Inf in float32
            raise InputError(
                f"input {self.name!r}: holds NaN or Inf (or values beyond {self.dtype}'s range); nonfinite='raise'"
            )
        if self.tokens and not np.array_equal(out, arr):
            raise InputError(f"input {self.name!r}: token ids do not fit dtype {self.dtype}")
        return out

    def _range(self, arr: np.ndarray) -> None:
        if not arr.size or self.vocab is None:
            return
        unsigned = _UNSIGNED.get(arr.dtype)
        if unsigned is not None and arr.flags.c_contiguous:
            # One pass: seen as unsigned, a negative id is huge, so max < vocab covers both ends.
            if _MAX(arr.view(unsigned), axis=None) < self.vocab:
                return
        if arr.min() < 0 or arr.max() >= self.vocab:
            raise InputError(
                f"input {self.name!r}: token ids must be in [0, {self.vocab}), got min {arr.min()} max {arr.max()}"
            )


def _never() -> bool:
    return False


def _always() -> bool:
    return True


def _finite(arr: np.ndarray) -> bool:
    """True when ``arr`` holds no NaN / Inf: one BLAS dot with zeros (never overflows), exact test if not finite."""
    flat = arr.reshape(-1)
    with np.errstate(all="ignore"):  # NaN / Inf inputs raise FP flags; no warning, the answer is the result
        if isfinite(flat.dot(np.zeros_like(flat))):
            return True
        return bool(np.isfinite(arr).all())
