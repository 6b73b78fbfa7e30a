"""``edgernn run``: the streaming apps on the shipped example models (or your own).

textgen   streams generated text character by character, with a live latency line
suggest   next-word suggestions after each typed character (beam search on forked streams)
langid    the top three languages with probabilities after every character read
weather   the next day's forecast (max, min, chance of rain) after each daily row read
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

import numpy as np

from edgernn.cli import run_forecast, run_music
from edgernn.devices import load_engine
from edgernn.devices.auto import choose_device
from edgernn.runtime.apps import check_app, load_app, shipped_model
from edgernn.runtime.apps.console import BACKSPACE, is_tty, keystrokes
from edgernn.runtime.engine import Engine, Stream
from edgernn.runtime.errors import InputError

HELP = "Stream an app: textgen, suggest (next words), langid, weather; example models ship inside."
EXAMPLE = (
    "edgernn run textgen --prompt 'And God said' --chars 200 --seed 1\n"
    "  echo 'Das ist ein kleines Haus' | edgernn run langid\n"
    "  edgernn run weather --input seattle-weather.csv"
)
APPS = ("textgen", "suggest", "langid", "weather", "forecast", "music")
MODEL_OF_APP = {"textgen": "textgen", "suggest": "textgen", "langid": "langid", "weather": "weather",
                "forecast": "forecast", "music": "music"}  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("app", choices=APPS, help="what to run")
    p.add_argument("--model", help="an exported .onnx model (default: the example model shipped for the app)")
    p.add_argument("--device", help="device profile (edgernn devices list) or 'auto' (default: cpu, one thread)")
    p.add_argument("--input", help="read from this file instead of stdin (suggest, langid, weather)")
    g = p.add_argument_group("textgen")
    g.add_argument("--prompt", default="And God said", help="text to start from")
    g.add_argument("--chars", type=int, default=200, help="characters to generate")
    g.add_argument("--temperature", type=float, default=0.8, help="0 is greedy")
    g.add_argument("--top-k", type=int, default=0, help="sample among the k most likely (0: all)")
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("suggest, langid")
    g.add_argument("--top", type=int, default=3, help="how many suggestions or languages to show")
    g.add_argument("--final", action="store_true", help="print once per line instead of after every character")
    run_forecast.add_arguments(p)
    run_music.add_arguments(p)


def main(args: argparse.Namespace) -> int:
    if args.top < 1 or args.chars < 0:
        raise InputError(f"--top must be >= 1 (got {args.top}) and --chars >= 0 (got {args.chars})")
    engine = app_engine(MODEL_OF_APP[args.app], args.model, args.device)
    if args.app == "forecast":
        return run_forecast.run_forecast(engine, args)
    if args.app == "music":
        return run_music.run_music(engine, args)
    try:
        source = open(args.input, encoding="utf-8") if args.input else sys.stdin
    except OSError as exc:
        raise InputError(f"--input {args.input}: cannot read it: {exc.strerror}") from None
    try:
        if args.app == "textgen":
            return run_textgen(engine, args)
        if args.app == "suggest":
            return run_suggest(engine, source, args)
        if args.app == "langid":
            return run_langid(engine, source, args)
        return run_weather(engine, source)
    finally:
        if source is not sys.stdin:
            source.close()


def app_engine(task: str, model: str | None, device: str | None) -> Engine:
    """The app's engine: CPU defaults with no device, else through ``edgernn.devices``."""
    if device is None:
        return load_app(task, model)
    path = model if model is not None else shipped_model(task)
    if device == "auto":  # measured now, not recorded: the shipped models' folder may be read-only
        choice = choose_device(path)
        print(choice, file=sys.stderr)
        engine, _ = load_engine(path, choice.chosen)
    else:
        engine, _ = load_engine(path, device)
    return check_app(engine, task)


