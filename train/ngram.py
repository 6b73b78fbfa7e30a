"""Character n-gram baselines (numpy): interpolated absolute discounting, as in Kneser-Ney's
simplest form. Order 1 is the add-one unigram; every higher order backs off to the one below.
"""

from __future__ import annotations

import numpy as np


def _keys(ids: np.ndarray, order: int, base: int) -> np.ndarray:
    """Integer code of each ``order``-gram ending at positions order-1 .. n-1."""
    n = len(ids) - order + 1
    key = np.zeros(n, dtype=np.int64)
    for k in range(order):
        key = key * base + ids[k : k + n]
    return key


def ngram_bpc(train: np.ndarray, valid: np.ndarray, vocab_size: int, order: int, discount: float = 0.75) -> float:
    """Bits per character on ``valid`` (its first order-1 characters use shorter contexts' model of order)."""
    base = vocab_size
    counts = np.bincount(train, minlength=base).astype(np.float64) + 1.0
    prob = (counts / counts.sum())[valid]  # order 1, add-one
    for k in range(2, order + 1):
        grams, gram_n = np.unique(_keys(train, k, base), return_counts=True)
        ctx_of = grams // base
        ctxs, ctx_start, ctx_types = np.unique(ctx_of, return_index=True, return_counts=True)
        ctx_total = np.add.reduceat(gram_n, ctx_start).astype(np.float64)
        v_key = np.full(len(valid), -1, dtype=np.int64)
        v_key[k - 1 :] = _keys(valid, k, base)
        v_ctx = np.where(v_key >= 0, v_key // base, -1)
        ci = np.clip(np.searchsorted(ctxs, v_ctx), 0, len(ctxs) - 1)
        seen_ctx = (ctxs[ci] == v_ctx) & (v_key >= 0)
        gi = np.clip(np.searchsorted(grams, v_key), 0, len(grams) - 1)
        c = np.where((grams[gi] == v_key) & seen_ctx, gram_n[gi], 0).astype(np.float64)
        tot = np.where(seen_ctx, ctx_total[ci], 1.0)
        lam = np.where(seen_ctx, discount * ctx_types[ci] / tot, 1.0)
        prob = np.where(seen_ctx, np.maximum(c - discount, 0.0) / tot + lam * prob, prob)
    return float(-np.log2(prob).mean())
