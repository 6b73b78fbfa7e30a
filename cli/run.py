"""``edgernn run``: the streaming apps on the shipped example models (or your own).

textgen   streams generated text character by character, with a live latency line
suggest   next-word suggestions after each typed character (beam search on forked streams)
langid    the top three languages with probabilities after every character read
weather   the next day's forecast (max, min, chance of rain) after each daily row read
translate each line from English into the model's language, streamed as written (or beam search)
MODEL.onnx  any stateful model over a file of frames (.npy, or .wav audio), outputs to .npy (cli/run_model.py)
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

import numpy as np

from edgernn.cli import run_forecast, run_model, run_music, run_translate
from edgernn.cli.options import integer, number, seed
from edgernn.cli.options import text as text_arg
from edgernn.cli.paths import in_file
from edgernn.devices import load_engine
from edgernn.devices.auto import choose_device
from edgernn.runtime.apps import check_app, load_app, shipped_model
from edgernn.runtime.apps.console import BACKSPACE, is_tty, keystrokes
from edgernn.runtime.engine import Engine
from edgernn.runtime.errors import InputError

HELP = "Stream an app (textgen, langid, translate...; example models ship inside) or any model over frames."
EXAMPLE = (
    "edgernn run textgen --prompt 'And God said' --chars 200 --seed 1\n"
    "  echo 'Das ist ein kleines Haus' | edgernn run langid\n"
    "  echo 'File not found' | edgernn run translate --beam 4\n"
    "  edgernn run weather --input seattle-weather.csv\n"
    "  edgernn run silero_vad.onnx --spec spec.json --input speech.wav -o probs.npy"
)
MAX_INPUT_BYTES = 1 << 30  # --input: 1 GiB of text
MAX_LINE_CHARS = 100_000  # one text (langid, suggest) or one CSV row (weather)
SHOWN_CHARS = 60  # the end of the line shown beside each per-character answer
APPS = ("textgen", "suggest", "langid", "weather", "forecast", "music", "translate")
MODEL_OF_APP = {"textgen": "textgen", "suggest": "textgen", "langid": "langid", "weather": "weather",
                "forecast": "forecast", "music": "music", "translate": "translate"}  # fmt: skip


def temperature(value: str) -> float:
    """0 (greedy) or a finite number from 0.01 to 100 (below that, logits / T overflows)."""
    t = number(0.0, 100.0)(value)
    if 0.0 < t < 0.01:
        raise argparse.ArgumentTypeError(f"expected 0 (greedy) or a number from 0.01 to 100, got {value!r}")
    return t


def app_or_model(value: str) -> str:
    """An app name, or the path of a model file that can be read now."""
    if value in APPS:
        return value
    if run_model.is_model(value):
        return str(in_file()(value))
    raise argparse.ArgumentTypeError(f"expected an app ({', '.join(APPS)}) or a model file (.onnx), got {value!r}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "app", type=app_or_model, metavar="{" + ",".join(APPS) + "} | MODEL.onnx", help="an app, or a model file"
    )
    p.add_argument(
        "--model", type=in_file(), help="an exported .onnx model (default: the example model shipped for the app)"
    )
    p.add_argument(
        "--device",
        type=text_arg(200),
        help="device profile (edgernn devices list) or 'auto' (default: cpu, one thread)",
    )
    p.add_argument(
        "--input",
        type=in_file(MAX_INPUT_BYTES),
        help="read from this file instead of stdin (suggest, langid, weather: UTF-8 text; MODEL.onnx: .npy or .wav)",
    )
    g = p.add_argument_group("textgen")
    g.add_argument(
        "--prompt", type=text_arg(10_000, allow_empty=False), default="And God said", help="text to start from"
    )
    g.add_argument("--chars", type=integer(0, 1_000_000), default=200, help="characters to generate")
    g.add_argument("--temperature", type=temperature, default=0.8, help="0 is greedy")
    g.add_argument("--top-k", type=integer(0, 1_000_000), default=0, help="sample among the k most likely (0: all)")
    g.add_argument("--seed", type=seed(), default=0, help="random seed of the sampling")
    g = p.add_argument_group("suggest, langid")
    g.add_argument("--top", type=integer(1, 100), default=3, help="how many suggestions or languages to show")
    g.add_argument("--final", action="store_true", help="print once per line instead of after every character")
    p.add_argument("--list", action="store_true", help="langid: name the model's languages and when it says unknown")
    run_forecast.add_arguments(p)
    run_music.add_arguments(p)
    run_model.add_arguments(p)
    run_translate.add_arguments(p)


def main(args: argparse.Namespace) -> int:
    if args.app not in APPS:
        return run_model.run_model(args)
    run_model.refuse_model_options(args)
    engine = app_engine(MODEL_OF_APP[args.app], args.model, args.device)
    if args.list:
        return list_app(engine, args.app)
    if args.app == "forecast":
        return run_forecast.run_forecast(engine, args)
    if args.app == "music":
        return run_music.run_music(engine, args)
    where = args.input or "stdin"
    try:
        source = open(args.input, encoding="utf-8") if args.input else _utf8_stdin()
    except OSError as exc:
        raise InputError(f"--input {args.input}: cannot read it: {exc.strerror}") from None
    try:
        if args.app == "textgen":
            return run_textgen(engine, args)
        if args.app == "suggest":
            return run_suggest(engine, source, args)
        if args.app == "langid":
            return run_langid(engine, source, args)
        if args.app == "translate":
            return run_translate.run_translate(engine, lines(source), args)
        return run_weather(engine, source)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{where}: not UTF-8 text (byte {exc.object[exc.start : exc.start + 1]!r}: {exc.reason})"
        ) from None
    finally:
        if args.input:
            source.close()
        elif source is not sys.stdin:
            source.detach()  # type: ignore[attr-defined]  # a TextIOWrapper: the wrapper goes; sys.stdin stays


def _utf8_stdin() -> TextIO:
    """stdin as UTF-8 (whatever the locale says), strict: other bytes are an InputError, not guessed."""
    if is_tty(sys.stdin) or not hasattr(sys.stdin, "buffer"):
        return sys.stdin  # a terminal is read key by key (console.keystrokes decodes UTF-8 itself)
    return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="strict")


def bounded(chars: Iterator[str], limit: int = MAX_LINE_CHARS) -> Iterator[str]:
    """``chars`` with at most ``limit`` characters per line (an endless line, e.g. from /dev/zero, is refused)."""
    n = 0
    for ch in chars:
        n = 0 if ch == "\n" else n + 1
        if n > limit:
            raise InputError(f"a line is longer than {limit:,} characters; the apps read one text per line")
        yield ch


def lines(source: TextIO, limit: int = MAX_LINE_CHARS) -> Iterator[str]:
    """The lines of ``source``, each read with a bound (``for line in source`` would read an endless one whole)."""
    n = 0
    while True:
        line = source.readline(limit + 1)
        if not line:
            return
        n += 1
        if len(line) > limit and not line.endswith("\n"):
            raise InputError(f"line {n} is longer than {limit:,} characters")
        yield line


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


def list_app(engine: Engine, app: str) -> int:
    """``--list``: what the app's model knows (langid: its languages and its "unknown" rule)."""
    from edgernn.runtime.apps.langid import describe

    if app != "langid":
        raise InputError(f"--list names the languages of langid; {app} has none")
    print(describe(engine))
    return 0


