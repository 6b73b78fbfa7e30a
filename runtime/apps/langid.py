"""Language identification as you type: one step per character, probabilities after each.

The model reads characters (``spec.task['vocabulary']``; anything else maps to
``spec.task['unknown_id']``) and emits one logit per language (``spec.task['labels']``)
after every character. The stream carries the state: nothing is recomputed from the start.

"unknown". A model trained on 20 languages still gives one of them for any text. The model's
facts may carry two calibrated limits (written at training time, see ``train/langid.py``):
``unknown_below``, the top probability under which the answer is "unknown", and
``unknown_chars_above``, the share of characters outside the vocabulary above which the
text is in a script the model never saw. ``is_unknown`` is the one rule, used by the app
and by the training code that measures it. A model without them never answers "unknown".

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
from edgernn.runtime.engine import Engine, Stream
from edgernn.runtime.errors import SpecError

UNKNOWN = "unknown"
NAMES = {
    "en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "pt": "Portuguese",
    "nl": "Dutch", "sv": "Swedish", "pl": "Polish", "cs": "Czech", "ru": "Russian", "el": "Greek",
    "tr": "Turkish", "fi": "Finnish", "hu": "Hungarian", "ja": "Japanese", "zh_Hans": "Chinese (simplified)",
    "ar": "Arabic", "he": "Hebrew", "ko": "Korean", "da": "Danish", "nb": "Norwegian (Bokmål)",
    "ca": "Catalan", "ro": "Romanian", "sk": "Slovak", "uk": "Ukrainian", "bg": "Bulgarian",
    "id": "Indonesian", "hi": "Hindi", "th": "Thai",
}  # fmt: skip


def is_unknown(top_prob: float, unknown_share: float, below: float | None, chars_above: float | None) -> bool:
    """The answer is "unknown": the top probability under ``below``, or more than ``chars_above``
    of the characters outside the vocabulary (None: that limit is not set)."""
    return (below is not None and top_prob < below) or (chars_above is not None and unknown_share > chars_above)


def _limit(engine: Engine, key: str) -> float | None:
    value = engine.spec.task.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise SpecError(f"{engine.source}: spec.task[{key!r}] must be a number in [0, 1], got {value!r}")
    return float(value)


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
        self.unknown_below = _limit(engine, "unknown_below")
        self.unknown_chars_above = _limit(engine, "unknown_chars_above")
        self.top = top
        self.stream = engine.stream()
        self.probs = np.full(len(self.labels), 1.0 / len(self.labels))
        self.chars = self.foreign = 0  # characters read since reset, and those outside the vocabulary

    @property
    def says_unknown(self) -> bool:
        """Whether this model can answer "unknown" (its facts carry a calibrated limit)."""
        return self.unknown_below is not None or self.unknown_chars_above is not None

    def ids(self, text: str) -> np.ndarray:
        return np.array([self.index.get(c, self.unknown_id) for c in text], dtype=np.int64)

    def step(self, ch: str) -> list[tuple[str, float]]:
        """Feed one character; the top languages with their probabilities now."""
        i = self.index.get(ch, self.unknown_id)
        self.probs = softmax(self.stream.step(i))
        self.chars += 1
        self.foreign += i == self.unknown_id
        return self.ranked()

    def answer(self) -> tuple[str, float]:
        """(the language, its probability) for the text so far, or ("unknown", the top probability)."""
        best = int(np.argmax(self.probs))
        share = self.foreign / self.chars if self.chars else 0.0
        p = float(self.probs[best])
        unknown = is_unknown(p, share, self.unknown_below, self.unknown_chars_above)
        return (UNKNOWN if unknown or not self.chars else self.labels[best]), p

    def mark(self) -> tuple[Stream, np.ndarray, int, int]:
        """Everything ``back`` needs to return to this point (the stream is forked, not copied back)."""
        return self.stream.fork(), self.probs, self.chars, self.foreign

    def back(self, mark: tuple[Stream, np.ndarray, int, int]) -> None:
        self.stream, self.probs, self.chars, self.foreign = mark

    def feed(self, text: str) -> list[list[tuple[str, float]]]:
        """Feed ``text`` in one call (chunked inside); the top languages after every character."""
        if not text:
            return []
        ids = self.ids(text)
        logits = self.stream.push(ids)  # (time, labels)
        self.chars += len(ids)
        self.foreign += int((ids == self.unknown_id).sum())
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
        self.chars = self.foreign = 0


def describe(engine: Engine) -> str:
    """The model's languages (code and name, a line each) and when it answers "unknown"."""
    det = LanguageDetector(engine)
    lines = [f"{len(det.labels)} languages ({engine.source}):"]
    lines += [f"  {code:<8} {NAMES.get(code, code)}" for code in det.labels]
    rules = []
    if det.unknown_below is not None:
        rules.append(f"its top probability is below {det.unknown_below:.2f} (calibrated at training time)")
    if det.unknown_chars_above is not None:
        rules.append(f"more than {det.unknown_chars_above:.0%} of the characters are outside its vocabulary")
    if rules:
        lines.append('It answers "unknown" when ' + ", or when ".join(rules) + ".")
    else:
        lines.append('This model has no calibrated limit: it never answers "unknown" (any text gets one of these).')
    return "\n".join(lines)
