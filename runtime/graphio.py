"""The declared inputs and outputs of an ONNX graph, read from the model's bytes (no session opened).

Example:
    >>> from edgernn.runtime.protowire import field_bytes, field_varint
    >>> dim = lambda d: field_bytes(1, field_varint(1, d) if isinstance(d, int) else field_bytes(2, d.encode()))
    >>> vi = lambda n, dims: field_bytes(1, n.encode()) + field_bytes(
    ...     2, field_bytes(1, field_varint(1, 1) + field_bytes(2, b"".join(dim(d) for d in dims))))
    >>> graph = field_bytes(11, vi("x", ["batch", 3])) + field_bytes(12, vi("y", ["batch", 2]))
    >>> io = graph_signature(field_varint(1, 8) + field_bytes(7, graph))
    >>> io.inputs, io.outputs
    ({'x': ('float32', ['batch', 3])}, {'y': ('float32', ['batch', 2])})
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from edgernn.runtime.dtypes import FROM_ONNX, FROM_ORT, NAMES
from edgernn.runtime.errors import ArgumentError, ModelLoadError, SpecError
from edgernn.runtime.modelscan import last_text, value_info
from edgernn.runtime.protowire import BYTES, Field, WireError, iter_fields

Dims = list[Any]  # int sizes, str symbols, None for an unnamed dynamic axis

@dataclass(frozen=True)
class GraphIO:
    """Graph inputs (initializers excluded) and outputs in graph order: name -> (dtype, dims)."""

    source: str
    inputs: dict[str, tuple[str, Dims]]
    outputs: dict[str, tuple[str, Dims]]


def graph_signature(model: str | os.PathLike[str] | bytes | Any) -> GraphIO:
    """Read ``model`` (a path, a ModelProto's bytes, or an onnxruntime session)."""
    if hasattr(model, "get_inputs"):
        session: Any = model
        ins = {i.name: (_ort_dtype(i.name, i.type), list(i.shape)) for i in session.get_inputs()}
        outs = {o.name: (_ort_dtype(o.name, o.type), list(o.shape)) for o in session.get_outputs()}
        return GraphIO("model", ins, outs)
    if isinstance(model, (bytes, bytearray, memoryview)):
        return _parse(bytes(model), "model")
    from edgernn.runtime.safety import read_model  # the one reader of model files

    if not isinstance(model, (str, os.PathLike)):
        raise ArgumentError(
            "model must be a path (str or os.PathLike), the model's bytes or an onnxruntime session, "
            f"got {type(model).__name__}"
        )
    source = os.fspath(model)
    return _parse(read_model(source), source)


def _parse(data: bytes, source: str) -> GraphIO:
    try:
        top = list(iter_fields(data))
        graph = next((f for f in top if f.number == 7 and f.wire == BYTES), None)
        if graph is None:
            raise ModelLoadError(f"{source}: not an ONNX model (no graph)")
        fields = list(iter_fields(graph.payload))
        inits = {last_text(list(iter_fields(f.payload)), 8) for f in fields if f.number == 5}
        ins = {n: v for n, v in (_value_info(f, source) for f in fields if f.number == 11) if n not in inits}
        outs = dict(_value_info(f, source) for f in fields if f.number == 12)
    except WireError as exc:
        raise ModelLoadError(f"{source}: not a valid ONNX file ({exc})") from None
    return GraphIO(source, ins, outs)


def _value_info(f: Field, source: str) -> tuple[str, tuple[str, Dims]]:
    name, elem, raw = value_info(f.payload)
    dims: Dims = [d if d != "" else None for d in raw or []]
    if elem not in FROM_ONNX:
        raise SpecError(f"{source}: tensor {name!r} has ONNX element type {elem}, not one of {sorted(NAMES)}")
    return name, (FROM_ONNX[elem], dims)


def _ort_dtype(name: str, ort_type: str) -> str:
    if ort_type not in FROM_ORT:
        raise SpecError(f"tensor {name!r}: type {ort_type} is not supported")
    return FROM_ORT[ort_type]
