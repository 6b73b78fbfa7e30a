"""``edgernn profile``: per-call latency of a model on this machine."""

from __future__ import annotations

import argparse

import numpy as np

from edgernn.runtime.engine import Engine
from edgernn.runtime.latency import measure

HELP = "Measure per-call latency (p50 / p99) and throughput of a model."
EXAMPLE = "edgernn profile runs/demo/model.onnx --chunk 1 --calls 2000"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="path to an exported .onnx model")
    p.add_argument("--chunk", type=int, default=1, help="frames per call (1: step)")
    p.add_argument("--calls", type=int, default=2000, help="timed calls")
    p.add_argument("--warmup", type=int, default=200, help="untimed calls first")


def example_frames(engine: Engine, n: int, seed: int = 0) -> np.ndarray:
    """``n`` valid frames for ``engine``'s streamed input."""
    rng = np.random.default_rng(seed)
    if engine.vocab_size is not None:
        return rng.integers(0, engine.vocab_size, size=n, dtype=np.int64)
    return rng.standard_normal((n, *engine.frame_shape)).astype(engine.input_dtype)


def main(args: argparse.Namespace) -> int:
    engine = Engine.load(args.model)
    stream = engine.stream()
    frames = example_frames(engine, max(args.chunk, 1))
    if args.chunk <= 1:
        frame = frames[0]
        stats = measure(lambda: stream.step(frame), args.calls, args.warmup)
    else:
        stats = measure(lambda: stream.push(frames), args.calls, args.warmup, frames_per_call=args.chunk)
    print(f"{args.model} ({engine.profile.name}, chunk {args.chunk}): {stats}")
    return 0
