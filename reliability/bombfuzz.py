"""Constant-folded memory bombs: random op chains over constants that onnxruntime folds at load.

Each case builds a graph whose ``ConstantOfShape`` / ``Expand`` / ``Tile`` / ``Range`` output
size comes from constants through a random chain (Identity, Concat, Mul, Add, Cast,
Unsqueeze, Gather, Shape, a ``Constant`` node, an ``If`` branch reading an outer constant),
half of them above ``Limits.max_tensor_bytes`` (1 GiB; up to 8 GiB) and half small. The safe
reader must refuse every big one (ModelLoadError) and admit every small one, which then
loads and runs in onnxruntime. ``wrong: ...`` marks a missed bomb or a false alarm.

Example:
    >>> import random
    >>> model, size = bomb(random.Random(0))  # doctest: +SKIP
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np

LIMIT = 1 << 30


def _shape_source(rng: random.Random, dims: list[int], h: Any, nh: Any, np_: Any) -> tuple[list[Any], list[Any], str]:
    """Nodes and initializers computing the int64 vector ``dims`` from constants; returns the name."""
    i64 = lambda name, v: nh.from_array(np_.array(v, dtype=np_.int64), name)  # noqa: E731
    a, b = dims
    way = rng.choice(["init", "identity", "concat", "mul", "constant", "cast", "add", "gather", "shape"])
    if way == "init":
        return [], [i64("s", dims)], "s"
    if way == "identity":
        n = rng.randint(1, 3)
        nodes = [h.make_node("Identity", [f"s{k}"], [f"s{k + 1}"]) for k in range(n)]
        return nodes, [i64("s0", dims)], f"s{n}"
    if way == "concat":
        return [h.make_node("Concat", ["a", "b"], ["s"], axis=0)], [i64("a", [a]), i64("b", [b])], "s"
    if way == "mul":
        return [h.make_node("Mul", ["p", "q"], ["s"])], [i64("p", [a, 1]), i64("q", [1, b])], "s"
    if way == "constant":
        return [h.make_node("Constant", [], ["s"], value_ints=dims)], [], "s"
    if way == "cast":
        init = nh.from_array(np_.array(dims, dtype=np_.int32), "s32")
        return [h.make_node("Cast", ["s32"], ["s"], to=7)], [init], "s"
    if way == "add":
        return [h.make_node("Add", ["p", "q"], ["s"])], [i64("p", [a - 1, b - 1]), i64("q", [1])], "s"
    if way == "gather":
        return [h.make_node("Gather", ["v", "k"], ["s"])], [i64("v", [7, a, 3, b]), i64("k", [1, 3])], "s"
    # the shape of a small initializer, scaled up
    init = nh.from_array(np_.zeros((2, 4), np_.float32), "w")
    nodes = [h.make_node("Shape", ["w"], ["s0"]), h.make_node("Mul", ["s0", "k"], ["s"])]
    return nodes, [init, i64("k", [a // 2, b // 4])], "s"  # a, b even: the product is [a, b]


def bomb(rng: random.Random) -> tuple[Any, int]:
    """(ModelProto, bytes its constant output would take) for one random case."""
    from onnx import TensorProto, helper, numpy_helper

    big = rng.random() < 0.5
    target = rng.randint(LIMIT + (1 << 26), 8 << 30) if big else rng.randint(1 << 16, 1 << 25)
    consumer = rng.choice(["ConstantOfShape", "Expand", "Tile", "Range"])
    item = 8 if consumer == "Range" else 4
    b = rng.choice([1 << 10, 1 << 12, 1 << 14])
    a = max(target // (item * b) // 2 * 2, 2)
    nodes, inits, src = _shape_source(rng, [a, b], helper, numpy_helper, np)
    if consumer == "ConstantOfShape":
        nodes.append(helper.make_node("ConstantOfShape", [src], ["bomb"]))
    elif consumer == "Expand":
        inits.append(numpy_helper.from_array(np.zeros((1, 1), np.float32), "one"))
        nodes.append(helper.make_node("Expand", ["one", src], ["bomb"]))
    elif consumer == "Tile":
        inits.append(numpy_helper.from_array(np.zeros((1, 1), np.float32), "one"))
        nodes.append(helper.make_node("Tile", ["one", src], ["bomb"]))
    else:  # Range: a * b int64 values from the product of the shape vector
        inits += [numpy_helper.from_array(np.array(0, np.int64), "zero")]
        inits += [numpy_helper.from_array(np.array(1, np.int64), "step")]
        nodes += [helper.make_node("ReduceProd", [src], ["n"], keepdims=0)]
        nodes += [helper.make_node("Range", ["zero", "n", "step"], ["bomb"])]
    dtype = TensorProto.INT64 if consumer == "Range" else TensorProto.FLOAT
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    out = helper.make_tensor_value_info("bomb", dtype, None)
    if rng.random() < 0.2:  # the same inside an If branch that reads the outer constants
        branch = helper.make_graph(nodes, "then", [], [out])
        cond = numpy_helper.from_array(np.array(True), "cond")
        nodes = [helper.make_node("If", ["cond"], ["bomb"], then_branch=branch, else_branch=branch)]
        inits.append(cond)
    graph = helper.make_graph(nodes, "g", [x], [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return model, a * b * item


def setup(root: Path, seed: int) -> dict[str, Any]:
    ctx = {"root": root, "seed": seed}
    run_case(ctx, -1)  # warm: onnx, onnxruntime and the first session's one-time allocations
    return ctx


def run_case(ctx: dict[str, Any], i: int) -> str:
    import onnxruntime as ort

    from edgernn.runtime.errors import ModelLoadError
    from edgernn.runtime.safety import read_model

    rng = random.Random(ctx["seed"] * 1_000_003 + i)
    model, size = bomb(rng)
    while i < 0 and size > LIMIT:  # the warm-up case is a small one
        model, size = bomb(rng)
    path = ctx["root"] / f"bomb{i % 4}.onnx"
    path.write_bytes(model.SerializeToString())
    try:
        data = read_model(path)
    except ModelLoadError as exc:
        if size > LIMIT:
            return "ModelLoadError"
        return f"wrong: a {size}-byte constant was refused: {str(exc)[:100]}"
    if size > LIMIT:
        return f"wrong: missed bomb of {size} bytes"
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": np.zeros(1, np.float32)})
    if y.nbytes != size:
        return f"wrong: computed {y.nbytes} bytes, the fold said {size}"
    return "accepted"
