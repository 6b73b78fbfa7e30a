"""What is inside an ONNX model: the stream spec, inputs/outputs, operator counts, size, opset,
and on which of this machine's execution providers it loads and runs one step.

Torch-free and onnx-free (``edgernn inspect`` works on an edge install). The file is opened
only by the runtime's safe reader (``runtime/safety.py``: regular file, size bounds, memory
bombs, external data inside the model's folder, the stream spec's schema), and read with the
runtime's own protobuf reader. Each provider is tried in a child process that gets the
*checked* bytes on its stdin (never the path), under an address-space limit and a timeout: a
provider may crash the process on a graph it cannot take (onnxruntime 1.32's CPU EP does on
float16 graphs at ENABLE_ALL), and inspect must still answer.

Example:
    >>> info = describe("model.onnx")  # doctest: +SKIP
    >>> info["operators"]["GRU"]       # doctest: +SKIP
    1
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from typing import Any

from edgernn.runtime.dtypes import FROM_ORT
from edgernn.runtime.modelscan import DEFAULT_LIMITS, Limits, graph_io, last_int, last_text
from edgernn.runtime.protowire import BYTES, Field, iter_fields, repeated_ints, text
from edgernn.runtime.safety import inspect_model, read_regular_file
from edgernn.runtime.spec import METADATA_KEY, StreamSpec

# ONNX TensorProto.DataType: numpy's name (inputs/outputs) and ONNX's own lower-case name (weights).
NP_NAMES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    8: "object",
    9: "bool",
    10: "float16",
    11: "float64",
    12: "uint32",
    13: "uint64",
    14: "complex64",
    15: "complex128",
}
ONNX_NAMES = {0: "undefined", 1: "float", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
              8: "string", 9: "bool", 10: "float16", 11: "double", 12: "uint32", 13: "uint64", 14: "complex64",
              15: "complex128", 16: "bfloat16"}  # fmt: skip

PROBE_ADDRESS_SPACE = 8 << 30  # bytes of address space a CPU-side provider probe may map
PROBE_TIMEOUT = 120.0
_GPU_PROVIDERS = (
    "CUDAExecutionProvider",
    "TensorrtExecutionProvider",
    "ROCMExecutionProvider",
    "MIGraphXExecutionProvider",
)

_ORT_NAMES = ",".join(f"{ort}={name}" for ort, name in FROM_ORT.items())  # the probe's dtype table, from ours
_PROBE = r"""
import resource, sys
limit = int(sys.argv[2])
if limit:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import numpy as np, onnxruntime as ort
ep = sys.argv[1]
data = sys.stdin.buffer.read()
opts = ort.SessionOptions()
opts.intra_op_num_threads = 1
opts.log_severity_level = 3
opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
if ep != "CPUExecutionProvider":
    opts.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
try:
    s = ort.InferenceSession(data, opts, providers=[ep])
except Exception as exc:
    print("load failed: " + (str(exc).splitlines() or [type(exc).__name__])[0][:200]); sys.exit(0)
types = dict(t.split("=") for t in sys.argv[3].split(","))  # onnxruntime type -> numpy name
feeds = {}
for i in s.get_inputs():
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
    feeds[i.name] = np.zeros(shape, dtype=types.get(i.type, "float32"))
try:
    s.run(None, feeds)
except Exception as exc:
    print("run failed: " + (str(exc).splitlines() or [type(exc).__name__])[0][:200]); sys.exit(0)
