"""``edgernn inspect``: the spec, inputs/outputs, operators, size, opset and usable providers of a model."""

from __future__ import annotations

import argparse
import json

HELP = "Show what an ONNX model holds and on which execution providers it runs (no torch needed)."
EXAMPLE = "edgernn inspect model.onnx"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="an .onnx file")
    p.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    p.add_argument("--spec", action="store_true", help="print the stream spec as JSON")
    p.add_argument("--no-providers", action="store_true", help="skip trying each execution provider")


def main(args: argparse.Namespace) -> int:
    from edgernn.export.inspect import format_report, inspect_model, spec_summary

    info = inspect_model(args.model, providers=not args.no_providers)
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
    elif args.spec:
        print(spec_summary(info))
    else:
        print(format_report(info))
    return 0
