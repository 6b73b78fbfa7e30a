"""Next-word suggestions, as a phone keyboard makes them, from a character model.

One stream carries everything typed so far. After each character the keyboard runs a small
beam search over characters: every beam is a ``Stream.fork()`` of its parent (the state is
copied, the typed prefix is never re-run), extended by one character per round, and finished
when it emits a word boundary. The current word's completions come first; the next word is
searched from the stream of the best completion, stepped past its boundary.

Only words seen in the training text are offered when the model ships its word list
(``spec.task['words']``, written at training time from the same ``words_in`` as here): a beam
whose characters start no known word is dropped, and a finished word must be a known one.
A model without the list may offer non-words, and ``Keyboard.known_words`` says so (None).

Example:
    >>> from edgernn.runtime.apps import load_app
    >>> from edgernn.runtime.apps.suggest import Keyboard
    >>> kb = Keyboard(load_app("textgen"))
    >>> kb.type("And God sa")
    >>> [s.word for s in kb.completions()]
    ['said', 'saw', 'say']
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

import numpy as np

from edgernn.runtime.apps.textgen import encode, vocabulary
from edgernn.runtime.engine import Engine, Stream
from edgernn.runtime.errors import SpecError

UNDO = 64  # typed characters that backspace can undo


@dataclass(frozen=True)
class Suggestion:
    """A word and the model's probability of it (its characters and the boundary after it)."""

    word: str
    prob: float


@dataclass
class _Beam:
    score: float  # log-probability of the characters so far
    chars: str  # characters of the word so far (separators before it are not kept)
    stream: Stream  # state after those characters
    logp: np.ndarray  # log-probabilities of the next character


@dataclass(frozen=True)
class _Done:
    word: str
    score: float
    stream: Stream  # state before the boundary character
    boundary: int  # the boundary character's id


def is_word_char(c: str) -> bool:
    return c.isalnum() or c in "'-"


def words_in(text: str) -> list[str]:
    """The distinct words of ``text`` (maximal runs of word characters), sorted: the word list
    a textgen model ships in ``spec.task['words']``."""
    separators = "".join(sorted(c for c in set(text) if not is_word_char(c)))
    if not separators:
        return [text] if text else []
    return sorted(set(re.split("[" + re.escape(separators) + "]+", text)) - {""})


class Lexicon:
    """The known words and every prefix of them: what the beam search may spell."""

    def __init__(self, words: list[str]) -> None:
        self.words = frozenset(words)
        self.prefixes = frozenset(w[:i] for w in words for i in range(len(w) + 1))

    def __len__(self) -> int:
        return len(self.words)


def lexicon_of(engine: Engine) -> Lexicon | None:
    """The model's word list (``spec.task['words']``) as a Lexicon; None when the model has none."""
    words = engine.spec.task.get("words")
    if words is None:
        return None
    if not isinstance(words, list) or not words or not all(isinstance(w, str) and w for w in words):
        raise SpecError(f"{engine.source}: spec.task['words'] must be a non-empty list of words")
    return Lexicon(words)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = z - z.max()
    return z - np.log(np.exp(z).sum())


