"""English → another language: a character-level GRU encoder–decoder with dot-product attention.

Encoder: the source characters (and EOS) through a bidirectional GRU; its outputs, projected
to the decoder's width, are the *memory* the decoder attends over. The decoder's state at the
start token (BOS) is computed from the memory (``start_state``), so the exported decoder is a
stream whose only per-stream input besides its state is that memory.

Decoder (Luong et al. 2015, without input feeding): the previous target character through a
GRU; its output ``o_t`` queries the memory, ``a_t = softmax(W_q o_t · m_s / sqrt(H))`` over the
real source positions only (the mask sends padded ones to zero weight); the context
``c_t = sum_s a_t,s m_s`` and ``o_t`` give the logits ``W_o tanh(W_c [o_t; c_t])``. The GRU's
state is the only recurrent state, so the decoder is one graph for one step and for a chunk
of given characters, like the other models, with the memory and its mask as two more inputs.

TM-augmented (``tm = true`` in the recipe; Bulte & Tezcan 2019, Xu et al. 2020): the encoder reads
the source, a separator and the translation memory's suggestion (the target of the nearest
training source, ``runtime.apps.translate_memory``), so the decoder can copy what fits and
translate what differs. A training pair's suggestion comes from the nearest *other* training pair
whose split key differs, as a test pair's does (a test source is never in the memory). The
source vocabulary then covers the targets' characters too.

Data: ``data_translate`` (gettext catalogs of installed packages); loss: cross-entropy summed
over every real target character (EOS included).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from edgernn.runtime.apps.translate import BOS, FIRST_CHAR, encode_source, encode_target
from edgernn.runtime.apps.translate_memory import SEPARATOR, TranslationMemory, encoder_text
from edgernn.runtime.spec import ModelConfig
from edgernn.train.data_translate import MAX_SOURCE, MAX_TARGET, ParallelData
from edgernn.train.trainer import Task, TrainBatch, TrainConfig, TrainingError

MIN_CHAR_COUNT = 3  # characters seen fewer times in training are UNK


@dataclass(frozen=True)
class Seq2SeqConfig:
    """The sizes of the encoder–decoder; stored in the checkpoint's task facts."""

    source_size: int  # source token ids (3 reserved + characters)
    target_size: int
    embed: int = 64
    encoder_hidden: int = 128  # per direction
    hidden: int = 256  # decoder state and memory width
    dropout: float = 0.1

    def model_config(self) -> ModelConfig:
        """The decoder described as the stream contract's ModelConfig (its recurrent state)."""
        return ModelConfig(cell="gru", input_kind="tokens", input_size=self.target_size, hidden_size=self.hidden,
                           num_layers=1, output_size=self.target_size, embed_size=self.embed)  # fmt: skip


