"""Bach chorales from the ``music21`` package (its corpus ships ~410 of them), as event tokens.

Which voice: the soprano line alone. It carries the tune, is one note at a time (so a melody
is a plain token stream and an app can stream it note by note), and whether it keeps its key
can be measured on its own. The four voices together would need chords per time step.

Split by tune: the same hymn melody is harmonised under several BWV numbers, so chorales are
grouped by a fingerprint of their tune (the first 12 melodic intervals, key-independent) and
each group goes wholly to training or to validation (every 10th group, after sorting).

Transposition augmentation: each training chorale is added transposed by every shift in
``TRANSPOSE`` (semitones) that keeps it inside the pitch range; held-out chorales are not
transposed. Encoding: ``edgernn.runtime.music``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from edgernn.runtime.music import HIGH, LOW, nearest_duration
from edgernn.train.trainer import MissingDataError, TrainingError

TRANSPOSE = tuple(range(-5, 7))
CACHE = Path("runs/cache/chorales.json")


@dataclass(frozen=True)
class Chorale:
    name: str  # e.g. bwv1.6
    tokens: list[str]  # <s> ... </s>, in the key Bach wrote
    pitches: list[int]  # the soprano's MIDI pitches, in order

    def tune(self) -> str:
        steps = [b - a for a, b in zip(self.pitches, self.pitches[1:])][:12]
        return ",".join(map(str, steps))


def _encode(score: object) -> tuple[list[str], list[int]]:
    part = score.parts[0]  # type: ignore[attr-defined]
    tokens, pitches, bar = ["<s>"], [], None
    for n in part.recurse().notesAndRests:
        if n.measureNumber != bar:
            tokens.append("|")
            bar = n.measureNumber
        if n.isRest:
            tokens.append("rest")
        else:
            midi = n.pitches[-1].midi  # the top note of a (rare) chord
            tokens.append(f"p{midi}")
            pitches.append(midi)
        tokens.append(f"d{nearest_duration(float(n.quarterLength)):g}")
    return tokens + ["</s>"], pitches


def load_chorales(limit: int = 0, cache: Path | None = CACHE, paths: list[Path] | None = None) -> list[Chorale]:
    """The soprano line of every chorale in music21's Bach corpus (cached as JSON after one parse),
    or of the score files ``paths``; an unreadable score or cache is a TrainingError naming it."""
    if cache is not None and cache.exists() and not limit and paths is None:
        try:
            return [Chorale(**c) for c in json.loads(cache.read_text())]
        except (ValueError, TypeError, OSError) as exc:
            raise TrainingError(
                f"{cache}: a damaged chorale cache ({exc}); delete it to parse the corpus again"
            ) from None
    try:
        from music21 import corpus
    except ImportError:
        raise MissingDataError("the music task reads Bach chorales from music21: pip install music21") from None
    if paths is None:
        paths = sorted(p for p in corpus.getComposer("bach") if p.suffix in (".mxl", ".xml"))
    else:
        cache = None
    out = []
    for path in paths[:limit] if limit else paths:
        try:
            score = corpus.parse(path)
        except Exception as exc:  # music21 raises its own many exception types for a bad file
            raise TrainingError(f"{path}: the score cannot be read ({type(exc).__name__}: {exc})") from None
        if len(score.parts) < 4:
            continue
        tokens, pitches = _encode(score)
        if len(pitches) >= 16 and all(LOW <= p <= HIGH for p in pitches):
            out.append(Chorale(path.stem, tokens, pitches))
    if cache is not None and not limit:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps([c.__dict__ for c in out]))
    return out


def split_by_tune(chorales: list[Chorale], every: int = 10) -> tuple[list[Chorale], list[Chorale]]:
    """(train, valid): whole tune groups on one side; every ``every``-th group (by hash) is held out."""
    groups: dict[str, list[Chorale]] = {}
    for c in chorales:
        groups.setdefault(c.tune(), []).append(c)
    keys = sorted(groups, key=lambda k: hashlib.sha256(k.encode()).hexdigest())
    train: list[Chorale] = []
    valid: list[Chorale] = []
    for i, k in enumerate(keys):
        (valid if i % every == 0 else train).extend(groups[k])
    return train, valid


def transposed(tokens: list[str], shift: int) -> list[str] | None:
    """``tokens`` moved by ``shift`` semitones; None when a note leaves the range."""
    out = []
    for t in tokens:
        if t.startswith("p"):
            m = int(t[1:]) + shift
            if not LOW <= m <= HIGH:
                return None
            t = f"p{m}"
        out.append(t)
    return out


def augmented(train: list[Chorale]) -> list[list[str]]:
    return [t for c in train for s in TRANSPOSE if (t := transposed(c.tokens, s)) is not None]
