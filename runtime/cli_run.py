"""``edgernn run``: stream a model made by edgernn (text generation for now)."""

from __future__ import annotations

import argparse
import sys
import time

from edgernn.runtime.engine import Engine
from edgernn.runtime.generate import generate

HELP = "Stream a model: generate text character by character."
EXAMPLE = "edgernn run textgen --model runs/demo/model.onnx --prompt 'And God said' --chars 200"
APPS = ("textgen",)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("app", choices=APPS, help="what to run")
    p.add_argument("--model", required=True, help="path to an exported .onnx model")
    p.add_argument("--prompt", default="And God said", help="text to start from")
    p.add_argument("--chars", type=int, default=200, help="characters to generate")
    p.add_argument("--temperature", type=float, default=0.8, help="0 is greedy")
    p.add_argument("--top-k", type=int, default=0, help="sample among the k most likely (0: all)")
    p.add_argument("--seed", type=int, default=0)


def main(args: argparse.Namespace) -> int:
    engine = Engine.load(args.model)
    stream = engine.stream()
    sys.stdout.write(args.prompt)
    t0 = time.perf_counter()
    n = 0
    for ch in generate(stream, args.prompt, args.chars, args.temperature, args.top_k, args.seed):
        sys.stdout.write(ch)
        sys.stdout.flush()
        n += 1
    dt = time.perf_counter() - t0
    print(f"\n[{n} chars in {dt * 1e3:.1f} ms, {dt / max(n, 1) * 1e6:.1f} µs per char]", file=sys.stderr)
    return 0
