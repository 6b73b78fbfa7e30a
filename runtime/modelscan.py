"""The walk over an ONNX ModelProto that ``runtime/safety.py`` runs before onnxruntime sees the file.

``Scan.walk`` visits every tensor (initializers, sparse initializers, ``Constant`` values, in
every subgraph), checks its declared size against ``Limits``, checks ``ConstantOfShape`` /
``Expand`` of a constant shape, bounds subgraph depth, and reads external data from inside the
model's folder only, returning the message re-encoded with that data inlined. Singular fields
are read as protobuf reads them (the last occurrence wins), so a repeated field cannot fool it.
"""

from __future__ import annotations

import os
import stat
from collections import ChainMap
from dataclasses import dataclass

from edgernn.runtime.constfold import Known, fold_graph, parse_node, tensor_known
from edgernn.runtime.dtypes import ITEM_BYTES
from edgernn.runtime.errors import ModelLoadError
from edgernn.runtime.protowire import (
    BYTES,
    VARINT,
    Buffer,
    Field,
    encode_field,
    field_bytes,
    iter_fields,
    repeated_ints,
    signed64,
    text,
)

STRING = 8  # ONNX TensorProto.DataType of strings (unsized: ITEM_BYTES has no entry)

# Field numbers of onnx.proto3 that lead to tensors or subgraphs.
_CHILDREN: dict[str, dict[int, str]] = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "training": {1: "graph", 2: "graph"},
    "function": {7: "node"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attr"},
    "attr": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
}


@dataclass(frozen=True)
class Limits:
    """What a model file may ask for. Raise a limit for a genuine large model, never to silence a bomb."""

    max_file_bytes: int = (1 << 31) - 1  # protobuf's own ceiling, external data included
    max_tensor_bytes: int = 1 << 30  # one declared tensor, or one constant-shaped ConstantOfShape / Expand
    max_stream_bytes: int = 1 << 28  # one stream's state + one frame + one output, from the spec
    max_depth: int = 16  # graphs nested in graphs (If / Loop / Scan bodies)


DEFAULT_LIMITS = Limits()


