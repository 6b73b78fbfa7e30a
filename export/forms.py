"""Which graph ``edgernn export`` writes for the CPU provider: native, decomposed, or both behind one If.

- **native**: the traced graph (onnxruntime's RNN / GRU / LSTM op). GPU and NPU providers run
  it best, and on the CPU it is the cheapest for small GRU / LSTM models fed one stream in chunks
  (the op loops in C++; a Scan pays a subgraph dispatch per frame).
- **decomposed** (``edgernn.export.decomposed``): the input product of every frame of every stream
  hoisted out of the time loop (folded into the embedding table for tokens), a Scan carrying only
  the recurrent product and the gate math, and the step once without a Scan at one frame.
- **auto** (the default): ``If(decomposed pays, decomposed, native)`` on the call's batch and
  time, the threshold set from the model's sizes (``thresholds``); an Elman RNN is always
  decomposed (onnxruntime's RNN op applies tanh element by element: 2.5-12x slower in the bench).

Both branches keep their weights as their own initializers (onnxruntime pre-packs only those),
so the auto file holds the weights twice (three times for the recurrent ones).
docs/ARCHITECTURE.md ("Which form export writes") has the measurements behind the thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgernn.export.decomposed import NetWeights, build_decomposed, read_weights
from edgernn.export.errors import ExportError
from edgernn.runtime.spec import INPUT_X, StreamSpec

FORMS = ("native", "decomposed", "auto")

# Multiply-adds of the input product per frame (batch x input width x gates x hidden) above which
# the decomposed graph is the faster one for GRU / LSTM (bench models, CPU provider, interleaved;
# docs/ARCHITECTURE.md): one frame per call it saves that product outright; in chunks it must
# also pay the Scan's per-frame dispatch, so the bar is higher.
CHUNK_MACS = 1_500_000


def chunk_threshold(weights: NetWeights) -> int:
    """The smallest batch at which the decomposed Scan serves chunks (time > 1) for ``weights``."""
    if weights.cell == "rnn":
        return 1
    width = weights.encoder_w.shape[1]  # the embedding's (or the frames encoder's) width
    macs = width * weights.layers[0].W.shape[0]  # per stream-frame: width x gates*hidden
    return max(1, math.ceil(CHUNK_MACS / macs))


def build_form(
    native: onnx.ModelProto, spec: StreamSpec, form: str, opset: int, min_batch: int | None = None
) -> onnx.ModelProto:
    """``native`` (the traced graph) as ``form``; the spec's names and shapes are unchanged.

    ``min_batch`` overrides ``chunk_threshold`` (tests use it to send small batches down both
    chunk branches)."""
    if form not in FORMS:
        raise ExportError(f"--form {form!r}: expected one of {', '.join(FORMS)}")
    native = native_of(native)
    if form == "native":
        return native
    weights = read_weights(native, spec)
    min_batch = chunk_threshold(weights) if min_batch is None else min_batch
    if form == "decomposed":
        return build_decomposed(weights, spec, opset, quantize=False)
    one = build_decomposed(weights, spec, opset, quantize=False, frames="one")
    scan = build_decomposed(weights, spec, opset, quantize=False, frames="chunks")
    return branch_on_shape(native, one, scan, min_batch)


def branch_on_shape(
    native: onnx.ModelProto, one: onnx.ModelProto, scan: onnx.ModelProto, min_batch: int
) -> onnx.ModelProto:
    """``If(time == 1, one, If(batch >= min_batch, scan, native))``: one graph, the same names."""
    g = native.graph
    outer = {i.name for i in g.input}
    outs = [o.name for o in g.output]
    for other in (one, scan):
        if [o.name for o in other.graph.output] != outs or [i.name for i in other.graph.input] != [
            i.name for i in g.input
        ]:
            raise ExportError("the native and decomposed graphs disagree on their inputs or outputs")
    c = {
        k: numpy_helper.from_array(np.array(v, np.int64), k)
        for k, v in (("form_one", [1]), ("form_min_batch", [min_batch]))
    }
    inner = [f"form_chunk/{o}" for o in outs]
    chunks = helper.make_graph(
        [
            helper.make_node("Shape", [INPUT_X], ["form_batch"], start=0, end=1),
            helper.make_node("GreaterOrEqual", ["form_batch", "form_min_batch"], ["form_batched"]),
            helper.make_node(
                "If",
                ["form_batched"],
                inner,
                then_branch=_as_branch(scan.graph, "scan/", outer, "decomposed_scan"),
                else_branch=_as_branch(g, "native/", outer, "native"),
            ),
        ],
        "chunks",
        [],
        [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in inner],
    )
    nodes = [
        helper.make_node("Shape", [INPUT_X], ["form_time"], start=1, end=2),
        helper.make_node("Equal", ["form_time", "form_one"], ["form_one_frame"]),
        helper.make_node(
            "If",
            ["form_one_frame"],
            outs,
            then_branch=_as_branch(one.graph, "one/", outer, "one_frame"),
            else_branch=chunks,
        ),
    ]
    graph = helper.make_graph(nodes, "edgernn_auto", list(g.input), list(g.output), list(c.values()))
    opsets = {o.domain: o.version for o in [*native.opset_import, *one.opset_import]}
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
    model.producer_name = "edgernn"
    model.ir_version = min(native.ir_version, one.ir_version, 9)
    return model


def _as_branch(graph: onnx.GraphProto, prefix: str, outer: set[str], name: str) -> onnx.GraphProto:
    """``graph`` as an If branch: no inputs (it reads the outer ones), every other name prefixed."""
    copy = onnx.GraphProto()
    copy.CopyFrom(graph)
    _rename(copy, lambda n: n if (not n or n in outer) else prefix + n)
    del copy.input[:]
    copy.name = name
    for o in copy.output:  # the If's outputs carry the shapes; a branch's may be any
        o.type.tensor_type.ClearField("shape")
    return copy


def _rename(graph: onnx.GraphProto, fn: Callable[[str], str]) -> None:
    """Apply ``fn`` to every value name in ``graph`` and its subgraphs (names are unique model-wide)."""
    for t in graph.initializer:
        t.name = fn(t.name)
    for v in [*graph.input, *graph.output, *graph.value_info]:
        v.name = fn(v.name)
    for node in graph.node:
        node.input[:] = [fn(i) for i in node.input]
        node.output[:] = [fn(o) for o in node.output]
        if node.name:
            node.name = fn(node.name)
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                _rename(a.g, fn)
            for sub in a.graphs:
                _rename(sub, fn)


def native_of(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The native graph inside an auto graph (as traced, the spec kept); any other graph as it is."""
    g = proto.graph
    if g.name != "edgernn_auto":
        return proto
    (top,) = [n for n in g.node if n.op_type == "If"]
    chunks = next(a.g for a in top.attribute if a.name == "else_branch")
    (inner,) = [n for n in chunks.node if n.op_type == "If"]
    branch = onnx.GraphProto()
    branch.CopyFrom(next(a.g for a in inner.attribute if a.name == "else_branch"))
    _rename(branch, lambda n: n.removeprefix("native/"))
    branch.name = "main_graph"
    branch.input.extend(g.input)
    del branch.output[:]
    branch.output.extend(g.output)
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    out.graph.CopyFrom(branch)
    return out


def form_of(proto: onnx.ModelProto) -> str:
    """Which form ``proto`` is (for reports): native, decomposed or auto."""
    ops = {n.op_type for n in proto.graph.node}
    if proto.graph.name == "edgernn_auto":
        return "auto"
    return "decomposed" if "Scan" in ops or "If" in ops else "native"
