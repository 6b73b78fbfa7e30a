"""Terminal input for the apps: keystrokes one at a time (cbreak mode on a terminal)."""

from __future__ import annotations

import codecs
import contextlib
import os
from collections.abc import Iterator
from typing import TextIO

BACKSPACE = ("\x7f", "\b")
END = ("\x04", "\x03")  # Ctrl-D, Ctrl-C


def is_tty(fh: TextIO) -> bool:
    try:
        return fh.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def _cbreak(fh: TextIO) -> Iterator[None]:
    import termios
    import tty

    fd = fh.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def keystrokes(fh: TextIO) -> Iterator[str]:
    """Characters of ``fh`` one at a time; from a terminal, each key as it is pressed (Ctrl-D ends)."""
    if is_tty(fh) and os.name == "posix":
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        with _cbreak(fh):
            while True:
                data = os.read(fh.fileno(), 64)  # keys typed faster than we read arrive together
                if not data:
                    return
                for ch in decoder.decode(data):  # a multi-byte character may span two reads
                    if ch in END:
                        return
                    yield "\n" if ch == "\r" else ch
    else:
        while True:
            ch = fh.read(1)
            if not ch:
                return
            yield ch
