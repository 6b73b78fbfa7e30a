"""The training loop every task shares: BPTT with a summed loss, clipping, a cosine schedule,
progress, a run directory, resume, a NaN guard and data parallelism.

Loss. The objective of a sequence is the *sum* of its per-step losses (the negative
log-likelihood of the whole sequence); BPTT's gradient is the sum of the per-step
gradients. Each task returns that sum over every real (unpadded) step of the batch, and
the loop divides it by a constant, ``batch_size * seq_len`` (the number of steps in a full
window), not by the number of real steps in this batch. So: padding contributes exactly
zero; a sequence's gradient does not depend on which sequences share its batch (the padded
batch equals each sequence alone, summed); DDP's averaging over ranks reproduces the
global-batch gradient exactly; and for full text windows the printed loss is the usual
mean per character, so one learning rate and clip threshold serve any ``seq_len``.

Truncated BPTT. Sources that stream one long text (``carries_state``) hand the loop
contiguous windows; the state is carried from one window to the next and detached at the
edge, so gradients flow back at most ``seq_len`` steps while the forward pass never forgets.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, cast

import torch
from torch import nn

from edgernn.runtime.errors import EdgeRNNError
from edgernn.runtime.spec import ModelConfig
from edgernn.train.checkpoint import save_checkpoint, save_train_state
from edgernn.train.clock import Budget, Progress, clock, plan_budget, time_left
from edgernn.train.distributed import DistInfo, all_mean, barrier, shard
from edgernn.train.model import RecurrentModel, State, build_model, set_memory_bias
from edgernn.train.resume import TRAIN_STATE as TRAIN_STATE
from edgernn.train.resume import resume_run, run_paths


class TrainingError(EdgeRNNError):
    """Training cannot go on: bad settings, a non-finite loss, a resume that does not fit."""


class MissingDataError(TrainingError, ImportError):
    """A task's data comes from a package that is not installed; the message says which."""


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a run; saved in the run directory and inside the checkpoint."""

    task: str = "textgen"
    cell: str = "gru"
    hidden_size: int = 256
    num_layers: int = 1
    embed_size: int = 64
    dropout: float = 0.0
    seq_len: int = 128  # window length (TBPTT) or the longest sequence of a batch
    batch_size: int = 64  # the global batch: split over the ranks of a distributed run
    lr: float = 3e-3
    lr_final: float = 1.0  # cosine decay from lr to lr * lr_final over the budget (1.0: constant)
    warmup_steps: int = 0
    weight_decay: float = 0.0
    clip: float = 1.0  # max global gradient norm
    memory_bias: float | None = None  # LSTM forget / GRU update gate bias at init (None: 1 for LSTM, 0 for GRU)
    precision: str = "fp32"  # "bf16": bfloat16 autocast for the forward pass (fp32 weights, state, loss)
    max_seconds: float = 120.0  # 0: no time limit
    clock: str = "wall"  # what max_seconds counts: "wall" (the run end to end) or "cpu" (CPU time training)
    max_steps: int = 0  # 0: no step limit
    eval_every: int = 0  # steps between evaluations + checkpoints (0: at the end only)
    log_every: int = 20  # steps between metrics lines
    eval_chars: int = 40_000  # textgen: validation characters scored
    delay: int = 20  # recall: distractor steps between the symbol and the question
    window: int = 64  # cell attention: positions each token sees before itself
    heads: int = 4  # cell attention: heads
    dataset: str = ""  # forecast: a series shipped in a package (train/forecast_data.py)
    csv: str = ""  # forecast: or a CSV file read by column name
    time_col: str = ""
    target_col: str = ""
    covariates: tuple[str, ...] = ()
    horizon: int = 0  # forecast: steps ahead
    season: int = 0  # forecast: the seasonal period of the baselines and MASE (0: from the step)
    holdout: float = 0.2  # forecast: the share of rows held out at the end
    fill_missing: bool = False  # forecast: interpolate missing steps instead of refusing
    lang: str = ""  # translate: the target language (English is the source), a catalog locale code
    catalogs: tuple[str, ...] = ()  # translate: which gettext catalogs (data_translate.CATALOG_KINDS)
    tm: bool = False  # translate: the encoder reads the translation memory's suggestion too (TM-augmented)
    seed: int = 0

    def model_config(self, input_kind: str, input_size: int, output_size: int) -> ModelConfig:
        """The ModelConfig of this run's model: the task gives the input and output sizes."""
        return ModelConfig(
            cell=self.cell,
            input_kind=input_kind,
            input_size=input_size,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            output_size=output_size,
            dropout=self.dropout,
            embed_size=self.embed_size,
            **({"window": self.window, "heads": self.heads} if self.cell == "attention" else {}),
        )

    def progress(self, step: int, elapsed: float) -> float:
        """Fraction of the budget spent: by steps when a step limit is set, else by time."""
        if self.max_steps:
            return step / self.max_steps
        return elapsed / self.max_seconds if self.max_seconds else 0.0

    def lr_at(self, progress: float, step: int) -> float:
        if self.warmup_steps and step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        p = min(max(progress, 0.0), 1.0)
        return self.lr * (self.lr_final + (1.0 - self.lr_final) * 0.5 * (1.0 + math.cos(math.pi * p)))


