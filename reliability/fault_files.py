"""The injected faults: one builder per untrusted model file, and ``cases()``, the list in report order.

Each builder takes the case's folder and a sound exported model (``base``) and writes the
damaged, foreign or hostile file; ``edgernn.reliability.faults`` loads each in a child process.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgernn.runtime.protowire import encode_field, field_bytes, field_varint, iter_fields
from edgernn.runtime.spec import METADATA_KEY

ANY_TYPED = "EdgeRNNError"  # the expectation "some typed error, or it loads" (corrupted weights may load)


@dataclass
class Case:
    """One injected fault: ``build(case_dir, base)`` writes the file and returns the path to load."""

    name: str
    fault: str
    expect: str  # the error class expected ('ModelLoadError', 'SpecError', ...), ANY_TYPED, or 'loaded'
    build: Callable[[Path, onnx.ModelProto], Path]
    cwd_bait: bool = False  # run the child in the bait folder (catches paths resolved against the cwd)
    value: int = 0  # every element of the frames the child steps with


def _write(case_dir: Path, data: bytes, name: str = "model.onnx") -> Path:
    path = case_dir / "model" / name
    path.write_bytes(data)
    return path


def _save(case_dir: Path, proto: onnx.ModelProto) -> Path:
    return _write(case_dir, proto.SerializeToString())


def _copy(base: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(base)
    return out


def _spec_json(proto: onnx.ModelProto) -> dict[str, Any]:
    return dict(json.loads(next(p.value for p in proto.metadata_props if p.key == METADATA_KEY)))


def _with_spec(base: onnx.ModelProto, edit: Callable[[dict[str, Any]], object]) -> onnx.ModelProto:
    """A copy of ``base`` whose spec JSON went through ``edit`` (which changes it in place)."""
    raw = _spec_json(base)
    edit(raw)
    return _with_spec_text(base, json.dumps(raw))


def _with_spec_text(base: onnx.ModelProto, text: str) -> onnx.ModelProto:
    proto = _copy(base)
    for p in proto.metadata_props:
        if p.key == METADATA_KEY:
            p.value = text
    return proto


def _external(base: onnx.ModelProto, case_dir: Path, location: str, length: int | None = None) -> Path:
    """The base model with its largest initializer moved to external data at ``location``."""
    proto = _copy(base)
    init = max(proto.graph.initializer, key=lambda t: len(t.raw_data))
    raw = init.raw_data
    target = case_dir / "model" / "weights.bin"
    target.write_bytes(raw)
    init.ClearField("raw_data")
    init.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(length or len(raw)))):
        entry = init.external_data.add()
        entry.key, entry.value = key, value
    return _save(case_dir, proto)


def _bomb_graph(base: onnx.ModelProto, nodes: list[onnx.NodeProto], inits: list[TensorProto]) -> onnx.ModelProto:
    """The base model plus side nodes and initializers that no output needs (onnxruntime may prune them)."""
    proto = _copy(base)
    proto.graph.node.extend(nodes)
    proto.graph.initializer.extend(inits)
    return proto


def _huge(name: str, dims: list[int]) -> TensorProto:
    t = TensorProto()
    t.name, t.data_type = name, TensorProto.FLOAT
    t.dims.extend(dims)
    return t


def _nested_if(depth: int) -> bytes:
    """A NodeProto, encoded by hand: an If whose then-branch nests ``depth`` graphs (protobuf's own
    builders refuse this depth, which is the point)."""
    node = field_bytes(4, b"Identity") + field_bytes(1, b"a") + field_bytes(2, b"b")
    for _ in range(depth):
        graph = field_bytes(1, node)
        attr = field_bytes(1, b"then_branch") + field_varint(20, 5) + field_bytes(6, graph)
        node = field_bytes(4, b"If") + field_bytes(1, b"cond") + field_bytes(2, b"o") + field_bytes(5, attr)
    return node


class _PickleBomb:
    """Unpickling this creates ``marker``: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


def pickle_bomb(marker: Path) -> bytes:
    """A pickle that, if ever unpickled, creates ``marker``."""
    return pickle.dumps(_PickleBomb(str(marker)), protocol=4)


def _truncate(frac: float) -> Callable[[Path, onnx.ModelProto], Path]:
    def build(case_dir: Path, base: onnx.ModelProto) -> Path:
        data = base.SerializeToString()
        return _write(case_dir, data[: max(1, int(len(data) * frac)) if frac < 1 else len(data) - 1])

    return build


