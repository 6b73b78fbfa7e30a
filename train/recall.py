"""Dependencies after an interval: a synthetic recall task.

A sequence is ``[symbol, d_1 .. d_k, query]``: one of ``SYMBOLS`` symbols, ``k`` distractor
tokens drawn from their own alphabet, then the query token; the model must name the
symbol at the query step (the only step with a loss). Chance is 1 / SYMBOLS. The error
signal has to travel back ``k + 1`` steps: the plain RNN's gradient through ``k`` tanh
steps shrinks geometrically, the gates of the GRU and LSTM let it pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from edgernn.train.langid import label_loss_sum
from edgernn.train.model import RecurrentModel
from edgernn.train.trainer import Task, TrainBatch, TrainConfig, initial_model

SYMBOLS = 8
DISTRACTORS = 8
QUERY = SYMBOLS + DISTRACTORS
VOCAB = QUERY + 1


def recall_batch(batch: int, delay: int, rng: np.random.Generator) -> TrainBatch:
    symbol = rng.integers(0, SYMBOLS, size=batch)
    x = np.empty((batch, delay + 2), dtype=np.int64)
    x[:, 0] = symbol
    x[:, 1:-1] = rng.integers(SYMBOLS, SYMBOLS + DISTRACTORS, size=(batch, delay))
    x[:, -1] = QUERY
    y = np.repeat(symbol[:, None], delay + 2, axis=1)
    mask = np.zeros((batch, delay + 2), dtype=np.float32)
    mask[:, -1] = 1.0  # only the answer counts
    return TrainBatch(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(mask))


class RecallSource:
    carries_state = False

    def __init__(self, batch: int, delay: int, seed: int) -> None:
        self.batch, self.delay, self.seed = batch, delay, seed

    def global_batch(self, step: int) -> TrainBatch:
        return recall_batch(self.batch, self.delay, np.random.default_rng([self.seed, 1, step]))


@torch.no_grad()
def recall_accuracy(model: RecurrentModel, delay: int, n: int = 2000, seed: int = 12345) -> float:
    b = recall_batch(n, delay, np.random.default_rng([seed, 2]))
    logits, _ = model(b.x)  # (n, time, symbols)
    return float((logits[:, -1].argmax(-1) == b.y[:, -1]).float().mean())


def gradient_reach(model: RecurrentModel, delay: int, n: int = 256, seed: int = 54321) -> float:
    """log10 of how much error signal from the answer reaches the symbol: the median over ``n``
    sequences of |d loss / d u_0| / |d loss / d u_last|, u_t the cell's input at step t.

    This is the quantity backpropagation through time hands the first step: a plain RNN
    multiplies it by W_hh^T diag(tanh') once per step, so it shrinks geometrically with the
    delay unless training finds a regime that keeps it; a gate held open passes it through.
    """
    was_training = model.training
    model.eval()
    b = recall_batch(n, delay, np.random.default_rng([seed, 3]))
    with torch.enable_grad():
        u = model.encoder(b.x).detach().requires_grad_(True)  # (n, time, width)
        state = model.initial_state(n)  # (h,) or (h, c): nn.LSTM takes the pair, nn.GRU / nn.RNN h alone
        out, _ = model.rnn(u, state if model.config.cell == "lstm" else state[0])
        logits = model.head(out[:, -1])
        torch.nn.functional.cross_entropy(logits, b.y[:, -1], reduction="sum").backward()
    model.train(was_training)
    g = u.grad.norm(dim=-1)  # (n, time)
    ratio = (g[:, 0] / g[:, -1].clamp_min(1e-30)).clamp_min(1e-30)
    return float(torch.log10(ratio).median())


def recall_task(cfg: TrainConfig) -> Task:
    config = cfg.model_config("tokens", VOCAB, SYMBOLS)

    def evaluate(model: RecurrentModel, deadline: float | None = None) -> dict[str, Any]:  # quick: no deadline
        with torch.random.fork_rng():  # the weights fit started from, without moving the RNG
            at_init = initial_model(config, cfg)
        out = {"accuracy": round(recall_accuracy(model, cfg.delay), 4), "delay": cfg.delay, "chance": 1 / SYMBOLS}
        if cfg.cell != "attention":  # the reach through a recurrence; attention looks back directly
            out["grad_reach_log10"] = round(gradient_reach(model, cfg.delay), 2)
            out["grad_reach_log10_at_init"] = round(gradient_reach(at_init, cfg.delay), 2)
        return out

    facts = {"name": "recall", "symbols": SYMBOLS, "distractors": DISTRACTORS, "query_id": QUERY, "delay": cfg.delay}
    return Task(
        name="recall",
        config=config,
        source=RecallSource(cfg.batch_size, cfg.delay, cfg.seed),
        loss_sum=label_loss_sum,
        evaluate=evaluate,
        facts=facts,
        unit="steps",
        baselines={"chance": 1 / SYMBOLS},
    )
