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
from edgernn.train.trainer import Batch, Task, TrainConfig

SYMBOLS = 8
DISTRACTORS = 8
QUERY = SYMBOLS + DISTRACTORS
VOCAB = QUERY + 1


def recall_batch(batch: int, delay: int, rng: np.random.Generator) -> Batch:
    symbol = rng.integers(0, SYMBOLS, size=batch)
    x = np.empty((batch, delay + 2), dtype=np.int64)
    x[:, 0] = symbol
    x[:, 1:-1] = rng.integers(SYMBOLS, SYMBOLS + DISTRACTORS, size=(batch, delay))
    x[:, -1] = QUERY
    y = np.repeat(symbol[:, None], delay + 2, axis=1)
    mask = np.zeros((batch, delay + 2), dtype=np.float32)
    mask[:, -1] = 1.0  # only the answer counts
    return Batch(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(mask))


class RecallSource:
    carries_state = False

    def __init__(self, batch: int, delay: int, seed: int) -> None:
        self.batch, self.delay, self.seed = batch, delay, seed

    def global_batch(self, step: int) -> Batch:
        return recall_batch(self.batch, self.delay, np.random.default_rng([self.seed, 1, step]))


@torch.no_grad()
def recall_accuracy(model: RecurrentModel, delay: int, n: int = 2000, seed: int = 12345) -> float:
    b = recall_batch(n, delay, np.random.default_rng([seed, 2]))
    logits, _ = model(b.x)  # (n, time, symbols)
    return float((logits[:, -1].argmax(-1) == b.y[:, -1]).float().mean())


def recall_task(cfg: TrainConfig) -> Task:
    config = cfg.model_config("tokens", VOCAB, SYMBOLS)

    def evaluate(model: RecurrentModel) -> dict[str, Any]:
        return {"accuracy": round(recall_accuracy(model, cfg.delay), 4), "delay": cfg.delay, "chance": 1 / SYMBOLS}

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