def _bitflip(seed: int) -> Callable[[Path, onnx.ModelProto], Path]:
    def build(case_dir: Path, base: onnx.ModelProto) -> Path:
        data = bytearray(base.SerializeToString())
        rng = np.random.default_rng(seed)
        for pos in rng.integers(0, len(data), size=8):
            data[pos] ^= 1 << int(rng.integers(0, 8))
        return _write(case_dir, bytes(data))

    return build


def _fifo(case_dir: Path, base: onnx.ModelProto) -> Path:
    path = case_dir / "model" / "model.onnx"
    if not path.exists():
        os.mkfifo(path)
    return path


def _symlink(case_dir: Path, base: onnx.ModelProto) -> Path:
    link = case_dir / "model" / "link.bin"
    if not link.is_symlink():
        link.symlink_to(case_dir / "outside" / "bait.bin")
    return _external(base, case_dir, "link.bin")


def _cwd_trap(case_dir: Path, base: onnx.ModelProto) -> Path:
    return _external(base, case_dir, "bait.bin")


def _cos(base: onnx.ModelProto, op: str) -> onnx.ModelProto:
    shape = numpy_helper.from_array(np.array([1 << 16, 1 << 15], np.int64), "bomb_shape")
    one = numpy_helper.from_array(np.ones(1, np.float32), "bomb_one")
    if op == "ConstantOfShape":
        node = helper.make_node(op, ["bomb_shape"], ["bomb"], value=numpy_helper.from_array(np.ones(1, np.float32)))
    else:
        node = helper.make_node(op, ["bomb_one", "bomb_shape"], ["bomb"])
    return _bomb_graph(base, [node], [shape, one])


def _run_bomb(base: onnx.ModelProto) -> onnx.ModelProto:
    """y += sum(ConstantOfShape([max(x) * 2^31])): zero input is harmless (the load's probe passes),
    token 1 asks for 8 GiB at run time. No constant shape: only a run reveals it."""
    proto = _copy(base)
    for node in proto.graph.node:
        node.output[:] = ["y_pre" if o == "y" else o for o in node.output]
    scale = numpy_helper.from_array(np.array(1 << 31, np.int64), "bomb_scale")
    one = numpy_helper.from_array(np.array([1], np.int64), "bomb_one_dim")
    zero = numpy_helper.from_array(np.zeros(1, np.float32))
    proto.graph.initializer.extend([scale, one])
    proto.graph.node.extend(
        [
            helper.make_node("ReduceMax", ["x"], ["bomb_max"], keepdims=0),
            helper.make_node("Mul", ["bomb_max", "bomb_scale"], ["bomb_n"]),
            helper.make_node("Reshape", ["bomb_n", "bomb_one_dim"], ["bomb_shape"]),
            helper.make_node("ConstantOfShape", ["bomb_shape"], ["bomb"], value=zero),
            helper.make_node("ReduceSum", ["bomb"], ["bomb_sum"], keepdims=0),
            helper.make_node("Add", ["y_pre", "bomb_sum"], ["y"]),
        ]
    )
    return proto


def _sparse_bomb(base: onnx.ModelProto) -> onnx.ModelProto:
    proto = _copy(base)
    values = numpy_helper.from_array(np.ones(1, np.float32), "sparse_bomb")
    indices = numpy_helper.from_array(np.zeros(1, np.int64), "sparse_bomb_idx")
    proto.graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, [1 << 20, 1 << 20]))
    return proto


def _symbolic_output(base: onnx.ModelProto, size: int) -> onnx.ModelProto:
    """The graph's output ``y`` made symbolic on its last axis; the spec claims ``size`` there."""
    proto = _copy(base)
    proto.graph.output[0].type.tensor_type.shape.dim[2].dim_param = "features"

    def edit(raw: dict[str, Any]) -> None:
        raw["outputs"][0]["shape"][2] = size

    return _with_spec(proto, edit)


