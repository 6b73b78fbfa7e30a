"""``edgernn run music``: stream a melody event by event; write MIDI (and WAV with fluidsynth)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgernn.cli.options import integer, text
from edgernn.cli.paths import out_file
from edgernn.runtime.apps.music import Composer, note_name, parse_primer, render_wav
from edgernn.runtime.engine import Engine
from edgernn.runtime.music import seconds, write_midi


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("music (also --temperature, --top-k, --seed)")
    g.add_argument("--events", type=integer(1, 100_000), default=48, help="notes and rests to generate")
    g.add_argument(
        "--primer", default="", type=text(10_000), help="a melody to start from, e.g. 'G4:1 A4:1 B4:2' (r:1 is a rest)"
    )
    g.add_argument("--midi", default="music.mid", type=out_file, help="the MIDI file to write")
    g.add_argument("--wav", type=out_file, help="also render a WAV (needs fluidsynth and a GM soundfont)")


def run_music(engine: Engine, args: argparse.Namespace) -> int:
    comp = Composer(engine)
    primer = parse_primer(args.primer)
    temperature = args.temperature if args.temperature > 0 else 1.0
    events = []
    for e in comp.generate(args.events, primer, temperature=temperature, top_k=args.top_k, seed=args.seed):
        events.append(e)
        print(note_name(e), end=" ", flush=True)
    print()
    midi = write_midi([*primer, *events], args.midi, comp.bpm)
    written = [str(midi)]
    if args.wav:
        written.append(str(render_wav(midi, Path(args.wav))))
    length = seconds([*primer, *events], comp.bpm)
    print(f"{len(events)} events, {length:.1f} s at {comp.bpm:g} bpm; wrote {', '.join(written)}")
    return 0
