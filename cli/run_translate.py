"""``edgernn run translate``: one source line at a time, the translation streamed as it is written."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator

from edgernn.cli.options import integer, text
from edgernn.runtime.apps.translate import Translator
from edgernn.runtime.engine import Engine


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("translate (one source line per input line)")
    g.add_argument("--beam", type=integer(1, 64), default=1, help="beam width (1: greedy, streamed character by "
                   "character; more: beam search over forked streams, printed when done)")  # fmt: skip
    g.add_argument("--to", dest="target_lang", type=text(40), help="the target language (checked against the model's)")


def run_translate(engine: Engine, source_lines: Iterator[str], args: argparse.Namespace) -> int:
    tr = Translator.with_decoder(engine)
    tr.check_target(args.target_lang)
    print(f"# {tr.source_lang} -> {tr.target_lang}, {'greedy' if args.beam == 1 else f'beam {args.beam}'}",
          file=sys.stderr)  # fmt: skip
    pieces, seconds = 0, 0.0
    for raw in source_lines:
        line = raw.rstrip("\r\n")
        if not line.strip():
            print()
            continue
        t = time.perf_counter()
        if args.beam == 1:
            for piece in tr.greedy(line):
                sys.stdout.write(piece)
                sys.stdout.flush()
                pieces += 1
        else:
            sys.stdout.write(tr.beam(line, args.beam))
        seconds += time.perf_counter() - t
        sys.stdout.write("\n")
        sys.stdout.flush()
    if pieces:
        print(f"[{pieces} characters in {seconds:.2f} s: {seconds / pieces * 1e3:.2f} ms each, encoder included]",
              file=sys.stderr)  # fmt: skip
    return 0
