"""Language identification data: Django's translation catalogs, read with ``gettext``.

Each language's strings are the ``msgstr`` of every ``django.mo`` under ``django/conf/locale``
and the contrib apps' ``locale`` folders; English strings are the ``msgid`` s. Placeholders
(``%(name)s``, ``%s``, ``{name}``) and HTML tags are removed, whitespace collapsed; a
translation identical to its English msgid is dropped. The split is by message id (a hash
of the msgid), so no message is in both train and test.
"""

from __future__ import annotations

import gettext
import hashlib
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LANGUAGES = (
    "en", "de", "fr", "es", "it", "pt", "nl", "sv", "pl", "cs",
    "ru", "el", "tr", "fi", "hu", "ja", "zh_Hans", "ar", "he", "ko",
)  # fmt: skip
# Languages of the same catalogs the model is never trained on: "unknown" is measured on them.
UNSEEN_LANGUAGES = ("da", "nb", "ca", "ro", "sk", "uk", "bg", "id", "hi", "th")
_PLACEHOLDER = re.compile(r"%\([^)]*\)[-#0 +]*\d*(?:\.\d+)?[sdifrxXeEgGc]|%[-#0 +]*\d*(?:\.\d+)?[sdifrxXc]|\{[^}]*\}")
_HTML = re.compile(r"<[^>]*>|&[a-zA-Z]+;|&#\d+;")
_SPACE = re.compile(r"\s+")
TEST_SHARE = 5  # one message id in five goes to test


def clean(text: str) -> str:
    """Remove placeholders and HTML, collapse whitespace."""
    text = _HTML.sub(" ", _PLACEHOLDER.sub(" ", text))
    return _SPACE.sub(" ", text).strip(" .:,;-")


def _django_root() -> Path:
    try:
        import django
    except ImportError:
        from edgernn.train.trainer import MissingDataError

        raise MissingDataError("the langid task reads Django's catalogs: pip install Django") from None
    return Path(django.__file__).parent


def _is_test(msgid: str) -> bool:
    return int(hashlib.sha1(msgid.encode()).hexdigest()[:8], 16) % TEST_SHARE == 0


def is_calibration(text: str) -> bool:
    """Half of the test strings (by a hash of the text) calibrate "unknown"; the other half report it."""
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) % 2 == 0


def unseen_strings(per_language: int = 400) -> dict[str, list[str]]:
    """Up to ``per_language`` strings (all of train and test, by a hash order) of each unseen language."""
    out = {}
    for lang in UNSEEN_LANGUAGES:
        data = load_catalog_strings((lang,))
        texts = sorted({t for t, _ in data.train + data.test}, key=lambda t: hashlib.sha1(t.encode()).hexdigest())
        out[lang] = texts[:per_language]
    return out


@dataclass(frozen=True)
class LangData:
    labels: tuple[str, ...]
    train: list[tuple[str, int]]  # (text, label id)
    test: list[tuple[str, int]]


def load_catalog_strings(languages: tuple[str, ...] = LANGUAGES) -> LangData:
    """Every (text, language) pair, split by message id."""
    root = _django_root()
    pairs: dict[tuple[str, int], bool] = {}  # (text, label) -> is_test
    for label, lang in enumerate(languages):
        code = "de" if lang == "en" else lang  # English comes from the msgids of any catalog
        for mo in sorted(root.glob(f"**/locale/{code}/LC_MESSAGES/django.mo")):
            with open(mo, "rb") as fh:
                catalog = gettext.GNUTranslations(fh)._catalog  # type: ignore[attr-defined]
            for key, msgstr in catalog.items():
                msgid = key[0] if isinstance(key, tuple) else key
                if not msgid:
                    continue
                source = clean(msgid)
                text = source if lang == "en" else clean(msgstr)
                if len(text) < 1 or not any(ch.isalpha() for ch in text):
                    continue
                if lang != "en" and text == source:
                    continue
                pairs.setdefault((text, label), _is_test(msgid))
    train = [p for p, t in pairs.items() if not t]
    test = [p for p, t in pairs.items() if t]
    return LangData(tuple(languages), sorted(train), sorted(test))


@dataclass(frozen=True)
class CharVocab:
    """Characters seen at least ``min_count`` times in training; others map to ``unknown_id``."""

    chars: str

    @property
    def unknown_id(self) -> int:
        return len(self.chars)

    @property
    def size(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.chars)}
        return np.array([index.get(c, self.unknown_id) for c in text], dtype=np.int64)


def build_vocab(texts: list[str], min_count: int = 2) -> CharVocab:
    counts = Counter(c for t in texts for c in t)
    return CharVocab("".join(sorted(c for c, n in counts.items() if n >= min_count)))


class TrigramNaiveBayes:
    """Bag of character trigrams (two leading spaces of padding), add-``alpha`` smoothing.

    ``predict_prefixes`` gives the prediction after every character, as the streaming model does.
    """

    def __init__(self, data: list[tuple[str, int]], n_labels: int, alpha: float = 0.5) -> None:
        self.n = n_labels
        self.counts: dict[str, np.ndarray] = {}
        totals = np.zeros(n_labels)
        prior = np.zeros(n_labels)
        for text, label in data:
            prior[label] += 1
            for g in self._grams(text):
                self.counts.setdefault(g, np.zeros(n_labels))[label] += 1
                totals[label] += 1
        space = len(self.counts) + 1
        self.log_prior = np.log(prior / prior.sum())
        self.unseen = np.log(alpha / (totals + alpha * space))
        self.log_p = {g: np.log((c + alpha) / (totals + alpha * space)) for g, c in self.counts.items()}

    @staticmethod
    def _grams(text: str) -> list[str]:
        padded = "  " + text
        return [padded[i : i + 3] for i in range(len(text))]

    def predict_prefixes(self, text: str) -> np.ndarray:
        """(len(text),) the label predicted after each character."""
        rows = np.stack([self.log_p.get(g, self.unseen) for g in self._grams(text)])  # (time, labels)
        return np.argmax(np.cumsum(rows, axis=0) + self.log_prior, axis=1)


def accuracy_table(predictions: list[np.ndarray], labels: list[int], at: tuple[int, ...] = (5, 10, 20, 40)) -> dict:
    """Accuracy after n characters (strings at least n long), on whole strings, and on strings of 40+."""
    out: dict[str, float | int] = {}
    for n in at:
        hits = [p[n - 1] == y for p, y in zip(predictions, labels) if len(p) >= n]
        out[f"acc@{n}"] = round(float(np.mean(hits)), 4) if hits else math.nan
    out["acc_whole"] = round(float(np.mean([p[-1] == y for p, y in zip(predictions, labels)])), 4)
    long = [p[-1] == y for p, y in zip(predictions, labels) if len(p) >= 40]
    out["acc_whole_40plus"] = round(float(np.mean(long)), 4) if long else math.nan
    out["test_strings"] = len(labels)
    return out
