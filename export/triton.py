"""A Triton Inference Server model repository: sequence batcher with implicit state.

Two facts from Triton's sources shape the graph written here (the "Triton variant"):

- with ``max_batch_size > 0`` Triton prepends the batch axis to a state's ``dims``, so the
  state must be batch-first: ``(batch, layers, hidden)``, not the native ops' ``(layers, batch, hidden)``;
- the control tensors START and READY are fed as graph inputs ``(batch, 1)`` int32, so the
  graph itself must use them: START zeroes the incoming state of that lane, and a lane
  whose READY is 0 (an empty slot of the batch) passes its state through unchanged.

The variant wraps any edgernn graph (fp32, int8, fp16): same frames input ``x`` and output
``y``; state ``h`` becomes ``h_state_in`` -> ``h_state_out`` (and ``c`` likewise).

Layout written by ``write_repository(DIR, ...)``::

    DIR/<name>/config.pbtxt
    DIR/<name>/1/model.onnx
    DIR/<name>_twin/...        the Python-backend twin (``edgernn.export.triton_twin``)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgernn.export.errors import ExportError, OutputExistsError
from edgernn.export.triton_twin import TWIN_SUFFIX, write_twin
from edgernn.runtime.dtypes import ONNX_CODE, TRITON
from edgernn.runtime.spec import BATCH, METADATA_KEY, TIME, StreamSpec

START, READY = "START", "READY"
TRITON_KEY = "edgernn.triton"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")  # a folder name, a URL path segment, a pbtxt string


def model_name(stem: str) -> str:
    """A Triton model name from a file name's stem: every character outside ``[A-Za-z0-9_-]``
    (dots, spaces, non-ASCII letters, bytes that are not UTF-8, quotes, newlines) becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", stem)[:200] or "model"


def state_names(input_name: str) -> tuple[str, str]:
    """The Triton variant's (input, output) names of the state whose native input is ``input_name``."""
    return f"{input_name}_state_in", f"{input_name}_state_out"


def _batch_first(shape: tuple) -> tuple[list[int], list[int]]:
    """perm moving the batch axis first, and its inverse."""
    ax = list(shape).index(BATCH)
    perm = [ax] + [i for i in range(len(shape)) if i != ax]
    return perm, [perm.index(i) for i in range(len(shape))]


def triton_variant(proto: onnx.ModelProto, spec: StreamSpec) -> onnx.ModelProto:
    """``proto`` wrapped for Triton: batch-first state, START / READY as real graph inputs."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    g = out.graph
    state_in = {s.input for s in spec.states}
    state_out = {s.output for s in spec.states}
    kept_in = [i for i in g.input if i.name not in state_in]
    kept_out = [o for o in g.output if o.name not in state_out]
    nodes: list[onnx.NodeProto] = []
    vi = helper.make_tensor_value_info
    new_in = [vi(START, TensorProto.INT32, [BATCH, 1]), vi(READY, TensorProto.INT32, [BATCH, 1])]
    new_out = []
    g.initializer.append(numpy_helper.from_array(np.array([2], np.int64), "triton_axis2"))
    for name, src in ((START, START), (READY, READY)):
        b = f"{name}_bool"
        nodes.append(helper.make_node("Cast", [src], [b], to=TensorProto.BOOL))
        nodes.append(helper.make_node("Unsqueeze", [b, "triton_axis2"], [f"{name}_b3"]))  # (batch, 1, 1)
    tail: list[onnx.NodeProto] = []
    for s in spec.states:
        t_in, t_out = state_names(s.input)
        perm, inv = _batch_first(s.shape)
        dims = [d for d in s.shape if d != BATCH]
        dtype = ONNX_CODE[s.dtype]
        new_in.append(vi(t_in, dtype, [BATCH, *dims]))
        new_out.append(vi(t_out, dtype, [BATCH, *dims]))
        zero = f"{s.input}_init"
        init_value = np.array(s.init, dtype=np.float16 if s.dtype == "float16" else np.float32)
        g.initializer.append(numpy_helper.from_array(init_value, zero))
        reset = f"{t_in}_reset"
        nodes.append(helper.make_node("Where", [f"{START}_b3", zero, t_in], [reset]))
        nodes.append(helper.make_node("Transpose", [reset], [s.input], perm=inv))  # back to the native layout
        native_out = f"{t_out}_native"
        first = f"{t_out}_first"
        tail.append(helper.make_node("Transpose", [native_out], [first], perm=perm))
        tail.append(helper.make_node("Where", [f"{READY}_b3", first, reset], [t_out]))
        for node in g.node:  # the inner graph now writes the native state under another name
            node.output[:] = [native_out if o == s.output else o for o in node.output]
    body = list(g.node)
    del g.node[:]
    g.node.extend(nodes + body + tail)
    del g.input[:]
    g.input.extend(kept_in[:1] + new_in + kept_in[1:])
    del g.output[:]
    g.output.extend(kept_out + new_out)
    kept = [p for p in out.metadata_props if not p.key.startswith("edgernn.")]
    del out.metadata_props[:]
    out.metadata_props.extend(kept)
    entry = out.metadata_props.add()
    entry.key = TRITON_KEY
    entry.value = json.dumps({"state_layout": "batch-first", "source_spec": json.loads(spec.to_json())})
    onnx.checker.check_model(out)
    return out


def _dims(shape: tuple) -> str:
    return ", ".join("-1" if d == TIME else str(d) for d in shape if d != BATCH)


def config_pbtxt(spec: StreamSpec, name: str, max_batch_size: int = 64, kind: str = "KIND_CPU") -> str:
    """The ``config.pbtxt`` of the Triton variant of ``spec``'s graph (text protobuf)."""
    lines = [f'name: "{name}"', 'backend: "onnxruntime"', f"max_batch_size: {max_batch_size}", "input ["]
    lines += [
        f'  {{ name: "{t.name}" data_type: {TRITON[t.dtype]} dims: [ {_dims(t.shape)} ] }}' for t in spec.inputs
    ]
    lines += ["]", "output ["]
    lines += [
        f'  {{ name: "{t.name}" data_type: {TRITON[t.dtype]} dims: [ {_dims(t.shape)} ] }}' for t in spec.outputs
    ]
    lines += ["]", "sequence_batching {", "  max_sequence_idle_microseconds: 60000000"]
    lines += ["  direct { max_queue_delay_microseconds: 1000 }", "  control_input ["]
    for tensor, kind_name in ((START, "CONTROL_SEQUENCE_START"), (READY, "CONTROL_SEQUENCE_READY")):
        lines.append(f'    {{ name: "{tensor}" control [ {{ kind: {kind_name} int32_false_true: [ 0, 1 ] }} ] }},')
    lines[-1] = lines[-1].rstrip(",")
    lines += ["  ]", "  state ["]
    for s in spec.states:
        t_in, t_out = state_names(s.input)
        dt, dims = TRITON[s.dtype], _dims(s.shape)
        init = f'initial_state: {{ data_type: {dt} dims: [ {dims} ] zero_data: true name: "zeros" }}'
        lines.append(f'    {{ input_name: "{t_in}" output_name: "{t_out}" data_type: {dt} dims: [ {dims} ] {init} }},')
    lines[-1] = lines[-1].rstrip(",")
    lines += ["  ]", "}", f"instance_group [ {{ count: 1 kind: {kind} }} ]", ""]
    return "\n".join(lines)


