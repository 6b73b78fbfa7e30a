"""``edgernn export``: checkpoint → ONNX + stream spec, validated, optionally int8 / fp16 and a Triton repository."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgernn.cli.options import UsageError, add_out, checked, integer, number, text
from edgernn.cli.paths import in_path_type, out_dir, out_file, report_written

EXTRA = "export"
REQUIRES = ("torch", "onnx", "safetensors")
HELP = "Export a checkpoint to ONNX with an explicit stateful step and the stream spec (validated vs PyTorch)."
EXAMPLE = (
    "edgernn export runs/textgen -o model.onnx\n"
    "  edgernn export runs/textgen/model.safetensors -o model.int8.onnx --quantize int8 --triton triton_repo"
)
# torch 2.13's exporter (dynamo=False) writes opsets 7..23; int8 and --decompose build on opset 15 ops.
MIN_OPSET, MAX_OPSET, REWRITE_MIN_OPSET = 7, 23, 15


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=in_path_type, help="a run directory of edgernn train, or its .safetensors file")
    add_out(p, "the .onnx file to write (default: beside the checkpoint: model.onnx, model.int8.onnx, ...)")
    p.add_argument(
        "--opset", type=integer(MIN_OPSET, MAX_OPSET), default=17, help="ONNX opset (int8, --decompose: >= 15)"
    )
    p.add_argument("--quantize", choices=("int8", "fp16"), help="write an int8 (CPU) or fp16 (GPU) graph, not fp32")
    p.add_argument(
        "--int8-form",
        choices=("dynamic", "qdq"),
        default=None,
        help="with --quantize int8: dynamic (CPU provider contrib ops, the default) or qdq (static QuantizeLinear/"
        "DequantizeLinear, one step per call, calibrated on the training data: OpenVINO / NPU profiles' choice)",
    )
    p.add_argument(
        "--validate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="check names, shapes, values vs PyTorch over carried steps (and, with --quantize, vs fp32); "
        "prints PASS or FAIL",
    )
    p.add_argument("--steps", type=integer(1, 1_000_000), default=1000, help="carried steps for the validation")
    p.add_argument(
        "--tolerance",
        type=number(0.0, 1.0, lo_open=True),
        default=1e-5,
        help="max |torch - onnx|, times an output's largest magnitude where that exceeds 1 (an LSTM's cell state)",
    )
    p.add_argument(
        "--quant-tolerance",
        type=number(0.0, 1.0, lo_open=True),
        default=2e-2,
        help="max |int8 - fp32| on normalised outputs (softmax probabilities for char models)",
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
    p.add_argument(
        "--device", type=text(200), help="a device profile (edgernn devices): its form is the default for --form"
    )
    p.add_argument("--triton", metavar="DIR", type=out_dir, help="also write a Triton model repository to DIR")
    p.add_argument("--force", action="store_true", help="replace an existing output file / Triton model")


def default_output(checkpoint: str, quantize: str | None, decompose: bool) -> str:
    """model.onnx (model.int8.onnx, model.decomposed.onnx) in the run directory of ``checkpoint``."""
    folder = Path(checkpoint) if Path(checkpoint).is_dir() else Path(checkpoint).parent
    form = f".{quantize}" if quantize else (".decomposed" if decompose else "")
    return str(folder / f"model{form}.onnx")


def main(args: argparse.Namespace) -> int:
    from edgernn.export.pipeline import export_checkpoint
    from edgernn.runtime.errors import ParityError

    auto = args.form is None and args.device is None  # a --device profile may choose native
    rewrites = args.quantize == "int8" or args.decompose or args.form in ("auto", "decomposed") or auto
    if rewrites and args.opset < REWRITE_MIN_OPSET:
        what = "--quantize int8" if args.quantize == "int8" else f"--form {args.form or 'auto'} (the default)"
        raise UsageError(
            f"{what} needs --opset {REWRITE_MIN_OPSET} or later, got --opset {args.opset}"
            + ("" if args.quantize == "int8" else "; --form native takes any")
        )
    output = args.out or checked(out_file, default_output(args.checkpoint, args.quantize, args.decompose), "--out")
    try:
        spec, report = export_checkpoint(
            args.checkpoint,
            output,
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
            int8_form=args.int8_form,
        )
    except ParityError as exc:
        print(f"FAIL  validation: {type(exc).__name__}: {exc}\nnothing was written")
        return 1
    model = spec.model
    what = f"{model.cell} hidden {model.hidden_size} x {model.num_layers}" if model is not None else "model"
    form = f", {args.quantize}" if args.quantize else f", fp32 {spec.provenance.get('form', 'native')} form"
    print(f"exported {args.checkpoint}: {what}{form}, opset {args.opset}")
    if report is not None:
        print(report)
        print(report.verdict())
    else:
        print("not validated (--no-validate)")
    note = spec.provenance.get("quantization", {})
    if "fast_form_refused" in note:
        print(f"the fast int8 form missed the tolerance ({note['fast_form_refused']}); wrote: {note['method']}")
    quant = note.get("parity_vs_fp32")
    if quant is not None:
        from edgernn.export.validate import effective_tolerance

        print(
            f"PASS  {args.quantize} vs fp32 over {quant['steps']} carried steps: max |difference| of "
            f"{quant['normalised']} {quant['max_abs_normalised']:.3g} <= effective tolerance "
            f"{effective_tolerance(quant['tolerance'], quant.get('scale', 1.0))}"
        )
    partner = spec.task.get("encoder") if spec.task.get("role") == "decoder" else None  # translate: two graphs
    report_written([output, Path(output).parent / partner if isinstance(partner, str) else None, args.triton])
    return 0
