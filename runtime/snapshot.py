"""Stream snapshots: bytes that carry a stream's state to another process, machine or provider.

Layout (all integers little-endian)::

    b"EDGERNN-SNAP"  u32 format version  u32 header length  header (JSON, UTF-8)
    payload (each state, then the context window, C order, little-endian)
    sha256 of everything before it (32 bytes)

The header names the model's sha256, the spec version and, per tensor, its name, dtype
and shape. The payload is plain host memory, independent of the execution provider: a
snapshot taken on one provider restores on another. ``decode`` refuses, with SnapshotError,
a blob that is truncated or altered (checksum), from another model (sha256), another spec
version, or whose tensors do not match this engine's spec.
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import TYPE_CHECKING

import numpy as np

from edgernn.runtime.errors import SnapshotError
from edgernn.runtime.spec import SPEC_VERSION

if TYPE_CHECKING:
    from edgernn.runtime.engine import Engine

MAGIC = b"EDGERNN-SNAP"
FORMAT = 1
_HEAD = struct.Struct("<II")
_DIGEST = 32
CONTEXT = "__context__"


def encode(engine: Engine, states: list[np.ndarray], ctx: np.ndarray | None) -> bytes:
    """The snapshot of ``states`` (batch 1, graph layout) and the context window ``ctx``."""
    tensors = [(s.input, v) for s, v in zip(engine.spec.states, states)]
    if ctx is not None:
        tensors.append((CONTEXT, ctx))
    header = {
        "model_sha256": engine.model_sha256,
        "spec_version": engine.spec.version,
        "tensors": [{"name": n, "dtype": v.dtype.name, "shape": list(v.shape)} for n, v in tensors],
    }
    head = json.dumps(header, sort_keys=True).encode()
    body = b"".join(np.ascontiguousarray(v, dtype=v.dtype.newbyteorder("<")).tobytes() for _, v in tensors)
    blob = MAGIC + _HEAD.pack(FORMAT, len(head)) + head + body
    return blob + hashlib.sha256(blob).digest()


def decode(engine: Engine, blob: bytes) -> tuple[list[np.ndarray], np.ndarray | None]:
    """(states, context) from ``blob``, checked against ``engine``; SnapshotError says what is wrong."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise SnapshotError(f"a snapshot is bytes, got {type(blob).__name__}")
    data = bytes(blob)
    fixed = len(MAGIC) + _HEAD.size
    if len(data) < fixed + _DIGEST or not data.startswith(MAGIC):
        raise SnapshotError("not an edgernn snapshot (bad magic or too short)")
    if hashlib.sha256(data[:-_DIGEST]).digest() != data[-_DIGEST:]:
        raise SnapshotError("snapshot is corrupted or truncated (checksum mismatch)")
    fmt, head_len = _HEAD.unpack_from(data, len(MAGIC))
    if fmt != FORMAT:
        raise SnapshotError(f"snapshot format {fmt} is not supported (this edgernn reads {FORMAT})")
    try:
        header = json.loads(data[fixed : fixed + head_len])
    except ValueError:
        raise SnapshotError("snapshot header is not valid JSON") from None
    if header.get("model_sha256") != engine.model_sha256:
        raise SnapshotError(
            f"snapshot belongs to another model (sha256 {str(header.get('model_sha256'))[:12]}…, "
            f"this engine runs {engine.model_sha256[:12]}…)"
        )
    if header.get("spec_version") != SPEC_VERSION:
        raise SnapshotError(f"snapshot spec version {header.get('spec_version')!r}, this edgernn reads {SPEC_VERSION}")
    want = [(s.input, np.dtype(s.dtype).name, list(s.concrete_shape(1))) for s in engine.spec.states]
    if engine.spec.context is not None:
        ctx0 = engine.initial_context(1)
        want.append((CONTEXT, ctx0.dtype.name, list(ctx0.shape)))
    got = [(t["name"], t["dtype"], t["shape"]) for t in header.get("tensors", [])]
    if got != want:
        raise SnapshotError(f"snapshot tensors {got} do not match this model's state {want}")
    offset = fixed + head_len
    out: list[np.ndarray] = []
    for _, dtype, shape in want:
        dt = np.dtype(dtype).newbyteorder("<")
        size = int(np.prod(shape)) * dt.itemsize
        out.append(np.frombuffer(data, dtype=dt, count=int(np.prod(shape)), offset=offset).reshape(shape).astype(dtype))
        offset += size
    if offset != len(data) - _DIGEST:
        raise SnapshotError("snapshot payload length does not match its header")
    ctx = out.pop() if engine.spec.context is not None else None
    return out, ctx
