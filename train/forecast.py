"""Forecast any regular time series: quantiles of the next H values, trained by BPTT.

Data: a CSV read by column name (``--csv FILE --time COL --target COL [--covariates ...]``)
or a series that ships in a package (``--dataset``, see ``forecast_data``). The last
``holdout`` share of the rows is held out; statistics come from the training rows only.
Frames and output decoding are the runtime's (``edgernn.runtime.series``), so the app
streams exactly what was trained.

Loss: the pinball (quantile) loss of each quantile at each horizon h = 1..H of every real
step whose target y_{t+h} lies inside the training rows, summed over time (BPTT). Training
reads random windows of ``seq_len`` rows from zero state. Evaluation streams the whole series
with the state carried from the first row and scores the forecasts from every origin t whose
H targets all lie in the held-out tail: MASE (the mean absolute error of the median divided by
the in-sample MAE of the one-season-back forecast on the training rows) and the coverage of
the 10-90 % interval (nominal 80 %).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgernn.runtime.series import QUANTILES, Series, facts_for, frames, read_csv, regular
from edgernn.train.model import RecurrentModel
from edgernn.train.trainer import Task, TrainBatch, TrainConfig, TrainingError

DEFAULT_SEASON = {3600: 24, 86400: 7, 7 * 86400: 52, -1: 12, -3: 4, -12: 1}


def load_series(cfg: TrainConfig) -> Series:
    """The series ``cfg`` names: a packaged dataset or a CSV, on its regular grid."""
    if bool(cfg.dataset) == bool(cfg.csv):
        raise TrainingError("forecast: give exactly one of --dataset NAME or --csv FILE (with --time and --target)")
    if cfg.dataset:
        from edgernn.train.forecast_data import packaged_series

        raw = packaged_series(cfg.dataset)
    else:
        if not cfg.time_col or not cfg.target_col:
            raise TrainingError("forecast: --csv needs --time COLUMN and --target COLUMN")
        raw = read_csv(cfg.csv, cfg.time_col, cfg.target_col, tuple(cfg.covariates))
    return regular(raw, fill=cfg.fill_missing)


def split(n: int, cfg: TrainConfig) -> int:
    """The first held-out row; TrainingError when the series is too short for the settings."""
    h = cfg.horizon
    if h < 1:
        raise TrainingError(f"forecast: --horizon must be >= 1, got {h}")
    if h >= cfg.seq_len:
        raise TrainingError(
            f"forecast: the horizon {h} is not shorter than the training window --seq-len {cfg.seq_len}"
        )
    train_end = n - max(int(round(n * cfg.holdout)), h + 1)
    need = cfg.seq_len + h + 1
    if train_end < need:
        raise TrainingError(
            f"forecast: {n} rows leave {train_end} for training; the window (--seq-len {cfg.seq_len}) "
            f"and horizon ({h}) need at least {need}: a longer series, or a shorter --seq-len"
        )
    return train_end


def targets(y: np.ndarray, facts: dict, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, H) normalised changes y_{t+h} - y_t and (n, H) masks: 1 where t + h < ``limit``."""
    n, horizon = len(y), facts["horizon"]
    z, m = np.zeros((n, horizon)), np.zeros((n, horizon))
    for h in range(1, horizon + 1):
        end = max(limit - h, 0)
        z[:end, h - 1] = (y[h:limit] - y[: end]) / facts["delta_std"][h - 1]
        m[:end, h - 1] = 1.0
    return z.astype(np.float32), m.astype(np.float32)


def pinball_sum(out: torch.Tensor, batch: TrainBatch) -> torch.Tensor:
    """The summed quantile loss; y holds the H targets then the H masks."""
    q = torch.tensor(QUANTILES, dtype=out.dtype)
    horizon = batch.y.shape[-1] // 2
    pred = out.reshape(*out.shape[:-1], horizon, len(QUANTILES))  # (batch, time, H, Q)
    err = batch.y[..., :horizon, None] - pred
    loss = torch.maximum(q * err, (q - 1) * err)
    return (loss.sum(-1) * batch.y[..., horizon:]).sum()


