"""The one table of element types a stream spec may name, and what each is called elsewhere.

A spec names a dtype by its numpy name ("float32"); onnxruntime reports a graph tensor's type
as "tensor(float)"; an ONNX file stores a TensorProto.DataType code; Triton's model config
says "TYPE_FP32". Every lookup between these goes through this table, so adding a type is one
line here. Imports numpy only (onnx is not needed: the codes are ONNX's published enum values).

Example:
    >>> NP_DTYPES["float16"]
    <class 'numpy.float16'>
    >>> FROM_ORT["tensor(float)"], ONNX_CODE["int64"], FROM_ONNX[1]
    ('float32', 7, 'float32')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class DType:
    """One element type: its spec (numpy) name, numpy scalar type, onnxruntime type string,
    ONNX ``TensorProto.DataType`` code and Triton config name (None where Triton has none we use)."""

    name: str
    numpy: Any
    ort: str
    onnx: int
    triton: str | None


TABLE: tuple[DType, ...] = (
    DType("float32", np.float32, "tensor(float)", 1, "TYPE_FP32"),
    DType("float16", np.float16, "tensor(float16)", 10, "TYPE_FP16"),
    DType("float64", np.float64, "tensor(double)", 11, "TYPE_FP64"),
    DType("int64", np.int64, "tensor(int64)", 7, "TYPE_INT64"),
    DType("int32", np.int32, "tensor(int32)", 6, "TYPE_INT32"),
    DType("int8", np.int8, "tensor(int8)", 3, "TYPE_INT8"),
    DType("uint8", np.uint8, "tensor(uint8)", 2, "TYPE_UINT8"),
    DType("bool", np.bool_, "tensor(bool)", 9, "TYPE_BOOL"),
)

NAMES: tuple[str, ...] = tuple(d.name for d in TABLE)
"""The dtype names a spec may use."""
NP_DTYPES: dict[str, Any] = {d.name: d.numpy for d in TABLE}
"""Spec name → numpy scalar type."""
FROM_ORT: dict[str, str] = {d.ort: d.name for d in TABLE}
"""onnxruntime's ``NodeArg.type`` → spec name."""
NUMPY_OF_ORT: dict[str, Any] = {d.ort: d.numpy for d in TABLE}
"""onnxruntime's ``NodeArg.type`` → numpy scalar type."""
ONNX_CODE: dict[str, int] = {d.name: d.onnx for d in TABLE}
"""Spec name → ONNX ``TensorProto.DataType`` code."""
FROM_ONNX: dict[int, str] = {d.onnx: d.name for d in TABLE}
"""ONNX ``TensorProto.DataType`` code → spec name."""
TRITON: dict[str, str] = {d.name: d.triton for d in TABLE if d.triton is not None}
"""Spec name → Triton ``data_type``."""

# Bytes per element of every ONNX TensorProto.DataType, including those a spec may not name
# (the file scan sizes any tensor it meets): sub-byte types rounded up, strings (8) unsized.
ITEM_BYTES: dict[int, int] = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8, 15: 16}
ITEM_BYTES |= {16: 2} | {k: 1 for k in range(17, 26)}  # bfloat16; float8 variants, int4 / uint4, float4
