"""Stream a melody event by event from a chorale model; write MIDI (and WAV with fluidsynth).

The model (``edgernn train music``) predicts the next token of the event encoding in
``edgernn.runtime.music``; sampling stays within its grammar (a note is followed by a
duration, and so on), with temperature and top-k. A primer melody, if given, is fed first.

Example:
    >>> from edgernn.runtime.apps import load_app
    >>> from edgernn.runtime.apps.music import Composer, parse_primer
    >>> comp = Composer(load_app("music"))
    >>> events = list(comp.generate(16, primer=parse_primer("G4:1 A4:1 B4:2"), seed=1))
    >>> len(events)
    16
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from edgernn.runtime.apps import task_field
from edgernn.runtime.engine import Engine
from edgernn.runtime.errors import InputError, RunError, SpecError
from edgernn.runtime.music import HIGH, LOW, Event, allowed_after, kind, nearest_duration, vocabulary

NAMES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")


def parse_primer(text: str) -> list[Event]:
    """``"G4:1 A4:0.5 r:1 B-4:2"``: note name (``#``/``-`` for sharp/flat) or ``r`` with quarters."""
    events = []
    for item in text.split():
        name, _, q = item.partition(":")
        try:
            quarters = float(q or 1)
        except ValueError:
            raise InputError(f"primer {item!r}: the duration after ':' must be a number of quarter notes") from None
        if not (math.isfinite(quarters) and quarters > 0):
            raise InputError(f"primer {item!r}: the duration must be a positive number of quarter notes")
        if name.lower() == "r":
            events.append(Event(None, nearest_duration(quarters)))
            continue
        letter, acc, octave = name[:1].upper(), name[1:-1], name[-1:]
        if letter not in NAMES or acc not in ("", "#", "-", "b") or not octave.isdigit():
            raise InputError(f"primer {item!r}: expected a note like C4, F#4, B-3 (or r for a rest)")
        midi = 12 * (int(octave) + 1) + NAMES[letter] + {"#": 1, "-": -1, "b": -1}.get(acc, 0)
        if not LOW <= midi <= HIGH:
            raise InputError(f"primer {item!r}: MIDI pitch {midi} is outside the model's range {LOW}-{HIGH}")
        events.append(Event(midi, nearest_duration(quarters)))
    return events


def note_name(e: Event) -> str:
    if e.pitch is None:
        return f"rest:{e.quarters:g}"
    names = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
    return f"{names[e.pitch % 12]}{e.pitch // 12 - 1}:{e.quarters:g}"


class Composer:
    """One stream over a music model: ``generate`` yields events as they are sampled."""

    def __init__(self, engine: Engine) -> None:
        vocab = [str(t) for t in task_field(engine, "vocabulary", list)]
        if vocab != vocabulary():
            raise SpecError(f"{engine.source}: spec.task['vocabulary'] is not this runtime's music encoding")
        self.vocab = vocab
        self.index = {t: i for i, t in enumerate(vocab)}
        self.bpm = float(engine.spec.task.get("bpm", 80))
        self.stream = engine.stream()
        kinds = np.array([kind(t) for t in vocab])
        self.masks = {k: np.isin(kinds, allowed_after(t)) for k, t in (("note", "rest"), ("dur", "d1"),
                      ("bar", "|"), ("start", "<s>"), ("end", "</s>"))}  # fmt: skip

    def _feed(self, tokens: Sequence[str]) -> np.ndarray:
        return self.stream.push(np.array([self.index[t] for t in tokens], dtype=np.int64))[-1]

    def generate(
        self, events: int, primer: Sequence[Event] = (), temperature: float = 1.0, top_k: int = 0, seed: int = 0
    ) -> Iterator[Event]:
        """Yield ``events`` new events after the primer (fed first, not yielded)."""
        if not (math.isfinite(temperature) and temperature > 0) or top_k < 0 or events < 0:
            raise InputError(f"music: temperature must be > 0, top-k >= 0, events >= 0 (got {temperature}, "
                             f"{top_k}, {events})")  # fmt: skip
        rng = np.random.default_rng(seed)
        self.stream.reset()
        tokens = ["<s>", "|"]
        for e in primer:
            tokens += ["rest" if e.pitch is None else f"p{e.pitch}", f"d{e.quarters:g}"]
        logits, last = self._feed(tokens), tokens[-1]
        made, pending = 0, None
        while made < events:
            z = logits.astype(np.float64) / temperature
            z[~self.masks[kind(last)]] = -np.inf
            z[self.index["</s>"]] = -np.inf  # the caller decides the length
            if top_k:
                z[z < np.sort(z)[-top_k]] = -np.inf
            p = np.exp(z - z.max())
            tok = self.vocab[int(rng.choice(len(p), p=p / p.sum()))]
            if kind(tok) == "note":
                pending = None if tok == "rest" else int(tok[1:])
            elif kind(tok) == "dur":
                made += 1
                yield Event(pending, float(tok[1:]))
            logits, last = self.stream.step(np.int64(self.index[tok])), tok


def render_wav(midi: Path, wav: Path, soundfont: str | None = None) -> Path:
    """``midi`` rendered to ``wav`` by fluidsynth; RunError naming what is missing when it cannot."""
    exe = shutil.which("fluidsynth")
    font = soundfont or next((f for f in SOUNDFONTS if Path(f).is_file()), None)
    if exe is None or font is None:
        raise RunError("rendering WAV needs fluidsynth and a GM soundfont: "
                       "apt-get install fluidsynth fluid-soundfont-gm")  # fmt: skip
    proc = subprocess.run([exe, "-ni", "-g", "0.8", "-F", str(wav), "-r", "44100", font, str(midi)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    if proc.returncode != 0 or not wav.is_file():
        raise RunError(f"fluidsynth failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")
    return wav
