"""Next-day weather from the stream of days so far (Seattle, 2012–2014 train, 2015 test).

Input frames (batch, time, 7) normalised (see ``data_weather``); output (batch, time, 3):
normalised next-day temp_max and temp_min, and a rain logit. Loss per real step: squared
error of both temperatures plus the binary cross-entropy of rain, summed over time.
Training reads random windows of ``seq_len`` days from zero state; evaluation streams every
day from 2012-01-01 with the state carried and scores the forecasts of 2015's days.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from edgernn.train.data_weather import FEATURES, WeatherData, baselines, facts_from_training, load_weather
from edgernn.train.model import RecurrentModel
from edgernn.train.trainer import Task, TrainBatch, TrainConfig


def weather_loss_sum(out: torch.Tensor, batch: TrainBatch) -> torch.Tensor:
    temp = ((out[..., :2] - batch.y[..., :2]) ** 2).sum(-1)  # (batch, time)
    rain = nn.functional.binary_cross_entropy_with_logits(out[..., 2], batch.y[..., 2], reduction="none")
    return ((temp + rain) * batch.mask).sum()


class WindowSource:
    """Random windows of consecutive training days; a function of (seed, step)."""

    carries_state = False

    def __init__(self, x: np.ndarray, y: np.ndarray, batch: int, seq_len: int, seed: int) -> None:
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)  # (days, features), (days, 3)
        self.batch, self.seq_len, self.seed = batch, min(seq_len, len(x)), seed
        self.mask = torch.ones(batch, self.seq_len)

    def global_batch(self, step: int) -> TrainBatch:
        rng = np.random.default_rng([self.seed, step])
        starts = rng.integers(0, len(self.x) - self.seq_len + 1, size=self.batch)
        idx = torch.from_numpy(starts[:, None] + np.arange(self.seq_len))  # (batch, time)
        return TrainBatch(self.x[idx], self.y[idx], self.mask)


def arrays(data: WeatherData, facts: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Normalised frames of every day but the last, and their targets (the next day)."""
    x = (data.raw - np.array(facts["input_mean"])) / np.array(facts["input_std"])
    temps = (data.raw[1:, 2:4] - np.array(facts["output_mean"])) / np.array(facts["output_std"])
    rain = (data.precipitation[1:] > 0).astype(np.float64)[:, None]
    return x[:-1].astype(np.float32), np.concatenate([temps, rain], axis=1).astype(np.float32)


@torch.no_grad()
def evaluate_weather(model: RecurrentModel, x: np.ndarray, y: np.ndarray, start: int, facts: dict) -> dict:
    """MAE (°C) of both temperatures and the Brier score of rain over the days from ``start``."""
    out, _ = model(torch.from_numpy(x)[None])  # (1, days, 3), state carried from day one
    pred = out[0, start:].numpy()
    truth = y[start:]
    std, mean = np.array(facts["output_std"]), np.array(facts["output_mean"])
    t_pred, t_true = pred[:, :2] * std + mean, truth[:, :2] * std + mean
    p_rain = 1.0 / (1.0 + np.exp(-pred[:, 2]))
    return {
        "mae_tmax": round(float(np.abs(t_pred[:, 0] - t_true[:, 0]).mean()), 3),
        "mae_tmin": round(float(np.abs(t_pred[:, 1] - t_true[:, 1]).mean()), 3),
        "brier": round(float(((p_rain - truth[:, 2]) ** 2).mean()), 4),
        "test_days": len(truth),
    }


def weather_task(cfg: TrainConfig, data: WeatherData | None = None) -> Task:
    data = data or load_weather()
    facts = facts_from_training(data)
    x, y = arrays(data, facts)
    start = data.test_start
    base = baselines(data)

    def evaluate(model: RecurrentModel, deadline: float | None = None) -> dict[str, Any]:  # quick: no deadline
        return {**evaluate_weather(model, x, y, start, facts), **base}

    config = cfg.model_config("frames", len(FEATURES), 3)
    return Task(
        name="weather",
        config=config,
        source=WindowSource(x[:start], y[:start], cfg.batch_size, cfg.seq_len, cfg.seed),
        loss_sum=weather_loss_sum,
        evaluate=evaluate,
        facts=facts,
        unit="days",
        baselines=base,
    )