def write_repository(
    root: str | os.PathLike[str],
    proto: onnx.ModelProto,
    spec: StreamSpec,
    name: str | None = None,
    max_batch_size: int = 64,
    force: bool = False,
    twin: bool = True,
    strategy: str = "direct",
    idle_microseconds: int = 60_000_000,
) -> Path:
    """Write ``root/<name>/{config.pbtxt,1/model.onnx}`` whole or not at all; returns the model folder.

    With ``twin`` (the default) also ``root/<name>_twin/``: the Python-backend twin that runs the
    edge graph with the edgernn engine (``edgernn.export.triton_twin``; ``strategy`` and
    ``idle_microseconds`` are its sequence batcher's).
    """
    root = Path(root)
    name = name or f"edgernn_{spec.model.cell if spec.model else 'model'}"
    if not _NAME.fullmatch(name):
        raise ExportError(f"Triton model name {name!r}: expected ASCII letters, digits, '_', '-' or '.' (model_name())")
    if spec.memory:  # Triton's implicit state carries recurrent pairs only; a per-stream memory has no slot there
        raise ExportError(
            f"Triton repository: the spec declares per-stream memory {[m.name for m in spec.memory]}, which the "
            "sequence batcher cannot hold; serve this model with the engine (edgernn.runtime) instead"
        )
    target = root / name
    twin_target = root / f"{name}{TWIN_SUFFIX}"
    for t in (target, twin_target) if twin else (target,):
        if t.exists() and not force:
            raise OutputExistsError(f"{t} exists; pass force=True (--force) to replace it")
    variant = triton_variant(proto, spec)
    fp16 = spec.provenance.get("quantization", {}).get("dtype") == "float16"
    kind = "KIND_GPU" if fp16 else "KIND_CPU"
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}."))
    except OSError as exc:
        raise ExportError(f"{root}: cannot write the Triton repository: {exc.strerror or exc}") from None
    try:
        (staging / "model" / "1").mkdir(parents=True)
        onnx.save(variant, str(staging / "model" / "1" / "model.onnx"))
        (staging / "model" / "config.pbtxt").write_text(config_pbtxt(spec, name, max_batch_size, kind))
        moves = [(staging / "model", target)]
        if twin:
            edge = _with_spec(proto, spec)
            write_twin(staging / "twin", edge, spec, twin_target.name, max_batch_size, strategy, idle_microseconds)
            moves.append((staging / "twin", twin_target))
        for src, dst in moves:
            if dst.exists():
                shutil.rmtree(dst)
            os.replace(src, dst)
    except OSError as exc:
        raise ExportError(f"{target}: cannot write the Triton repository: {exc.strerror or exc}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target


def _with_spec(proto: onnx.ModelProto, spec: StreamSpec) -> onnx.ModelProto:
    """A copy of the edge graph ``proto`` carrying ``spec`` in its metadata (what ``Engine.load`` reads)."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    kept = [p for p in out.metadata_props if p.key != METADATA_KEY]
    del out.metadata_props[:]
    out.metadata_props.extend(kept)
    out.metadata_props.add(key=METADATA_KEY, value=spec.to_json())
    return out