def hint(source: TextIO, text: str) -> None:
    """One line on stderr saying what to type and how to quit, when a person is typing."""
    if is_tty(source):
        print(text, file=sys.stderr, flush=True)


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


def _tail(text: str) -> str:
    """The end of a long line: what is printed after every character stays bounded (not quadratic)."""
    return text if len(text) <= SHOWN_CHARS else "…" + text[-(SHOWN_CHARS - 1) :]


def _fmt(ranked: list[tuple[str, float]]) -> str:
    return "  ".join(f"{name} {p:.2f}" for name, p in ranked)


def run_langid(engine: Engine, source: TextIO, args: argparse.Namespace) -> int:
    """One text per line; the state is reset at each new line and carried within it."""
    from edgernn.runtime.apps.langid import LanguageDetector

    det = LanguageDetector(engine, top=args.top)
    live = is_tty(source) and is_tty(sys.stdout)
    unknown = " or says unknown" if det.says_unknown else ""
    hint(source, f"Type a text: its language{unknown} after every key ({len(det.labels)} languages: --list). "
                 "Enter starts the next text, Ctrl-D quits.")  # fmt: skip
    history: list[Any] = []  # the detector's marks before each character, for backspace

    def shown(what: str | None = None) -> str:
        return f"{text if what is None else what}\t{det.answer()[0]}\t{_fmt(det.ranked())}"

    text = ""
    for ch in bounded(keystrokes(source)):
        if ch == "\n":
            if text and (args.final or live):
                sys.stdout.write(("\r\x1b[K" if live else "") + shown() + "\n")
            det.reset()
            text, history = "", []
            continue
        if ch in BACKSPACE and live:
            if history:
                det.back(history.pop())
                text = text[:-1]
        else:
            if live:
                history.append(det.mark())
            text += ch
            det.step(ch)
        line = shown(_tail(text))
        if live:
            sys.stdout.write("\r\x1b[K" + line)
        elif not args.final:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
    if text and (args.final or live):
        sys.stdout.write(("\r\x1b[K" if live else "") + shown() + "\n")
    return 0


