"""Language identification as you type: one step per character, probabilities after each.

The model reads characters (``spec.task['vocabulary']``; anything else maps to
``spec.task['unknown_id']``) and emits one logit per language (``spec.task['labels']``)
after every character. The stream carries the state: nothing is recomputed from the start.

Example:
    >>> from edgernn.runtime.apps import load_app
    >>> from edgernn.runtime.apps.langid import LanguageDetector
    >>> det = LanguageDetector(load_app("langid"))
    >>> det.feed("Das ist ein kleines Haus.")[-1][0][0]
    'de'
"""

from __future__ import annotations

import numpy as np

from edgernn.runtime.apps import task_field
from edgernn.runtime.engine import Engine
from edgernn.runtime.errors import SpecError


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    p = np.exp(z - z.max())
    return p / p.sum()


class LanguageDetector:
    """Characters in, the top languages with probabilities out; ``reset()`` between texts."""

    def __init__(self, engine: Engine, top: int = 3) -> None:
        vocab = str(task_field(engine, "vocabulary", str))
        self.labels = [str(x) for x in task_field(engine, "labels", list)]
        unknown = engine.spec.task.get("unknown_id")
        if not isinstance(unknown, int) or isinstance(unknown, bool) or not 0 <= unknown < (engine.vocab_size or 0):
            raise SpecError(f"{engine.source}: spec.task['unknown_id'] must be a token id, got {unknown!r}")
        out = engine.spec.outputs[0].shape[-1]
        if out != len(self.labels):
            raise SpecError(
                f"{engine.source}: output {engine.spec.outputs[0].name!r} has {out} values, "
                f"spec.task['labels'] names {len(self.labels)}"
            )
        self.index = {c: i for i, c in enumerate(vocab)}
        self.unknown_id = unknown
        self.top = top
        self.stream = engine.stream()
        self.probs = np.full(len(self.labels), 1.0 / len(self.labels))

    def ids(self, text: str) -> np.ndarray:
        return np.array([self.index.get(c, self.unknown_id) for c in text], dtype=np.int64)

    def step(self, ch: str) -> list[tuple[str, float]]:
        """Feed one character; the top languages with their probabilities now."""
        self.probs = softmax(self.stream.step(self.index.get(ch, self.unknown_id)))
        return self.ranked()

    def feed(self, text: str) -> list[list[tuple[str, float]]]:
        """Feed ``text`` in one call (chunked inside); the top languages after every character."""
        if not text:
            return []
        logits = self.stream.push(self.ids(text))  # (time, labels)
        z = logits.astype(np.float64)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        self.probs = p[-1]
        return [self.ranked(row) for row in p]

    def ranked(self, probs: np.ndarray | None = None) -> list[tuple[str, float]]:
        p = self.probs if probs is None else probs
        order = np.argsort(-p)[: self.top]
        return [(self.labels[i], float(p[i])) for i in order]

    def reset(self) -> None:
        self.stream.reset()
        self.probs = np.full(len(self.labels), 1.0 / len(self.labels))