print("ok")
"""


def _no_core_dumps() -> None:
    """Runs in the child before exec: a provider that crashes leaves no core file behind."""
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def probe_providers(data: bytes, timeout: float = PROBE_TIMEOUT) -> dict[str, str]:
    """{provider: 'ok' | why not} for every provider this onnxruntime has, each tried in a child.

    ``data`` are checked model bytes (``safety.read_model``). CPU-side providers run under an
    address-space limit of ``PROBE_ADDRESS_SPACE``; GPU providers reserve large virtual ranges
    for the device, so they get the timeout only (their host allocations were bounded by the
    safe reader's checks on the graph).
    """
    import onnxruntime as ort

    result = {}
    for ep in ort.get_available_providers():
        if ep == "AzureExecutionProvider":  # a remote-call EP, not a place to run a graph
            continue
        limit = 0 if ep in _GPU_PROVIDERS else PROBE_ADDRESS_SPACE + len(data) * 4
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _PROBE, ep, str(limit), _ORT_NAMES],
                input=data,
                capture_output=True,
                timeout=timeout,
                preexec_fn=_no_core_dumps,
            )
        except subprocess.TimeoutExpired:
            result[ep] = f"no answer in {timeout:g} s (stopped)"
            continue
        out = proc.stdout.decode("utf-8", "replace").strip().splitlines()
        if proc.returncode < 0:
            result[ep] = f"crashed (signal {-proc.returncode}) building or running the session"
        elif out:
            result[ep] = out[-1]
        else:
            err = proc.stderr.decode("utf-8", "replace").strip()
            why = "out of memory under the probe's address-space limit" if "MemoryError" in err else err[-200:]
            result[ep] = f"exit {proc.returncode}: {why}"
    return result


def _subgraphs(node: list[Field]) -> list[memoryview]:
    out = []
    for a in (f for f in node if f.number == 5):
        for g in iter_fields(a.payload):
            if g.number in (6, 11) and g.wire == BYTES:
                out.append(g.payload)
    return out


def _walk_graphs(graph: memoryview, ops: Counter[str], weights: Counter[str]) -> None:
    """Count operators and weight elements in ``graph`` and every graph nested in it (no recursion)."""
    todo = [graph]
    while todo:
        for f in iter_fields(todo.pop()):
            if f.number == 1:
                node = list(iter_fields(f.payload))
                op, domain = last_text(node, 4), last_text(node, 7)
                ops[f"{domain}.{op}" if domain not in ("", "ai.onnx") else op] += 1
                todo += _subgraphs(node)
            elif f.number == 5:
                tensor = list(iter_fields(f.payload))
                n = 1
                for d in repeated_ints(tensor, 1):
                    n *= d
                weights[ONNX_NAMES.get(last_int(tensor, 2) or 0, "undefined")] += n


def describe(path: str | os.PathLike[str], providers: bool = True, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """A JSON-able description of the model at ``path``; ``providers=False`` skips the provider probes.

    ModelLoadError / SpecError (typed) for anything the safe reader refuses.
    """
    source = os.fspath(path)
    raw = read_regular_file(source, limits.max_file_bytes, what="model file")
    checked = inspect_model(raw, source, os.path.dirname(os.path.abspath(source)), limits)
    top = list(iter_fields(checked.data))
    meta = {}
    for f in (f for f in top if f.number == 14):
        kv = {e.number: text(e) for e in iter_fields(f.payload)}
        meta[kv.get(1, "")] = kv.get(2, "")
    spec = StreamSpec.from_metadata(meta, source).to_dict() if METADATA_KEY in meta else None
    opsets = {}
    for f in (f for f in top if f.number == 8):
        entry = list(iter_fields(f.payload))
        opsets[last_text(entry, 1) or "ai.onnx"] = last_int(entry, 2) or 0
    graph = next(f for f in reversed(top) if f.number == 7).payload
    ops: Counter[str] = Counter()
    weights: Counter[str] = Counter()
    _walk_graphs(graph, ops, weights)
    io = graph_io(top)
    declared = [
        (f.number, last_text(list(iter_fields(f.payload)), 1)) for f in iter_fields(graph) if f.number in (11, 12)
    ]

    def tensors(number: int) -> list[dict[str, Any]]:
        return [
            {"name": name, "dtype": NP_NAMES.get(io[name][0], "undefined"), "shape": io[name][1] or []}
            for n, name in declared
            if n == number
        ]

    producer = f"{last_text(top, 2)} {last_text(top, 3)}".strip()
    return {
        "path": source,
        "size_bytes": len(raw),
        "producer": producer,
        "ir_version": last_int(top, 1),
        "opsets": opsets,
        "inputs": tensors(11),
        "outputs": tensors(12),
        "operators": dict(sorted(ops.items())),
        "weights": dict(weights),
        "spec": spec,
        "other_metadata": sorted(k for k in meta if k != METADATA_KEY),
        "external_data": checked.inlined,
        "providers": probe_providers(checked.data) if providers else {},
    }
