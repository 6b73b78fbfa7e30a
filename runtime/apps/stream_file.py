"""Any model over a file of frames: ``edgernn run MODEL.onnx --spec spec.json --input x.npy|x.wav -o y.npy``.

``read_frames`` reads one stream's input: a ``.npy`` array of frames ``(T, *frame)`` (the
engine checks shape and dtype and names the tensor on a mismatch), or a ``.wav`` file of
PCM samples (mono, 8 / 16 / 32-bit integers, read with the stdlib ``wave`` module) as float32
in [-1, 1) for a model whose frame is one sample. ``run_frames`` pushes them through one
stream and, for a window model, flushes the last partial window (zero-padded). Nothing here
knows a model: the spec says what a frame is.

Example:
    >>> engine = Engine.load("silero_vad.onnx", spec="spec.json")       # doctest: +SKIP
    >>> xs, note = read_frames("speech.wav", engine)                    # doctest: +SKIP
    >>> ys = run_frames(engine, xs)                                     # (windows, 1)
"""

from __future__ import annotations

import os
import wave
from pathlib import Path
from typing import Any

import numpy as np

from edgernn.runtime.engine import Engine
from edgernn.runtime.errors import InputError

SUFFIXES = (".npy", ".wav")
RATE_CONSTANTS = ("sr", "sample_rate", "sampling_rate")  # a constant by one of these names must equal a wav's rate
# sample width in bytes -> (dtype, offset, scale): 8-bit PCM is unsigned, 16 / 32-bit signed little-endian
_PCM: dict[int, tuple[np.dtype[Any], float, float]] = {
    1: (np.dtype(np.uint8), 128.0, 128.0),
    2: (np.dtype("<i2"), 0.0, 32768.0),
    4: (np.dtype("<i4"), 0.0, 2147483648.0),
}


def read_frames(path: str | os.PathLike[str], engine: Engine) -> tuple[np.ndarray, str]:
    """The frames in ``path`` for ``engine``'s streamed input, and a line saying what was read."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        return _read_npy(p)
    if suffix == ".wav":
        return _read_wav(p, engine)
    raise InputError(f"{p}: expected a {' or '.join(SUFFIXES)} file of frames, got {suffix or 'no suffix'!r}")


def _read_npy(p: Path) -> tuple[np.ndarray, str]:
    try:
        xs = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # not an .npy, truncated, or an object array
        raise InputError(f"{p}: cannot read it as a .npy array of numbers: {exc}") from None
    if not isinstance(xs, np.ndarray) or xs.ndim == 0:
        raise InputError(f"{p}: expected an array of frames (time first), got a single value")
    return xs, f"{p.name}: {xs.shape[0]} frames of shape {xs.shape[1:]}, {xs.dtype}"


def _read_wav(p: Path, engine: Engine) -> tuple[np.ndarray, str]:
    if engine.multi_input or engine.frame_shape != ():
        raise InputError(
            f"{p}: a .wav file gives one sample per frame; input {engine.input.name!r} takes frames of shape "
            f"{engine.frame_shape}: save them as a .npy array (T, {', '.join(map(str, engine.frame_shape))})"
        )
    try:
        with wave.open(str(p), "rb") as w:
            channels, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            data = w.readframes(n)
    except (wave.Error, EOFError, OSError) as exc:
        raise InputError(f"{p}: not a PCM .wav file this reader takes: {exc}") from None
    if channels != 1:
        raise InputError(f"{p}: {channels} channels; the stream takes one (mix it down to mono first)")
    if width not in _PCM:
        raise InputError(f"{p}: {8 * width}-bit samples; 8, 16 and 32-bit integer PCM are read")
    for c in engine.spec.constants:
        if c.name in RATE_CONSTANTS and not isinstance(c.value, list) and int(c.value) != rate:
            raise InputError(
                f"{p}: sampled at {rate} Hz, but the spec feeds constant {c.name!r} = {c.value}: "
                f"resample the audio or change the constant"
            )
    dtype, offset, scale = _PCM[width]
    raw = np.frombuffer(data[: len(data) - len(data) % width], dtype=dtype)
    xs = ((raw.astype(np.float64) - offset) / scale).astype(engine.input_dtype)
    return xs, f"{p.name}: {xs.shape[0]} samples at {rate} Hz ({xs.shape[0] / rate:.2f} s), {8 * width}-bit PCM"


def run_frames(engine: Engine, xs: np.ndarray, chunk: int = 64, flush: bool = True) -> np.ndarray:
    """One stream over ``xs``: ``push(xs, chunk)``, then ``flush()`` (a window model's last partial window)."""
    stream = engine.stream()
    try:
        out = stream.push(xs, chunk=chunk)
        if flush and stream.pending:
            out = np.concatenate([out, stream.flush()])
        return out
    finally:
        stream.close()
