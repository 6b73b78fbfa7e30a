"""Reading model files that may come from anywhere: typed errors, never a crash.

``read_model`` is the one place the runtime opens a model file; ``Engine.load`` calls it.
Before onnxruntime sees a byte, the file is checked here (the walk over the graph is
``runtime/modelscan.py``, the protobuf reader ``runtime/protowire.py``):

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

from edgernn.runtime.dtypes import ITEM_BYTES, ONNX_CODE
from edgernn.runtime.errors import ModelLoadError, SpecError
from edgernn.runtime.graph import check_declared_shapes
from edgernn.runtime.modelscan import DEFAULT_LIMITS, Limits, Scan, graph_io
from edgernn.runtime.protowire import (
    BYTES,
    VARINT,
    Field,
    WireError,
    iter_fields,
    text,
)
from edgernn.runtime.spec import BATCH, METADATA_KEY, TIME, Dim, StreamSpec

__all__ = [
    "DEFAULT_LIMITS",
    "Inspection",
    "Limits",
    "check_spec",
    "inspect_model",
    "read_model",
    "read_model_and_spec",
    "sniff",
]


@dataclass
class Inspection:
    """What ``inspect_model`` found: the bytes to hand to onnxruntime and the facts checked."""

    data: bytes
    tensors: int = 0
    largest_tensor_bytes: int = 0
    inlined: list[str] = field(default_factory=list)  # external-data files read (relative to the folder)
    spec_checked: bool = False
    spec: StreamSpec | None = None  # the metadata's stream spec, parsed and checked (once per load)


def read_model(path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS) -> bytes:
    """The checked bytes of the model at ``path`` (external data inlined), or a typed error.

    ModelLoadError names the file and the reason; SpecError a bad stream spec.
    """
    return read_model_and_spec(path, limits)[0]


def read_model_and_spec(
    path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS
) -> tuple[bytes, StreamSpec | None]:
    """``read_model``, and the stream spec its metadata holds (parsed and checked here), or None."""
    source = os.fspath(path)
    data = read_regular_file(source, limits.max_file_bytes, what="model file")
    folder = os.path.dirname(os.path.abspath(source))
    found = inspect_model(data, source, folder, limits)
    return found.data, found.spec


def read_regular_file(source: str, max_bytes: int, what: str) -> bytes:
    """All of ``source`` if it is a regular file of at most ``max_bytes``; never blocks on a FIFO."""
    if "\x00" in source:  # os.open would raise an untyped ValueError
        raise ModelLoadError(f"{source!r}: a path cannot contain a NUL character")
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
    scan = Scan(source, folder, limits)
    try:
        top = list(iter_fields(data))
        _require_model(top, data, source)
        new = scan.walk(data, "model", 0)
        out = Inspection(new if new is not None else data, scan.tensors, scan.largest, scan.inlined)
        if len(out.data) > limits.max_file_bytes:
            raise ModelLoadError(
                f"{source}: with its external data inlined the model exceeds {limits.max_file_bytes} bytes"
            )
        out.spec = _check_spec(top, source, limits)
        out.spec_checked = out.spec is not None
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


def _check_spec(top: list[Field], source: str, limits: Limits) -> StreamSpec | None:
    """Parse the stream spec in the metadata, if any, and check it against the graph; the spec, or None."""
    found = []
    for f in top:
        if f.number == 14:
            kv = {e.number: e for e in iter_fields(f.payload)}
            if 1 in kv and text(kv[1]) == METADATA_KEY:
                found.append(text(kv[2]) if 2 in kv else "")
    if not found:
        return None
    if len(found) > 1:
        raise SpecError(f"{source}: the metadata holds {len(found)} stream specs under {METADATA_KEY!r}; expected one")
    try:
        spec = StreamSpec.from_json(found[0])
    except SpecError as exc:
        raise SpecError(f"{source}: {exc}") from None
    _spec_against_graph(spec, graph_io(top), source, limits)
    return spec


def check_spec(spec: StreamSpec, data: bytes, source: str = "model", limits: Limits = DEFAULT_LIMITS) -> None:
    """Check ``spec`` (from the metadata, by hand, or inferred) against the graph in ``data`` before use.

    Fixed sizes must agree with the graph's declared inputs and outputs (ranks too), and one
    stream's buffers must fit ``limits.max_stream_bytes``: SpecError otherwise. ``read_model``
    runs this for a spec found in the metadata; a caller that brings its own spec runs it too.
    """
    try:
        top = list(iter_fields(data))
        _require_model(top, data, source)
        io = graph_io(top)
    except WireError as exc:
        raise ModelLoadError(f"{source}: not a valid ONNX file ({exc})") from None
    _spec_against_graph(spec, io, source, limits)


def _spec_against_graph(
    spec: StreamSpec, io: dict[str, tuple[int, list[int | str] | None]], source: str, limits: Limits
) -> None:
    check_declared_shapes(spec, {name: dims for name, (_, dims) in io.items()}, source)  # graph.py owns the check
    sized: list[tuple[tuple[Dim, ...], str, int]] = [(t.shape, t.dtype, 1) for t in spec.inputs + spec.outputs]
    sized += [(s.shape, s.dtype, 2) for s in spec.states]  # two buffers per state (ping-pong)
    if spec.context is not None:  # the carried window: frames x one frame of its input
        carried = next((t for t in spec.inputs if t.name == spec.context.input), None)
        if carried is not None:
            sized.append(((spec.context.frames, *carried.shape), carried.dtype, 1))
    # per-stream memory at its max_length (and its mask); outputs over a memory's length axis at that length
    longest = {m.length_symbol: m.max_length or 1 for m in spec.memory if m.length_symbol is not None}
    sized = [(tuple(longest.get(d, d) if isinstance(d, str) else d for d in shape), t, c) for shape, t, c in sized]
    sized += [(m.concrete_shape(1, m.max_length or 1), m.dtype, 1) for m in spec.memory]
    sized += [((m.max_length or 1,), "float32", 1) for m in spec.memory if m.mask is not None]
    per_stream = sum(_stream_bytes(shape, dtype, copies) for shape, dtype, copies in sized)
    if per_stream > limits.max_stream_bytes:
        raise SpecError(
            f"{source}: the spec asks for {per_stream} bytes per stream (state, frame, context, output, memory), above "
            f"Limits.max_stream_bytes = {limits.max_stream_bytes}: refused as a memory bomb"
        )


def _stream_bytes(shape: tuple[Dim, ...], dtype: str, copies: int) -> int:
    dims = [d for d in shape if d not in (BATCH, TIME)]
    if not all(isinstance(d, int) for d in dims):  # other symbols: sized by the graph at run time
        return 0
    return copies * _elements(tuple(int(d) for d in dims)) * ITEM_BYTES[_onnx_code(dtype)]


def _elements(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _onnx_code(dtype: str) -> int:
    return ONNX_CODE[dtype]
