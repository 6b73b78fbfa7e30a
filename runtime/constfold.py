"""Shapes (and small values) of a graph's constant expressions, before onnxruntime folds them.

onnxruntime folds constant subgraphs at load: ``ConstantOfShape`` of ``Concat`` of constants,
``Tile`` of an initializer, ``Range`` of scalar constants are all allocated while the session
is built, before any input is seen. ``fold_graph`` evaluates the small set of ops that build
shapes (Identity, Concat, Reshape, (Un)Squeeze, Cast, Shape, Gather, arithmetic, reductions)
over initializers and ``Constant`` nodes, and computes the output shape of the ops that allocate
from a shape (ConstantOfShape, Expand, Tile, Range, Pad): each is checked against
``Limits.max_tensor_bytes`` by the caller's ``check`` before anything is allocated.
Values are tracked only for small tensors (shape vectors); an op it does not know yields
nothing, so its consumers are not folded (onnxruntime folds only what it knows as well;
a shape that depends on the input is bounded at run time, see RELIABILITY.md).

Example:
    >>> k = Known(7, [2], [3, 4])
    >>> k.size
    2
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from edgernn.runtime.dtypes import ITEM_BYTES
from edgernn.runtime.protowire import BYTES, FIXED32, Field, WireError, iter_fields, repeated_ints, signed64, text

MAX_VALUES = 1024  # values tracked per tensor: shape vectors are small
FLOATS = (1, 10, 11, 16)

Number = int | float
Check = Callable[[list[int], int, str], int]


@dataclass
class Known:
    """What is known of one tensor: ONNX dtype, dims (None: unknown), values (None: unknown or too many)."""

    dtype: int
    dims: list[int] | None
    values: list[Number] | None = None

    @property
    def size(self) -> int:
        return math.prod(self.dims) if self.dims is not None else -1


def tensor_known(fields: list[Field]) -> tuple[str, Known]:
    """(name, Known) of a TensorProto: dims and dtype always, values when small and numeric."""
    name = _last_text(fields, 8)
    dtype = _last_int(fields, 2) or 0
    dims = repeated_ints(fields, 1)
    known = Known(dtype, dims)
    if math.prod(dims) <= MAX_VALUES:
        known.values = _values(fields, dtype, math.prod(dims))
    return name, known


def _values(fields: list[Field], dtype: int, count: int) -> list[Number] | None:
    raw = next((bytes(f.payload) for f in reversed(fields) if f.number == 9 and f.wire == BYTES), None)
    fmt = {1: "f", 6: "i", 7: "q", 11: "d", 2: "B", 3: "b"}.get(dtype)
    if raw is not None:
        if fmt is None or len(raw) != count * struct.calcsize(fmt):
            return None
        return list(struct.unpack(f"<{count}{fmt}", raw))
    if dtype in (6, 7, 2, 3):
        values: list[Number] = list(repeated_ints(fields, 7 if dtype == 7 else 5))  # (list is invariant)
    elif dtype == 1:
        values = _floats(fields)
    else:
        return None
    return values if len(values) == count else None


def _floats(fields: list[Field]) -> list[Number]:
    out: list[Number] = []
    for f in fields:
        if f.number != 4:
            continue
        if f.wire == FIXED32:
            out.append(struct.unpack("<f", int(f.value).to_bytes(4, "little"))[0])
        elif f.wire == BYTES:
            data = bytes(f.payload)
            out += struct.unpack(f"<{len(data) // 4}f", data[: len(data) // 4 * 4])
    return out


def _last_int(fields: list[Field], number: int) -> int | None:
    return next((signed64(int(f.value)) for f in reversed(fields) if f.number == number and f.wire == 0), None)


def _last_text(fields: list[Field], number: int) -> str:
    return next((text(f) for f in reversed(fields) if f.number == number), "")


@dataclass
class Node:
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, list[Field]]

    def int_attr(self, name: str, default: int) -> int:
        v = _last_int(self.attrs.get(name, []), 3)
        return default if v is None else v

    def ints_attr(self, name: str) -> list[int] | None:
        return repeated_ints(self.attrs[name], 8) if name in self.attrs else None

    def tensor_attr(self, name: str) -> Known | None:
        t = next((f for f in reversed(self.attrs.get(name, [])) if f.number == 5 and f.wire == BYTES), None)
        return tensor_known(list(iter_fields(t.payload)))[1] if t is not None else None


def parse_node(fields: list[Field]) -> Node:
    attrs: dict[str, list[Field]] = {}
    for f in fields:
        if f.number == 5:
            a = list(iter_fields(f.payload))
            attrs[_last_text(a, 1)] = a
    ins = [text(f) for f in fields if f.number == 1]
    outs = [text(f) for f in fields if f.number == 2]
    return Node(_last_text(fields, 4), ins, outs, attrs)


def constant_node(node: Node) -> Known | None:
    """The value of a ``Constant`` node (value / value_int(s) / value_float(s))."""
    if "value" in node.attrs:
        return node.tensor_attr("value")
    if "value_ints" in node.attrs:
        ints = node.ints_attr("value_ints") or []
        return Known(7, [len(ints)], list(ints) if len(ints) <= MAX_VALUES else None)
    if "value_int" in node.attrs:
        return Known(7, [], [node.int_attr("value_int", 0)])
    if "value_float" in node.attrs:
        return Known(1, [], None)
    return None


def order(nodes: list[Node]) -> list[Node]:
    """``nodes`` in dependency order (Kahn); nodes in a cycle are left out (never folded)."""
    producer = {o: i for i, n in enumerate(nodes) for o in n.outputs if o}
    deps = [{producer[x] for x in n.inputs if x in producer and producer[x] != i} for i, n in enumerate(nodes)]
    users: dict[int, list[int]] = {}
    for i, d in enumerate(deps):
        for j in d:
            users.setdefault(j, []).append(i)
    waiting = [len(d) for d in deps]
    ready = [i for i, w in enumerate(waiting) if w == 0]
    out = []
    while ready:
        i = ready.pop()
        out.append(nodes[i])
        for u in users.get(i, ()):
            waiting[u] -= 1
            if waiting[u] == 0:
                ready.append(u)
    return out


def fold_graph(nodes: list[Node], known: MutableMapping[str, Known], check: Check) -> None:
    """Propagate ``known`` through ``nodes``; ``check(dims, item_bytes, what)`` every allocating op."""
    for node in order(nodes):
        try:
            out = evaluate(node, [known.get(x) if x else None for x in node.inputs], check)
        except (ValueError, ZeroDivisionError, OverflowError, IndexError, TypeError, WireError):
            out = None  # malformed: onnxruntime refuses it; nothing is folded from it
        if out is not None and node.outputs and node.outputs[0]:
            if out.values is not None and (len(out.values) > MAX_VALUES or not all(_int64(v) for v in out.values)):
                out.values = None  # too many to track, or past int64: onnxruntime would not hold them either
            known[node.outputs[0]] = out


def _int64(v: Number) -> bool:
    return -(1 << 63) <= v < (1 << 63) if isinstance(v, int) else math.isfinite(v) or math.isnan(v)


def _vec(k: Known | None) -> list[int] | None:
    if k is None or k.values is None:
        return None
    if any(isinstance(v, float) and not v.is_integer() for v in k.values):
        return None
    return [int(v) for v in k.values]


def _item(k: Known | None) -> int:
    return ITEM_BYTES.get(k.dtype, 4) if k is not None else 4


def evaluate(node: Node, ins: list[Known | None], check: Check) -> Known | None:
    """What ``node`` produces from what is known of its inputs; None when it cannot say."""
    op, what = node.op, f"{node.op} node output {node.outputs[:1]}"
    first = ins[0] if ins else None
    if op == "Constant":
        return constant_node(node)
    if op in ("Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten") and first is not None:
        if op == "Identity" or first.values is None:
            return first if op == "Identity" else None
        n = len(first.values)
        return Known(first.dtype, [n] if op != "Squeeze" or n != 1 else [], first.values)
    if op == "Cast" and first is not None:
        to = node.int_attr("to", 1)
        vals = first.values
        if vals is not None and to not in FLOATS:
            vals = [int(v) for v in vals]
        return Known(to, first.dims, vals)
    if op == "Shape" and first is not None and first.dims is not None:
        return Known(7, [len(first.dims)], list(first.dims))
    if op == "Concat" and ins and all(k is not None and k.values is not None for k in ins):
        vals = [v for k in ins for v in (k.values or [])]  # type: ignore[union-attr]
        return Known(ins[0].dtype, [len(vals)], vals)  # type: ignore[union-attr]
    if op == "Gather" and len(ins) == 2:
        data, idx = _vec(ins[0]), _vec(ins[1])
        if data is not None and idx is not None:
            vals = [data[i] for i in idx]
            return Known(7, [len(vals)] if ins[1] and ins[1].dims else [], vals)
        return None
    if op in ("Add", "Sub", "Mul", "Div", "Max", "Min") and len(ins) == 2:
        return _arith(op, _vec(ins[0]), _vec(ins[1]))
    if op in ("ReduceProd", "ReduceSum", "ReduceMax", "ReduceMin") and first is not None:
        vec = _vec(first)
        if vec is None or not vec or (first.dims is not None and len(first.dims) > 1):
            return None
        reducers: dict[str, Callable[[list[Any]], Any]] = {"ReduceProd": math.prod, "ReduceSum": sum}
        reducers |= {"ReduceMax": max, "ReduceMin": min}
        fn = reducers[op]
        keep = node.int_attr("keepdims", 1)
        return Known(first.dtype, [1] if keep else [], [fn(vec)])
    if op == "ConstantOfShape":
        dims = _vec(first)
        if dims is None:
            return None
        value = node.tensor_attr("value")
        item = _item(value) if value is not None else 4
        check(dims, item, what)
        return Known(value.dtype if value is not None else 1, dims, None)
    if op == "Expand" and len(ins) == 2:
        shape = _vec(ins[1])
        if shape is None:
            return None
        base = first.dims if first is not None and first.dims is not None else []
        dims = _broadcast(base, shape)
        check(dims, _item(first), what)
        return Known(first.dtype if first else 1, dims, None)
    if op == "Tile" and len(ins) == 2 and first is not None and first.dims is not None:
        reps = _vec(ins[1])
        if reps is None or len(reps) != len(first.dims):
            return None
        dims = [d * r for d, r in zip(first.dims, reps)]
        check(dims, _item(first), what)
        small = first.values is not None and len(dims) == 1 and dims[0] <= MAX_VALUES
        vals = list(first.values) * int(reps[0]) if small and first.values is not None else None
        return Known(first.dtype, dims, vals)
    if op == "Range" and len(ins) == 3 and all(k is not None and k.values for k in ins):
        start, limit, delta = (k.values[0] for k in ins)  # type: ignore[union-attr,index]
        if delta == 0:
            return None
        n = max(math.ceil((limit - start) / delta), 0)
        check([n], _item(first), what)
        vals = [start + i * delta for i in range(n)] if n <= MAX_VALUES else None
        return Known(first.dtype if first else 7, [n], vals)
    if op == "Pad" and len(ins) >= 2 and first is not None and first.dims is not None:
        pads = _vec(ins[1]) if len(ins) > 1 else node.ints_attr("pads")
        if pads is None or len(pads) != 2 * len(first.dims):
            return None
        r = len(first.dims)
        dims = [d + pads[i] + pads[i + r] for i, d in enumerate(first.dims)]
        check(dims, _item(first), what)
        return Known(first.dtype, dims, None)
    return None


def _arith(op: str, a: list[int] | None, b: list[int] | None) -> Known | None:
    if a is None or b is None or not a or not b:
        return None
    if len(a) != len(b) and 1 not in (len(a), len(b)):
        return None
    n = max(len(a), len(b))
    a, b = a * (n // len(a)), b * (n // len(b))
    fn: dict[str, Callable[[int, int], int]] = {
        "Add": lambda x, y: x + y,
        "Sub": lambda x, y: x - y,
        "Mul": lambda x, y: x * y,
        "Div": lambda x, y: (abs(x) // abs(y)) * (1 if (x < 0) == (y < 0) else -1),
        "Max": max,
        "Min": min,
    }
    return Known(7, [n], [fn[op](x, y) for x, y in zip(a, b)])


def _broadcast(a: list[int], b: list[int]) -> list[int]:
    r = max(len(a), len(b))
    a, b = [1] * (r - len(a)) + a, [1] * (r - len(b)) + b
    return [max(x, y) if 1 in (x, y) else x if x == y else max(x, y) for x, y in zip(a, b)]
