"""``edgernn train``: train a model on one of the task presets and write a checkpoint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "Train a recurrent model on a task preset (real data shipped by packages)."
EXAMPLE = "edgernn train textgen --cell gru --hidden 256 --seconds 120 --out runs/textgen"
TASKS = ("textgen",)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("task", choices=TASKS, help="task preset")
    p.add_argument("--cell", choices=("rnn", "gru", "lstm"), default="gru")
    p.add_argument("--hidden", type=int, default=256, help="hidden size")
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--seconds", type=float, default=120.0, help="training time budget")
    p.add_argument("--steps", type=int, default=0, help="stop after this many updates (0: time only)")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/textgen", help="run directory (checkpoint, config, metrics)")


def main(args: argparse.Namespace) -> int:
    import torch

    from edgernn.train.checkpoint import save_checkpoint
    from edgernn.train.textgen import TextTrainConfig, task_facts, train_config_dict, train_textgen

    torch.set_num_threads(max(1, torch.get_num_threads()))
    cfg = TextTrainConfig(
        cell=args.cell,
        hidden_size=args.hidden,
        num_layers=args.layers,
        max_seconds=args.seconds,
        max_steps=args.steps,
        lr=args.lr,
        seed=args.seed,
    )
    result = train_textgen(cfg)
    out = Path(args.out)
    ckpt = save_checkpoint(
        out / "model.safetensors", result.model, train_config_dict(cfg), task_facts(result.corpus), result.metrics()
    )
    (out / "metrics.json").write_text(json.dumps(result.metrics(), indent=2) + "\n")
    print(
        f"valid {result.valid_bpc:.3f} bpc (unigram baseline {result.unigram_bpc:.3f}), "
        f"{result.chars_per_second:,.0f} chars/s; checkpoint {ckpt}"
    )
    return 0
