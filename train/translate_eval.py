"""Scoring translations: chrF, and the two baselines the model has to beat.

chrF (Popović 2015, as sacrebleu 2 computes it by default): character n-grams of orders 1..6,
whitespace removed; matches, hypothesis and reference n-gram counts summed over the corpus per
order; per order F-beta of its precision and recall with beta = 2 (recall weighs 4x), averaged
over the orders that both sides have n-grams of (the effective order), times 100. Everything is
scored in the normalised form (placeholders as markers), for every system alike.

Baselines: *copy* outputs the source itself; *translation memory* outputs the translation of
the training source most similar to the test source (Dice coefficient over character 3-gram
sets, ties to the first in sorted order; ``runtime.apps.translate_memory``, the lookup the app
of a TM-augmented model runs too).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from edgernn.runtime.apps.translate import BOS, EOS, beam_search, decode_target, encode_source
from edgernn.runtime.apps.translate_memory import TranslationMemory, encoder_text
from edgernn.train.data_translate import ParallelData, split_key

CHRF_ORDER = 6
CHRF_BETA = 2.0
BEAM = 4
SIMILAR = 0.7  # test pairs whose nearest training source has Dice >= this are scored apart too
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


def train_suggestions(tm: TranslationMemory, data: ParallelData) -> list[int]:
    """For each training pair, the nearest OTHER training pair whose split key differs: training sees
    suggestions as the test set does (a test source is never in the memory)."""
    keys = [split_key(e.raw_source) for e in data.train]
    by_key: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        by_key.setdefault(k, []).append(i)
    groups = {k: np.array(v, dtype=np.int64) for k, v in by_key.items()}
    return [tm.nearest(e.source, exclude=groups[k]) for e, k in zip(data.train, keys)]


def memory_of(data: ParallelData) -> TranslationMemory:
    return TranslationMemory([e.source for e in data.train], [e.target for e in data.train])


def baseline_scores(data: ParallelData, tm: TranslationMemory | None = None) -> dict[str, Any]:
    refs = [e.target for e in data.test]
    tm = tm or memory_of(data)
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


def test_inputs(data: ParallelData, facts: dict[str, Any], tm: TranslationMemory) -> tuple[list[str], np.ndarray]:
    """The encoder's input for each test pair (the source, and with ``facts['tm']`` the separator and
    the memory's suggestion) and the Dice similarity of the nearest training source."""
    inputs, similarity = [], np.zeros(len(data.test))
    for j, e in enumerate(data.test):
        scores = tm.scores(e.source)
        i = int(np.argmax(scores))
        similarity[j] = scores[i]
        inputs.append(encoder_text(e.source, tm.targets[i]) if facts.get("tm") else e.source)
    return inputs, similarity


def evaluate(model: Any, data: ParallelData, facts: dict[str, Any], baselines: dict[str, Any],
             deadline: float | None = None, tm: TranslationMemory | None = None) -> dict[str, Any]:  # fmt: skip
    """Held-out chrF of greedy and beam decoding beside the baselines, split by the memory's similarity; examples."""
    src_vocab, tgt_vocab, max_len = facts["source_vocabulary"], facts["target_vocabulary"], facts["max_target"]
    tm = tm or memory_of(data)
    texts, refs = [e.source for e in data.test], [e.target for e in data.test]
    inputs, similarity = test_inputs(data, facts, tm)
    t0 = time.perf_counter()
    hyps = greedy(model, src_vocab, tgt_vocab, inputs, max_len)
    metrics: dict[str, Any] = {
        "chrf_greedy": round(chrf(hyps, refs), 2),
        "test_pairs": len(refs),
        "train_pairs": len(data.train),
        "greedy_seconds": round(time.perf_counter() - t0, 1),
    }
    memory = [tm.translate(t) for t in texts]
    for name, part in (("similar", similarity >= SIMILAR), ("dissimilar", similarity < SIMILAR)):
        idx = np.flatnonzero(part)
        metrics[f"{name}_pairs"] = len(idx)
        metrics[f"chrf_greedy_{name}"] = round(chrf([hyps[i] for i in idx], [refs[i] for i in idx]), 2)
        metrics[f"chrf_memory_{name}"] = round(chrf([memory[i] for i in idx], [refs[i] for i in idx]), 2)
    t0 = time.perf_counter()
    subset = beam_subset(len(texts))
    beamed = []
    for i in subset:
        if deadline is not None and time.perf_counter() > deadline:
            break
        beamed.append(beam(model, src_vocab, tgt_vocab, inputs[i], max_len))
    subset = subset[: len(beamed)]
    metrics["chrf_beam"] = round(chrf(beamed, [refs[i] for i in subset]), 2)
    metrics["beam_pairs"] = len(subset)
    metrics["chrf_greedy_beam_pairs"] = round(chrf([hyps[i] for i in subset], [refs[i] for i in subset]), 2)
    metrics["chrf_memory_beam_pairs"] = round(chrf([memory[i] for i in subset], [refs[i] for i in subset]), 2)
    metrics["beam_seconds"] = round(time.perf_counter() - t0, 1)
    metrics |= baselines
    metrics["examples"] = [[texts[i], hyps[i], refs[i]] for i in range(0, len(texts), max(1, len(texts) // 8))][:8]
    return metrics


def beam_subset(n: int) -> list[int]:
    step = max(1, -(-n // BEAM_PAIRS))
    return list(range(0, n, step))


def probe_seconds(model: Any, data: ParallelData, facts: dict[str, Any], tm: TranslationMemory) -> float:
    """The whole evaluation's time, estimated from a greedy batch and two beam searches (scaled)."""
    texts = [encoder_text(e.source, tm.translate(e.source)) if facts.get("tm") else e.source for e in data.test[:64]]
    src_vocab, tgt_vocab, max_len = facts["source_vocabulary"], facts["target_vocabulary"], facts["max_target"]
    t0 = time.perf_counter()
    greedy(model, src_vocab, tgt_vocab, texts[:64], max_len)
    g = (time.perf_counter() - t0) * max(1.0, len(data.test) / 64)
    t0 = time.perf_counter()
    for t in texts[:2]:
        beam(model, src_vocab, tgt_vocab, t, max_len)
    return g + (time.perf_counter() - t0) / 2 * len(beam_subset(len(data.test)))