class Keyboard:
    """Typed characters in; the top completions of the current word and of the next word out."""

    def __init__(self, engine: Engine, beam: int = 6, max_chars: int = 16) -> None:
        self.vocab = vocabulary(engine)
        self.word_char = np.array([is_word_char(c) for c in self.vocab])
        self.stream = engine.stream()  # every stream forks (runtime.protocol.StreamLike), on any device
        self.beam = beam
        self.max_chars = max_chars
        self.lexicon = lexicon_of(engine)
        self.word = ""  # the current (partial) word
        self._logp: np.ndarray | None = None
        self._undo: deque[tuple[Stream, str, np.ndarray | None]] = deque(maxlen=UNDO)

    def type(self, text: str) -> None:
        """Feed typed ``text``: one step per character, state carried."""
        for i in encode(self.vocab, text, "typed text"):
            self._undo.append((self.stream.fork(), self.word, self._logp))
            self._logp = log_softmax(self.stream.step(i))
            ch = self.vocab[i]
            self.word = self.word + ch if is_word_char(ch) else ""

    def backspace(self) -> None:
        """Undo the last typed character (up to ``UNDO`` of them): back to the fork taken before it."""
        if self._undo:
            self.stream, self.word, self._logp = self._undo.pop()

    def reset(self) -> None:
        self.stream.reset()
        self.word, self._logp = "", None
        self._undo.clear()

    @property
    def known_words(self) -> int | None:
        """How many words the completions are limited to (the training text's); None: no limit."""
        return len(self.lexicon) if self.lexicon is not None else None

    def word_is_known(self) -> bool:
        """Whether some known word starts with the current partial word (always True without a list)."""
        return self.lexicon is None or self.word in self.lexicon.prefixes

    def completions(self, k: int = 3) -> list[Suggestion]:
        """The ``k`` most likely ways to finish the current word (whole words, typed part included)."""
        return [Suggestion(d.word, float(np.exp(d.score))) for d in self._complete(k)]

    def suggest(self, k: int = 3) -> tuple[list[Suggestion], list[Suggestion]]:
        """(completions of the current word, the next words after the most likely completion)."""
        done = self._complete(k)
        if not done:
            return [], []
        best = done[0]
        after = best.stream.fork()
        logp = log_softmax(after.step(best.boundary))
        nxt = _search(_Beam(0.0, "", after, logp), "", self._spell, self.beam, self.max_chars, k)
        return (
            [Suggestion(d.word, float(np.exp(d.score))) for d in done],
            [Suggestion(d.word, float(np.exp(d.score))) for d in nxt],
        )

    def _complete(self, k: int) -> list[_Done]:
        if self._logp is None or not self.word_is_known():
            return []
        root = _Beam(0.0, "", self.stream.fork(), self._logp)
        return _search(root, self.word, self._spell, self.beam, self.max_chars, k)

    @property
    def _spell(self) -> _Spelling:
        return _Spelling(self.vocab, self.word_char, self.lexicon)


@dataclass(frozen=True)
class _Spelling:
    """What the search may write: the characters, which of them make words, the known words."""

    vocab: str
    word_char: np.ndarray
    lexicon: Lexicon | None

    def allowed(self, stem: str, logp: np.ndarray) -> np.ndarray:
        """``logp`` with -inf where the next character would spell no known word after ``stem``."""
        if self.lexicon is None:
            return logp
        ends = stem == "" or stem in self.lexicon.words  # a boundary: before a word, or after a known one
        known = self.lexicon.prefixes
        ok = [(stem + c) in known if w else ends for c, w in zip(self.vocab, self.word_char)]
        return np.where(ok, logp, -np.inf)


def _search(root: _Beam, prefix: str, spell: _Spelling, width: int, max_chars: int, k: int) -> list[_Done]:
    """Beam search over characters until ``k`` words have ended better than any live beam."""
    vocab, word_char = spell.vocab, spell.word_char
    vocab_size = len(vocab)
    beams: list[_Beam] = [root]
    done: dict[str, _Done] = {}  # a word ended by different boundaries (" ", ",", ".") counts once
    for _ in range(max_chars):
        cands: list[tuple[float, int, int]] = []  # (score, beam index, char id)
        for b, beam in enumerate(beams):
            logp = spell.allowed(prefix + beam.chars, beam.logp)
            top = np.argpartition(logp, -min(width, vocab_size))[-width:]
            cands.extend((beam.score + float(logp[i]), b, int(i)) for i in top if np.isfinite(logp[i]))
        cands.sort(reverse=True)
        grow: list[tuple[float, str, Stream, int]] = []  # (score, chars, forked stream, char id to step)
        for score, b, i in cands:  # a finished word takes no beam slot; live beams take up to ``width``
            if len(grow) == width:
                break
            parent = beams[b]
            if word_char[i]:  # (``spell.allowed`` kept only characters that can still make a known word)
                grow.append((score, parent.chars + vocab[i], parent.stream.fork(), i))
            elif parent.chars or prefix:
                word = prefix + parent.chars
                old = done.get(word)
                best = old if old is not None and old.score >= score else _Done(word, score, parent.stream, i)
                total = score if old is None else float(np.logaddexp(old.score, score))
                done[word] = _Done(word, total, best.stream, best.boundary)
            else:  # a separator before the word starts: absorb it
                grow.append((score, "", parent.stream.fork(), i))
        # each surviving beam advances by its character; one step each (at this width, faster than
        # engine.step_many, whose per-call bookkeeping costs more than the batching saves)
        beams = [_Beam(score, chars, st, log_softmax(st.step(i))) for score, chars, st, i in grow]
        ranked = sorted(done.values(), key=lambda d: d.score, reverse=True)
        if not beams or (len(ranked) >= k and ranked[k - 1].score >= max(beam.score for beam in beams)):
            break
    return sorted(done.values(), key=lambda d: d.score, reverse=True)[:k]
