"""``edgernn spec``: infer the stream spec of a model not made here; write it as JSON, Python, or into a copy."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from edgernn.cli.options import add_out, integer, text
from edgernn.cli.paths import in_file, out_file
from edgernn.runtime.errors import InputError

HELP = "Infer the stream spec of an ONNX model not made here (states, axes, constants); write it or embed it."
EXAMPLE = (
    "edgernn spec silero_vad.onnx --constant sr=16000 --context input=64 -o spec.json\n"
    "  edgernn spec gtcrn.onnx --batch-axis mix=0 --embed gtcrn-spec.onnx\n"
    "  edgernn profile silero_vad.onnx --spec spec.json"
)
# flag -> infer_spec keyword, and how the value after NAME= is read
FLAGS = {
    "constant": ("constants", "value"),
    "pair": ("pairs", "str"),
    "batch_axis": ("batch_axes", "int"),
    "time_axis": ("time_axes", "int"),
    "shape": ("shapes", "dims"),
    "context": ("context", "int"),
}


hint = text(10_000)  # NAME=VALUE, read by _item


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=in_file(), help="an .onnx file")
    g = p.add_argument_group("hints (each NAME is a graph input or output; repeat a flag for several)")
    g.add_argument(
        "--constant", action="append", default=[], type=hint, metavar="NAME=VALUE", help="feed VALUE on every call"
    )
    g.add_argument(
        "--pair", action="append", default=[], type=hint, metavar="IN=OUT", help="state input IN is carried from OUT"
    )
    g.add_argument(
        "--batch-axis", action="append", default=[], type=hint, metavar="NAME=AXIS", help="the batch axis of NAME"
    )
    g.add_argument(
        "--time-axis", action="append", default=[], type=hint, metavar="NAME=AXIS", help="its time axis; -1: none"
    )
    g.add_argument(
        "--shape", action="append", default=[], type=hint, metavar="NAME=D,D,..", help="sizes: ints, 'batch', 'time'"
    )
    g.add_argument(
        "--context", action="append", default=[], type=hint, metavar="NAME=K", help="prepend K frames of the last call"
    )
    g.add_argument(
        "--window", type=integer(1, 100_000_000), metavar="N", help="N items of the time axis per call (audio: samples)"
    )
    add_out(p, "write the spec as JSON to this file (default: print it)")
    p.add_argument("--python", action="store_true", help="print the spec as Python source to paste and edit")
    p.add_argument(
        "--embed", metavar="COPY.onnx", type=out_file, help="write a copy of the model with the spec in its metadata"
    )
    p.add_argument("--force", action="store_true", help="overwrite --out / --embed files")


def main(args: argparse.Namespace) -> int:
    from edgernn.runtime.infer import HintError, infer_spec
    from edgernn.runtime.safety import read_model
    from edgernn.runtime.specfile import embed_spec, spec_json, spec_python

    hints: dict[str, Any] = {
        kw: dict(_item(flag, raw, kind) for raw in getattr(args, flag)) for flag, (kw, kind) in FLAGS.items()
    }
    if args.window is not None:
        hints["window"] = args.window
    for path in (args.out, args.embed):
        if path and os.path.exists(path) and not args.force:
            raise InputError(f"{path} exists: pass --force to overwrite it")
    try:
        spec = infer_spec(args.model, **hints)
    except HintError as exc:
        print(f"edgernn spec: {str(exc).rsplit(chr(10), 1)[0]}", file=sys.stderr)
        print(f"all at once: {cli_call(args.model, exc.hints)}", file=sys.stderr)
        return 1
    text = spec_python(spec) if args.python else spec_json(spec)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text, end="")
    if args.embed:
        copy = embed_spec(read_model(args.model), spec, args.model)
        with open(args.embed, "wb") as fh:
            fh.write(copy)
        print(f"wrote {args.embed} (the model with its spec in the metadata: edgernn profile {args.embed})")
    return 0


def cli_call(model: str, hints: dict[str, Any]) -> str:
    """The ``edgernn spec`` command line that passes ``hints`` (infer_spec keywords)."""
    parts = ["edgernn spec", model]
    for flag, (kw, kind) in FLAGS.items():
        for name, value in hints.get(kw, {}).items():
            shown = ",".join(str(d) for d in value) if kind == "dims" else value
            shown = json.dumps(shown) if kind == "value" and not isinstance(shown, str) else shown
            parts.append(f"--{flag.replace('_', '-')} {name}={shown}")
    if hints.get("window") is not None:
        parts.append(f"--window {hints['window']}")
    return " ".join(parts)


def _item(flag: str, raw: str, kind: str) -> tuple[str, Any]:
    name, sep, value = raw.partition("=")
    if not sep or not name or not value:
        raise InputError(f"--{flag.replace('_', '-')} {raw!r}: expected NAME=VALUE")
    try:
        if kind == "int":
            return name, int(value)
        if kind == "value":
            return name, json.loads(value)
        if kind == "dims":
            return name, [d if d in ("batch", "time") else int(d) for d in value.split(",")]
    except (ValueError, json.JSONDecodeError):
        want = {"int": "an integer", "value": "a number or a JSON list", "dims": "ints, 'batch' or 'time'"}[kind]
        raise InputError(f"--{flag.replace('_', '-')} {raw!r}: {value!r} is not {want}") from None
    return name, value