def cases() -> list[Case]:
    """Every injected fault, in report order."""
    spec = _with_spec
    c: list[Case] = [
        Case("valid", "the exported model, untouched (control)", "loaded", lambda d, b: _save(d, b)),
        Case("empty", "an empty file", "ModelLoadError", lambda d, b: _write(d, b"")),
        Case("missing", "a path that does not exist", "ModelLoadError", lambda d, b: d / "model" / "nope.onnx"),
        Case("directory", "a directory instead of a file", "ModelLoadError", lambda d, b: d / "model"),
        Case("fifo", "a FIFO (a read would block forever)", "ModelLoadError", _fifo),
        Case("text", "a text file", "ModelLoadError", lambda d, b: _write(d, b"# not a model\nhello\n")),
        Case(
            "random",
            "4 KiB of random bytes",
            "ModelLoadError",
            lambda d, b: _write(d, np.random.default_rng(1).bytes(4096)),
        ),
        Case(
            "pickle",
            "a pickle whose unpickling would create a file",
            "ModelLoadError",
            lambda d, b: _write(d, pickle_bomb(d / "outside" / "PWNED")),
        ),
        Case(
            "zip",
            "a zip archive (what torch.save writes)",
            "ModelLoadError",
            lambda d, b: _write(d, b"PK\x03\x04" + bytes(60)),
        ),
    ]
    for frac in (0.01, 0.1, 0.5, 0.9, 1.0):
        label = "all but the last byte" if frac == 1.0 else f"the first {frac:.0%}"
        c.append(Case(f"truncated-{int(frac * 100)}", f"truncated: {label}", ANY_TYPED, _truncate(frac)))
    for seed in range(6):
        c.append(Case(f"bitflip-{seed}", "8 random bit flips", ANY_TYPED, _bitflip(seed)))
    c += [
        Case(
            "external-inside",
            "weights in external data inside the model's folder (legit)",
            "loaded",
            lambda d, b: _external(b, d, "weights.bin"),
        ),
        Case(
            "external-traversal",
            "external data at ../outside/bait.bin",
            "ModelLoadError",
            lambda d, b: _external(b, d, "../outside/bait.bin"),
        ),
        Case(
            "external-absolute",
            "external data at an absolute path",
            "ModelLoadError",
            lambda d, b: _external(b, d, str(d.resolve() / "outside" / "bait.bin")),
        ),
        Case(
            "external-symlink", "external data via a symlink in the folder pointing outside", "ModelLoadError", _symlink
        ),
        Case(
            "external-cwd",
            "external data 'bait.bin' absent from the folder, present in the working directory",
            "ModelLoadError",
            _cwd_trap,
            cwd_bait=True,
        ),
        Case(
            "external-short",
            "external data file shorter than the tensor",
            "ModelLoadError",
            lambda d, b: _external(b, d, "weights.bin", length=1 << 20),
        ),
        Case(
            "bomb-initializer",
            "an initializer declaring 2^40 floats, no data",
            "ModelLoadError",
            lambda d, b: _save(d, _bomb_graph(b, [], [_huge("bomb", [1 << 20, 1 << 20])])),
        ),
        Case(
            "bomb-constant",
            "a Constant node declaring 2^40 floats",
            "ModelLoadError",
            lambda d, b: _save(
                d,
                _bomb_graph(b, [helper.make_node("Constant", [], ["bomb"], value=_huge("v", [1 << 20, 1 << 20]))], []),
            ),
        ),
        Case(
            "bomb-constantofshape",
            "ConstantOfShape of a constant shape [2^16, 2^15] (8 GiB)",
            "ModelLoadError",
            lambda d, b: _save(d, _cos(b, "ConstantOfShape")),
        ),
        Case(
            "bomb-expand",
            "Expand to a constant shape [2^16, 2^15] (8 GiB)",
            "ModelLoadError",
            lambda d, b: _save(d, _cos(b, "Expand")),
        ),
        Case(
            "bomb-sparse",
            "a sparse initializer of dense shape [2^20, 2^20]",
            "ModelLoadError",
            lambda d, b: _save(d, _sparse_bomb(b)),
        ),
        Case(
            "bomb-negative-dim",
            "an initializer with dimension -5",
            "ModelLoadError",
            lambda d, b: _save(d, _bomb_graph(b, [], [_huge("bomb", [-5])])),
        ),
        Case(
            "bomb-overflow",
            "dimensions whose product overflows int64",
            "ModelLoadError",
            lambda d, b: _save(d, _bomb_graph(b, [], [_huge("bomb", [1 << 62, 1 << 62, 4])])),
        ),
        Case("bomb-nesting", "If subgraphs nested 40 deep", "ModelLoadError", _nest),
        Case(
            "bomb-at-run",
            "ConstantOfShape of a size computed from the input: 8 GiB for token 1",
            "RunError",
            lambda d, b: _save(d, _run_bomb(b)),
            value=1,
        ),
        Case("spec-missing", "no stream spec in the metadata", "SpecError", _no_spec),
        Case("spec-not-json", "the spec is not JSON", "SpecError", lambda d, b: _save(d, _with_spec_text(b, "{oops"))),
        Case(
            "spec-version",
            "spec format version 99",
            "SpecError",
            lambda d, b: _save(d, spec(b, lambda r: r.update(version=99))),
        ),
        Case(
            "spec-malformed",
            "a spec input without a dtype",
            "SpecError",
            lambda d, b: _save(d, spec(b, lambda r: r["inputs"][0].pop("dtype"))),
        ),
        Case("spec-twice", "two stream specs in the metadata", "SpecError", _twice),
        Case(
            "spec-unknown-input",
            "the spec streams an input the graph lacks",
            "SpecError",
            lambda d, b: _save(d, spec(b, lambda r: r["inputs"][0].update(name="q"))),
        ),
        Case(
            "spec-dtype",
            "the spec says float32 where the graph takes int64",
            "SpecError",
            lambda d, b: _save(d, spec(b, lambda r: r["inputs"][0].update(dtype="float32"))),
        ),
        Case(
            "spec-state-size",
            "the spec's state is wider than the graph's",
            "SpecError",
            lambda d, b: _save(d, spec(b, lambda r: r["states"][0]["shape"].__setitem__(2, 999))),
        ),
        Case(
            "spec-rank",
            "the spec's state has another rank than the graph's",
            "SpecError",
            lambda d, b: _save(d, spec(b, lambda r: r["states"][0]["shape"].append(1))),
        ),
        Case(
            "spec-bomb",
            "the spec asks for a 10^11-wide output per stream",
            "SpecError",
            lambda d, b: _save(d, _symbolic_output(b, 10**11)),
        ),
        Case(
            "spec-lies-at-run",
            "the spec's output size disagrees with what the graph computes",
            ANY_TYPED,
            lambda d, b: _save(d, _symbolic_output(b, 7)),
        ),
    ]
    return c


