"""``edgernn train``: train a model on a named recipe (train/recipes.toml) and keep a run directory.

The run directory holds model.safetensors (the checkpoint: weights, ModelConfig, training
config and the task's facts in its metadata), config.json, metrics.jsonl, metrics.json,
loss.png and train_state.safetensors (for ``--resume``). Under ``torchrun`` the same command
trains with DistributedDataParallel (gloo on CPU); only rank 0 writes.
"""

from __future__ import annotations

import argparse
import sys
from importlib.resources import files
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the tomli backport on 3.10
    import tomli as tomllib

from edgernn.cli.options import MAX_THREADS, add_out, checked, integer, number, seed, text
from edgernn.cli.paths import in_file, in_path_type, out_dir, report_written

EXTRA = "train"
REQUIRES = ("torch", "safetensors")
HELP = "Train a recurrent model on a named recipe (real data shipped by packages)."
EXAMPLE = (
    "edgernn train textgen --cell gru --hidden 512 --seconds 600 -o runs/textgen\n"
    "  edgernn train shipped-weather -o runs/models/weather\n"
    "  torchrun --nproc_per_node=2 -m edgernn train langid -o runs/langid-ddp"
)
# The recipe names, read from the data file itself (no torch needed to parse the command line).
RECIPES = tuple(tomllib.loads((files("edgernn.train") / "recipes.toml").read_text(encoding="utf-8")))
CELLS = ("rnn", "gru", "lstm", "attention")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", choices=RECIPES, help="a recipe of train/recipes.toml (a task's name: its preset)")
    g = p.add_argument_group("recipe overrides", "each defaults to the recipe's value (train/recipes.toml)")
    g.add_argument("--cell", choices=CELLS, help="recurrent cell")
    g.add_argument("--hidden", type=integer(1, 8192), help="hidden size")
    g.add_argument("--layers", type=integer(1, 32), help="stacked recurrent layers")
    g.add_argument("--dropout", type=number(0.0, 0.95), help="dropout between layers")
    g.add_argument("--seq-len", type=integer(1, 1_000_000), help="TBPTT window / longest sequence")
    g.add_argument("--batch", type=integer(1, 1_000_000), help="global batch size (split over ranks)")
    clocks = g.add_mutually_exclusive_group()
    clocks.add_argument("--seconds", type=number(0.0, 1e8), help="wall-time budget of this run, end to end (0: none)")
    clocks.add_argument(
        "--cpu-seconds",
        type=number(0.0, 1e8, lo_open=True),
        help="instead: CPU-time budget of the training itself, every thread (10 min on 2 threads: 1200)",
    )
    g.add_argument("--steps", type=integer(0, 10**12), help="stop after this many updates (0: time only)")
    g.add_argument("--lr", type=number(0.0, 10.0, lo_open=True), help="peak learning rate (Adam)")
    g.add_argument("--lr-final", type=number(0.0, 1.0), help="final learning rate as a fraction of --lr (cosine)")
    g.add_argument("--clip", type=number(0.0, 1e6, lo_open=True), help="gradient norm clip")
    g.add_argument(
        "--memory-bias", type=number(-100.0, 100.0), help="LSTM forget / GRU update gate bias at init (open gates)"
    )
    g.add_argument("--precision", choices=("fp32", "bf16"), help="forward-pass precision (bf16: autocast, CPU AMX)")
    g.add_argument("--delay", type=integer(1, 1_000_000), help="recall: distractor steps")
    g.add_argument(
        "--window", type=integer(1, 1_000_000), help="cell attention: positions each token sees before itself"
    )
    g.add_argument("--heads", type=integer(1, 1024), help="cell attention: heads (dividing --hidden)")
    g.add_argument("--eval-every", type=integer(0, 10**12), help="steps between evaluations and checkpoints")
    g.add_argument("--seed", type=seed(), help="random seed")
    p.add_argument("--threads", type=integer(0, MAX_THREADS), help="torch threads (default: the recipe's; 0: torch's)")
    p.add_argument("--resume", type=in_path_type, help="a run directory or checkpoint to continue from")
    add_out(p, "run directory (default: runs/<recipe>)", folder=True)
    p.add_argument("--force", action="store_true", help="replace the run already in --out (else refused)")
    t = p.add_argument_group("translate (English -> one language, gettext catalogs)")
    t.add_argument("--lang", type=text(40), help="target language, a catalog locale code (de, fr, pt_BR, ...)")
    t.add_argument("--catalogs", nargs="+", choices=("django", "system"), help="which catalogs to read")
    f = p.add_argument_group("forecast (any regular time series)")
    f.add_argument("--dataset", type=text(200), help="a series shipped in a package: co2, elnino, seattle, sunspots")
    f.add_argument("--csv", type=in_file(1 << 30), help="or your own CSV file, columns read by header name")
    f.add_argument(
        "--time", dest="time_col", type=text(200), help="the CSV's time column (ISO date / date-time, YYYY-MM or YYYY)"
    )
    f.add_argument("--target", dest="target_col", type=text(200), help="the CSV's column to forecast")
    f.add_argument("--covariates", nargs="*", type=text(200), help="other numeric columns fed as inputs")
    f.add_argument("--horizon", type=integer(1, 100_000), help="steps ahead to forecast")
    f.add_argument(
        "--season",
        type=integer(1, 1_000_000),
        help="seasonal period of baselines and MASE (default: from the step)",
    )
    f.add_argument(
        "--holdout", type=number(0.0, 0.9, lo_open=True), help="share of rows held out at the end (default 0.2)"
    )
    f.add_argument("--fill", dest="fill_missing", action="store_true", default=None,
                   help="interpolate missing steps (refused by default)")  # fmt: skip


def main(args: argparse.Namespace) -> int:
    import torch

    from edgernn.train.clock import process_started
    from edgernn.train.distributed import from_environment, shutdown
    from edgernn.train.tasks import RECIPES as RECIPE_TABLE
    from edgernn.train.tasks import build_task, recipe
    from edgernn.train.trainer import TrainingError, fit

    cfg = recipe(
        args.recipe,
        cell=args.cell,
        hidden_size=args.hidden,
        num_layers=args.layers,
        dropout=args.dropout,
        seq_len=args.seq_len,
        batch_size=args.batch,
        max_seconds=args.cpu_seconds if args.cpu_seconds is not None else args.seconds,
        clock="cpu" if args.cpu_seconds is not None else None,
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
        lang=args.lang,
        catalogs=tuple(args.catalogs) if args.catalogs else None,
    )
    if not cfg.max_seconds and not cfg.max_steps:
        raise TrainingError("no budget: give --seconds or --cpu-seconds above 0, or --steps above 0")
    out = Path(checked(out_dir, args.out or f"runs/{args.recipe}", "--out"))
    threads = args.threads if args.threads is not None else RECIPE_TABLE[args.recipe].threads
    if threads:
        torch.set_num_threads(threads)
    info = from_environment()
    try:
        task = build_task(cfg)
        resume = Path(args.resume) if args.resume else None
        res = fit(task, cfg, out=out, resume=resume, info=info, started=process_started(), overwrite=args.force)
    finally:
        shutdown(info)
    if info.is_main:
        shown = ", ".join(f"{k} {v}" for k, v in res.metrics.items())
        print(f"{cfg.task}: {shown}")
        report_written(sorted(p for p in out.iterdir() if p.is_file()) if out.is_dir() else [out])
    return 0