class Seq2Seq(nn.Module):
    def __init__(self, cfg: Seq2SeqConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.config = cfg.model_config()
        self.src_embed = nn.Embedding(cfg.source_size, cfg.embed)
        self.encoder = nn.GRU(cfg.embed, cfg.encoder_hidden, batch_first=True, bidirectional=True)
        self.memory_proj = nn.Linear(2 * cfg.encoder_hidden, cfg.hidden)
        self.init_proj = nn.Linear(cfg.hidden, cfg.hidden)
        self.tgt_embed = nn.Embedding(cfg.target_size, cfg.embed)
        self.decoder = nn.GRU(cfg.embed, cfg.hidden, batch_first=True)
        self.query = nn.Linear(cfg.hidden, cfg.hidden, bias=False)
        self.combine = nn.Linear(2 * cfg.hidden, cfg.hidden)
        self.out = nn.Linear(cfg.hidden, cfg.target_size)
        self.drop = nn.Dropout(cfg.dropout)

    def encode(self, src: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """src (batch, S) → memory (batch, S, H). ``lengths`` packs padded rows (training)."""
        e = self.drop(self.src_embed(src))  # (batch, S, embed)
        if lengths is None:
            out, _ = self.encoder(e)  # (batch, S, 2 * enc)
        else:
            packed = pack_padded_sequence(e, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = self.encoder(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        return self.memory_proj(out)  # (batch, S, H)

    def start_state(self, memory: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(1, batch, H): the decoder's state at BOS, tanh(W · the mean of the real memory rows)."""
        mean = (memory * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)  # (batch, H)
        return torch.tanh(self.init_proj(mean)).unsqueeze(0)

    def decode(
        self, y_in: torch.Tensor, h: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """y_in (batch, T) previous tokens, h (1, batch, H), memory (batch, S, H), mask (batch, S) 1.0 real
        → logits (batch, T, V), h_out (1, batch, H), attention (batch, T, S).

        A row whose first token is BOS starts afresh: its state is ``start_state`` whatever ``h`` holds,
        so a stream (zero state at creation) needs no state set from outside, only its memory."""
        first = (y_in[:, :1] == BOS).to(memory.dtype).transpose(0, 1).unsqueeze(-1)  # (1, batch, 1)
        h = first * self.start_state(memory, mask) + (1.0 - first) * h
        o, h_out = self.decoder(self.drop(self.tgt_embed(y_in)), h)  # (batch, T, H)
        scores = torch.matmul(self.query(o), memory.transpose(1, 2)) / math.sqrt(self.cfg.hidden)  # (batch, T, S)
        scores = scores + (mask.unsqueeze(1) - 1.0) * 1e9  # padded positions: weight exp(-1e9) = 0
        attn = torch.softmax(scores, dim=-1)
        context = torch.matmul(attn, memory)  # (batch, T, H)
        hidden = torch.tanh(self.combine(torch.cat([o, context], dim=-1)))
        return self.out(self.drop(hidden)), h_out, attn


def build(cfg: Seq2SeqConfig, seed: int) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(cfg)


def source_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    return (torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)).float()  # (batch, S)


def forward_batch(model: nn.Module, batch: TrainBatch) -> torch.Tensor:
    """Teacher forcing: logits (batch, T, V) of every target character given the ones before."""
    net = cast(Seq2Seq, model.module if hasattr(model, "module") else model)  # DistributedDataParallel wraps it
    if batch.source is None or batch.source_lengths is None:
        raise TrainingError("translate: a batch without its source (TrainBatch.source): not from TranslateSource")
    memory = net.encode(batch.source, batch.source_lengths)
    h = torch.zeros(1, memory.shape[0], net.cfg.hidden)
    logits, _, _ = net.decode(batch.x, h, memory, source_mask(batch.source_lengths, batch.source.shape[1]))
    return logits


def loss_sum(logits: torch.Tensor, batch: TrainBatch) -> torch.Tensor:
    per = nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), batch.y.reshape(-1), reduction="none", label_smoothing=0.1
    )
    return (per * batch.mask.reshape(-1)).sum()


def vocabulary(texts: list[str]) -> str:
    counts: dict[str, int] = {}
    for t in texts:
        for c in t:
            counts[c] = counts.get(c, 0) + 1
    return "".join(sorted(c for c, n in counts.items() if n >= MIN_CHAR_COUNT))


class TranslateSource:
    """Shuffled batches of pairs, each epoch's order seeded by (seed, epoch), pools sorted by length."""

    carries_state = False

    def __init__(self, sources: list[np.ndarray], targets: list[np.ndarray], batch: int, seed: int) -> None:
        self.sources, self.targets, self.batch, self.seed = sources, targets, batch, seed
        self.per_epoch = max(1, len(sources) // batch)
        self._epoch, self._order = -1, np.zeros((0, batch), dtype=np.int64)

    def indices(self, step: int) -> np.ndarray:
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            rng = np.random.default_rng([self.seed, epoch])
            perm = rng.permutation(len(self.sources))[: self.per_epoch * self.batch]
            pool = 32 * self.batch
            lengths = np.array([len(self.targets[j]) for j in perm])
            for a in range(0, len(perm), pool):
                perm[a : a + pool] = perm[a : a + pool][np.argsort(lengths[a : a + pool], kind="stable")]
            self._order = perm.reshape(self.per_epoch, self.batch)[rng.permutation(self.per_epoch)]
            self._epoch = epoch
        return self._order[i]

    def global_batch(self, step: int) -> TrainBatch:
        return make_batch([self.sources[j] for j in self.indices(step)], [self.targets[j] for j in self.indices(step)])


def make_batch(sources: list[np.ndarray], targets: list[np.ndarray]) -> TrainBatch:
    """Right-padded sources, decoder inputs (BOS + target[:-1]), targets and their mask."""
    n, s, t = len(sources), max(len(x) for x in sources), max(len(y) for y in targets)
    src = np.zeros((n, s), dtype=np.int64)
    y_in = np.zeros((n, t), dtype=np.int64)
    y = np.zeros((n, t), dtype=np.int64)
    mask = np.zeros((n, t), dtype=np.float32)
    for i, (a, b) in enumerate(zip(sources, targets)):
        src[i, : len(a)] = a
        y_in[i, 1 : len(b)] = b[:-1]  # position 0 holds BOS (= 0)
        y[i, : len(b)], mask[i, : len(b)] = b, 1.0
    lengths = torch.tensor([len(b) for b in targets])
    return TrainBatch(torch.from_numpy(y_in), torch.from_numpy(y), torch.from_numpy(mask), lengths,
                      source=torch.from_numpy(src), source_lengths=torch.tensor([len(a) for a in sources]))  # fmt: skip


def translate_facts(data: ParallelData, src_vocab: str, tgt_vocab: str, s2s: Seq2SeqConfig,
                    tm: TranslationMemory | None = None) -> dict[str, Any]:  # fmt: skip
    """The task facts; a TM-augmented model (``tm``) reads source + separator + suggestion, so its
    memory's length limit is the longest source and the longest suggestion (a training target)."""
    facts: dict[str, Any] = {
        "name": "translate",
        "source_lang": "en",
        "target_lang": data.lang,
        "source_vocabulary": src_vocab,
        "target_vocabulary": tgt_vocab,
        "max_source": MAX_SOURCE + 1 + (MAX_TARGET + 1 if tm is not None else 0),  # the memory's length limit
        "max_target": MAX_TARGET + 1,
        "seq2seq": s2s.__dict__,
        "catalogs": list(data.kinds),
        "pairs": {"train": len(data.train), "test": len(data.test), **{f"from_{k}": v for k, v in data.counts.items()}},
        "data_digest": data.digest(),
    }
    if tm is not None:
        facts |= {"tm": True, "separator": SEPARATOR, "tm_digest": tm.digest()}
    return facts


def translate_task(cfg: TrainConfig) -> Task:
    from edgernn.train.data_translate import load_pairs
    from edgernn.train.translate_eval import (
        baseline_scores,
        evaluate,
        memory_of,
        probe_seconds,
        train_suggestions,
    )

    data = load_pairs(cfg.lang or "de", cfg.catalogs or ("django",))
    tm = memory_of(data)
    inputs = [e.source for e in data.train]
    if cfg.tm:  # the encoder reads source + separator + the nearest other training pair's target
        inputs = [encoder_text(x, tm.targets[j]) for x, j in zip(inputs, train_suggestions(tm, data))]
        src_vocab = vocabulary(inputs + [e.target for e in data.train]).replace(SEPARATOR, "") + SEPARATOR
    else:
        src_vocab = vocabulary(inputs)
    tgt_vocab = vocabulary([e.target for e in data.train])
    s2s = Seq2SeqConfig(len(src_vocab) + FIRST_CHAR, len(tgt_vocab) + FIRST_CHAR, cfg.embed_size,
                        cfg.hidden_size // 2, cfg.hidden_size, cfg.dropout)  # fmt: skip
    sources = [encode_source(src_vocab, x) for x in inputs]
    targets = [encode_target(tgt_vocab, e.target) for e in data.train]
    facts = translate_facts(data, src_vocab, tgt_vocab, s2s, tm if cfg.tm else None)
    baselines = baseline_scores(data, tm)
    return Task(
        name="translate",
        config=s2s.model_config(),
        source=TranslateSource(sources, targets, cfg.batch_size, cfg.seed),
        loss_sum=loss_sum,
        evaluate=lambda model, deadline: evaluate(model, data, facts, baselines, deadline, tm),
        facts=facts,
        unit="chars",
        baselines=baselines,
        eval_probe=lambda model: probe_seconds(model, data, facts, tm),
        eval_partial=True,  # beam search stops at the deadline and says how many pairs it scored
        build=lambda c: build(s2s, c.seed),
        forward=forward_batch,
    )
