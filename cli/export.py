"""``edgernn export``: checkpoint → ONNX + stream spec, validated, optionally int8 / fp16 and a Triton repository."""

from __future__ import annotations

import argparse

HELP = "Export a checkpoint to ONNX with an explicit stateful step and the stream spec."
EXAMPLE = (
    "edgernn export runs/textgen/model.safetensors -o model.onnx --validate\n"
    "  edgernn export runs/textgen/model.safetensors -o model.int8.onnx --quantize int8 --validate --triton triton_repo"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a run directory of edgernn train, or its .safetensors checkpoint")
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--quantize", choices=("int8", "fp16"), help="write an int8 (CPU) or fp16 (GPU) graph, not fp32")
    p.add_argument(
        "--validate",
        action="store_true",
        help="names, shapes, values vs PyTorch over carried steps (and, with --quantize, vs fp32)",
    )
    p.add_argument("--steps", type=int, default=1000, help="carried steps for --validate (default 1000)")
    p.add_argument("--tolerance", type=float, default=1e-5, help="max |torch - onnx| for --validate")
    p.add_argument(
        "--quant-tolerance",
        type=float,
        default=2e-2,
        help="max |int8 - fp32| on normalised outputs (softmax probabilities for char models) for --validate",
    )
    p.add_argument(
        "--decompose",
        action="store_true",
        help="fp32 cell as MatMuls + gate math in a Scan (CPU: faster for RNNs and wide input products)",
    )
    p.add_argument(
        "--form",
        choices=("native", "decomposed", "auto"),
        default=None,
        help="the fp32 graph: auto (default: decomposed cell or native op per call shape, fastest on the CPU "
        "provider), native (the RNN/GRU/LSTM op: GPU / NPU profiles), decomposed (= --decompose)",
    )
    p.add_argument("--device", help="a device profile (edgernn devices): its form is the default for --form")
    p.add_argument("--triton", metavar="DIR", help="also write a Triton model repository (sequence batcher) to DIR")
    p.add_argument("--force", action="store_true", help="replace an existing output file / Triton model")


def main(args: argparse.Namespace) -> int:
    from edgernn.export.pipeline import export_checkpoint

    spec, report = export_checkpoint(
        args.checkpoint,
        args.output,
        opset=args.opset,
        validate=args.validate,
        steps=args.steps,
        tolerance=args.tolerance,
        force=args.force,
        quantize=args.quantize,
        triton=args.triton,
        quant_tolerance=args.quant_tolerance,
        decompose=args.decompose,
        form=args.form,
        device=args.device,
    )
    model = spec.model
    what = f"{model.cell} hidden {model.hidden_size} x {model.num_layers}" if model is not None else "model"
    form = f", {args.quantize}" if args.quantize else f", fp32 {spec.provenance.get('form', 'native')} form"
    print(f"wrote {args.output}: {what}{form}")
    if report is not None:
        print(report)
    note = spec.provenance.get("quantization", {})
    if "fast_form_refused" in note:
        print(f"the fast int8 form missed the tolerance ({note['fast_form_refused']}); wrote: {note['method']}")
    quant = note.get("parity_vs_fp32")
    if quant is not None:
        print(
            f"{args.quantize} vs fp32 over {quant['steps']} carried steps: max |difference| of "
            f"{quant['normalised']} {quant['max_abs_normalised']:.3g} (tolerance {quant['tolerance']:g})"
        )
    if args.triton:
        print(f"wrote the Triton model repository {args.triton} (see docs/TRITON.md)")
    return 0
