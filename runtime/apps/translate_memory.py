"""A translation memory: the training pairs, and the nearest training source of a new line.

Similarity is the Dice coefficient of the two strings' character 3-gram sets (lower-cased, a
space added at each end); ties go to the first pair in the memory's order. It is both the
baseline the translate model is scored against (its answer is the nearest source's
translation) and, for a TM-augmented model (``spec.task.tm``), the suggestion the encoder
reads: ``source + SEPARATOR + suggestion`` (Bulte & Tezcan 2019, "neural fuzzy repair").

The shipped memory is a gzip'd JSON file beside the decoder (``<stem>-memory.json.gz``):
``{"version": 1, "sources": [...], "targets": [...], "digest": sha256}``, the sources in the
normalised form (placeholders as markers), the digest over ``source\\ttarget`` lines.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgernn.runtime.errors import ModelLoadError

SEPARATOR = "\ue0ff"  # between the source and the suggestion in a TM-augmented encoder's input
MEMORY_VERSION = 1


def grams(text: str) -> set[str]:
    padded = f" {text.lower()} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


def pairs_digest(sources: Sequence[str], targets: Sequence[str]) -> str:
    text = "\n".join(f"{s}\t{t}" for s, t in zip(sources, targets))
    return hashlib.sha256(text.encode()).hexdigest()


class TranslationMemory:
    """The nearest source by 3-gram Dice similarity; its translation is the answer."""

    def __init__(self, sources: Sequence[str], targets: Sequence[str]) -> None:
        if len(sources) != len(targets) or not sources:
            raise ValueError(f"translation memory: {len(sources)} sources for {len(targets)} targets (need >= 1 pair)")
        self.sources, self.targets = list(sources), list(targets)
        self.sizes = np.array([len(grams(s)) for s in sources], dtype=np.float64)
        postings: dict[str, list[int]] = {}
        for i, s in enumerate(sources):
            for g in grams(s):
                postings.setdefault(g, []).append(i)
        self.postings = {g: np.array(ids, dtype=np.int64) for g, ids in postings.items()}

    def __len__(self) -> int:
        return len(self.sources)

    def scores(self, text: str) -> np.ndarray:
        """(len(self),) Dice similarity of ``text`` to every source."""
        g = grams(text)
        hits = [self.postings[x] for x in g if x in self.postings]
        shared = np.bincount(np.concatenate(hits), minlength=len(self.sizes)) if hits else np.zeros(len(self.sizes))
        return 2 * shared / (self.sizes + len(g))

    def nearest(self, text: str, exclude: np.ndarray | None = None) -> int:
        """Index of the most similar source (the first on ties); ``exclude``: indices never chosen."""
        s = self.scores(text)
        if exclude is not None and len(exclude):
            s[exclude] = -1.0
        return int(np.argmax(s))

    def translate(self, text: str) -> str:
        return self.targets[self.nearest(text)]

    def digest(self) -> str:
        return pairs_digest(self.sources, self.targets)

    def save(self, path: str | os.PathLike[str]) -> int:
        """Write the memory file (gzip'd JSON, ``mtime`` 0 so it is the same bytes every time); its size."""
        doc = {"version": MEMORY_VERSION, "sources": self.sources, "targets": self.targets, "digest": self.digest()}
        data = gzip.compress(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode(), 9, mtime=0)
        Path(path).write_bytes(data)
        return len(data)

    @classmethod
    def load(cls, path: str | os.PathLike[str], digest: str | None = None) -> TranslationMemory:
        """Read a memory file; ModelLoadError naming the file when it is missing, damaged, of another
        version, or (``digest`` given) not the memory the model was trained with."""
        path = Path(path)
        try:
            doc = json.loads(gzip.decompress(path.read_bytes()))
        except FileNotFoundError:
            raise ModelLoadError(f"{path}: the translation memory of this model is missing "
                                 "(it is written beside the decoder by the export)") from None  # fmt: skip
        except (OSError, EOFError, zlib.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelLoadError(f"{path}: not a readable translation memory (gzip'd JSON): {exc}") from None
        if not isinstance(doc, dict) or doc.get("version") != MEMORY_VERSION:
            got = doc.get("version") if isinstance(doc, dict) else type(doc).__name__
            raise ModelLoadError(f"{path}: translation memory version {got!r}, expected {MEMORY_VERSION}")
        sources, targets = doc.get("sources"), doc.get("targets")
        if not (isinstance(sources, list) and isinstance(targets, list) and sources and len(sources) == len(targets)
                and all(isinstance(x, str) for x in sources + targets)):  # fmt: skip
            raise ModelLoadError(f"{path}: 'sources' and 'targets' must be equally long non-empty lists of strings")
        got_digest = pairs_digest(sources, targets)
        if got_digest != doc.get("digest") or (digest is not None and got_digest != digest):
            raise ModelLoadError(f"{path}: the pairs do not match their digest (damaged, or another model's memory)")
        return cls(sources, targets)


def encoder_text(source: str, suggestion: str) -> str:
    """What a TM-augmented encoder reads: the (normalised) source, the separator, the suggestion."""
    return f"{source}{SEPARATOR}{suggestion}"
