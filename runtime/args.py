"""Argument checks of the public calls, run before any work: a wrong type is an ``ArgumentError``
(an ``InputError`` and a ``TypeError``) that names the call and the argument, never an
``AttributeError`` from deep inside, nor an error that blames the model file.

Example:
    >>> count("Engine.batch", "max_streams", 8, lo=1)
    8
    >>> count("Engine.batch", "max_streams", 2.5, lo=1)
    Traceback (most recent call last):
    ...
    edgernn.runtime.errors.ArgumentError: Engine.batch: max_streams must be an int >= 1, got 2.5 (float)
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Sequence
from typing import Any

from edgernn.runtime.errors import ArgumentError, SpecError


def _got(value: Any) -> str:
    text = repr(value)
    return f"{text[:60]}{'...' if len(text) > 60 else ''} ({type(value).__name__})"


def path(call: str, name: str, value: Any) -> str:
    """A file path: ``str`` or ``os.PathLike`` (``bytes`` decoded as the OS does); returned as ``str``."""
    if isinstance(value, bytes):
        value = os.fsdecode(value)
    if not isinstance(value, (str, os.PathLike)):
        raise ArgumentError(f"{call}: {name} must be a path (str or os.PathLike), got {_got(value)}")
    text = os.fspath(value)
    if not isinstance(text, str):  # a PathLike whose __fspath__ returns bytes
        text = os.fsdecode(text)
    return text


def count(call: str, name: str, value: Any, lo: int = 0, hi: int | None = None) -> int:
    """An int in [lo, hi] (numpy integers too; ``bool`` refused: ``True`` is not a count)."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or value < lo or (hi is not None and value > hi):
        bounds = f">= {lo}" if hi is None else f"from {lo} to {hi}"
        raise ArgumentError(f"{call}: {name} must be an int {bounds}, got {_got(value)}")
    return int(value)


def seconds(call: str, name: str, value: Any, optional: bool = True, minimum: float | None = 0.0) -> float | None:
    """A finite number of seconds (>= ``minimum`` unless that is None), or None when ``optional``."""
    if value is None and optional:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or (minimum is not None and value < minimum):
        what = f"a finite number of seconds{'' if minimum is None else f' >= {minimum:g}'}"
        raise ArgumentError(f"{call}: {name} must be {what}{' or None' if optional else ''}, got {_got(value)}")
    return float(value)


def choice(call: str, name: str, value: Any, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ArgumentError(f"{call}: {name} must be one of {', '.join(map(repr, choices))}, got {_got(value)}")
    return value


def function(call: str, name: str, value: Any) -> Callable[..., Any] | None:
    """A callable or None."""
    if value is not None and not callable(value):
        raise ArgumentError(f"{call}: {name} must be a callable or None, got {_got(value)}")
    return value


def profile(call: str, value: Any) -> Any:
    """None, a profile name (``str``: checked by the caller), or an object with the session profile's
    shape (``runtime/session.py``: ``session_options()`` and ``providers()``)."""
    if value is None or isinstance(value, str):
        return value
    if not all(callable(getattr(value, m, None)) for m in ("session_options", "providers")):
        raise ArgumentError(
            f"{call}: profile must be None, 'cpu' or a device profile (edgernn.devices.load_profile(...), "
            f"an object with session_options() and providers()), got {_got(value)}"
        )
    return value


def spec(call: str, value: Any, spec_type: type) -> Any:
    """None, a ``StreamSpec`` (``spec_type``) or the path of a spec.json."""
    if value is None or isinstance(value, spec_type):
        return value
    if isinstance(value, (str, bytes, os.PathLike)):
        text = path(call, "spec", value)
        if "\x00" in text:
            raise SpecError(f"{call}: the spec path {text[:60]!r} contains a NUL character")
        return text
    raise ArgumentError(f"{call}: spec must be a StreamSpec, the path of a spec.json or None, got {_got(value)}")
