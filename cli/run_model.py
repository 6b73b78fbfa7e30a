"""``edgernn run MODEL.onnx --spec spec.json --input x.npy|x.wav [-o y.npy]``: any model over a file of frames.

The work is ``runtime/apps/stream_file.py``'s: read the frames, push them through one stream
(a window model's last partial window flushed, zero-padded, unless ``--no-flush``), and
write the first output per frame (one row per call for an output without a time axis) as
a ``.npy`` array.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

from edgernn.cli.options import integer
from edgernn.cli.paths import in_file, out_file, report_written
from edgernn.runtime.errors import InputError

SPEC_HELP = "a spec.json for a model without one in its metadata (write one with edgernn spec)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("any model (run MODEL.onnx: frames from --input .npy or .wav)")
    g.add_argument("--spec", type=in_file(16 << 20, (".json",)), help=SPEC_HELP)
    g.add_argument("-o", "--out", type=out_file, metavar="FILE.npy", help="write the first output per frame here")
    g.add_argument("--chunk", type=integer(1, 1 << 20), default=64, help="frames per call (a window model: ignored)")
    g.add_argument("--no-flush", action="store_true", help="a window model: drop the last partial window")


def is_model(value: str) -> bool:
    """True when the positional names a model file rather than an app."""
    return value.endswith(".onnx") or os.sep in value


def refuse_model_options(args: argparse.Namespace) -> None:
    """An app run given options that only a model run takes: say so (they would be ignored)."""
    given = [f for f, v in (("--spec", args.spec), ("-o", args.out), ("--no-flush", args.no_flush)) if v]
    if given:
        raise InputError(f"{', '.join(given)}: for `edgernn run MODEL.onnx`; the app {args.app!r} does not take them")


def run_model(args: argparse.Namespace) -> int:
    from edgernn.runtime.apps.stream_file import read_frames, run_frames
    from edgernn.runtime.engine import Engine
    from edgernn.runtime.specfile import read_spec

    if args.input is None:
        raise InputError("edgernn run MODEL.onnx reads its frames from --input FILE (.npy, or .wav for audio)")
    if args.out is not None and not args.out.endswith(".npy"):
        raise InputError(f"-o {args.out}: the outputs are written as a .npy array; name it FILE.npy")
    if args.device is None or args.device == "cpu":
        engine = Engine.load(args.app, spec=args.spec)
    else:
        from edgernn.devices import load_engine

        engine, _ = load_engine(args.app, args.device, spec=read_spec(args.spec) if args.spec else None)
    xs, note = read_frames(args.input, engine)
    ys = run_frames(engine, xs, chunk=args.chunk, flush=not args.no_flush)
    first = engine.spec.outputs[0].name
    print(note)
    info = engine.describe()
    window = f", window {info['window']}" if info["window"] else ""
    print(f"{args.app}: output {first!r} {ys.shape} {ys.dtype}{window}; path {info['path']}")
    if ys.size:
        print(f"  min {ys.min():.4g}  mean {ys.mean():.4g}  max {ys.max():.4g}")
    if args.out is not None:
        _save(args.out, ys)
        report_written([args.out])
    return 0


def _save(path: str, ys: np.ndarray) -> None:
    """Write atomically: a temporary file beside ``path``, then renamed over it."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, ys, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise

