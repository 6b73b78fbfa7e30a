"""What an exported graph is made of: its op types, counted through every subgraph."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import onnx


def op_counts(model: str | Path | onnx.ModelProto, domains: bool = False) -> Counter[str]:
    """How often each op type occurs in ``model`` (a path or a loaded proto), the bodies of Scan,
    If and Loop included; ``domains``: keyed ``"domain:op"`` (``":MatMul"`` for the default domain)."""
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    counts: Counter[str] = Counter()
    stack = [proto.graph]
    while stack:
        g = stack.pop()
        for node in g.node:
            counts[f"{node.domain or ''}:{node.op_type}" if domains else node.op_type] += 1
            stack += [a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH]
    return counts
