"""Class 4: memory bombs that onnxruntime would allocate while folding constants at load.

Each graph builds a 1.5 GiB (or larger) tensor from constants through an op chain that the
old check (ConstantOfShape / Expand of an initializer, directly) did not follow. The safe
reader must refuse each before onnxruntime sees it, and still admit the same chains at a
small size (no false positives).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgernn.runtime.errors import ModelLoadError
from edgernn.runtime.safety import read_model

GIB = 1 << 30


def _i64(name: str, values: list[int] | int) -> TensorProto:
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def _model(nodes: list, inits: list, out: str = "bomb", dtype: int = TensorProto.FLOAT) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info(out, dtype, None)
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def chains(rows: int) -> dict[str, onnx.ModelProto]:
    """Float32 tensors of ``rows`` x 2^20 (rows=384: 1.5 GiB) built from constants six ways."""
    cos = lambda src: helper.make_node("ConstantOfShape", [src], ["bomb"])  # noqa: E731
    return {
        "identity": _model([helper.make_node("Identity", ["s"], ["s2"]), cos("s2")], [_i64("s", [rows, 1 << 20])]),
        "concat": _model(
            [helper.make_node("Concat", ["a", "b"], ["s"], axis=0), cos("s")], [_i64("a", [rows]), _i64("b", [1 << 20])]
        ),
        "constant-node": _model([helper.make_node("Constant", [], ["s"], value_ints=[rows, 1 << 20]), cos("s")], []),
        "arith": _model(
            [helper.make_node("Mul", ["a", "b"], ["s"]), cos("s")],
            [_i64("a", [rows, 1 << 10]), _i64("b", [1, 1 << 10])],
        ),
        "tile": _model(
            [helper.make_node("Tile", ["w", "r"], ["bomb"])],
            [numpy_helper.from_array(np.zeros((1, 1 << 10), np.float32), "w"), _i64("r", [rows, 1 << 10])],
        ),
        "range": _model(
            [helper.make_node("Range", ["a", "b", "c"], ["bomb"])],
            [_i64("a", 0), _i64("b", rows << 19), _i64("c", 1)],  # int64: rows * 4 MiB
            dtype=TensorProto.INT64,
        ),
        "shape-of-initializer": _model(
            [helper.make_node("Shape", ["w"], ["s0"]), helper.make_node("Mul", ["s0", "k"], ["s"]), cos("s")],
            [numpy_helper.from_array(np.zeros((1, 1 << 10), np.float32), "w"), _i64("k", [rows, 1 << 10])],
        ),
    }


@pytest.mark.parametrize("name", sorted(chains(384)))
def test_constant_folded_bomb_is_refused_before_onnxruntime(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.onnx"
    onnx.save(chains(384)[name], str(path))
    with pytest.raises(ModelLoadError, match="above the limit of 1073741824 bytes"):
        read_model(path)


@pytest.mark.parametrize("name", sorted(chains(2)))
def test_the_same_chains_at_a_small_size_load_and_fold_to_what_onnxruntime_computes(name: str, tmp_path: Path) -> None:
    import onnxruntime as ort

    path = tmp_path / f"{name}.onnx"
    onnx.save(chains(2)[name], str(path))
    session = ort.InferenceSession(read_model(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"x": np.zeros(1, np.float32)})
    assert out.nbytes <= 2 * (1 << 20) * 8 and out.size >= 2 << 10  # what the fold bounded is what was made


def test_a_bomb_inside_a_subgraph_reading_an_outer_constant_is_refused(tmp_path: Path) -> None:
    inner = helper.make_graph(
        [helper.make_node("Identity", ["s"], ["s2"]), helper.make_node("ConstantOfShape", ["s2"], ["b"])],
        "then",
        [],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, None)],
    )
    cond = helper.make_node("If", ["c"], ["bomb"], then_branch=inner, else_branch=inner)
    model = _model([cond], [_i64("s", [1 << 16, 1 << 15]), numpy_helper.from_array(np.array(True), "c")])
    path = tmp_path / "if.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelLoadError, match="ConstantOfShape"):
        read_model(path)


def test_nodes_out_of_order_and_in_a_cycle_neither_hide_a_bomb_nor_hang(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("ConstantOfShape", ["s2"], ["bomb"]),
        helper.make_node("Identity", ["s"], ["s2"]),  # after its user: still folded first
        helper.make_node("Identity", ["q2"], ["q1"]),
        helper.make_node("Identity", ["q1"], ["q2"]),  # a cycle: never folded, never loops
    ]
    path = tmp_path / "order.onnx"
    onnx.save(_model(nodes, [_i64("s", [1 << 16, 1 << 15])]), str(path))
    with pytest.raises(ModelLoadError, match="ConstantOfShape"):
        read_model(path)