def run_textgen(engine: Engine, args: argparse.Namespace) -> int:
    from edgernn.runtime.apps.textgen import generate

    out = sys.stdout
    inline = is_tty(out)
    out.write(args.prompt)
    times: list[float] = []
    chars = generate(engine.stream(), args.prompt, args.chars, args.temperature, args.top_k, args.seed)
    while True:
        t = time.perf_counter()
        ch = next(chars, None)
        if ch is None:
            break
        times.append(time.perf_counter() - t)
        if inline:  # the latency follows the cursor, dimmed, and is erased by the next character
            status = f" \x1b[2m[{times[-1] * 1e6:.0f} µs/char, p50 {np.median(times) * 1e6:.0f}]\x1b[0m"
            out.write("\x1b[K" + ch + ("\x1b7" + status + "\x1b8" if ch != "\n" else ""))
        else:
            out.write(ch)
        out.flush()
    if inline:
        out.write("\x1b[K")
    out.write("\n")
    us = np.array(times) * 1e6 if times else np.zeros(1)
    print(
        f"[{len(times)} chars on {engine.profile.name}: p50 {np.median(us):.1f} µs, p99 {np.percentile(us, 99):.1f} µs "
        f"per char (step + sampling), {len(times) / max(us.sum() * 1e-6, 1e-9):,.0f} chars/s]",
        file=sys.stderr,
    )
    return 0


def _fmt(ranked: list[tuple[str, float]]) -> str:
    return "  ".join(f"{name} {p:.2f}" for name, p in ranked)


def run_langid(engine: Engine, source: TextIO, args: argparse.Namespace) -> int:
    """One text per line; the state is reset at each new line and carried within it."""
    from edgernn.runtime.apps.langid import LanguageDetector

    det = LanguageDetector(engine, top=args.top)
    live = is_tty(source) and is_tty(sys.stdout)
    history: list[tuple[Stream, np.ndarray]] = []  # (fork, probabilities) before each character, for backspace
    text = ""
    for ch in keystrokes(source):
        if ch == "\n":
            if text and (args.final or live):
                sys.stdout.write(("\r\x1b[K" if live else "") + f"{text}\t{_fmt(det.ranked())}\n")
            det.reset()
            text, history = "", []
            continue
        if ch in BACKSPACE and live:
            if history:
                (det.stream, det.probs), text = history.pop(), text[:-1]
        else:
            if live:
                history.append((det.stream.fork(), det.probs))
            text += ch
            det.step(ch)
        line = f"{text}\t{_fmt(det.ranked())}"
        if live:
            sys.stdout.write("\r\x1b[K" + line)
        elif not args.final:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
    if text and (args.final or live):
        sys.stdout.write(("\r\x1b[K" if live else "") + f"{text}\t{_fmt(det.ranked())}\n")
    return 0


def run_suggest(engine: Engine, source: TextIO, args: argparse.Namespace) -> int:
    from edgernn.runtime.apps.suggest import Keyboard, Suggestion

    def fmt(items: list[Suggestion]) -> str:
        return " | ".join(f"{s.word} {s.prob:.2f}" for s in items) or "-"

    kb = Keyboard(engine)
    live = is_tty(source) and is_tty(sys.stdout)
    text = ""

    def show() -> None:
        words, nxt = kb.suggest(args.top)
        line = f"{text[-40:]}\t{fmt(words)}\t-> {fmt(nxt)}"
        sys.stdout.write(("\r\x1b[K" + line) if live else line + "\n")
        sys.stdout.flush()

    for ch in keystrokes(source):
        if ch in BACKSPACE and live:
            kb.backspace()
            text = text[:-1]
        elif ch == "\n":
            if text and (args.final or live):
                if args.final:
                    show()
                sys.stdout.write("\n" if live else "")
            text = ""
            try:
                kb.type(ch)  # the context carries over to the next line
            except InputError:
                pass
            continue
        else:
            try:
                kb.type(ch)
            except InputError:
                continue  # a character the model has never seen: not typed
            text += ch
        if not args.final:
            show()
    if text and args.final:
        show()
    if live:
        sys.stdout.write("\n")
    return 0


def run_weather(engine: Engine, source: TextIO) -> int:
    from edgernn.runtime.apps.weather import Forecaster, parse_row

    fc = Forecaster(engine)
    for n, line in enumerate(source, 1):
        row = parse_row(line, n)
        if row is None:
            continue
        if fc.last is not None and (row.date - fc.last.date).days > 1:
            print(f"line {n}: {(row.date - fc.last.date).days - 1} day(s) missing before {row.date}; "
                  "the model reads rows as consecutive days", file=sys.stderr)  # fmt: skip
        f = fc.update(row)
        print(
            f"{row.date.isoformat()}  forecast {f.date.isoformat()}: max {f.temp_max:5.1f} °C  "
            f"min {f.temp_min:5.1f} °C  rain {f.rain * 100:3.0f}%",
            flush=True,
        )
    return 0
