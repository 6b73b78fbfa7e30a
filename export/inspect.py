"""What is inside an ONNX model: the stream spec, inputs/outputs, operator counts, size, opset,
and on which of this machine's execution providers it loads and runs one step.

Needs onnx and onnxruntime, never torch. Each provider is tried in a child process: a
provider may crash the process on a graph it cannot take (onnxruntime 1.32's CPU EP does on
float16 graphs at ENABLE_ALL), and inspect must still answer.

Example:
    >>> info = inspect_model("model.onnx")  # doctest: +SKIP
    >>> info["operators"]["GRU"]            # doctest: +SKIP
    1
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, helper

from edgernn.runtime.errors import ModelLoadError, SpecError
from edgernn.runtime.spec import METADATA_KEY, StreamSpec

_PROBE = r"""
import sys, numpy as np, onnxruntime as ort
path, ep = sys.argv[1], sys.argv[2]
opts = ort.SessionOptions()
opts.intra_op_num_threads = 1
opts.log_severity_level = 3
opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
if ep != "CPUExecutionProvider":
    opts.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
try:
    s = ort.InferenceSession(path, opts, providers=[ep])
except Exception as exc:
    print("load failed: " + str(exc).splitlines()[0][:200]); sys.exit(0)
types = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
         "tensor(int32)": np.int32, "tensor(bool)": np.bool_, "tensor(double)": np.float64}
feeds = {}
for i in s.get_inputs():
    shape = [d if isinstance(d, int) else 1 for d in i.shape]
    feeds[i.name] = np.zeros(shape, dtype=types.get(i.type, np.float32))
try:
    s.run(None, feeds)
except Exception as exc:
    print("run failed: " + str(exc).splitlines()[0][:200]); sys.exit(0)
print("ok")
"""


def _graphs(graph: onnx.GraphProto) -> list[onnx.GraphProto]:
    out = [graph]
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                out += _graphs(attr.g)
            out += [g2 for g in attr.graphs for g2 in _graphs(g)]
    return out


def _shape(v: onnx.ValueInfoProto) -> list[int | str]:
    dims = v.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]


def _dtype(v: onnx.ValueInfoProto) -> str:
    return helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name


def probe_providers(path: str | os.PathLike[str], timeout: float = 120.0) -> dict[str, str]:
    """{provider: 'ok' | why not} for every provider this onnxruntime has, each tried in a child process."""
    import onnxruntime as ort

    result = {}
    for ep in ort.get_available_providers():
        if ep == "AzureExecutionProvider":  # a remote-call EP, not a place to run a graph
            continue
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _PROBE, os.fspath(path), ep], capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            result[ep] = f"no answer in {timeout:g} s"
            continue
        if proc.returncode < 0:
            result[ep] = f"crashed (signal {-proc.returncode}) building or running the session"
        else:
            lines = proc.stdout.strip().splitlines()
            result[ep] = lines[-1] if lines else f"exit {proc.returncode}: {proc.stderr.strip()[-200:]}"
    return result


def inspect_model(path: str | os.PathLike[str], providers: bool = True) -> dict[str, Any]:
    """A JSON-able description of the model at ``path``; ``providers=False`` skips the provider probes."""
    path = Path(path)
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, OSError, ...
        raise ModelLoadError(f"{path}: not a readable ONNX model: {exc}") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    spec: dict[str, Any] | None = None
    if METADATA_KEY in meta:
        spec = StreamSpec.from_metadata(meta, str(path)).to_dict()
    ops: Counter[str] = Counter()
    for g in _graphs(proto.graph):
        for node in g.node:
            ops[f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type] += 1
    weights: Counter[str] = Counter()
    for g in _graphs(proto.graph):
        for init in g.initializer:
            n = 1
            for d in init.dims:
                n *= d
            weights[TensorProto.DataType.Name(init.data_type).lower()] += n
    return {
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
        "ir_version": proto.ir_version,
        "opsets": {o.domain or "ai.onnx": o.version for o in proto.opset_import},
        "inputs": [{"name": v.name, "dtype": _dtype(v), "shape": _shape(v)} for v in proto.graph.input],
        "outputs": [{"name": v.name, "dtype": _dtype(v), "shape": _shape(v)} for v in proto.graph.output],
        "operators": dict(sorted(ops.items())),
        "weights": dict(weights),
        "spec": spec,
        "other_metadata": sorted(k for k in meta if k != METADATA_KEY),
        "providers": probe_providers(path) if providers else {},
    }


def format_report(info: dict[str, Any]) -> str:
    """The human-readable form of ``inspect_model``'s answer."""
    lines = [f"{info['path']}: {info['size_bytes'] / 1e6:.3g} MB, {info['producer']}, IR {info['ir_version']}"]
    lines.append("opsets: " + ", ".join(f"{k} {v}" for k, v in info["opsets"].items()))
    for kind in ("inputs", "outputs"):
        lines.append(f"{kind}:")
        lines += [f"  {t['name']:<14} {t['dtype']:<8} {t['shape']}" for t in info[kind]]
    lines.append("operators: " + ", ".join(f"{k} x{v}" for k, v in info["operators"].items()))
    lines.append("weights: " + ", ".join(f"{v:,} {k}" for k, v in info["weights"].items()))
    spec = info["spec"]
    if spec is None:
        lines.append("stream spec: none (Engine.load needs a spec passed in)")
    else:
        model = spec.get("model") or {}
        lines.append(
            f"stream spec v{spec['version']}: {model.get('cell', '?')} {model.get('input_kind', '?')} "
            f"in {model.get('input_size', '?')}, hidden {model.get('hidden_size', '?')} "
            f"x {model.get('num_layers', '?')}, "
            f"out {model.get('output_size', '?')}"
        )
        lines += [f"  state {s['input']} -> {s['output']} {s['dtype']} {s['shape']}" for s in spec["states"]]
        prov = spec.get("provenance", {})
        for key in ("checkpoint_sha256", "train_config_digest", "opset"):
            if key in prov:
                lines.append(f"  {key}: {prov[key]}")
        if "parity" in prov:
            p = prov["parity"]
            lines.append(f"  parity vs torch: max abs {p.get('max_abs', float('nan')):.3g} over {p.get('steps')} steps")
        if "quantization" in prov:
            q = prov["quantization"]
            line = f"  {q.get('dtype')}: {q.get('method')}"
            if "parity_vs_fp32" in q:
                line += f"; max |diff| vs fp32 {q['parity_vs_fp32']['max_abs_normalised']:.3g}"
            lines.append(line)
    if info["other_metadata"]:
        lines.append("other metadata: " + ", ".join(info["other_metadata"]))
    if info["providers"]:
        lines.append("execution providers (load + one step, in a child process):")
        lines += [f"  {ep:<28} {why}" for ep, why in info["providers"].items()]
    return "\n".join(lines)


def spec_summary(info: dict[str, Any]) -> str:
    """The spec as indented JSON (``edgernn inspect --json`` prints the whole answer instead)."""
    if info["spec"] is None:
        raise SpecError(f"{info['path']}: no stream spec in its metadata")
    return json.dumps(info["spec"], indent=2, sort_keys=True)
