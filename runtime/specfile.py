"""A stream spec outside the model: as JSON in a file, as Python to paste and edit, or embedded in a copy.

* ``spec_json(spec)`` / ``read_spec(path)``: the file ``edgernn spec -o spec.json`` writes and
  ``Engine.load(path, spec="spec.json")`` / ``edgernn profile --spec spec.json`` read;
* ``spec_python(spec)``: the same spec as Python source that rebuilds it (paste, edit, run);
* ``embed_spec(data, spec)``: the model's bytes with the spec in its metadata
  (``metadata_props``, key ``edgernn.stream_spec``), every other field kept byte for byte,
  written with the runtime's own protobuf writer (no ``onnx`` import).

Example:
    >>> from edgernn.runtime.spec import BATCH, StateSpec, StreamSpec, TensorSpec
    >>> spec = StreamSpec(inputs=(TensorSpec("x", "float32", (BATCH, 4)),),
    ...                   outputs=(TensorSpec("y", "float32", (BATCH, 2)),),
    ...                   states=(StateSpec("h", "h_out", "float32", (BATCH, 8)),))
    >>> code = spec_python(spec)
    >>> scope = {}; exec(code, scope); scope["spec"] == spec
    True
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import MISSING, fields, is_dataclass
from typing import Any

from edgernn.runtime import args
from edgernn.runtime.errors import ModelLoadError, SpecError
from edgernn.runtime.protowire import BYTES, WireError, encode_field, field_bytes, iter_fields, text
from edgernn.runtime.spec import BATCH, METADATA_KEY, TIME, StreamSpec

__all__ = ["embed_spec", "read_spec", "spec_json", "spec_python"]

_METADATA_PROPS = 14  # ModelProto.metadata_props: repeated StringStringEntryProto {key = 1, value = 2}
MAX_SPEC_BYTES = 1 << 20


def spec_json(spec: StreamSpec) -> str:
    """The spec as indented JSON (what ``read_spec`` reads back)."""
    return json.dumps(spec.to_dict(), indent=2, sort_keys=True) + "\n"


def read_spec(path: str | os.PathLike[str]) -> StreamSpec:
    """A spec from a JSON file; SpecError names the file and what is wrong with it."""
    source = args.path("read_spec", "path", path)
    if "\x00" in source:
        raise SpecError(f"spec file {source!r}: a path cannot contain a NUL character")
    try:  # O_NONBLOCK and a regular file only: a FIFO is refused, never waited on
        with open(os.open(source, os.O_RDONLY | os.O_NONBLOCK), "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise SpecError(f"spec file {source}: not a regular file")
            raw = fh.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"spec file {source}: cannot read it: {exc.strerror}") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"spec file {source}: larger than {MAX_SPEC_BYTES} bytes, not a stream spec")
    try:
        return StreamSpec.from_json(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise SpecError(f"spec file {source}: not UTF-8 text (a model? pass the .onnx as the model)") from None
    except SpecError as exc:
        raise SpecError(f"spec file {source}: {exc}") from None


def spec_python(spec: StreamSpec, name: str = "spec") -> str:
    """Python source that rebuilds ``spec`` as ``name`` (defaults left out, axes as BATCH / TIME)."""
    used: set[str] = set()
    body = _py(spec, used, 1)
    classes = sorted(c for c in used if c not in ("BATCH", "TIME"))
    symbols = sorted(c for c in used if c in ("BATCH", "TIME"))
    imports = ", ".join(symbols + classes)
    return f"from edgernn.runtime.spec import {imports}\n\n{name} = {body}\n"


def _py(value: Any, used: set[str], depth: int) -> str:
    pad, inner = "    " * (depth - 1), "    " * depth
    if is_dataclass(value) and not isinstance(value, type):
        cls = type(value).__name__
        used.add(cls)
        args = []
        for f in fields(value):
            v = getattr(value, f.name)
            default = (
                f.default
                if f.default is not MISSING
                else (f.default_factory() if f.default_factory is not MISSING else MISSING)
            )
            if default is not MISSING and v == default:
                continue
            args.append(f"{f.name}={_py(v, used, depth + 1)}")
        if len(", ".join(args)) + len(cls) + len(pad) < 112:
            return f"{cls}({', '.join(args)})"
        return f"{cls}(\n" + "".join(f"{inner}{a},\n" for a in args) + f"{pad})"
    if isinstance(value, tuple):
        items = [_py(v, used, depth + 1) for v in value]
        if len(items) == 1:
            return f"({items[0]},)" if len(items[0]) + len(pad) < 112 else f"(\n{inner}{items[0]},\n{pad})"
        if sum(len(i) + 2 for i in items) + len(pad) < 112:
            return f"({', '.join(items)})"
        return "(\n" + "".join(f"{inner}{i},\n" for i in items) + f"{pad})"
    if value == BATCH and isinstance(value, str):
        used.add("BATCH")
        return "BATCH"
    if value == TIME and isinstance(value, str):
        used.add("TIME")
        return "TIME"
    return repr(dict(value) if hasattr(value, "items") else value)


def embed_spec(data: bytes, spec: StreamSpec, source: str = "model") -> bytes:
    """``data`` (a ModelProto) with ``spec`` as its one stream spec in the metadata; other fields kept."""
    try:
        top = list(iter_fields(data))
        kept = []
        for f in top:
            if f.number == _METADATA_PROPS and f.wire == BYTES:
                entry = {e.number: e for e in iter_fields(f.payload)}
                if 1 in entry and text(entry[1]) == METADATA_KEY:
                    continue  # the old spec goes; the new one is appended
            kept.append(encode_field(f))
    except WireError as exc:
        raise ModelLoadError(f"{source}: not a valid ONNX file ({exc})") from None
    prop = field_bytes(1, METADATA_KEY.encode()) + field_bytes(2, spec.to_json().encode())
    return b"".join(kept) + field_bytes(_METADATA_PROPS, prop)
