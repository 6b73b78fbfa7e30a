"""Character-level language model on the KJV text, trained with truncated BPTT.

The training text is cut into ``batch_size`` parallel lanes; each window of ``seq_len``
characters continues the previous one, so the hidden state is carried across windows and
detached (truncated backpropagation through time). The loss is summed over the steps of a
window and divided by the constant ``batch_size * seq_len`` (see ``trainer``), which is the
mean per character. Validation is the last 5% of the text, scored with the state carried.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from edgernn.train.data_text import CharCorpus, char_corpus, load_kjv_text, unigram_bpc
from edgernn.train.model import RecurrentModel
from edgernn.train.trainer import Task, TrainBatch, TrainConfig

LN2 = math.log(2.0)


def lanes(ids: np.ndarray, batch: int) -> torch.Tensor:
    """(batch, n) view of ``ids`` cut into ``batch`` contiguous lanes."""
    n = len(ids) // batch
    return torch.from_numpy(ids[: n * batch].reshape(batch, n).copy())


class LaneSource:
    """Contiguous windows of the lanes: update ``step`` reads window ``step mod windows``."""

    carries_state = True

    def __init__(self, ids: np.ndarray, batch: int, seq_len: int) -> None:
        self.data = lanes(ids, batch)  # (batch, n)
        self.seq_len = seq_len
        self.windows = (self.data.shape[1] - 1) // seq_len
        self.mask = torch.ones(batch, seq_len)

    def global_batch(self, step: int) -> TrainBatch:
        w = step % self.windows
        a = w * self.seq_len
        x = self.data[:, a : a + self.seq_len]  # (batch, time)
        y = self.data[:, a + 1 : a + self.seq_len + 1]
        return TrainBatch(x, y, self.mask, reset=w == 0)


def token_loss_sum(logits: torch.Tensor, batch: TrainBatch) -> torch.Tensor:
    """Cross-entropy summed over every real step (mask 1), in nats."""
    per = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.y.reshape(-1), reduction="none")
    return (per * batch.mask.reshape(-1)).sum()


@torch.no_grad()
def evaluate_bpc(
    model: RecurrentModel, ids: np.ndarray, n_lanes: int = 8, window: int = 512, deadline: float | None = None
) -> tuple[float, int]:
    """(validation bits per character, characters scored), state carried over the whole of each
    lane. With ``deadline`` (a ``time.perf_counter()`` value) it stops after the window that
    passes it (one window at least): the figure is then on the first part of every lane."""
    was_training = model.training
    model.eval()
    data = lanes(ids, n_lanes)
    state = model.initial_state(n_lanes)
    total, count = 0.0, 0
    for t0 in range(0, data.shape[1] - 1, window):
        x = data[:, t0 : t0 + window]
        y = data[:, t0 + 1 : t0 + window + 1]
        x = x[:, : y.shape[1]]
        logits, state = model(x, state)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")
        total += float(loss)
        count += y.numel()
        if deadline is not None and time.perf_counter() >= deadline:
            break
    model.train(was_training)
    return total / count / LN2, count


def probe_bpc_seconds(model: RecurrentModel, ids: np.ndarray, n_lanes: int = 8, window: int = 512) -> float:
    """Seconds ``evaluate_bpc`` will take on ``ids``: one window timed, times the windows."""
    windows = math.ceil((len(ids) // n_lanes - 1) / window)
    t = time.perf_counter()
    evaluate_bpc(model, ids[: n_lanes * (window + 1)], n_lanes, window)
    return (time.perf_counter() - t) * windows


def textgen_task(cfg: TrainConfig, corpus: CharCorpus | None = None, baselines: bool = True) -> Task:
    """The KJV next-character task. ``baselines`` adds bigram and 5-gram figures (about 1 s)."""
    corpus = corpus or char_corpus(load_kjv_text())
    valid = corpus.valid[: cfg.eval_chars] if cfg.eval_chars else corpus.valid
    base: dict[str, Any] = {"unigram_bpc": round(unigram_bpc(CharCorpus(corpus.vocab, corpus.train, valid)), 4)}
    if baselines:
        from edgernn.train.ngram import ngram_bpc

        for order, name in ((2, "bigram_bpc"), (5, "5gram_bpc")):
            base[name] = round(ngram_bpc(corpus.train, valid, len(corpus.vocab), order), 4)

    def evaluate(model: RecurrentModel, deadline: float | None = None) -> dict[str, Any]:
        bpc, scored = evaluate_bpc(model, valid, deadline=deadline)
        return {"valid_bpc": round(bpc, 4), "valid_chars": scored, **base}

    return Task(
        name="textgen",
        config=cfg.model_config("tokens", len(corpus.vocab), len(corpus.vocab)),
        source=LaneSource(corpus.train, cfg.batch_size, cfg.seq_len),
        loss_sum=token_loss_sum,
        evaluate=evaluate,
        eval_probe=lambda model: probe_bpc_seconds(model, valid),
        eval_partial=True,
        facts=task_facts(corpus),
        unit="chars",
        loss_scale=1.0 / LN2,
        loss_name="bpc",
        baselines=base,
    )


def task_facts(corpus: CharCorpus) -> dict[str, Any]:
    """The model's task facts: its characters, and the words of the training text, which the
    suggest app completes to (``runtime.apps.suggest.words_in`` is the one tokenizer)."""
    from edgernn.runtime.apps.suggest import words_in

    train_text = np.array(list(corpus.vocab))[corpus.train].tobytes().decode("utf-32-le")
    return {"name": "textgen", "vocabulary": corpus.vocab, "words": words_in(train_text)}
