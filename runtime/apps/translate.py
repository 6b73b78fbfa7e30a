"""Translation with an attention encoder–decoder: placeholders, then (below) the streaming decoder.

Placeholders (``%(name)s``, ``%s``, ``%d``, ``{0}``, ``{name}``, ``%1``) are not translated:
each distinct one of a source line becomes a marker character (U+E000, U+E001, ... in order of
first appearance) before the model sees it, and the markers of the output are put back as the
source's placeholders. Training data goes through the same function, so the model learns to
copy markers, never their spelling.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np

from edgernn.runtime.apps import check_app, shipped_model, task_field
from edgernn.runtime.apps.translate_memory import SEPARATOR, TranslationMemory, encoder_text
from edgernn.runtime.engine import Engine, Stream
from edgernn.runtime.errors import InputError, ModelLoadError, SpecError
from edgernn.runtime.session import SessionProfile

H = TypeVar("H")  # a hypothesis handle of the beam search (a forked stream)
MARKER_BASE = 0xE000  # Unicode private use area
MAX_PLACEHOLDERS = 32
PLACEHOLDER = re.compile(
    r"%\([^)\s]{1,40}\)[-#0 +]*\d*(?:\.\d+)?[sdifrxXeEgGc]"  # %(name)s
    r"|%(?:\d+\$)?[-#0 +']*(?:\*|\d+)?(?:\.(?:\*|\d+))?(?:hh|h|ll|l|L|q|j|z|t)?[diouxXeEfFgGcspm]"  # %s %5.2f %lu
    r"|\{[A-Za-z0-9_.]{0,40}\}"  # {0} {name}
    r"|%\d"  # %1 (Qt)
)
_NAMED = re.compile(r"^%\(|^%\d+\$|^%\d$|^\{[A-Za-z0-9_.]+\}$")  # named or numbered: the same text is the same argument


def is_marker(ch: str) -> bool:
    return MARKER_BASE <= ord(ch) < MARKER_BASE + MAX_PLACEHOLDERS


def to_markers(text: str, places: tuple[str, ...] = ()) -> tuple[str | None, tuple[str, ...]]:
    """``text`` with each placeholder as a marker, and the placeholders in marker order.

    A named or numbered placeholder (``%(n)s``, ``{0}``, ``%1$s``) is one marker wherever it
    appears; the k-th unnamed one (``%s``, ``{}``) is argument k, its own marker.

    ``places`` are placeholders already given markers (a source's, when marking its
    translation); new ones are appended. None when the text already holds marker characters
    or has more than ``MAX_PLACEHOLDERS`` distinct placeholders. ``%%`` stays as it is.
    """
    if any(is_marker(ch) for ch in text):
        return None, places
    found = list(places)
    out: list[str] = []
    at, unnamed = 0, 0
    for m in PLACEHOLDER.finditer(text.replace("%%", "\0\0")):
        ph = m.group(0)
        if not _NAMED.search(ph):  # %s, %d, {}: the k-th one of a line is argument k
            ph, unnamed = f"{ph}\0{unnamed}", unnamed + 1
        if ph not in found:
            found.append(ph)
        out += [text[at : m.start()], chr(MARKER_BASE + found.index(ph))]
        at = m.end()
    out.append(text[at:])
    if len(found) > MAX_PLACEHOLDERS:
        return None, places
    return "".join(out), tuple(found)


def from_markers(text: str, places: tuple[str, ...]) -> str:
    """Markers back to the placeholders they stand for; a marker with no placeholder is dropped."""
    out = []
    for ch in text:
        if is_marker(ch):
            i = ord(ch) - MARKER_BASE
            out.append(places[i].split("\0")[0] if i < len(places) else "")
        else:
            out.append(ch)
    return "".join(out)


# -- tokens: characters of the spec's vocabularies, after three reserved ids
PAD = 0  # source padding; the target side's start token (the decoder's first input)
BOS = 0
EOS = 1  # end of the source line (always appended) and of the translation
UNK = 2  # a character outside the vocabulary
FIRST_CHAR = 3


def encode_source(vocabulary: str, text: str) -> np.ndarray:
    """(len(text) + 1,) int64: each character's id (UNK when the vocabulary lacks it), then EOS."""
    index = {c: i + FIRST_CHAR for i, c in enumerate(vocabulary)}
    return np.array([index.get(c, UNK) for c in text] + [EOS], dtype=np.int64)


def encode_target(vocabulary: str, text: str) -> np.ndarray:
    """(len(text) + 1,) int64: the character ids, then EOS (teacher forcing's targets)."""
    return encode_source(vocabulary, text)


