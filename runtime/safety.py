"""Reading model files that may come from anywhere: typed errors, never a crash.

``read_model`` is the one place the runtime opens a model file; ``Engine.load`` calls it.
Before onnxruntime sees a byte, the file is checked here:

- it is a regular file no larger than ``Limits.max_file_bytes`` (never a FIFO or a device);
- it parses as a protobuf ``ModelProto`` with an IR version and a graph (a pickle, a zip,
  a safetensors file, text or a truncated file gives ModelLoadError naming what it looks like);
- every tensor it declares (initializers, sparse initializers, ``Constant`` values, in every
  subgraph) and every constant-shaped ``ConstantOfShape`` / ``Expand`` stays under
  ``Limits.max_tensor_bytes``: a memory bomb is refused before anything is allocated;
- external data is read here, and only from regular files inside the model's own folder
  (no absolute path, no ``..``, no symlink out), then inlined: onnxruntime gets one
  self-contained buffer and opens no file. (Given bytes, onnxruntime would resolve external
  data against the *working directory*, not the model's folder.)
- when the metadata holds a stream spec, it must parse, its fixed sizes must agree with the
  graph's declared inputs and outputs, and one stream's buffers must stay under
  ``Limits.max_stream_bytes`` (SpecError otherwise).

Example:
    >>> read_model("/nonexistent/m.onnx")
    Traceback (most recent call last):
    ...
    edgernn.runtime.errors.ModelLoadError: /nonexistent/m.onnx: cannot read the model file: No such file or directory
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from edgernn.runtime.errors import ModelLoadError, SpecError
from edgernn.runtime.protowire import (
    BYTES,
    VARINT,
    Field,
    WireError,
    encode_field,
    field_bytes,
    iter_fields,
    repeated_ints,
    signed64,
    text,
)
from edgernn.runtime.spec import BATCH, METADATA_KEY, TIME, Dim, StreamSpec

# ONNX TensorProto.DataType → bytes per element (sub-byte types rounded up; strings unsized).
ITEM_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8, 15: 16, 16: 2}
ITEM_BYTES.update({k: 1 for k in range(17, 26)})  # float8 variants, int4 / uint4, float4
STRING = 8
ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 9: "bool", 10: "float16", 11: "float64"}

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


@dataclass
class Inspection:
    """What ``inspect_model`` found: the bytes to hand to onnxruntime and the facts checked."""

    data: bytes
    tensors: int = 0
    largest_tensor_bytes: int = 0
    inlined: list[str] = field(default_factory=list)  # external-data files read (relative to the folder)
    spec_checked: bool = False


def read_model(path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS) -> bytes:
    """The checked bytes of the model at ``path`` (external data inlined), or a typed error.

    ModelLoadError names the file and the reason; SpecError a bad stream spec.
    """
    source = os.fspath(path)
    data = read_regular_file(source, limits.max_file_bytes, what="model file")
    folder = os.path.dirname(os.path.abspath(source))
    return inspect_model(data, source, folder, limits).data


def read_regular_file(source: str, max_bytes: int, what: str) -> bytes:
    """All of ``source`` if it is a regular file of at most ``max_bytes``; never blocks on a FIFO."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ModelLoadError(f"{source}: cannot read the {what}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ModelLoadError(f"{source}: the {what} is not a regular file")
        if info.st_size > max_bytes:
            raise ModelLoadError(f"{source}: the {what} has {info.st_size} bytes, above the limit {max_bytes}")
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise ModelLoadError(f"{source}: cannot read the {what}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ModelLoadError(f"{source}: the {what} grew past the limit {max_bytes} while being read")
    if not data:
        raise ModelLoadError(f"{source}: the file is empty, not an ONNX model")
    return data


def inspect_model(data: bytes, source: str, folder: str, limits: Limits = DEFAULT_LIMITS) -> Inspection:
    """Check ``data`` (an ONNX ModelProto) as described in the module docstring."""
    scan = _Scan(source, folder, limits)
    try:
        top = list(iter_fields(data))
        _require_model(top, data, source)
        new = scan.walk(data, "model", 0)
        out = Inspection(new if new is not None else data, scan.tensors, scan.largest, scan.inlined)
        if len(out.data) > limits.max_file_bytes:
            raise ModelLoadError(
                f"{source}: with its external data inlined the model exceeds {limits.max_file_bytes} bytes"
            )
        out.spec_checked = _check_spec(top, source, limits)
    except WireError as exc:
        hint = sniff(data)
        if hint:
            raise ModelLoadError(f"{source}: not an ONNX model (it looks like {hint})") from None
        raise ModelLoadError(f"{source}: not a valid ONNX file (truncated or corrupted protobuf: {exc})") from None
    return out


def sniff(data: bytes) -> str | None:
    """What a non-ONNX file looks like, when its first bytes say so."""
    head = data[:16]
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle (refused: loading it could run code)"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (a PyTorch .pt/.pth checkpoint?)"
    if head.startswith(b"\x89HDF"):
        return "an HDF5 file (a Keras model?)"
    if head[4:8] == b"TFL3":
        return "a TensorFlow Lite model"
    if head.startswith(b"GGUF"):
        return "a GGUF file"
    if len(data) >= 10 and data[8:10] == b'{"':
        return "a safetensors file (weights, not a graph: export it with `edgernn export`)"
    if head.lstrip()[:1] in (b"{", b"[", b"<", b"#"):
        return "a text file"
    return None


def _require_model(top: list[Field], data: bytes, source: str) -> None:
    has_ir = any(f.number == 1 and f.wire == VARINT for f in top)
    has_graph = any(f.number == 7 and f.wire == BYTES for f in top)
    if not (has_ir and has_graph):
        hint = sniff(data)
        looks = f"it looks like {hint}" if hint else "no IR version or no graph"
        raise ModelLoadError(f"{source}: not an ONNX model ({looks})")


class _Scan:
    """One walk over a ModelProto: size checks, constant shapes, external data inlined."""

    def __init__(self, source: str, folder: str, limits: Limits) -> None:
        self.source = source
        self.folder = os.path.realpath(folder)
        self.limits = limits
        self.tensors = 0
        self.largest = 0
        self.inlined: list[str] = []

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
        for i, f in enumerate(fields):
            child = children.get(f.number)
            if child is None:
                continue
            new = self.walk(f.payload, child, depth)
            if new is not None:
                changed[i] = field_bytes(f.number, new)
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
        dtype = _last_int(fields, 2) or 0
        name = _last_text(fields, 8)
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
        """ConstantOfShape / Expand whose shape is a constant of this graph: the result must fit the limit."""
        consts: dict[str, list[int]] = {}
        nodes = []
        for f in graph:
            if f.number == 5:
                name, values = _int_constant(list(iter_fields(f.payload)))
                if name:
                    consts[name] = values
            elif f.number == 1:
                node = list(iter_fields(f.payload))
                op = _last_text(node, 4)
                ins = [text(g) for g in node if g.number == 1]
                outs = [text(g) for g in node if g.number == 2]
                nodes.append((op, ins, outs))
                if op == "Constant" and outs:
                    for g in node:
                        if g.number == 5:
                            attr = list(iter_fields(g.payload))
                            t = next((a for a in reversed(attr) if a.number == 5), None)
                            if t is not None:
                                consts[outs[0]] = _int_constant(list(iter_fields(t.payload)))[1]
        for op, ins, outs in nodes:
            shape_input = {"ConstantOfShape": 0, "Expand": 1}.get(op)
            if shape_input is None or len(ins) <= shape_input or ins[shape_input] not in consts:
                continue
            self.check_size(consts[ins[shape_input]], 4, f"{op} node output {outs[:1]}")


def _last_int(fields: list[Field], number: int) -> int | None:
    """A singular int field: protobuf keeps the last occurrence (so must a check, or it can be fooled)."""
    return next((signed64(int(f.value)) for f in reversed(fields) if f.number == number and f.wire == VARINT), None)


def _last_text(fields: list[Field], number: int, default: str = "") -> str:
    return next((text(f) for f in reversed(fields) if f.number == number), default)


def _int_constant(tensor: list[Field]) -> tuple[str, list[int]]:
    """(name, values) of a small int64 tensor; empty values for anything else."""
    name = _last_text(tensor, 8)
    dtype = _last_int(tensor, 2) or 0
    dims = repeated_ints(tensor, 1)
    if dtype != 7 or len(dims) > 1 or (dims and dims[0] > 16):
        return name, []
    values = repeated_ints(tensor, 7)
    raw = next((bytes(f.payload) for f in reversed(tensor) if f.number == 9), None)
    if raw is not None and len(raw) % 8 == 0:
        values = [int.from_bytes(raw[i : i + 8], "little", signed=True) for i in range(0, len(raw), 8)]
    return name, values


def _graph_io(top: list[Field]) -> dict[str, tuple[int, list[int | str] | None]]:
    """Declared graph inputs and outputs: name → (elem type, dims or None); a dim is an int or a symbol."""
    graph = next(f for f in top if f.number == 7)
    out: dict[str, tuple[int, list[int | str] | None]] = {}
    for f in iter_fields(graph.payload):
        if f.number not in (11, 12):
            continue
        vi = list(iter_fields(f.payload))
        name = _last_text(vi, 1)
        elem, dims = 0, None
        for t in (g for g in vi if g.number == 2):
            for tt in (g for g in iter_fields(t.payload) if g.number == 1 and g.wire == BYTES):
                tensor_type = list(iter_fields(tt.payload))
                elem = _last_int(tensor_type, 1) or 0
                for shape in (g for g in tensor_type if g.number == 2):
                    dims = []
                    for dim in (g for g in iter_fields(shape.payload) if g.number == 1):
                        d = list(iter_fields(dim.payload))
                        value = _last_int(d, 1)
                        dims.append(value if value is not None else _last_text(d, 2, "?"))
        out[name] = (elem, dims)
    return out


def _check_spec(top: list[Field], source: str, limits: Limits) -> bool:
    """Parse the stream spec in the metadata, if any, and check it against the graph. True if checked."""
    found = []
    for f in top:
        if f.number == 14:
            kv = {e.number: e for e in iter_fields(f.payload)}
            if 1 in kv and text(kv[1]) == METADATA_KEY:
                found.append(text(kv[2]) if 2 in kv else "")
    if not found:
        return False
    if len(found) > 1:
        raise SpecError(f"{source}: the metadata holds {len(found)} stream specs under {METADATA_KEY!r}; expected one")
    try:
        spec = StreamSpec.from_json(found[0])
    except SpecError as exc:
        raise SpecError(f"{source}: {exc}") from None
    _spec_against_graph(spec, _graph_io(top), source, limits)
    return True


def check_spec(spec: StreamSpec, data: bytes, source: str = "model", limits: Limits = DEFAULT_LIMITS) -> None:
    """Check ``spec`` (from the metadata, by hand, or inferred) against the graph in ``data`` before use.

    Fixed sizes must agree with the graph's declared inputs and outputs (ranks too), and one
    stream's buffers must fit ``limits.max_stream_bytes``: SpecError otherwise. ``read_model``
    runs this for a spec found in the metadata; a caller that brings its own spec runs it too.
    """
    try:
        top = list(iter_fields(data))
        _require_model(top, data, source)
        io = _graph_io(top)
    except WireError as exc:
        raise ModelLoadError(f"{source}: not a valid ONNX file ({exc})") from None
    _spec_against_graph(spec, io, source, limits)


def _spec_against_graph(
    spec: StreamSpec, io: dict[str, tuple[int, list[int | str] | None]], source: str, limits: Limits
) -> None:
    shaped = [(t.name, t.shape) for t in spec.inputs + spec.outputs]
    shaped += [(n, s.shape) for s in spec.states for n in (s.input, s.output)]
    for name, want in shaped:
        got = io[name][1] if name in io else None
        if got is None:
            continue  # a missing name is reported by the engine's own check; no declared shape: nothing to compare
        if len(got) != len(want):
            raise SpecError(
                f"{source}: tensor {name!r} has rank {len(got)} in the graph {got}, "
                f"rank {len(want)} in the spec {list(want)}"
            )
        for axis, (g, w) in enumerate(zip(got, want)):
            if isinstance(g, int) and isinstance(w, int) and g != w:
                raise SpecError(f"{source}: tensor {name!r} axis {axis} is {g} in the graph, {w} in the spec")
    sized: list[tuple[tuple[Dim, ...], str, int]] = [(t.shape, t.dtype, 1) for t in spec.inputs + spec.outputs]
    sized += [(s.shape, s.dtype, 2) for s in spec.states]  # two buffers per state (ping-pong)
    per_stream = 0
    for shape, dtype, copies in sized:
        dims = [d for d in shape if d not in (BATCH, TIME)]
        if all(isinstance(d, int) for d in dims):  # other symbols: sized by the graph at run time
            per_stream += copies * _elements(tuple(int(d) for d in dims)) * ITEM_BYTES[_onnx_code(dtype)]
    if per_stream > limits.max_stream_bytes:
        raise SpecError(
            f"{source}: the spec asks for {per_stream} bytes per stream (state, frame, output), above "
            f"Limits.max_stream_bytes = {limits.max_stream_bytes}: refused as a memory bomb"
        )


def _elements(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _onnx_code(dtype: str) -> int:
    return next(code for code, name in ONNX_DTYPES.items() if name == dtype)
