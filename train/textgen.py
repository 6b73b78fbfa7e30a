"""Character-level language model on the KJV text, trained with truncated BPTT.

The training text is cut into ``batch_size`` parallel lanes; each window of ``seq_len``
characters continues the previous one, so the hidden state is carried across windows and
detached (truncated backpropagation through time). The loss is the cross-entropy averaged
over every time step and lane of a window.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from edgernn.runtime.spec import ModelConfig
from edgernn.train.data_text import CharCorpus, char_corpus, load_kjv_text, unigram_bpc
from edgernn.train.model import RecurrentModel, build_model

LN2 = math.log(2.0)


@dataclass(frozen=True)
class TextTrainConfig:
    cell: str = "gru"
    hidden_size: int = 256
    num_layers: int = 1
    embed_size: int = 64
    dropout: float = 0.0
    seq_len: int = 128
    batch_size: int = 64
    lr: float = 3e-3
    clip: float = 1.0
    max_seconds: float = 120.0
    max_steps: int = 0  # 0: no limit but time
    eval_chars: int = 40_000
    seed: int = 0


@dataclass(frozen=True)
class TextTrainResult:
    model: RecurrentModel
    corpus: CharCorpus
    valid_bpc: float
    unigram_bpc: float
    steps: int
    seconds: float
    chars_per_second: float

    def metrics(self) -> dict[str, Any]:
        return {
            "valid_bpc": round(self.valid_bpc, 4),
            "unigram_bpc": round(self.unigram_bpc, 4),
            "steps": self.steps,
            "seconds": round(self.seconds, 1),
            "chars_per_second": round(self.chars_per_second),
        }


def model_config(cfg: TextTrainConfig, vocab_size: int) -> ModelConfig:
    return ModelConfig(
        cell=cfg.cell,
        input_kind="tokens",
        input_size=vocab_size,
        hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers,
        output_size=vocab_size,
        dropout=cfg.dropout,
        embed_size=cfg.embed_size,
    )


def lanes(ids: np.ndarray, batch: int) -> torch.Tensor:
    """(batch, n) view of ``ids`` cut into ``batch`` contiguous lanes."""
    n = len(ids) // batch
    return torch.from_numpy(ids[: n * batch].reshape(batch, n).copy())


@torch.no_grad()
def evaluate_bpc(model: RecurrentModel, ids: np.ndarray, n_lanes: int = 8, window: int = 512) -> float:
    """Validation bits per character, state carried over the whole of each lane."""
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
    model.train()
    return total / count / LN2


def train_textgen(
    cfg: TextTrainConfig,
    corpus: CharCorpus | None = None,
    log: Callable[[str], None] = print,
) -> TextTrainResult:
    """Train a character model on ``corpus`` (the KJV text by default) within ``cfg.max_seconds``."""
    torch.manual_seed(cfg.seed)
    corpus = corpus or char_corpus(load_kjv_text())
    model = build_model(model_config(cfg, len(corpus.vocab)))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    data = lanes(corpus.train, cfg.batch_size)  # (batch, n)
    valid = corpus.valid[: cfg.eval_chars]
    state = model.initial_state(cfg.batch_size)
    t0 = time.perf_counter()
    step, pos, last_log = 0, 0, t0
    model.train()
    while True:
        elapsed = time.perf_counter() - t0
        if elapsed >= cfg.max_seconds or (cfg.max_steps and step >= cfg.max_steps):
            break
        if pos + cfg.seq_len + 1 > data.shape[1]:
            pos, state = 0, model.initial_state(cfg.batch_size)
        x = data[:, pos : pos + cfg.seq_len]  # (batch, time)
        y = data[:, pos + 1 : pos + cfg.seq_len + 1]
        state = tuple(s.detach() for s in state)  # truncate BPTT at the window edge
        logits, state = model(x, state)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        pos += cfg.seq_len
        step += 1
        if time.perf_counter() - last_log > 10:
            last_log = time.perf_counter()
            rate = step * cfg.seq_len * cfg.batch_size / (last_log - t0)
            log(f"  step {step:5d}  train {float(loss) / LN2:.3f} bpc  {rate:,.0f} chars/s  {last_log - t0:.0f}s")
    seconds = time.perf_counter() - t0
    bpc = evaluate_bpc(model, valid)
    model.eval()
    return TextTrainResult(
        model=model,
        corpus=corpus,
        valid_bpc=bpc,
        unigram_bpc=unigram_bpc(CharCorpus(corpus.vocab, corpus.train, valid)),
        steps=step,
        seconds=seconds,
        chars_per_second=step * cfg.seq_len * cfg.batch_size / max(seconds, 1e-9),
    )


def task_facts(corpus: CharCorpus) -> dict[str, Any]:
    return {"name": "textgen", "vocabulary": corpus.vocab}


def train_config_dict(cfg: TextTrainConfig) -> dict[str, Any]:
    return {"task": "textgen", **asdict(cfg)}