def decode_target(vocabulary: str, ids: Iterable[int]) -> str:
    """Characters of ``ids`` up to the first EOS; reserved ids other than EOS are dropped."""
    out = []
    for i in ids:
        if i == EOS:
            break
        if i >= FIRST_CHAR and i - FIRST_CHAR < len(vocabulary):
            out.append(vocabulary[i - FIRST_CHAR])
    return "".join(out)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def beam_search(
    first: H,
    advance: Callable[[list[H], list[int]], np.ndarray],
    fork: Callable[[H], H],
    beam: int,
    max_len: int,
) -> list[int]:
    """The most likely token ids (EOS excluded) by beam search over hypothesis handles.

    ``advance(handles, tokens)`` feeds each handle its token (in place) and returns the next
    logits, (len(handles), vocabulary); ``fork(handle)`` copies one (a forked stream). Finished
    hypotheses are ranked by log-probability per token (EOS counted), so short outputs win
    only on their merit. The search stops once ``beam`` hypotheses have finished and every live one
    scores below the best finished (per token, so far), or at ``max_len``.
    """
    live: list[tuple[float, list[int], H]] = [(0.0, [], first)]
    done: list[tuple[float, list[int]]] = []
    for _ in range(max_len):
        logp = log_softmax(advance([h for _, _, h in live], [seq[-1] if seq else BOS for _, seq, _ in live]))
        cands = []
        for i, (score, _seq, _) in enumerate(live):
            top = np.argsort(-logp[i])[: beam + 1]
            cands += [(score + float(logp[i, k]), i, int(k)) for k in top]
        cands.sort(key=lambda c: -c[0])
        nxt: list[tuple[float, list[int], H]] = []
        used: set[int] = set()
        for score, i, k in cands:
            seq = live[i][1]
            if k == EOS:
                done.append((score / (len(seq) + 1), seq))
            elif len(nxt) < beam:
                handle = live[i][2] if i not in used else fork(live[i][2])
                used.add(i)
                nxt.append((score, seq + [k], handle))
            if len(nxt) >= beam and len(done) >= beam:
                break
        best_done = max((s for s, _ in done), default=-math.inf)
        if not nxt or (len(done) >= beam and all(s / (len(q) + 1) < best_done for s, q, _ in nxt)):
            break
        live = nxt
    if not done:
        done = [(s / max(len(q), 1), q) for s, q, _ in live]
    return max(done, key=lambda d: d[0])[1]


# -- the app: an encoder engine and a decoder engine whose streams hold the source as memory


