"""Streaming language identification: a prediction after every character.

Input tokens (batch, time) over the catalog vocabulary (unknown characters → ``unknown_id``),
output (batch, time, labels) logits. The loss is the cross-entropy of the string's language
at every real step, summed over time (the streaming use scores every prefix).

"unknown" (the app's rule is ``runtime.apps.langid.is_unknown``). After training, the top
probability under which the answer is "unknown" is calibrated on half of the test strings
of the known languages (by a hash of the text): the highest limit that turns at most
``UNKNOWN_COST`` of those strings from right answers into "unknown". A string with more than
``UNKNOWN_CHARS`` of its characters outside the vocabulary is in a script the model never
saw: "unknown" too. The evaluation reports, on the other half, the accuracy with and without
"unknown", and on strings of ``UNSEEN_LANGUAGES`` (never trained on) how often the answer
is "unknown" (the rest is a wrong language).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from edgernn.runtime.apps.langid import is_unknown
from edgernn.train.data_langid import (
    CharVocab,
    LangData,
    TrigramNaiveBayes,
    accuracy_table,
    build_vocab,
    is_calibration,
    load_catalog_strings,
    unseen_strings,
)
from edgernn.train.model import RecurrentModel
from edgernn.train.seqdata import ShardedSequenceSource, pad_batch
from edgernn.train.trainer import Task, TrainBatch, TrainConfig, TrainingError

UNKNOWN_COST = 0.03  # the share of right answers on known languages that "unknown" may take
UNKNOWN_CHARS = 0.5  # above this share of characters outside the vocabulary: an unseen script


def langid_facts(vocab: CharVocab, labels: tuple[str, ...]) -> dict[str, Any]:
    return {"name": "langid", "vocabulary": vocab.chars, "unknown_id": vocab.unknown_id, "labels": list(labels)}


def label_loss_sum(logits: torch.Tensor, batch: TrainBatch) -> torch.Tensor:
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


@torch.no_grad()
def final_probs(model: RecurrentModel, encoded: list[np.ndarray], batch: int = 256) -> np.ndarray:
    """(strings, labels) probabilities after each string's last character."""
    out = []
    for a in range(0, len(encoded), batch):
        part = encoded[a : a + batch]
        b = pad_batch(part, part, max(len(e) for e in part))
        lengths = b.lengths
        if lengths is None:  # pad_batch always sets them
            raise TrainingError("langid: a padded batch without its lengths (train/seqdata.py pad_batch)")
        logits, _ = model(b.x, None, lengths)  # (batch, time, labels)
        last = logits[torch.arange(len(part)), lengths - 1].double()
        out.append(torch.softmax(last, -1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


def calibrate_unknown(probs: np.ndarray, labels: np.ndarray, cost: float = UNKNOWN_COST) -> float:
    """The highest top-probability limit that turns at most ``cost`` of the strings from right
    answers into "unknown" (rounded down to 4 decimals)."""
    top = probs.max(axis=1)
    right = np.sort(top[probs.argmax(axis=1) == labels])
    allowed = int(cost * len(labels))  # right answers that may fall under the limit
    if allowed >= len(right):
        return 1.0
    return float(np.floor(right[allowed] * 1e4) / 1e4)


def unknown_mask(probs: np.ndarray, foreign: np.ndarray, facts: dict[str, Any]) -> np.ndarray:
    """Which answers are "unknown" under the facts' limits (the app's rule, string by string)."""
    below, above = facts.get("unknown_below"), facts.get("unknown_chars_above")
    return np.array([is_unknown(float(p), float(f), below, above) for p, f in zip(probs.max(axis=1), foreign)])


def foreign_share(vocab: CharVocab, encoded: list[np.ndarray]) -> np.ndarray:
    return np.array([float(np.mean(e == vocab.unknown_id)) for e in encoded])


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


def unknown_figures(
    model: RecurrentModel,
    vocab: CharVocab,
    facts: dict[str, Any],
    xs: list[np.ndarray],
    ys: np.ndarray,
    unseen: dict[str, list[np.ndarray]],
    labels: tuple[str, ...],
) -> dict[str, Any]:
    """Whole-string figures of "unknown": on the report half of the known languages' test
    strings (accuracy without it, right answers left with it, unknown rate), and per unseen
    language (unknown rate, and the language most often given when not unknown)."""
    probs = final_probs(model, xs)
    unknown = unknown_mask(probs, foreign_share(vocab, xs), facts)
    right = probs.argmax(axis=1) == ys
    out: dict[str, Any] = {
        "unknown_below": facts["unknown_below"],
        "known_strings": len(ys),
        "known_acc": round(float(right.mean()), 4),
        "known_acc_with_unknown": round(float((right & ~unknown).mean()), 4),
        "known_unknown_rate": round(float(unknown.mean()), 4),
    }
    for lang, enc in unseen.items():
        p = final_probs(model, enc)
        u = unknown_mask(p, foreign_share(vocab, enc), facts)
        wrong = np.bincount(p.argmax(axis=1)[~u], minlength=len(labels))
        out[f"unseen_{lang}_strings"] = len(enc)
        out[f"unseen_{lang}_unknown"] = round(float(u.mean()), 4)
        out[f"unseen_{lang}_else"] = labels[int(wrong.argmax())] if wrong.sum() else "-"
    return out


def langid_task(cfg: TrainConfig, data: LangData | None = None, augment: bool = True, unseen_eval: bool = True) -> Task:
    data = data or load_catalog_strings()
    vocab = build_vocab([t for t, _ in data.train])
    xs = [vocab.encode(t) for t, _ in data.train]
    ys = [np.full(len(x), label, dtype=np.int64) for x, (_, label) in zip(xs, data.train)]
    test_x = [vocab.encode(t) for t, _ in data.test]
    test_y = [label for _, label in data.test]
    nb = TrigramNaiveBayes(data.train, len(data.labels))
    nb_table = accuracy_table([nb.predict_prefixes(t) for t, _ in data.test], test_y)
    baselines = {f"nb_{k}": v for k, v in nb_table.items() if k != "test_strings"}
    cal = np.array([is_calibration(t) for t, _ in data.test])
    cal_x = [x for x, c in zip(test_x, cal) if c]
    cal_y = np.array([y for y, c in zip(test_y, cal) if c])
    rep_x = [x for x, c in zip(test_x, cal) if not c]
    rep_y = np.array([y for y, c in zip(test_y, cal) if not c])
    unseen = {lang: [vocab.encode(t) for t in texts] for lang, texts in unseen_strings().items()} if unseen_eval else {}
    facts = langid_facts(vocab, data.labels)

    def calibrate(model: RecurrentModel) -> dict[str, Any]:
        below = calibrate_unknown(final_probs(model, cal_x), cal_y)
        return {"unknown_below": below, "unknown_chars_above": UNKNOWN_CHARS}

    def evaluate(model: RecurrentModel, deadline: float | None = None) -> dict[str, Any]:
        out = {**accuracy_table(predict_prefixes(model, test_x), test_y), **baselines}
        if "unknown_below" in facts:
            out |= unknown_figures(model, vocab, facts, rep_x, rep_y, unseen, data.labels)
        return out

    def probe(model: RecurrentModel) -> float:
        t = time.perf_counter()
        predict_prefixes(model, test_x[:256])
        batches = 2 * math.ceil(len(test_x) / 256) + math.ceil(len(cal_x) / 256)
        return (time.perf_counter() - t) * (batches + sum(math.ceil(len(v) / 256) for v in unseen.values()))

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
        eval_probe=probe,
        calibrate=calibrate,
        facts=facts,
        unit="chars",
        baselines=baselines,
    )
