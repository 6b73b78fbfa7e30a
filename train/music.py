"""Melody generation on Bach's chorales (soprano lines): next event token, trained by TBPTT.

The training chorales (transposed, see ``data_music``) are joined into one token stream, cut
into lanes and read in windows with the state carried, as the text task does; the loss is
the summed cross-entropy. Evaluation: negative log-likelihood per event (nats; an event is a
note or rest with its duration, bar tokens included in the total) on the held-out tunes,
beside an interpolated 5-gram over the same tokens. ``key_report`` measures whether sampled
melodies keep a key: music21's key analysis of each piece and the share of its notes in that
key's scale, for the model, the 5-gram and the held-out chorales themselves.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from edgernn.runtime.music import allowed_after, decode, kind, vocabulary
from edgernn.train.data_music import Chorale, augmented, load_chorales, split_by_tune
from edgernn.train.model import RecurrentModel
from edgernn.train.textgen import LaneSource, evaluate_bpc, token_loss_sum
from edgernn.train.trainer import Task, TrainConfig

LN2 = math.log(2.0)


def ids_of(pieces: list[list[str]], vocab: list[str]) -> np.ndarray:
    index = {t: i for i, t in enumerate(vocab)}
    return np.array([index[t] for p in pieces for t in p], dtype=np.int64)


def events_in(ids: np.ndarray, vocab: list[str]) -> int:
    return sum(1 for i in ids if kind(vocab[i]) == "note")


def music_task(cfg: TrainConfig, chorales: list[Chorale] | None = None) -> Task:
    """The task on ``chorales`` (every chorale of music21's corpus by default)."""
    vocab = vocabulary()
    train, valid = split_by_tune(chorales if chorales is not None else load_chorales())
    train_ids = ids_of(augmented(train), vocab)
    valid_ids = ids_of([c.tokens for c in valid], vocab)
    per_event = len(valid_ids) / events_in(valid_ids, vocab)  # tokens per event, for nats per event
    from edgernn.train.ngram import ngram_bpc

    base = {f"{k}gram_nll": round(ngram_bpc(train_ids, valid_ids, len(vocab), k) * LN2 * per_event, 4) for k in (3, 5)}

    def evaluate(model: RecurrentModel, deadline: float | None = None) -> dict[str, Any]:  # quick: no deadline
        nll = evaluate_bpc(model, valid_ids, n_lanes=4, window=256)[0] * LN2 * per_event
        return {"valid_nll_per_event": round(nll, 4), "valid_events": events_in(valid_ids, vocab),
                "train_chorales": len(train), "valid_chorales": len(valid), **base}  # fmt: skip

    return Task(
        name="music",
        config=cfg.model_config("tokens", len(vocab), len(vocab)),
        source=LaneSource(train_ids, cfg.batch_size, cfg.seq_len),
        loss_sum=token_loss_sum,
        evaluate=evaluate,
        facts={"name": "music", "vocabulary": vocab, "voice": "soprano", "bpm": 80},
        unit="tokens",
        baselines=base,
    )


def grammar_mask(vocab: list[str]) -> dict[str, np.ndarray]:
    """For each token kind, the boolean mask of tokens allowed after it."""
    kinds = np.array([kind(t) for t in vocab])
    return {k: np.isin(kinds, allowed_after(t)) for k, t in (("note", "rest"), ("dur", "d1"), ("bar", "|"),
                                                               ("start", "<s>"), ("end", "</s>"))}  # fmt: skip


def sample_tokens(next_probs: Any, vocab: list[str], events: int, rng: np.random.Generator) -> list[int]:
    """Draw a piece token by token within the grammar; ``next_probs(history) -> probs``."""
    masks = grammar_mask(vocab)
    ids = [vocab.index("<s>")]
    while events_in(np.array(ids), vocab) < events:
        p = next_probs(ids) * masks[kind(vocab[ids[-1]])]
        if kind(vocab[ids[-1]]) == "dur" and events_in(np.array(ids), vocab) < 8:
            p[vocab.index("</s>")] = 0.0  # a piece of at least 8 events
        i = int(rng.choice(len(vocab), p=p / p.sum()))
        if vocab[i] == "</s>":
            break
        ids.append(i)
    return ids


def model_sampler(model: RecurrentModel, temperature: float = 1.0) -> Any:
    state: dict[str, Any] = {"seen": 0, "h": None}

    @torch.no_grad()
    def next_probs(ids: list[int]) -> np.ndarray:
        x = torch.tensor([ids[state["seen"] :]])
        logits, state["h"] = model(x, state["h"])
        state["seen"] = len(ids)
        return torch.softmax(logits[0, -1] / temperature, -1).double().numpy()

    return next_probs


def ngram_sampler(train_ids: np.ndarray, vocab_size: int, order: int = 5) -> Any:
    """Sampling from the longest context seen in training (a back-off n-gram)."""
    counts: dict[tuple[int, ...], np.ndarray] = {}
    for k in range(order):
        for i in range(k, len(train_ids)):
            ctx = tuple(train_ids[i - k : i])
            counts.setdefault(ctx, np.zeros(vocab_size))[train_ids[i]] += 1

    def next_probs(ids: list[int]) -> np.ndarray:
        for k in range(order - 1, -1, -1):
            c = counts.get(tuple(ids[-k:]) if k else ())
            if c is not None:
                return c / c.sum()
        raise AssertionError("the empty context is always counted")

    return next_probs


def key_share(pitches: list[int]) -> tuple[str, float]:
    """music21's key of a melody and the share of its notes in that key's scale."""
    from music21 import key, note, stream

    s: Any = stream.Stream([note.Note(p, quarterLength=1.0) for p in pitches])
    k = s.analyze("key")
    scale = {p.pitchClass for p in k.getScale().getPitches()} if isinstance(k, key.Key) else set()
    return str(k), sum(p % 12 in scale for p in pitches) / max(len(pitches), 1)


def key_report(model: RecurrentModel, pieces: int = 30, events: int = 48, seed: int = 0) -> dict[str, Any]:
    """Mean in-key share of sampled melodies: model, 5-gram, and the held-out chorales."""
    vocab = vocabulary()
    train, valid = split_by_tune(load_chorales())
    train_ids = ids_of(augmented(train), vocab)
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    gram = ngram_sampler(train_ids, len(vocab))
    for name in ("model", "5gram"):
        shares = []
        for _ in range(pieces):  # the model's sampler carries its state: a fresh one per piece
            ids = sample_tokens(model_sampler(model.eval()) if name == "model" else gram, vocab, events, rng)
            notes = [e.pitch for e in decode(ids, vocab) if e.pitch is not None]
            shares.append(key_share(notes)[1])
        out[name] = round(float(np.mean(shares)), 4)
    out["held-out chorales"] = round(float(np.mean([key_share(c.pitches)[1] for c in valid])), 4)
    out["pieces"], out["events"] = pieces, events
    return out
