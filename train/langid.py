"""Streaming language identification: a prediction after every character.

Input tokens (batch, time) over the catalog vocabulary (unknown characters → ``unknown_id``),
output (batch, time, labels) logits. The loss is the cross-entropy of the string's language
at every real step, summed over time (the streaming use scores every prefix).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from edgernn.train.data_langid import (
    CharVocab,
    LangData,
    TrigramNaiveBayes,
    accuracy_table,
    build_vocab,
    load_catalog_strings,
)
from edgernn.train.model import RecurrentModel
from edgernn.train.seqdata import ShardedSequenceSource, pad_batch
from edgernn.train.trainer import Batch, Task, TrainConfig


def langid_facts(vocab: CharVocab, labels: tuple[str, ...]) -> dict[str, Any]:
    return {"name": "langid", "vocabulary": vocab.chars, "unknown_id": vocab.unknown_id, "labels": list(labels)}


def label_loss_sum(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    per = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.y.reshape(-1), reduction="none")
    return (per * batch.mask.reshape(-1)).sum()


@torch.no_grad()
def predict_prefixes(model: RecurrentModel, encoded: list[np.ndarray], batch: int = 256) -> list[np.ndarray]:
    """The label predicted after every character of each string (whole strings, no cut)."""
    out: list[np.ndarray] = []
    longest = max(len(e) for e in encoded)
    for a in range(0, len(encoded), batch):
        part = encoded[a : a + batch]
        b = pad_batch(part, part, longest)
        logits, _ = model(b.x, None, b.lengths)  # (batch, time, labels)
        pred = logits.argmax(-1).numpy()
        out.extend(pred[i, : len(e)] for i, e in enumerate(part))
    return out


class LangAugment:
    """Label-preserving variants of a training string, so that the model sees more than the
    catalog's string starts: with ``p_suffix`` a suffix from a word start (any character in
    scripts without spaces), with ``p_join`` the string, a space and another string of the same
    language; otherwise the string itself."""

    def __init__(
        self, xs: list[np.ndarray], labels: list[int], space_id: int, p_suffix: float = 0.25, p_join: float = 0.25
    ) -> None:
        self.xs, self.labels, self.space = xs, labels, space_id
        self.p_suffix, self.p_join = p_suffix, p_join
        self.by_label: dict[int, list[int]] = {}
        for i, label in enumerate(labels):
            self.by_label.setdefault(label, []).append(i)

    def __call__(self, j: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x, label = self.xs[j], self.labels[j]
        u = rng.random()
        if u < self.p_suffix and len(x) > 4:
            starts = np.flatnonzero(x[:-3] == self.space) + 1
            cut = int(rng.choice(starts)) if len(starts) else int(rng.integers(1, len(x) - 3))
            x = x[cut:]
        elif u < self.p_suffix + self.p_join:
            other = self.xs[int(rng.choice(self.by_label[label]))]
            x = np.concatenate([x, [self.space], other])
        return x, np.full(len(x), label, dtype=np.int64)


def langid_task(cfg: TrainConfig, data: LangData | None = None, augment: bool = True) -> Task:
    data = data or load_catalog_strings()
    vocab = build_vocab([t for t, _ in data.train])
    xs = [vocab.encode(t) for t, _ in data.train]
    ys = [np.full(len(x), label, dtype=np.int64) for x, (_, label) in zip(xs, data.train)]
    test_x = [vocab.encode(t) for t, _ in data.test]
    test_y = [label for _, label in data.test]
    nb = TrigramNaiveBayes(data.train, len(data.labels))
    nb_table = accuracy_table([nb.predict_prefixes(t) for t, _ in data.test], test_y)
    baselines = {f"nb_{k}": v for k, v in nb_table.items() if k != "test_strings"}

    def evaluate(model: RecurrentModel) -> dict[str, Any]:
        return {**accuracy_table(predict_prefixes(model, test_x), test_y), **baselines}

    config = cfg.model_config("tokens", vocab.size, len(data.labels))
    return Task(
        name="langid",
        config=config,
        source=ShardedSequenceSource(
            xs,
            ys,
            cfg.batch_size,
            cfg.seq_len,
            cfg.seed,
            pad_x=vocab.unknown_id,
            augment=LangAugment(xs, [label for _, label in data.train], int(vocab.encode(" ")[0])) if augment else None,
        ),
        loss_sum=label_loss_sum,
        evaluate=evaluate,
        facts=langid_facts(vocab, data.labels),
        unit="chars",
        baselines=baselines,
    )
