"""Stream snapshots: bytes that carry a stream's state to another process, machine, provider or graph form.

Layout (all integers little-endian)::

    b"EDGERNN-SNAP"  u32 format version  u32 header length  header (JSON, UTF-8)
    payload (each state, then the context window, then pending window items; C order, little-endian)
    sha256 of everything before it (32 bytes)

Format 2 ties a snapshot to the *state contract*, not to the graph's bytes: the digest of
the spec's states (names, shapes, initial values), its context window and window, and the
model's origin (the checkpoint's sha256 for a model exported here, else the graph's). So a
stream moves between the graph forms and precisions exported from one checkpoint (fp32,
fp16, int8, decomposed) and between providers; a snapshot of another model is refused.
Floating-point state is cast to the engine's dtype on restore (fp32 ↔ fp16).

Format 3 adds a stream's per-stream memory (spec version 3, ``runtime/memory.py``): after the
other tensors, one entry ``__memory__:<name>`` per memory tensor (graph layout, batch axis of
1, its own length); the memory specs join the state contract. A stream without memory still
writes format 2, so its snapshots read as before. Format 1 snapshots (tied to the graph's
sha256) still load into the same graph; formats 1 and 2 restore with no memory.

The header is parsed with types and bounds (size, nesting depth, tensor count, element
count) before anything is read from the payload: a forged header, whatever its checksum,
is a SnapshotError and the stream's state is untouched. The checksum detects damage, not
forgery (snapshots move between processes and pages, so it is not keyed).
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from typing import TYPE_CHECKING, Any

import numpy as np

from edgernn.runtime.errors import InputError, SnapshotError
from edgernn.runtime.memory import Memory
from edgernn.runtime.memory import check as check_memory

if TYPE_CHECKING:
    from edgernn.runtime.engine import Engine

MAGIC = b"EDGERNN-SNAP"
FORMAT = 3  # with per-stream memory; a stream without memory writes FORMAT_PLAIN
FORMAT_PLAIN = 2
READABLE = (1, 2, 3)
_HEAD = struct.Struct("<II")
_DIGEST = 32
CONTEXT = "__context__"
PENDING = "__pending__"
MEMORY = "__memory__:"  # + the memory tensor's name
MAX_HEADER = 1 << 16  # bytes of header JSON
MAX_DEPTH = 8  # nesting of the header JSON
MAX_TENSORS = 1024
DTYPES = ("float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool")


def state_contract(engine: Engine) -> str:
    """The digest a snapshot is tied to: the spec's states, context, window, and the model's origin."""
    spec = engine.spec
    origin = spec.provenance.get("checkpoint_sha256") if isinstance(spec.provenance, dict) else None
    ctx = spec.context
    doc: dict[str, Any] = {
        "states": [[s.input, list(s.shape), float(s.init)] for s in spec.states],
        "context": None if ctx is None else [ctx.input, ctx.frames, list(engine.frame_shape)],
        "window": engine.window,
        "origin": origin if isinstance(origin, str) and origin else engine.model_sha256,
    }
    if spec.memory:  # only then: the contracts of specs without memory stay what they were
        doc["memory"] = [[m.name, m.dtype, list(m.shape), m.max_length, m.mask] for m in spec.memory]
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def encode(
    engine: Engine,
    states: list[np.ndarray],
    ctx: np.ndarray | None,
    pending: np.ndarray | None = None,
    memory: Memory | None = None,
) -> bytes:
    """The snapshot of ``states`` (batch 1, graph layout), the context window, pending window items and memory."""
    tensors = [(s.input, v) for s, v in zip(engine.spec.states, states)]
    if ctx is not None:
        tensors.append((CONTEXT, ctx))
    if pending is not None:
        tensors.append((PENDING, pending))
    if memory is not None:
        tensors += [(MEMORY + m.name, memory.arrays[m.name]) for m in engine.spec.memory]
    header = {
        "contract": state_contract(engine),
        "model_sha256": engine.model_sha256,
        "spec_version": engine.spec.version,
        "tensors": [{"name": n, "dtype": v.dtype.name, "shape": list(v.shape)} for n, v in tensors],
    }
    head = json.dumps(header, sort_keys=True).encode()
    body = b"".join(np.ascontiguousarray(v, dtype=v.dtype.newbyteorder("<")).tobytes() for _, v in tensors)
    blob = MAGIC + _HEAD.pack(FORMAT if memory is not None else FORMAT_PLAIN, len(head)) + head + body
    return blob + hashlib.sha256(blob).digest()


def decode(engine: Engine, blob: Any) -> tuple[list[np.ndarray], np.ndarray | None, np.ndarray | None]:
    """(states, context, pending) from ``blob``, checked against ``engine``; SnapshotError says what is wrong."""
    states, ctx, pending, _ = decode_all(engine, blob)
    return states, ctx, pending


def decode_all(
    engine: Engine, blob: Any
) -> tuple[list[np.ndarray], np.ndarray | None, np.ndarray | None, Memory | None]:
    """(states, context, pending, memory or None) from ``blob``, checked against ``engine`` (SnapshotError)."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise SnapshotError(f"a snapshot is bytes, got {type(blob).__name__}")
    data = bytes(blob)
    fixed = len(MAGIC) + _HEAD.size
    if len(data) < fixed + _DIGEST or not data.startswith(MAGIC):
        raise SnapshotError("not an edgernn snapshot (bad magic or too short)")
    if hashlib.sha256(data[:-_DIGEST]).digest() != data[-_DIGEST:]:
        raise SnapshotError("snapshot is corrupted or truncated (checksum mismatch)")
    fmt, head_len = _HEAD.unpack_from(data, len(MAGIC))
    if fmt not in READABLE:
        raise SnapshotError(f"snapshot format {fmt} is not supported (this edgernn reads {READABLE})")
    if head_len > MAX_HEADER or fixed + head_len > len(data) - _DIGEST:
        raise SnapshotError(f"snapshot header length {head_len} is beyond the blob or the limit ({MAX_HEADER} bytes)")
    header = _parse_header(data[fixed : fixed + head_len])
    _check_origin(engine, header, fmt)
    got = _tensors(header)
    want = _expected(engine)
    held = [t for t in got if t[0].startswith(MEMORY)]
    got = got[: len(got) - len(held)]
    names = [n for n, _, _ in got]
    if names != [n for n, _, _ in want] + ([PENDING] if engine.window is not None and fmt >= 2 else []):
        raise SnapshotError(f"snapshot tensors {got} do not match this model's state {want}")
    offset = fixed + head_len
    end = len(data) - _DIGEST
    out: list[np.ndarray] = []
    for (name, dtype, shape), spec in zip(got, want + [(PENDING, "", [])]):
        _, want_dtype, want_shape = spec
        if name == PENDING:
            if len(shape) != 1 + len(engine.frame_shape) or shape[1:] != list(engine.frame_shape):
                raise SnapshotError(f"snapshot pending items have shape {shape}, expected (p, *{engine.frame_shape})")
            if engine.window is None or not 0 <= shape[0] < engine.window:
                raise SnapshotError(f"snapshot holds {shape[0]} pending items; this model's window is {engine.window}")
            want_dtype = np.dtype(engine.input_dtype).name
        elif shape != want_shape:
            raise SnapshotError(
                f"snapshot tensors do not match: {name!r} has shape {shape}, this model's is {want_shape}"
            )
        if dtype != want_dtype and not (np.dtype(dtype).kind == "f" and np.dtype(want_dtype).kind == "f"):
            raise SnapshotError(f"snapshot tensors do not match: {name!r} is {dtype}, this model's is {want_dtype}")
        dt = np.dtype(dtype).newbyteorder("<")
        count = math.prod(shape)
        size = count * dt.itemsize
        if offset + size > end:
            raise SnapshotError(f"snapshot payload is shorter than its header says (tensor {name!r})")
        arr = np.frombuffer(data, dtype=dt, count=count, offset=offset).reshape(shape)
        out.append(arr.astype(want_dtype))  # a copy, in this engine's dtype (fp16 <-> fp32 between forms)
        offset += size
    memory, offset = _memory(engine, data, offset, end, held, fmt)
    if offset != end:
        raise SnapshotError("snapshot payload length does not match its header")
    pending = out.pop() if names and names[-1] == PENDING else None
    ctx = out.pop() if engine.spec.context is not None else None
    return out, ctx, pending, memory