class Translator:
    """One source line at a time: the encoder graph makes the memory, a decoder stream holding it
    writes the translation token by token (greedy), or beam search runs over forked streams.

    Example:
        >>> from edgernn.runtime.apps.translate import Translator
        >>> tr = Translator.load()                       # the shipped English -> German model
        >>> out = tr.translate("File not found")         # greedy; tr.translate(text, beam=4) for beam
        >>> isinstance(out, str) and len(out) > 0
        True
    """

    def __init__(self, decoder: Engine, encoder: Engine, memory: TranslationMemory | None = None) -> None:
        self.decoder, self.encoder = decoder, encoder
        facts = decoder.spec.task
        if facts.get("name") != "translate" or facts.get("role") != "decoder":
            raise SpecError(f"{decoder.source}: not a translate decoder (spec.task name/role)")
        if encoder.spec.task.get("role") != "encoder" or encoder.spec.task.get("data_digest") != facts.get(
            "data_digest"
        ):
            raise SpecError(f"{encoder.source}: not the encoder of {decoder.source} (spec.task role / data_digest)")
        if len(decoder.spec.memory) != 1:
            raise SpecError(f"{decoder.source}: a translate decoder declares one memory tensor")
        self.memory_spec = decoder.spec.memory[0]
        self.source_vocabulary = str(task_field(decoder, "source_vocabulary", str))
        self.target_vocabulary = str(task_field(decoder, "target_vocabulary", str))
        self.source_lang = str(task_field(decoder, "source_lang", str))
        self.target_lang = str(task_field(decoder, "target_lang", str))
        self.max_target = int(task_field(decoder, "max_target", int))
        self._encoder_stream = encoder.stream()
        self.tm: TranslationMemory | None = None  # TM-augmented (spec.task.tm): the suggestions' memory
        if facts.get("tm"):
            if memory is None:
                raise SpecError(f"{decoder.source}: a TM-augmented model (spec.task.tm) needs its translation memory")
            if facts.get("separator") != SEPARATOR or SEPARATOR not in self.source_vocabulary:
                raise SpecError(f"{decoder.source}: spec.task.separator must be U+{ord(SEPARATOR):04X}, in the "
                                "source vocabulary")  # fmt: skip
            self.tm = memory

    @classmethod
    def load(cls, model: str | os.PathLike[str] | None = None, profile: SessionProfile | None = None) -> Translator:
        """The decoder ``model`` (the shipped one when None) and the encoder its spec names beside it."""
        path = Path(model) if model is not None else shipped_model("translate")
        return cls.with_decoder(check_app(Engine.load(path, profile), "translate"))

    @classmethod
    def with_decoder(cls, decoder: Engine) -> Translator:
        """A loaded decoder and its encoder (the file its spec names, beside it), on the same profile."""
        path = Path(decoder.source)
        name = task_field(decoder, "encoder", str)
        if Path(name).name != name:
            raise SpecError(f"{path}: spec.task.encoder {name!r} must be a file name beside the model")
        enc_path = path.parent / name
        if not enc_path.is_file():
            raise ModelLoadError(f"{enc_path}: the encoder of {path} is missing (it is written beside the decoder)")
        memory = None
        if decoder.spec.task.get("tm"):
            mem_name = task_field(decoder, "translation_memory", str)
            if Path(mem_name).name != mem_name:
                raise SpecError(f"{path}: spec.task.translation_memory {mem_name!r} must be a file name beside it")
            memory = TranslationMemory.load(path.parent / mem_name, task_field(decoder, "tm_digest", str))
        return cls(decoder, Engine.load(enc_path, decoder.profile), memory)

    def check_target(self, lang: str | None) -> None:
        """InputError when ``lang`` is given and is not the language this model translates into."""
        if lang is not None and lang != self.target_lang:
            raise InputError(
                f"target language {lang!r}: this model translates {self.source_lang} -> {self.target_lang} only; "
                f"pass --model a model trained for {lang!r} (edgernn train translate --lang {lang})"
            )

    def encoder_input(self, text: str) -> tuple[str, tuple[str, ...]]:
        """What the encoder reads for ``text`` (placeholders as markers; for a TM-augmented model the
        separator and the memory's suggestion follow) and the placeholders; InputError when the line
        holds reserved characters."""
        marked, places = to_markers(text)
        if marked is None or SEPARATOR in text:
            raise InputError(
                f"source: characters U+{MARKER_BASE:04X}..U+{MARKER_BASE + MAX_PLACEHOLDERS - 1:04X} and "
                f"U+{ord(SEPARATOR):04X} are reserved; a line holds at most {MAX_PLACEHOLDERS} distinct placeholders"
            )
        if self.tm is not None:
            return encoder_text(marked, self.tm.translate(marked)), places
        return marked, places

    def memory(self, text: str) -> tuple[np.ndarray, tuple[str, ...]]:
        """The source line's memory (src_len, H) and its placeholders; InputError when the encoder's
        input is longer than the spec's memory limit (naming the tensor) or holds reserved characters."""
        marked, places = self.encoder_input(text)
        ids = encode_source(self.source_vocabulary, marked)
        limit = self.memory_spec.max_length
        if limit is not None and len(ids) > limit:
            raise InputError(
                f"memory {self.memory_spec.name!r}: the source line {'with its suggestion ' if self.tm else ''}is "
                f"{len(ids)} tokens (with its end token), "
                f"longer than the spec's max_length {limit} on axis {self.memory_spec.length_symbol!r}; split the line"
            )
        return self._encoder_stream.push(ids, chunk=len(ids)), places

    def stream(self, text: str) -> tuple[Stream, tuple[str, ...]]:
        """A decoder stream holding ``text``'s memory, at its initial state, and the placeholders."""
        memory, places = self.memory(text)
        return self.decoder.stream(memory={self.memory_spec.name: memory}), places

    def greedy(self, text: str) -> Iterator[str]:
        """Yield the translation of ``text`` piece by piece (a character, or a placeholder), greedily."""
        stream, places = self.stream(text)
        tok = BOS
        for _ in range(self.max_target):
            tok = int(np.argmax(stream.step(tok)))
            if tok == EOS:
                return
            yield from_markers(decode_target(self.target_vocabulary, [tok]), places)

    def beam(self, text: str, width: int = 4) -> str:
        """The translation of ``text`` by beam search, each hypothesis a forked decoder stream."""
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise InputError(f"beam: expected an int >= 1, got {width!r}")
        stream, places = self.stream(text)

        def advance(streams: list[Stream], tokens: list[int]) -> np.ndarray:
            return np.stack([s.step(t) for s, t in zip(streams, tokens)])

        ids = beam_search(stream, advance, lambda s: s.fork(), width, self.max_target)
        return from_markers(decode_target(self.target_vocabulary, ids), places)

    def translate(self, text: str, beam: int = 1) -> str:
        return "".join(self.greedy(text)) if beam == 1 else self.beam(text, beam)
