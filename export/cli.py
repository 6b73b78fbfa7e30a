"""``edgernn export``: checkpoint → ONNX with the stream spec, optionally checked for parity."""

from __future__ import annotations

import argparse

HELP = "Export a checkpoint to ONNX with an explicit stateful step and the stream spec."
EXAMPLE = "edgernn export runs/textgen/model.safetensors -o model.onnx --validate"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a .safetensors checkpoint written by edgernn train")
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--validate", action="store_true", help="check parity with PyTorch over carried steps")
    p.add_argument("--steps", type=int, default=1000, help="carried steps for --validate")
    p.add_argument("--force", action="store_true", help="replace an existing output file")


def main(args: argparse.Namespace) -> int:
    from edgernn.export.pipeline import export_checkpoint

    spec, report = export_checkpoint(
        args.checkpoint, args.output, opset=args.opset, validate=args.validate, steps=args.steps, force=args.force
    )
    assert spec.model is not None
    print(f"wrote {args.output}: {spec.model.cell} hidden {spec.model.hidden_size} x {spec.model.num_layers}")
    if report is not None:
        print(report)
    return 0