def _memory(
    engine: Engine, data: bytes, offset: int, end: int, held: list[tuple[str, str, list[int]]], fmt: int
) -> tuple[Memory | None, int]:
    """The memory entries at the payload's end (format 3), checked like a caller's ``set_memory``."""
    if not held:
        return None, offset
    spec = engine.spec
    want = [MEMORY + m.name for m in spec.memory]
    if fmt < 3 or [n for n, _, _ in held] != want:
        raise SnapshotError(f"snapshot memory tensors {[n for n, _, _ in held]} do not match this model's {want}")
    given: dict[str, np.ndarray] = {}
    for (_, dtype, shape), m in zip(held, spec.memory):
        if len(shape) != len(m.shape) or shape[m.batch_axis] != 1:
            raise SnapshotError(f"snapshot memory {m.name!r} has shape {shape}, expected {list(m.concrete_shape(1))}")
        if m.max_length is not None and math.prod(shape) > math.prod(m.concrete_shape(1, m.max_length)):
            raise SnapshotError(f"snapshot memory {m.name!r} shape {shape} is beyond the spec's max_length")
        dt = np.dtype(dtype).newbyteorder("<")
        size = math.prod(shape) * dt.itemsize
        if offset + size > end:
            raise SnapshotError(f"snapshot payload is shorter than its header says (memory {m.name!r})")
        arr = np.frombuffer(data, dtype=dt, count=math.prod(shape), offset=offset).reshape(shape)
        given[m.name] = arr.squeeze(axis=m.batch_axis)
        offset += size
    try:
        return check_memory(spec, given, "snapshot memory"), offset
    except InputError as exc:
        raise SnapshotError(str(exc)) from None


