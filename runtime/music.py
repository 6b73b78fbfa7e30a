"""The music task's event vocabulary and a standard MIDI file writer (numpy-free, stdlib only).

One owner of the encoding: ``edgernn train music`` encodes the chorales with it and the
``music`` app decodes the model's tokens with it. A melody is a stream of tokens::

    <s>  |  p67 d1  p69 d0.5  rest d1  |  p71 d2 ...  </s>

``pNN`` is a MIDI pitch (55-84: G3-C6), ``rest`` a silence; each is followed by exactly one
duration token ``dQ`` (Q in quarter notes); ``|`` opens a bar (the bar position the model
hears); ``<s>`` / ``</s>`` open and close a piece. An event is one note or rest (two tokens).

Example:
    >>> vocab = vocabulary()
    >>> decode([vocab.index(t) for t in ("<s>", "|", "p60", "d1", "rest", "d0.5")], vocab)
    [Event(pitch=60, quarters=1.0), Event(pitch=None, quarters=0.5)]
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

LOW, HIGH = 55, 84
DURATIONS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
SPECIALS = ("<s>", "</s>", "|", "rest")
TICKS = 480  # per quarter note


@dataclass(frozen=True)
class Event:
    """A note (``pitch`` a MIDI number) or a rest (``pitch`` None) lasting ``quarters`` quarter notes."""

    pitch: int | None
    quarters: float


def vocabulary() -> list[str]:
    return [*SPECIALS, *(f"p{m}" for m in range(LOW, HIGH + 1)), *(f"d{q:g}" for q in DURATIONS)]


def nearest_duration(q: float) -> float:
    return min(DURATIONS, key=lambda d: abs(d - q))


def kind(token: str) -> str:
    """'note' (a pitch or rest), 'dur', 'bar', 'start' or 'end'."""
    if token == "rest" or token.startswith("p"):
        return "note"
    return {"|": "bar", "<s>": "start", "</s>": "end"}.get(token, "dur")


def allowed_after(token: str) -> tuple[str, ...]:
    """Token kinds that may follow ``token`` (the grammar the app samples within)."""
    return {"note": ("dur",), "dur": ("note", "bar", "end"), "bar": ("note",), "start": ("bar", "note"),
            "end": ("start",)}[kind(token)]  # fmt: skip


def decode(ids: Iterable[int], vocab: Sequence[str]) -> list[Event]:
    """The events of a token stream (bars and piece marks dropped)."""
    events: list[Event] = []
    pending: int | None | str = "none"
    for i in ids:
        tok = vocab[i]
        if kind(tok) == "note":
            pending = None if tok == "rest" else int(tok[1:])
        elif kind(tok) == "dur" and pending != "none":
            events.append(Event(pending if isinstance(pending, int) else None, float(tok[1:])))
            pending = "none"
    return events


def _varlen(n: int) -> bytes:
    out = [n & 0x7F]
    while n > 0x7F:
        n >>= 7
        out.append((n & 0x7F) | 0x80)
    return bytes(reversed(out))


def midi_bytes(events: Sequence[Event], bpm: float = 80.0, program: int = 19, velocity: int = 80) -> bytes:
    """A format-0 standard MIDI file: one track, the tempo, an instrument (GM 19: church organ)."""
    track = bytearray(b"\x00\xff\x51\x03" + struct.pack(">I", round(60e6 / bpm))[1:])
    track += bytes([0, 0xC0, program & 0x7F])
    wait = 0
    for e in events:
        ticks = round(e.quarters * TICKS)
        if e.pitch is None:
            wait += ticks
            continue
        track += _varlen(wait) + bytes([0x90, e.pitch, velocity])
        track += _varlen(ticks) + bytes([0x80, e.pitch, 0])
        wait = 0
    track += _varlen(wait) + b"\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS) + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


def write_midi(events: Sequence[Event], path: str | Path, bpm: float = 80.0) -> Path:
    path = Path(path)
    path.write_bytes(midi_bytes(events, bpm))
    return path


def seconds(events: Sequence[Event], bpm: float = 80.0) -> float:
    """How long ``events`` last at ``bpm`` quarter notes per minute."""
    return sum(e.quarters for e in events) * 60.0 / bpm