def _nest(case_dir: Path, base: onnx.ModelProto) -> Path:
    data = base.SerializeToString()
    parts = []
    for f in iter_fields(data):
        if f.number == 7:
            parts.append(field_bytes(7, bytes(f.payload) + field_bytes(1, _nested_if(40))))
        else:
            parts.append(encode_field(f))
    return _write(case_dir, b"".join(parts))


def _no_spec(case_dir: Path, base: onnx.ModelProto) -> Path:
    proto = _copy(base)
    kept = [p for p in proto.metadata_props if p.key != METADATA_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    return _save(case_dir, proto)


def _twice(case_dir: Path, base: onnx.ModelProto) -> Path:
    proto = _copy(base)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(_spec_json(base))
    return _save(case_dir, proto)


def mutants(n: int, seed: int = 0) -> list[Case]:
    """``n`` random mutations of the sound model: bit flips, cuts, insertions, deletions, random or
    repeated spans. Any typed error is fine, and so is a load (a flipped weight is still a model)."""
    rng = np.random.default_rng(seed)
    kinds = ("flips", "cut", "insert", "delete", "random span", "repeat span")
    out = []
    for k in range(n):
        kind = kinds[int(rng.integers(0, len(kinds)))]
        out.append(Case(f"mutant-{k}", kind, ANY_TYPED, _mutate(kind, int(rng.integers(0, 2**31)))))
    return out


def _mutate(kind: str, seed: int) -> Callable[[Path, onnx.ModelProto], Path]:
    def build(case_dir: Path, base: onnx.ModelProto) -> Path:
        rng = np.random.default_rng(seed)
        data = bytearray(base.SerializeToString())
        at = int(rng.integers(0, len(data)))
        span = int(rng.integers(1, 64))
        if kind == "flips":
            for pos in rng.integers(0, len(data), size=int(rng.integers(1, 17))):
                data[pos] ^= 1 << int(rng.integers(0, 8))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = rng.bytes(span)
        elif kind == "delete":
            del data[at : at + span]
        elif kind == "random span":
            data[at : at + span] = rng.bytes(len(data[at : at + span]))
        else:
            data[at:at] = data[at : at + span]
        return _write(case_dir, bytes(data))

    return build