def _expected(engine: Engine) -> list[tuple[str, str, list[int]]]:
    want = [(s.input, np.dtype(s.dtype).name, list(s.concrete_shape(1))) for s in engine.spec.states]
    if engine.spec.context is not None:
        ctx0 = engine.initial_context(1)
        want.append((CONTEXT, ctx0.dtype.name, list(ctx0.shape)))
    return want


def _check_origin(engine: Engine, header: dict[str, Any], fmt: int) -> None:
    if fmt == 1:  # tied to the graph's bytes and spec version 1
        if header.get("model_sha256") != engine.model_sha256:
            raise SnapshotError(
                f"snapshot belongs to another model (sha256 {str(header.get('model_sha256'))[:12]}…, "
                f"this engine runs {engine.model_sha256[:12]}…)"
            )
        if header.get("spec_version") != 1:
            raise SnapshotError(
                f"snapshot spec version {header.get('spec_version')!r}: format 1 snapshots are spec version 1"
            )
        return
    contract = header.get("contract")
    if contract != state_contract(engine):
        raise SnapshotError(
            f"snapshot belongs to another model (state contract {str(contract)[:12]}…, this engine's is "
            f"{state_contract(engine)[:12]}…): its states, window or origin checkpoint differ"
        )
    version = header.get("spec_version")
    if isinstance(version, bool) or version not in (1, 2, 3):
        raise SnapshotError(f"snapshot spec version {version!r} is not supported (this edgernn reads (1, 2, 3))")


def _parse_header(raw: bytes) -> dict[str, Any]:
    depth = _depth(raw)
    if depth > MAX_DEPTH:
        raise SnapshotError(f"snapshot header is nested {depth} deep (limit {MAX_DEPTH})")
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError):
        raise SnapshotError("snapshot header is not valid JSON") from None
    if not isinstance(header, dict):
        raise SnapshotError(f"snapshot header must be a JSON object, got {type(header).__name__}")
    return header


def _depth(raw: bytes) -> int:
    """The bracket nesting depth of JSON text (strings skipped), without parsing it."""
    depth = top = 0
    in_str = escape = False
    for c in raw:
        if in_str:
            if escape:
                escape = False
            elif c == 0x5C:  # backslash
                escape = True
            elif c == 0x22:  # quote
                in_str = False
        elif c == 0x22:
            in_str = True
        elif c in (0x5B, 0x7B):
            depth += 1
            top = max(top, depth)
            if top > MAX_DEPTH:
                return top
        elif c in (0x5D, 0x7D):
            depth -= 1
    return top


def _tensors(header: dict[str, Any]) -> list[tuple[str, str, list[int]]]:
    tensors = header.get("tensors")
    if not isinstance(tensors, list) or len(tensors) > MAX_TENSORS:
        raise SnapshotError(f"snapshot header: 'tensors' must be a list of at most {MAX_TENSORS} entries")
    out = []
    for i, t in enumerate(tensors):
        if not isinstance(t, dict):
            raise SnapshotError(f"snapshot header: tensors[{i}] must be an object, got {type(t).__name__}")
        name, dtype, shape = t.get("name"), t.get("dtype"), t.get("shape")
        if not isinstance(name, str) or dtype not in DTYPES:
            raise SnapshotError(f"snapshot header: tensors[{i}] needs a str name and a dtype in {DTYPES}")
        if not isinstance(shape, list) or len(shape) > 16 or not all(_size(d) for d in shape):
            raise SnapshotError(f"snapshot header: tensors[{i}] ({name!r}) shape must be a list of ints >= 0")
        out.append((name, str(dtype), [int(d) for d in shape]))
    return out


def _size(d: Any) -> bool:
    return isinstance(d, int) and not isinstance(d, bool) and d >= 0  # compared with this model's before any use