class WindowSource:
    """Random windows of consecutive training rows; a function of (seed, step)."""

    carries_state = False

    def __init__(self, x: np.ndarray, y: np.ndarray, batch: int, seq_len: int, seed: int) -> None:
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
        self.batch, self.seq_len, self.seed = batch, seq_len, seed
        self.mask = torch.ones(batch, seq_len)

    def global_batch(self, step: int) -> TrainBatch:
        rng = np.random.default_rng([self.seed, step])
        starts = rng.integers(0, len(self.x) - self.seq_len + 1, size=self.batch)
        idx = torch.from_numpy(starts[:, None] + np.arange(self.seq_len))  # (batch, time)
        return TrainBatch(self.x[idx], self.y[idx], self.mask)


def origins(n: int, train_end: int, horizon: int) -> np.ndarray:
    """The forecast origins scored: every t whose H targets all lie in the held-out tail."""
    return np.arange(train_end - 1, n - horizon)


def scale(y: np.ndarray, train_end: int, season: int) -> float:
    """MASE's denominator: in-sample MAE of y_{t-season} as the forecast of y_t."""
    m = min(season, train_end - 1)
    return float(np.abs(y[m:train_end] - y[: train_end - m]).mean()) or 1.0


def score(pred: np.ndarray, y: np.ndarray, at: np.ndarray, denom: float) -> dict[str, float]:
    """MASE of the median and the 80 % coverage; ``pred`` (origins, H, Q) in target units."""
    horizon = pred.shape[1]
    truth = np.stack([y[at + h] for h in range(1, horizon + 1)], axis=1)  # (origins, H)
    out = {"mase": round(float(np.abs(pred[..., pred.shape[2] // 2] - truth).mean() / denom), 4)}
    if pred.shape[2] > 1:
        inside = (pred[..., 0] <= truth) & (truth <= pred[..., -1])
        out["coverage"] = round(float(inside.mean()), 4)
    return out


@torch.no_grad()
def model_forecasts(model: RecurrentModel, x: np.ndarray, y: np.ndarray, at: np.ndarray, facts: dict) -> np.ndarray:
    """(origins, H, Q) forecasts, the state carried from the first row."""
    from edgernn.runtime.series import decode

    model.eval()
    out, _ = model(torch.from_numpy(x)[None])  # (1, rows, H * Q)
    raw = out[0].numpy()
    return np.stack([decode(facts, raw[t], float(y[t])) for t in at])


def forecast_task(cfg: TrainConfig, series: Series | None = None) -> Task:
    series = series or load_series(cfg)
    n = len(series)
    train_end = split(n, cfg)
    facts: dict[str, Any] = {"name": "forecast", **facts_for(series, cfg.horizon, train_end)}
    facts["series"] = cfg.dataset or Path(cfg.csv).name
    facts["filled_steps"] = series.filled
    season = cfg.season or DEFAULT_SEASON.get(series.step, 1)
    x = frames(series, facts)
    z, m = targets(series.target, facts, train_end)
    y_train = np.concatenate([z, m], axis=1)[:train_end]
    at = origins(n, train_end, cfg.horizon)
    denom = scale(series.target, train_end, season)

    def evaluate(model: RecurrentModel, deadline: float | None = None) -> dict[str, Any]:  # quick: no deadline
        pred = model_forecasts(model, x, series.target, at, facts)
        return {**score(pred, series.target, at, denom), "season": season, "test_origins": len(at)}

    config = cfg.model_config("frames", x.shape[1], cfg.horizon * len(QUANTILES))
    return Task(
        name="forecast",
        config=config,
        source=WindowSource(x[:train_end], y_train, cfg.batch_size, cfg.seq_len, cfg.seed),
        loss_sum=pinball_sum,
        evaluate=evaluate,
        facts=facts,
        unit="rows",
    )
