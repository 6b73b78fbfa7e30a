"""Scoring translations: chrF, and the two baselines the model has to beat.

chrF (Popović 2015, as sacrebleu 2 computes it by default): character n-grams of orders 1..6,
whitespace removed; matches, hypothesis and reference n-gram counts summed over the corpus per
order; per order F-beta of its precision and recall with beta = 2 (recall weighs 4x), averaged
over the orders that both sides have n-grams of (the effective order), times 100. Everything is
scored in the normalised form (placeholders as markers), for every system alike.

Baselines: *copy* outputs the source itself; *translation memory* outputs the translation of
the training source most similar to the test source (Dice coefficient over character 3-gram
sets, ties to the first in sorted order).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from edgernn.runtime.apps.translate import BOS, EOS, beam_search, decode_target, encode_source
from edgernn.train.data_translate import ParallelData

CHRF_ORDER = 6
CHRF_BETA = 2.0
BEAM = 4
BEAM_PAIRS = 300  # beam search is scored on this many test pairs (every k-th), greedy on all and on those


def _ngrams(text: str, n: int) -> Counter[str]:
    s = "".join(text.split())
    return Counter(s[i : i + n] for i in range(len(s) - n + 1))


def chrf(
    hypotheses: Sequence[str], references: Sequence[str], order: int = CHRF_ORDER, beta: float = CHRF_BETA
) -> float:
    """Corpus chrF (0..100) of ``hypotheses`` against one reference each."""
    if len(hypotheses) != len(references):
        raise ValueError(f"chrf: {len(hypotheses)} hypotheses for {len(references)} references")
    match = np.zeros(order)
    hyp = np.zeros(order)
    ref = np.zeros(order)
    for h, r in zip(hypotheses, references):
        for n in range(1, order + 1):
            hc, rc = _ngrams(h, n), _ngrams(r, n)
            match[n - 1] += sum((hc & rc).values())
            hyp[n - 1] += sum(hc.values())
            ref[n - 1] += sum(rc.values())
    b2 = beta * beta
    total, effective = 0.0, 0
    for n_match, n_hyp, n_ref in zip(match, hyp, ref):
        if n_hyp > 0 and n_ref > 0:
            effective += 1
            p, q = n_match / n_hyp, n_match / n_ref
            total += (1 + b2) * p * q / (b2 * p + q) if n_match > 0 else 0.0
    return float(100 * total / effective) if effective else 0.0


def _grams(text: str) -> set[str]:
    padded = f" {text.lower()} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


class TranslationMemory:
    """The nearest training source by 3-gram Dice similarity; its translation is the answer."""

    def __init__(self, sources: Sequence[str], targets: Sequence[str]) -> None:
        self.targets = list(targets)
        self.sizes = np.array([len(_grams(s)) for s in sources], dtype=np.float64)
        postings: dict[str, list[int]] = {}
        for i, s in enumerate(sources):
            for g in _grams(s):
                postings.setdefault(g, []).append(i)
        self.postings = {g: np.array(ids, dtype=np.int64) for g, ids in postings.items()}

    def nearest(self, text: str) -> int:
        grams = _grams(text)
        hits = [self.postings[g] for g in grams if g in self.postings]
        if not hits:
            return 0
        shared = np.bincount(np.concatenate(hits), minlength=len(self.sizes))
        return int(np.argmax(2 * shared / (self.sizes + len(grams))))

    def translate(self, text: str) -> str:
        return self.targets[self.nearest(text)]


def baseline_scores(data: ParallelData) -> dict[str, Any]:
    refs = [e.target for e in data.test]
    tm = TranslationMemory([e.source for e in data.train], [e.target for e in data.train])
    return {
        "chrf_copy": round(chrf([e.source for e in data.test], refs), 2),
        "chrf_memory": round(chrf([tm.translate(e.source) for e in data.test], refs), 2),
    }


@torch.no_grad()
def greedy(
    model: Any, src_vocab: str, tgt_vocab: str, texts: Sequence[str], max_len: int, batch: int = 256
) -> list[str]:
    """Greedy translations of ``texts`` (normalised), decoded in batches."""
    out: list[str] = []
    for a in range(0, len(texts), batch):
        part = [encode_source(src_vocab, t) for t in texts[a : a + batch]]
        width = max(len(p) for p in part)
        src = torch.zeros(len(part), width, dtype=torch.long)
        for i, p in enumerate(part):
            src[i, : len(p)] = torch.from_numpy(p)
        lengths = torch.tensor([len(p) for p in part])
        memory = model.encode(src, lengths)
        mask = (torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)).float()
        h = torch.zeros(1, len(part), model.cfg.hidden)
        tok = torch.full((len(part), 1), BOS, dtype=torch.long)
        ids = []
        for _ in range(max_len):
            logits, h, _ = model.decode(tok, h, memory, mask)
            tok = logits.argmax(-1)  # (batch, 1)
            ids.append(tok[:, 0])
            if bool((torch.stack(ids, 1) == EOS).any(1).all()):
                break
        rows = torch.stack(ids, 1).tolist()
        out += [decode_target(tgt_vocab, r) for r in rows]
    return out


@torch.no_grad()
def beam(model: Any, src_vocab: str, tgt_vocab: str, text: str, max_len: int, width: int = BEAM) -> str:
    """One translation by ``runtime.apps.translate.beam_search`` (the app's search) on torch's decoder."""
    src = torch.from_numpy(encode_source(src_vocab, text)).unsqueeze(0)
    memory = model.encode(src)
    mask = torch.ones(1, src.shape[1])
    state = {"h": torch.zeros(1, 1, model.cfg.hidden)}

    def advance(handles: list[dict[str, torch.Tensor]], tokens: list[int]) -> np.ndarray:
        h = torch.cat([x["h"] for x in handles], dim=1)  # (1, k, H)
        k = len(handles)
        tok = torch.tensor(tokens, dtype=torch.long).unsqueeze(1)
        logits, h_out, _ = model.decode(tok, h, memory.expand(k, -1, -1), mask.expand(k, -1))
        for i, x in enumerate(handles):
            x["h"] = h_out[:, i : i + 1]
        return logits[:, 0].double().numpy()

    ids = beam_search(state, advance, lambda x: dict(x), width, max_len)
    return decode_target(tgt_vocab, ids + [EOS])


def evaluate(model: Any, data: ParallelData, facts: dict[str, Any], baselines: dict[str, Any],
             deadline: float | None = None) -> dict[str, Any]:  # fmt: skip
    """Held-out chrF of greedy and beam decoding beside the baselines; a few examples."""
    src_vocab, tgt_vocab, max_len = facts["source_vocabulary"], facts["target_vocabulary"], facts["max_target"]
    texts, refs = [e.source for e in data.test], [e.target for e in data.test]
    t0 = time.perf_counter()
    hyps = greedy(model, src_vocab, tgt_vocab, texts, max_len)
    metrics: dict[str, Any] = {
        "chrf_greedy": round(chrf(hyps, refs), 2),
        "test_pairs": len(refs),
        "train_pairs": len(data.train),
        "greedy_seconds": round(time.perf_counter() - t0, 1),
    }
    t0 = time.perf_counter()
    subset = beam_subset(len(texts))
    beamed = []
    for i in subset:
        if deadline is not None and time.perf_counter() > deadline:
            break
        beamed.append(beam(model, src_vocab, tgt_vocab, texts[i], max_len))
    subset = subset[: len(beamed)]
    metrics["chrf_beam"] = round(chrf(beamed, [refs[i] for i in subset]), 2)
    metrics["beam_pairs"] = len(subset)
    metrics["chrf_greedy_beam_pairs"] = round(chrf([hyps[i] for i in subset], [refs[i] for i in subset]), 2)
    tm = TranslationMemory([e.source for e in data.train], [e.target for e in data.train])
    metrics["chrf_memory_beam_pairs"] = round(chrf([tm.translate(texts[i]) for i in subset],
                                                   [refs[i] for i in subset]), 2)  # fmt: skip
    metrics["beam_seconds"] = round(time.perf_counter() - t0, 1)
    metrics |= baselines
    metrics["examples"] = [[texts[i], hyps[i], refs[i]] for i in range(0, len(texts), max(1, len(texts) // 8))][:8]
    return metrics


def beam_subset(n: int) -> list[int]:
    step = max(1, -(-n // BEAM_PAIRS))
    return list(range(0, n, step))


def probe_seconds(model: Any, data: ParallelData, facts: dict[str, Any]) -> float:
    """The whole evaluation's time, estimated from a greedy batch and two beam searches (scaled)."""
    texts = [e.source for e in data.test]
    src_vocab, tgt_vocab, max_len = facts["source_vocabulary"], facts["target_vocabulary"], facts["max_target"]
    t0 = time.perf_counter()
    greedy(model, src_vocab, tgt_vocab, texts[:64], max_len)
    g = (time.perf_counter() - t0) * max(1.0, len(texts) / 64)
    t0 = time.perf_counter()
    for t in texts[:2]:
        beam(model, src_vocab, tgt_vocab, t, max_len)
    return g + (time.perf_counter() - t0) / 2 * len(beam_subset(len(texts)))