@dataclass
class TrainBatch:
    """x (batch, time[, features]); y targets; mask (batch, time) 1.0 where a step counts."""

    x: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor | None = None  # (batch,) when sequences are padded
    reset: bool = False  # streamed sources: start the carried state afresh
    source: torch.Tensor | None = None  # encoder-decoder tasks: (batch, source time) padded source tokens
    source_lengths: torch.Tensor | None = None  # (batch,)

    def part(self, info: DistInfo) -> TrainBatch:
        if not info.active:
            return self

        def cut(t: torch.Tensor | None) -> torch.Tensor | None:
            return shard(t, info) if t is not None else None

        return TrainBatch(shard(self.x, info), shard(self.y, info), shard(self.mask, info), cut(self.lengths),
                          self.reset, cut(self.source), cut(self.source_lengths))  # fmt: skip


class BatchSource(Protocol):
    carries_state: bool

    def global_batch(self, step: int) -> TrainBatch:
        """The whole global batch of update ``step``: a function of the seed and ``step`` only."""
        ...


LossFn = Callable[[torch.Tensor, TrainBatch], torch.Tensor]


@dataclass
class Task:
    """What the loop needs from a task: a model config, batches, a summed loss, an evaluation."""

    name: str
    config: ModelConfig
    source: BatchSource
    loss_sum: LossFn
    # metrics on held-out data; with a deadline (a time.perf_counter() value) a task whose data
    # can be scored in parts stops there and says how much it scored
    evaluate: Callable[[RecurrentModel, float | None], dict[str, Any]]
    facts: dict[str, Any]
    unit: str = "frames"  # what one real step is, for throughput
    loss_scale: float = 1.0  # printed loss = loss * scale (1/ln 2: bits)
    loss_name: str = "loss"
    baselines: dict[str, Any] = field(default_factory=dict)
    # seconds the whole evaluation will take, estimated by timing a slice of it (None: time it whole)
    eval_probe: Callable[[RecurrentModel], float] | None = None
    eval_partial: bool = False  # evaluate stops at its deadline (and says how much it scored)
    # facts fitted to the trained model (langid's unknown threshold), merged into ``facts``
    # before each evaluation, so the checkpoint and the evaluation use the same ones
    calibrate: Callable[[RecurrentModel], dict[str, Any]] | None = None
    # a model that is not one recurrent stack (translate's encoder-decoder): how to build it and
    # run a batch (outputs only; no state is carried between batches)
    build: Callable[[TrainConfig], nn.Module] | None = None
    forward: Callable[[nn.Module, TrainBatch], torch.Tensor] | None = None


@dataclass
class FitResult:
    model: RecurrentModel
    metrics: dict[str, Any]
    steps: int
    seconds: float
    frames_per_second: float
    history: list[dict[str, Any]]


def _detach(state: State | None) -> State | None:
    return None if state is None else tuple(s.detach().float() for s in state)


PRECISIONS = ("fp32", "bf16")


def autocast(precision: str) -> Any:
    """The forward pass's precision. bf16 runs the matrix products in bfloat16 (fast where the CPU
    has native bfloat16: AMX / AVX-512 BF16; docs/TRAINING_RESULTS.md has the figures); weights,
    optimizer state, the carried state and the loss stay fp32."""
    if precision not in PRECISIONS:
        raise TrainingError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16" and native_bf16())


@functools.cache
def native_bf16() -> bool:
    """Whether oneDNN has bfloat16 kernels on this CPU (AVX-512 BF16 / AMX). Without them bf16
    is emulated and slower than fp32, so the trainer says so (once) and trains in fp32."""
    ok = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if not ok:
        print("edgernn train: this CPU has no native bfloat16 (AVX-512 BF16 / AMX): precision bf16 runs as fp32",
              file=sys.stderr)  # fmt: skip
    return ok


