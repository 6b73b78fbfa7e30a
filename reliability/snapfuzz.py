"""Forged snapshots: a valid sha256 over a hostile header (the digest is unkeyed by design).

Each case decodes a real snapshot, changes its header at random JSON paths (the spec fuzz's
``mutate``) or replaces it whole (a list, a number, a 5,000-deep nesting, ``tensors: [1]``,
huge shapes), optionally cuts or pads the payload, recomputes the digest and calls
``restore``. It must be accepted or raise SnapshotError, and a refused restore must leave
the stream's state exactly as it was.

Example:
    >>> blob = forge(b"EDGERNN-SNAP" + bytes(8), {"a": 1}, b"")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
from pathlib import Path
from typing import Any

from edgernn.reliability.specfuzz import DEEP, MODEL, example_frames, mutate
from edgernn.reliability.specfuzz import prepare as prepare_model

MAGIC = b"EDGERNN-SNAP"
_HEAD = struct.Struct("<II")

WHOLE: list[Any] = [
    [], [1], "x", 7, None, {"tensors": [1]}, {"tensors": "x"}, {"tensors": [{"name": 1}]},
    {"tensors": [{"name": "h", "dtype": "float32", "shape": [10**12]}]}, DEEP,
]  # fmt: skip


def prepare(root: Path, seed: int) -> None:
    prepare_model(root, seed)


def split(blob: bytes) -> tuple[int, dict[str, Any], bytes]:
    """(format, header, payload) of a snapshot made by this edgernn."""
    fmt, head_len = _HEAD.unpack_from(blob, len(MAGIC))
    start = len(MAGIC) + _HEAD.size
    return fmt, json.loads(blob[start : start + head_len]), blob[start + head_len : -32]


def forge(header_text: bytes, payload: bytes, fmt: int = 1) -> bytes:
    """A snapshot with a valid digest around any header and payload."""
    blob = MAGIC + _HEAD.pack(fmt, len(header_text)) + header_text + payload
    return blob + hashlib.sha256(blob).digest()


def setup(root: Path, seed: int) -> dict[str, Any]:
    from edgernn.runtime.engine import Engine

    engine = Engine.load(root / MODEL)
    stream = engine.stream()
    stream.push(example_frames(engine, 4, random.Random(seed)))
    return {"engine": engine, "stream": stream, "blob": stream.snapshot(), "seed": seed}


def mutant(ctx: dict[str, Any], rng: random.Random) -> bytes:
    fmt, header, payload = split(ctx["blob"])
    doc: Any = rng.choice(WHOLE) if rng.random() < 0.2 else mutate(header, rng)
    text = json.dumps(doc).replace(json.dumps(DEEP), "[" * 5000 + "]" * 5000)
    cut = rng.random()
    if cut < 0.15:
        payload = payload[: rng.randrange(len(payload) + 1)]
    elif cut < 0.25:
        payload += bytes(rng.randrange(1, 64))
    if rng.random() < 0.05:
        fmt = rng.choice([0, 2, 2**32 - 1])
    return forge(text.encode("utf-8", "surrogatepass"), payload, fmt)


def run_case(ctx: dict[str, Any], i: int) -> str:
    from edgernn.runtime.errors import EdgeRNNError

    rng = random.Random(ctx["seed"] * 1_000_003 + i)
    stream = ctx["stream"]
    before = stream.snapshot()
    try:
        stream.restore(mutant(ctx, rng))
    except EdgeRNNError as exc:
        if stream.snapshot() != before:
            return f"untyped: state changed by a refused restore ({type(exc).__name__})"
        return type(exc).__name__
    stream.restore(before)
    return "accepted"