class Scan:
    """One walk over a ModelProto: size checks, constant shapes, external data inlined."""

    def __init__(self, source: str, folder: str, limits: Limits) -> None:
        self.source = source
        self.folder = os.path.realpath(folder)
        self.limits = limits
        self.tensors = 0
        self.largest = 0
        self.inlined: list[str] = []
        self.scopes: list[ChainMap[str, Known]] = []  # constants known in each enclosing graph

    def fail(self, message: str) -> ModelLoadError:
        return ModelLoadError(f"{self.source}: {message}")

    def walk(self, buf: memoryview | bytes, kind: str, depth: int) -> bytes | None:
        """Check the message ``buf`` of ``kind``; return its new encoding if external data was inlined."""
        if kind == "graph":
            depth += 1
            if depth > self.limits.max_depth:
                raise self.fail(f"subgraphs nested deeper than {self.limits.max_depth} levels")
        fields = list(iter_fields(buf))
        if kind == "tensor":
            return self.tensor(fields)
        if kind == "sparse":
            dims = repeated_ints(fields, 3)
            self.check_size(dims, 1, "sparse tensor (dense size)")
        if kind == "graph":
            self.constant_shapes(fields)
        children = _CHILDREN.get(kind, {})
        changed: dict[int, bytes] = {}
        try:
            for i, f in enumerate(fields):
                child = children.get(f.number)
                if child is None:
                    continue
                new = self.walk(f.payload, child, depth)
                if new is not None:
                    changed[i] = field_bytes(f.number, new)
        finally:
            if kind == "graph":
                self.scopes.pop()
        if not changed:
            return None
        return b"".join(changed.get(i) or encode_field(f) for i, f in enumerate(fields))

    def check_size(self, dims: list[int], item: int, what: str) -> int:
        if any(d < 0 for d in dims):
            raise self.fail(f"{what} has a negative dimension in {dims}")
        n = 1
        for d in dims:
            n *= d
        size = n * item
        if size > self.limits.max_tensor_bytes:
            raise self.fail(
                f"{what} declares shape {dims} ({size} bytes), above the limit of "
                f"{self.limits.max_tensor_bytes} bytes (Limits.max_tensor_bytes): refused as a memory bomb"
            )
        self.largest = max(self.largest, size)
        return size

    def tensor(self, fields: list[Field]) -> bytes | None:
        self.tensors += 1
        dims = repeated_ints(fields, 1)
        dtype = last_int(fields, 2) or 0
        name = last_text(fields, 8)
        what = f"tensor {name!r}"
        size = self.check_size(dims, ITEM_BYTES.get(dtype, 1), what)
        entries = {}
        for f in fields:
            if f.number == 13:
                kv = {e.number: text(e) for e in iter_fields(f.payload)}
                entries[kv.get(1, "")] = kv.get(2, "")
        external = any(f.number == 14 and f.value == 1 for f in fields)
        if not external and not entries:
            return None
        raw = self.external_data(what, entries, size if dtype in ITEM_BYTES else None)
        kept = b"".join(encode_field(f) for f in fields if f.number not in (9, 13, 14))
        return kept + field_bytes(9, raw)

    def external_data(self, what: str, entries: dict[str, str], expect: int | None) -> bytes:
        """Read one tensor's external data from inside the model's folder, with every check first."""
        location = entries.get("location", "")
        try:
            offset = int(entries.get("offset", "0"))
            length = int(entries["length"]) if "length" in entries else None
        except ValueError:
            raise self.fail(f"{what}: external data offset/length are not integers: {entries}") from None
        if not location or "\x00" in location:
            raise self.fail(f"{what}: external data has no valid 'location'")
        if os.path.isabs(location) or location.startswith(("\\", "~")) or ":" in location:
            raise self.fail(
                f"{what}: external data location {location!r} is absolute; only paths inside "
                "the model's folder are read"
            )
        target = os.path.realpath(os.path.join(self.folder, location))
        if os.path.commonpath([self.folder, target]) != self.folder or target == self.folder:
            raise self.fail(
                f"{what}: external data location {location!r} escapes the model's folder "
                f"{self.folder} (path traversal refused; nothing was opened)"
            )
        if offset < 0 or (length is not None and length < 0):
            raise self.fail(f"{what}: external data offset {offset} / length {length} is negative")
        nofollow = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | os.O_NONBLOCK
        try:
            fd = os.open(target, os.O_RDONLY | nofollow)
        except OSError as exc:
            raise self.fail(f"{what}: cannot read external data {location!r}: {exc.strerror}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise self.fail(f"{what}: external data {location!r} is not a regular file")
            end = info.st_size if length is None else offset + length
            if end > info.st_size or offset > info.st_size:
                raise self.fail(
                    f"{what}: external data {location!r} is {info.st_size} bytes; the tensor asks "
                    f"for bytes {offset}..{end} (truncated file?)"
                )
            n = end - offset
            if expect is not None and n != expect:
                raise self.fail(f"{what}: external data {location!r} holds {n} bytes, its shape needs {expect}")
            if n > self.limits.max_tensor_bytes:
                raise self.fail(f"{what}: external data of {n} bytes is above Limits.max_tensor_bytes")
            raw = os.pread(fd, n, offset) if n else b""
        except OSError as exc:
            raise self.fail(f"{what}: cannot read external data {location!r}: {exc.strerror}") from None
        finally:
            os.close(fd)
        if len(raw) != n:
            raise self.fail(f"{what}: external data {location!r} ended after {len(raw)} of {n} bytes")
        self.inlined.append(os.path.relpath(target, self.folder))
        return raw

    def constant_shapes(self, graph: list[Field]) -> None:
        """Fold this graph's constant shape expressions (``runtime/constfold.py``): every
        ConstantOfShape / Expand / Tile / Range / Pad that onnxruntime would fold at load must fit
        the limit. Names of the enclosing graphs stay visible (subgraphs read outer constants)."""
        known: ChainMap[str, Known] = ChainMap({}, *self.scopes[-1:])
        nodes = []
        for f in graph:
            if f.number == 5:
                name, value = tensor_known(list(iter_fields(f.payload)))
                if name:
                    known[name] = value
            elif f.number == 1:
                nodes.append(parse_node(list(iter_fields(f.payload))))
        fold_graph(nodes, known, self.check_size)
        self.scopes.append(known)


def last_int(fields: list[Field], number: int) -> int | None:
    """A singular int field: protobuf keeps the last occurrence (so must a check, or it can be fooled)."""
    return next((signed64(int(f.value)) for f in reversed(fields) if f.number == number and f.wire == VARINT), None)


def last_text(fields: list[Field], number: int, default: str = "") -> str:
    return next((text(f) for f in reversed(fields) if f.number == number), default)


def value_info(payload: Buffer) -> tuple[str, int, list[int | str | None] | None]:
    """A ValueInfoProto: (name, ONNX element type, dims or None); a dim is its size, its symbol
    (possibly ""), or None when it has neither."""
    vi = list(iter_fields(payload))
    elem, dims = 0, None
    for t in (g for g in vi if g.number == 2):
        for tt in (g for g in iter_fields(t.payload) if g.number == 1 and g.wire == BYTES):
            tensor_type = list(iter_fields(tt.payload))
            elem = last_int(tensor_type, 1) or 0
            for shape in (g for g in tensor_type if g.number == 2):
                dims = []
                for dim in (g for g in iter_fields(shape.payload) if g.number == 1):
                    d = list(iter_fields(dim.payload))
                    value = last_int(d, 1)
                    symbol = next((text(f) for f in reversed(d) if f.number == 2), None)
                    dims.append(value if value is not None else symbol)
    return last_text(vi, 1), elem, dims


def graph_io(top: list[Field]) -> dict[str, tuple[int, list[int | str] | None]]:
    """Declared graph inputs and outputs: name → (elem type, dims or None); a dim is an int or a symbol."""
    graph = next(f for f in top if f.number == 7)
    out: dict[str, tuple[int, list[int | str] | None]] = {}
    for f in iter_fields(graph.payload):
        if f.number not in (11, 12):
            continue
        name, elem, raw = value_info(f.payload)
        out[name] = (elem, None if raw is None else [d if d is not None else "?" for d in raw])
    return out
