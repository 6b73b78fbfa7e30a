"""``edgernn inspect``: the spec, inputs/outputs, operators, size, opset and usable providers of a model.

Parses and prints; the work is ``edgernn.runtime.modelinfo.describe`` (torch-free, onnx-free,
through the runtime's safe reader).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from edgernn.cli.options import add_json
from edgernn.cli.paths import emit_json, in_file, report_written

HELP = "Show what an ONNX model holds and on which execution providers it runs (no torch or onnx needed)."
EXAMPLE = "edgernn inspect model.onnx"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=in_file(), help="an .onnx file")
    add_json(p, "the whole answer")
    p.add_argument("--spec", action="store_true", help="print the stream spec as JSON")
    p.add_argument("--no-providers", action="store_true", help="skip trying each execution provider")


def main(args: argparse.Namespace) -> int:
    from edgernn.runtime.errors import SpecError
    from edgernn.runtime.modelinfo import describe

    info = describe(args.model, providers=not args.no_providers and not args.spec)
    if args.json:
        report_written([emit_json(args.json, json.dumps(info, indent=2, sort_keys=True))])
    elif args.spec:
        if info["spec"] is None:
            raise SpecError(f"{info['path']}: no stream spec in its metadata")
        print(json.dumps(info["spec"], indent=2, sort_keys=True))
    else:
        print(format_report(info))
    return 0


def _num(value: Any, fmt: str = ".3g") -> str:
    return format(value, fmt) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def format_report(info: dict[str, Any]) -> str:
    """The human-readable form of ``describe``'s answer (provenance values shown as they are)."""
    lines = [f"{info['path']}: {info['size_bytes'] / 1e6:.3g} MB, {info['producer']}, IR {info['ir_version']}"]
    lines.append("opsets: " + ", ".join(f"{k} {v}" for k, v in info["opsets"].items()))
    for kind in ("inputs", "outputs"):
        lines.append(f"{kind}:")
        lines += [f"  {t['name']:<14} {t['dtype']:<8} {t['shape']}" for t in info[kind]]
    lines.append("operators: " + ", ".join(f"{k} x{v}" for k, v in info["operators"].items()))
    lines.append("weights: " + ", ".join(f"{v:,} {k}" for k, v in info["weights"].items()))
    if info.get("external_data"):
        lines.append("external data (read from the model's folder): " + ", ".join(info["external_data"]))
    spec = info["spec"]
    if spec is None:
        lines.append("stream spec: none (Engine.load needs a spec passed in)")
    else:
        lines += _spec_lines(spec)
    if info["other_metadata"]:
        lines.append("other metadata: " + ", ".join(info["other_metadata"]))
    if info["providers"]:
        lines.append("execution providers (load + one step, in a child process under limits):")
        lines += [f"  {ep:<28} {why}" for ep, why in info["providers"].items()]
    return "\n".join(lines)


def _spec_lines(spec: dict[str, Any]) -> list[str]:
    model = spec.get("model") or {}
    lines = [
        f"stream spec v{spec['version']}: {model.get('cell', '?')} {model.get('input_kind', '?')} "
        f"in {model.get('input_size', '?')}, hidden {model.get('hidden_size', '?')} "
        f"x {model.get('num_layers', '?')}, out {model.get('output_size', '?')}"
    ]
    lines += [f"  state {s['input']} -> {s['output']} {s['dtype']} {s['shape']}" for s in spec["states"]]
    lines += [
        f"  memory {m['name']} {m['dtype']} {m['shape']} (per stream, max_length {m.get('max_length')}"
        + (f", mask {m['mask']})" if m.get("mask") else ", no mask)")
        for m in spec.get("memory", [])
    ]
    prov = spec.get("provenance", {})
    for key in ("checkpoint_sha256", "train_config_digest", "opset"):
        if key in prov:
            lines.append(f"  {key}: {prov[key]}")
    parity = prov.get("parity")
    if isinstance(parity, dict):
        lines.append(
            f"  parity vs torch: max abs {_num(parity.get('max_abs', float('nan')))} over {parity.get('steps')} steps"
        )
    quant = prov.get("quantization")
    if isinstance(quant, dict):
        line = f"  {quant.get('dtype')}: {quant.get('method')}"
        vs = quant.get("parity_vs_fp32")
        if isinstance(vs, dict) and "max_abs_normalised" in vs:
            line += f"; max |diff| vs fp32 {_num(vs['max_abs_normalised'])}"
        lines.append(line)
    return lines
