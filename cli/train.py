"""``edgernn train``: train a model on one of the task presets and keep a run directory.

The run directory holds model.safetensors (the checkpoint: weights, ModelConfig, training
config and the task's facts in its metadata), config.json, metrics.jsonl, metrics.json,
loss.png and train_state.safetensors (for ``--resume``). Under ``torchrun`` the same command
trains with DistributedDataParallel (gloo on CPU); only rank 0 writes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Train a recurrent model on a task preset (real data shipped by packages)."
EXAMPLE = (
    "edgernn train textgen --cell gru --hidden 512 --seconds 600 --out runs/textgen\n"
    "  torchrun --nproc_per_node=2 -m edgernn train langid --out runs/langid-ddp"
)
TASKS = ("textgen", "langid", "weather", "recall", "forecast", "music")
CELLS = ("rnn", "gru", "lstm", "attention")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("task", help=f"task preset: one of {', '.join(TASKS)}")
    p.add_argument("--cell", help=f"recurrent cell: one of {', '.join(CELLS)} (default: the preset's)")
    p.add_argument("--hidden", type=int, help="hidden size")
    p.add_argument("--layers", type=int, help="stacked recurrent layers")
    p.add_argument("--dropout", type=float, help="dropout between layers")
    p.add_argument("--seq-len", type=int, help="TBPTT window / longest sequence")
    p.add_argument("--batch", type=int, help="global batch size (split over ranks)")
    p.add_argument("--seconds", type=float, help="training time budget (0: none)")
    p.add_argument("--steps", type=int, help="stop after this many updates (0: time only)")
    p.add_argument("--lr", type=float, help="peak learning rate (Adam)")
    p.add_argument("--lr-final", type=float, help="final learning rate as a fraction of --lr (cosine)")
    p.add_argument("--clip", type=float, help="gradient norm clip")
    p.add_argument("--memory-bias", type=float, help="LSTM forget / GRU update gate bias at init (open gates)")
    p.add_argument("--precision", choices=("fp32", "bf16"), help="forward-pass precision (bf16: autocast, CPU AMX)")
    p.add_argument("--delay", type=int, help="recall: distractor steps")
    p.add_argument("--window", type=int, help="cell attention: positions each token sees before itself")
    p.add_argument("--heads", type=int, help="cell attention: heads (dividing --hidden)")
    p.add_argument("--eval-every", type=int, help="steps between evaluations and checkpoints")
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=int, default=0, help="torch threads per process (0: torch's default)")
    p.add_argument("--resume", help="a run directory or checkpoint to continue from")
    p.add_argument("--out", help="run directory (default runs/<task>)")
    f = p.add_argument_group("forecast (any regular time series)")
    f.add_argument("--dataset", help="a series shipped in a package: co2, elnino, seattle, sunspots")
    f.add_argument("--csv", help="or your own CSV file, columns read by header name")
    f.add_argument("--time", dest="time_col", help="the CSV's time column (ISO date / date-time, YYYY-MM or YYYY)")
    f.add_argument("--target", dest="target_col", help="the CSV's column to forecast")
    f.add_argument("--covariates", nargs="*", help="other numeric columns fed as inputs")
    f.add_argument("--horizon", type=int, help="steps ahead to forecast")
    f.add_argument("--season", type=int, help="seasonal period of the baselines and MASE (default: from the step)")
    f.add_argument("--holdout", type=float, help="share of rows held out at the end (default 0.2)")
    f.add_argument("--fill", dest="fill_missing", action="store_true", default=None,
                   help="interpolate missing steps (refused by default)")  # fmt: skip


def main(args: argparse.Namespace) -> int:
    import torch

    from edgernn.train.distributed import from_environment, shutdown
    from edgernn.train.tasks import build_task, preset
    from edgernn.train.trainer import fit

    cfg = preset(
        args.task,
        cell=args.cell,
        hidden_size=args.hidden,
        num_layers=args.layers,
        dropout=args.dropout,
        seq_len=args.seq_len,
        batch_size=args.batch,
        max_seconds=args.seconds,
        max_steps=args.steps,
        lr=args.lr,
        lr_final=args.lr_final,
        clip=args.clip,
        precision=args.precision,
        memory_bias=args.memory_bias,
        delay=args.delay,
        window=args.window,
        heads=args.heads,
        eval_every=args.eval_every,
        seed=args.seed,
        dataset=args.dataset,
        csv=args.csv,
        time_col=args.time_col,
        target_col=args.target_col,
        covariates=tuple(args.covariates) if args.covariates else None,
        horizon=args.horizon,
        season=args.season,
        holdout=args.holdout,
        fill_missing=args.fill_missing,
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    info = from_environment()
    try:
        task = build_task(cfg)
        out = Path(args.out or f"runs/{cfg.task}")
        res = fit(task, cfg, out=out, resume=Path(args.resume) if args.resume else None, info=info)
    finally:
        shutdown(info)
    if info.is_main:
        shown = ", ".join(f"{k} {v}" for k, v in res.metrics.items())
        print(f"{cfg.task}: {shown}\nrun directory {out} (model.safetensors, metrics.jsonl, loss.png)")
    return 0