def run_suggest(engine: Engine, source: TextIO, args: argparse.Namespace) -> int:
    from edgernn.runtime.apps.suggest import Keyboard, Suggestion

    def fmt(items: list[Suggestion]) -> str:
        return " | ".join(f"{s.word} {s.prob:.2f}" for s in items) or "-"

    kb = Keyboard(engine)
    live = is_tty(source) and is_tty(sys.stdout)
    known = kb.known_words
    scope = f"words of the training text only ({known:,})" if known else "any spelling (the model has no word list)"
    hint(source, f"Type text: suggestions after every key, {scope}. Enter starts a new line, Ctrl-D quits.")
    if not is_tty(source):
        print(f"suggest: completions are {scope}", file=sys.stderr)
    text, note, line_no = "", "", 1

    def show() -> None:
        words, nxt = kb.suggest(args.top)
        told = note or ("" if kb.word_is_known() else f"(no known word starts with {kb.word!r})")
        line = f"{text[-40:]}\t{fmt(words)}\t-> {fmt(nxt)}" + (f"\t{told}" if told else "")
        sys.stdout.write(("\r\x1b[K" + line) if live else line + "\n")
        sys.stdout.flush()

    for ch in bounded(keystrokes(source)):
        note = ""
        if ch in BACKSPACE and live:
            if not text:  # the line above is done: editing stays on this line
                continue
            kb.backspace()
            text = text[:-1]
        elif ch == "\n":
            if text and (args.final or live):
                if args.final:
                    show()
                sys.stdout.write("\n" if live else "")
            text, line_no = "", line_no + 1
            try:
                kb.type(ch)  # the context carries over to the next line
            except InputError:
                pass
            continue
        else:
            try:
                kb.type(ch)
            except InputError:
                note = f"({ch!r} is not one of the model's characters: not typed)"
                if not live:
                    print(f"suggest: line {line_no}: {ch!r} is not one of the model's characters; skipped",
                          file=sys.stderr)  # fmt: skip
                    continue
            else:
                text += ch
        if not args.final:
            show()
    if text and args.final:
        show()
    if live:
        sys.stdout.write("\n")
    return 0


def run_weather(engine: Engine, source: TextIO) -> int:
    from edgernn.runtime.apps.weather import COLUMNS, Forecaster, read_rows

    fc = Forecaster(engine)
    hint(source, f"Type one day a line: {','.join(COLUMNS)} (or a header line first naming them in any order); "
                 "Ctrl-D quits.")  # fmt: skip
    for n, row in read_rows(lines(source), on_note=lambda text: print(text, file=sys.stderr)):
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