def initial_model(config: ModelConfig, cfg: TrainConfig) -> RecurrentModel:
    """The model a run starts from: seeded with ``cfg.seed``, gates opened by ``cfg.memory_bias``."""
    torch.manual_seed(cfg.seed)
    model = build_model(config)
    if cfg.memory_bias is not None:
        set_memory_bias(model, cfg.memory_bias)
    return model


def fit(
    task: Task,
    cfg: TrainConfig,
    out: Path | None = None,
    resume: Path | None = None,
    info: DistInfo | None = None,
    log: Callable[[str], None] = print,
    started: float | None = None,
    overwrite: bool = False,
) -> FitResult:
    """Train ``task`` under ``cfg``; with ``out``, keep a run directory (see ``RunDir``).

    ``info`` says this process's rank in a distributed run (``distributed.from_environment``).
    ``started`` (a ``time.perf_counter()`` value, default now) is when the run began: a time
    budget (``cfg.max_seconds``) counts from it, so setup counts too (see ``clock``). An ``out``
    that already holds files is refused (TrainingError) unless ``resume`` or ``overwrite``.

    Example:
        >>> from edgernn.train.tasks import build_task, recipe
        >>> cfg = recipe("recall", hidden_size=8, delay=2, max_steps=5, log_every=5)
        >>> res = fit(build_task(cfg), cfg, log=lambda s: None)
        >>> res.steps, sorted(res.metrics)[:2]
        (5, ['accuracy', 'chance'])
    """
    from edgernn.train.rundir import RunDir, check_out

    started = time.perf_counter() if started is None else started
    info = info or DistInfo()
    if cfg.batch_size % info.world:
        raise TrainingError(f"batch_size {cfg.batch_size} does not split over {info.world} ranks")
    if out is not None and info.is_main:
        check_out(out, resume=resume is not None, overwrite=overwrite)
    model = initial_model(task.config, cfg) if task.build is None else cast(RecurrentModel, task.build(cfg))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, spent, state = 0, 0.0, None
    if resume is not None and task.build is not None:
        raise TrainingError(f"{task.name}: --resume is not supported for this task's model; train it afresh")
    if resume is not None:
        model, step, spent, state = resume_run(resume, task.config, opt, model)
    if cfg.clock not in ("wall", "cpu"):
        raise TrainingError(f"clock {cfg.clock!r}: expected 'wall' or 'cpu' (what max_seconds counts)")
    budget = Budget(cfg.max_seconds, started, spent, cpu=cfg.clock == "cpu")
    net: nn.Module = model
    if info.active:
        net = nn.parallel.DistributedDataParallel(model)
    ckpt, tstate = run_paths(out)
    run = RunDir(out, cfg, task) if out is not None and info.is_main else None
    norm = (cfg.batch_size // info.world) * cfg.seq_len
    bar = Progress(task.name, info.is_main, budget.started)
    eval_s = plan_budget(
        task, model, budget, info, lambda: _save(ckpt, tstate, model, opt, cfg, task, {}, step, spent, state)
    )
    history: list[dict[str, Any]] = []
    frames, first_step, t0 = 0.0, step, time.perf_counter() - spent
    last_good: Path | None = None
    step_s = 0.0  # the last update's duration (on the budget's clock)
    cpu0 = time.process_time()
    model.train()
    while True:
        now = budget.now()
        # at least one update per run, even when setup spent the whole budget
        if (cfg.max_steps and step >= cfg.max_steps) or (step > first_step and budget.training_over(now, step_s)):
            break
        frac = step / cfg.max_steps if cfg.max_steps else budget.fraction(now) if budget.timed else 0.0
        lr = cfg.lr_at(frac, step)
        for group in opt.param_groups:
            group["lr"] = lr
        batch = task.source.global_batch(step)
        frames += float(batch.mask.sum())
        batch = batch.part(info)
        if task.source.carries_state:
            state = None if (batch.reset or state is None) else _detach(state)  # truncate BPTT here
        else:
            state = None
        # Padding sits after each sequence's real steps: causal cells never let it reach a real
        # output, and the mask keeps it out of the loss, so no packing is needed to train.
        with autocast(cfg.precision):
            if task.forward is not None:
                y = task.forward(net, batch)
            else:
                y, state = net(batch.x, state)
        loss = task.loss_sum(y.float(), batch) / norm
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = float(nn.utils.clip_grad_norm_(model.parameters(), cfg.clip if cfg.clip > 0 else float("inf")))
        value = all_mean(float(loss.detach()), info)
        if not (math.isfinite(value) and math.isfinite(gnorm)):
            bar.close()
            kept = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written yet"
            raise TrainingError(
                f"{task.name}: the loss became {value} (gradient norm {gnorm}) at step {step + 1}; "
                f"training stopped before the update, {kept}. Lower --lr or --clip."
            )
        opt.step()
        step += 1
        step_s, now = budget.now() - now, budget.now()
        elapsed = time.perf_counter() - t0
        rate = frames / max(elapsed - spent, 1e-9)
        shown = value * task.loss_scale
        done = step / cfg.max_steps if cfg.max_steps else budget.fraction(now) if budget.timed else 0.0
        bar.update(
            done,
            f"step {step} {task.loss_name} {shown:.3f} {rate:,.0f} {task.unit}/s",
            time_left(cfg.max_steps, budget, step, first_step, now),
        )
        if step % cfg.log_every == 0 or step == 1:
            row = {"step": step, "seconds": round(elapsed, 2), task.loss_name: round(shown, 5), "lr": lr}
            row |= {"grad_norm": round(gnorm, 4), f"{task.unit}_per_s": round(rate)}
            history.append(row)
            if run:
                run.append(row)
        if cfg.eval_every and step % cfg.eval_every == 0:
            metrics = _evaluate(task, model, run, step, elapsed, info)
            if info.is_main and _save(ckpt, tstate, model, opt, cfg, task, metrics, step, elapsed, state, info):
                last_good = ckpt
            barrier(info)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
    rate = frames / max(seconds - spent, 1e-9)
    bar.stage(f"trained {step - first_step} updates; final evaluation" + (f", about {eval_s:.0f} s" if eval_s else ""))
    t_eval = time.perf_counter()
    metrics = _evaluate(task, model, run, step, seconds, info, budget.eval_deadline(eval_s))
    metrics |= {"steps": step, "train_seconds": round(seconds, 1), f"{task.unit}_per_s": round(rate)}
    metrics["train_cpu_seconds"] = round(cpu_seconds, 1)  # this run's updates, every thread of the process
    t_save = time.perf_counter()
    if info.is_main and out is not None:
        bar.stage(f"evaluated in {t_save - t_eval:.1f} s; saving {out}")
        _save(ckpt, tstate, model, opt, cfg, task, metrics, step, seconds, state, info)
    if run:
        run.finish(metrics, history)
    barrier(info)
    model.eval()
    end = time.perf_counter()
    of = f" of a {budget.describe()}" if budget.timed else ""
    spent_on = f"evaluation {t_save - t_eval:.1f} s, saving {end - t_save:.1f} s"
    bar.stage(f"done: {clock(end - budget.started)} wall time{of} ({spent_on})")
    return FitResult(model, metrics, step, seconds, rate, history)


def _save(
    ckpt: Path | None,
    tstate: Path | None,
    model: RecurrentModel,
    opt: torch.optim.Optimizer,
    cfg: TrainConfig,
    task: Task,
    metrics: dict[str, Any],
    step: int,
    seconds: float,
    state: State | None,
    info: DistInfo | None = None,
) -> bool:
    """Write the checkpoint and the resume state (a run with a directory); whether it wrote."""
    if ckpt is None or tstate is None:
        return False
    save_checkpoint(ckpt, model, asdict(cfg), task.facts, metrics, step=step)
    save_train_state(tstate, ckpt, opt, step, seconds, state if info is None or not info.active else None)
    return True


def _evaluate(
    task: Task,
    model: RecurrentModel,
    run: Any,
    step: int,
    elapsed: float,
    info: DistInfo,
    deadline: float | None = None,
) -> dict[str, Any]:
    if not info.is_main:
        return {}
    model.eval()
    if task.calibrate is not None:
        task.facts.update(task.calibrate(model))
    metrics = dict(task.evaluate(model, deadline))
    model.train()
    if run:
        run.append({"step": step, "seconds": round(elapsed, 2), "eval": metrics})
    return metrics


def with_overrides(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """``cfg`` with the given fields replaced (None values ignored)."""
    return replace(cfg, **{k: v for k, v in changes.items() if v is not None})
