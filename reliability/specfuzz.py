"""Structural fuzz of the stream spec: random types at random JSON paths, loaded and streamed.

Each case takes the spec of a real exported model (a GRU over frames, or, every other case, a
decoder step with per-stream memory: ``reliability/memmodel.py``), changes it at one to three random places
(a value replaced by a random JSON value of another type, a key removed or added, a list
emptied or an entry doubled, a 1,000-deep nesting), writes it into the model's metadata and
runs ``Engine.load``, then, if it loads, a step, a push, a snapshot round trip and a batched
``step_many``. Every outcome must be ``accepted`` or a typed error.

Example:
    >>> import random
    >>> sorted(mutate({"a": [1, 2]}, random.Random(3)))  # doctest: +SKIP
    ['a']
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import numpy as np

DEEP = "@@deep@@"
VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 2, 3, 2.5, -0.0, 1e30, 10**12, 2**63, -(2**31), float("nan"), float("inf"),
    "", "abc", "batch", "time", "x", "y", "h", "float32", "int64", "bool", "\udcff", "x" * 5000,
    [], [1], ["x"], [[1]], ["batch"], ["batch", "time"], [0], [-1], {}, {"a": 1}, {"name": "x"}, DEEP,
]  # fmt: skip
MODEL = "base.onnx"
MEMORY_MODEL = "memory.onnx"  # a decoder step with per-stream memory (spec version 3): every other case


def _paths(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [here]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*here, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*here, i))
    return out


def _at(node: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        node = node[key]
    return node


def mutate(spec: dict[str, Any], rng: random.Random) -> Any:
    """A copy of ``spec`` changed at one to three random JSON paths (see the module docstring)."""
    doc: Any = copy.deepcopy(spec)
    for _ in range(rng.randint(1, 3)):
        paths = _paths(doc)
        path = rng.choice(paths)
        kind = rng.random()
        if not path:
            if kind < 0.1:
                doc = rng.choice(VALUES)
            continue
        parent, key = _at(doc, path[:-1]), path[-1]
        target = parent[key]
        if kind < 0.6:
            parent[key] = copy.deepcopy(rng.choice(VALUES))
        elif kind < 0.7 and isinstance(parent, dict):
            del parent[key]
        elif kind < 0.8 and isinstance(parent, dict):
            parent[rng.choice(["colour", "window", "x", ""])] = copy.deepcopy(rng.choice(VALUES))
        elif kind < 0.9 and isinstance(target, list):
            if target and rng.random() < 0.5:
                target.append(copy.deepcopy(target[0]))
            else:
                target.clear()
        elif isinstance(target, (int, float)) and not isinstance(target, bool):
            parent[key] = rng.choice([0, -1, 2**31, 10**12, target * 1000, target + 0.5])
        else:
            parent[key] = copy.deepcopy(rng.choice(VALUES))
    return doc


def to_text(doc: Any) -> str:
    return json.dumps(doc).replace(json.dumps(DEEP), "[" * 1000 + "]" * 1000)


def prepare(root: Path, seed: int) -> None:
    """The base models: a small GRU over frames and the memory decoder, by the real exporter (needs torch)."""
    import torch

    from edgernn.export.onnx_export import export_model
    from edgernn.reliability.memmodel import export
    from edgernn.runtime.spec import ModelConfig
    from edgernn.train.model import build_model

    torch.manual_seed(seed)
    cfg = ModelConfig(cell="gru", input_kind="frames", input_size=3, hidden_size=8, num_layers=1, output_size=2)
    export_model(build_model(cfg).eval(), root / MODEL)
    export(root / MEMORY_MODEL, seed)


def with_spec(data: bytes, text: str) -> bytes:
    """``data`` (an ONNX model) with its stream spec replaced by ``text`` (metadata entries re-encoded)."""
    from edgernn.runtime.protowire import encode_field, field_bytes, iter_fields
    from edgernn.runtime.spec import METADATA_KEY

    kept = b"".join(
        encode_field(f)
        for f in iter_fields(data)
        if not (f.number == 14 and METADATA_KEY.encode() in bytes(f.payload)[:64])
    )
    entry = field_bytes(1, METADATA_KEY.encode()) + field_bytes(2, text.encode("utf-8", "surrogatepass"))
    return kept + field_bytes(14, entry)


def setup(root: Path, seed: int) -> dict[str, Any]:
    from edgernn.runtime.engine import Engine

    bases = [((root / name).read_bytes(), Engine.load(root / name).spec.to_dict()) for name in (MODEL, MEMORY_MODEL)]
    return {"root": root, "bases": bases, "seed": seed}


def run_case(ctx: dict[str, Any], i: int) -> str:
    from edgernn.runtime.engine import Engine

    rng = random.Random(ctx["seed"] * 1_000_003 + i)
    data, spec = ctx["bases"][i % len(ctx["bases"])]
    text = to_text(mutate(spec, rng))
    path = ctx["root"] / f"case{i % 4}.onnx"
    path.write_bytes(with_spec(data, text))
    engine = Engine.load(path)
    stream_through(engine, rng)
    return "accepted"


def example_frames(engine: Any, frames: int, rng: random.Random) -> Any:
    """Input for ``frames`` frames as the engine's spec declares it (symbolic axes as 1)."""
    from edgernn.runtime.dtypes import NP_DTYPES

    def one(t: Any) -> np.ndarray:
        dims = [frames if d == "time" else 1 if isinstance(d, str) else d for d in t.shape if d != "batch"]
        return (np.asarray(rng.random(), dtype=np.float64) * np.ones(dims)).astype(NP_DTYPES[t.dtype])

    inputs = engine.spec.inputs
    return one(inputs[0]) if len(inputs) == 1 else {t.name: one(t) for t in inputs}


def stream_through(engine: Any, rng: random.Random) -> None:
    from edgernn.reliability.memmodel import example_memory

    s = engine.stream(memory=example_memory(engine.spec, 3, rng))
    s.push(example_frames(engine, 3, rng), chunk=2)
    blob = s.snapshot()
    other = engine.stream(memory=example_memory(engine.spec, 2, rng))  # another length: padded with the mask
    other.restore(blob)
    engine.step_many([s, other], [example_frames(engine, 2, rng), example_frames(engine, 1, rng)])
    if engine.spec.memory:
        other.reset(memory=example_memory(engine.spec, 1, rng))
        other.step(example_frames(engine, 1, rng)[0])
    s.close()
