"""The CLI's one convention: typed argument values, the help format, ``--json [FILE]`` and ``-o/--out``.

Every subcommand builds its flags from these helpers (and the path types of ``cli/paths.py``),
so a value is refused the same way everywhere and *before* any work starts (argparse calls a
``type`` while parsing):

- numbers: :func:`integer` and :func:`number` take bounds; ``number`` refuses NaN and ±inf;
- text: :func:`text` refuses bytes that are not UTF-8 (they reach ``sys.argv`` as surrogate
  escapes), NUL and overlong values;
- paths (``cli/paths.py``): outputs writable now, inputs regular files that can be read;
- :func:`add_json` and :func:`add_out` give ``--json [FILE]`` and ``-o/--out`` one meaning.

A refused value is one line on stderr, exit status 2 (``CliParser.error``).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from typing import NoReturn

from edgernn.cli.paths import STDOUT, check_out_file, out_dir, out_file, typed_as
from edgernn.runtime.errors import EdgeRNNError

MAX_TEXT = 100_000  # characters in one text argument (--prompt, --note, ...)
SEED_MAX = 2**32 - 1  # numpy's legacy seeding and most others take 32 bits
MAX_THREADS = 256  # --threads: more than any machine here has cores; thousands fail in libgomp


class CliParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: ``edgernn run: error: ... (see --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in every flag's help, the example epilog kept as written, ``-o, --out FILE``."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if "(default" in text or default is None or default is False or default in (argparse.SUPPRESS, "", []):
            return text
        if not action.option_strings and action.nargs not in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        metavar = self._format_args(action, self._get_default_metavar_for_optional(action))
        return f"{', '.join(action.option_strings)} {metavar}"


# -- values ---------------------------------------------------------------------------------


def _num(x: float) -> str:
    return f"{x:,}" if isinstance(x, int) else f"{x:g}"


def _bounds(lo: float | None, hi: float | None, lo_open: bool = False) -> str:
    if lo is not None and hi is not None:
        return f"from {_num(lo)} to {_num(hi)}" if not lo_open else f"above {_num(lo)} and at most {_num(hi)}"
    if lo is not None:
        return f"> {_num(lo)}" if lo_open else f">= {_num(lo)}"
    return f"<= {_num(hi)}" if hi is not None else "any"


def integer(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An int in [lo, hi] (either bound may be None)."""

    def parse(value: str) -> int:
        try:
            n = int(value.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer {_bounds(lo, hi)}, got {value!r}") from None
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            raise argparse.ArgumentTypeError(f"expected an integer {_bounds(lo, hi)}, got {value!r}")
        return n

    return typed_as("integer", parse)


def number(lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> Callable[[str], float]:
    """A finite float in [lo, hi] ((lo, hi] with ``lo_open``); NaN and ±inf are refused."""

    def parse(value: str) -> float:
        try:
            x = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number {_bounds(lo, hi, lo_open)}, got {value!r}") from None
        bad_lo = lo is not None and (x <= lo if lo_open else x < lo)
        if not math.isfinite(x) or bad_lo or (hi is not None and x > hi):
            raise argparse.ArgumentTypeError(f"expected a finite number {_bounds(lo, hi, lo_open)}, got {value!r}")
        return x

    return typed_as("number", parse)


def seed() -> Callable[[str], object]:
    return integer(0, SEED_MAX)


def text(max_chars: int = MAX_TEXT, allow_empty: bool = True) -> Callable[[str], object]:
    """A string that was valid UTF-8 on the command line, without NUL, at most ``max_chars``."""

    def parse(value: str) -> str:
        _check_text(value, "text")
        if not value and not allow_empty:
            raise argparse.ArgumentTypeError("expected some text, got an empty string")
        if len(value) > max_chars:
            raise argparse.ArgumentTypeError(f"expected at most {max_chars} characters, got {len(value)}")
        return value

    return typed_as("text", parse)


def choice_list(choices: Sequence[str]) -> Callable[[str], object]:
    """Comma-separated names, each one of ``choices``: 'rnn,gru'."""

    def parse(value: str) -> list[str]:
        names = [v.strip() for v in value.split(",") if v.strip()]
        bad = [n for n in names if n not in choices]
        if bad or not names:
            raise argparse.ArgumentTypeError(
                f"expected names from {', '.join(choices)} separated by commas, got {value!r}"
            )
        return names

    return typed_as("names", parse)


def int_list(lo: int, hi: int) -> Callable[[str], object]:
    """Comma-separated ints in [lo, hi]: '128,256'."""
    one = integer(lo, hi)

    def parse(value: str) -> list[int]:
        items = [v for v in value.split(",") if v.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"expected integers {_bounds(lo, hi)} separated by commas, got {value!r}")
        return [one(v) for v in items]

    return typed_as("integers", parse)


def _check_text(value: str, what: str) -> None:
    if "\x00" in value:
        raise argparse.ArgumentTypeError(f"the {what} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # bytes that were not UTF-8 arrive as lone surrogates
        raise argparse.ArgumentTypeError(f"the {what} {value!r} is not valid UTF-8") from None


def json_target(value: str) -> str:
    if value == STDOUT:
        return value
    if not value.endswith(".json"):
        raise argparse.ArgumentTypeError(f"expected a .json file name or '-' (stdout), got {value!r}")
    return check_out_file(value)


# -- the shared flags ------------------------------------------------------------------------


def add_json(p: argparse.ArgumentParser, what: str = "every figure") -> None:
    """``--json [FILE]``: ``what`` as JSON to FILE (a .json name), or to stdout without one."""
    p.add_argument(
        "--json",
        nargs="?",
        const=STDOUT,
        default=None,
        metavar="FILE",
        type=typed_as("json file", json_target),
        help=f"write {what} as JSON to FILE (a .json name), or to stdout when no FILE is given "
        "(then the text report goes to stderr)",
    )


def add_out(p: argparse.ArgumentParser, help: str, default: str | None = None, folder: bool = False) -> None:
    """``-o/--out``: where the command writes (the old spelling ``--output`` is still accepted)."""
    kind = out_dir if folder else out_file
    p.add_argument("-o", "--out", default=default, metavar="DIR" if folder else "FILE", type=kind, help=help)
    p.add_argument("--output", dest="out", default=argparse.SUPPRESS, type=kind, help=argparse.SUPPRESS)


def fix_json_argv(argv: list[str]) -> list[str]:
    """A bare ``--json`` before a positional (``inspect --json model.onnx``) means stdout, not a file.

    FILE must end in .json, so any other word after ``--json`` is the next argument; the bare
    flag moves to the end (argparse would otherwise leave an optional positional after it empty).
    """
    out, moved = [], False
    for i, arg in enumerate(argv):
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if (
            arg == "--json"
            and nxt is not None
            and nxt != STDOUT
            and not nxt.startswith("-")
            and not nxt.endswith(".json")
        ):
            moved = True
            continue
        out.append(arg)
    return out + ([f"--json={STDOUT}"] if moved else [])


class UsageError(EdgeRNNError):
    """A value the command line gave, found wrong after parsing (a default that depends on others)."""


def checked(check: Callable[[str], object], value: str, flag: str) -> str:
    """``check(value)`` for a value settled after parsing; its complaint as a UsageError naming ``flag``."""
    try:
        check(value)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"{flag}: {exc}") from None
    return value
