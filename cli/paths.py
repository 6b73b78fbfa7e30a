"""Paths on the command line: checked before any work (inputs readable, outputs writable), outputs listed after.

``out_file`` / ``out_dir`` check that a place can be written *now*, by creating and removing a
temporary file there (the only honest test, root included), so a long run cannot fail at its
end; ``in_file`` that a regular file can be read (never a FIFO, a device such as /dev/zero, or a
folder) and, with a bound, is not too large. ``report_written`` lists what a command wrote.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO, TypeVar

STDOUT = "-"
NAME_MAX = 255  # bytes in one path component (Linux, macOS)
PATH_MAX = 4096
TEMP_ROOM = 24  # outputs are written as a temporary ".<name>.XXXXXXXX.tmp" beside them, then renamed


T = TypeVar("T")


def typed_as(name: str, check: Callable[[str], T]) -> Callable[[str], T]:
    """``check`` as an argparse type named ``name``; an OSError while checking is a refused value too."""

    def parse(value: str) -> T:
        try:
            return check(value)
        except OSError as exc:  # e.g. a folder on the way that cannot be searched
            raise argparse.ArgumentTypeError(f"{value}: {exc.strerror or exc}") from None

    parse.__name__ = name  # argparse names the type in its own messages
    return parse


def _check_path(value: str, room: int = 0) -> Path:
    if not value:
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    if "\x00" in value:
        raise argparse.ArgumentTypeError("the path contains a NUL character")
    raw = os.fsencode(value)
    if len(raw) > PATH_MAX:
        raise argparse.ArgumentTypeError(f"the path has {len(raw)} bytes, above the limit {PATH_MAX}")
    parts = raw.split(b"/")
    for i, part in enumerate(parts):
        if len(part) + (room if i == len(parts) - 1 else 0) > NAME_MAX:
            name = os.fsdecode(part)
            raise argparse.ArgumentTypeError(
                f"the name {name[:40]!r}... has {len(part)} bytes; names up to {NAME_MAX - room} bytes can be written"
            )
    return Path(value)


def _existing_ancestor(path: Path) -> Path:
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: {parent} is not a folder")
    return parent


def _probe_dir(folder: Path, path: Path) -> None:
    """Create and remove a temporary file in ``folder``: the only honest test of writability (root included)."""
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".edgernn-probe-")
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{path}: cannot write into {folder}: {exc.strerror}") from None
    os.close(fd)
    os.unlink(name)


def check_out_file(value: str) -> str:
    """``value`` names a file that can be written now: a regular file or a new name in a writable folder."""
    path = _check_path(value, room=TEMP_ROOM)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a folder; give a file name")
    if os.path.lexists(path):
        try:
            info = os.stat(path)
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"{value}: {exc.strerror}") from None
        if not stat.S_ISREG(info.st_mode):
            raise argparse.ArgumentTypeError(f"{value} exists and is not a regular file; only those are replaced")
        try:  # opened for writing without truncating: nothing changes
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"{value}: cannot write it: {exc.strerror}") from None
    _probe_dir(_existing_ancestor(path), path)
    return value


def check_out_dir(value: str) -> str:
    """``value`` is a folder that exists and can be written, or can be made."""
    path = _check_path(value)
    if os.path.lexists(path) and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} exists and is not a folder")
    _probe_dir(path if path.is_dir() else _existing_ancestor(path), path)
    return value


def in_file(max_bytes: int | None = None, suffixes: Sequence[str] = ()) -> Callable[[str], object]:
    """A regular file that can be read now (not a FIFO, a device or a folder), at most ``max_bytes``."""

    def parse(value: str) -> str:
        path = _check_path(value)
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{value} is a folder, not a regular file")
        info = _stat_readable(value)
        if not stat.S_ISREG(info.st_mode):
            raise argparse.ArgumentTypeError(f"{value} is not a regular file (a device, FIFO or socket)")
        if max_bytes is not None and info.st_size > max_bytes:
            raise argparse.ArgumentTypeError(f"{value} has {info.st_size:,} bytes, above the limit {max_bytes:,}")
        if suffixes and not value.endswith(tuple(suffixes)):
            raise argparse.ArgumentTypeError(f"{value}: expected a {' or '.join(suffixes)} file")
        return value

    return typed_as("file", parse)


def in_path(value: str) -> str:
    """An existing regular file or folder that can be read (a checkpoint or a run directory)."""
    path = _check_path(value)
    if path.is_dir():
        if not os.access(path, os.R_OK | os.X_OK):
            raise argparse.ArgumentTypeError(f"{value}: cannot read the folder")
        return value
    info = _stat_readable(value)
    if not stat.S_ISREG(info.st_mode):
        raise argparse.ArgumentTypeError(f"{value} is not a regular file or a folder")
    return value


def _stat_readable(value: str) -> os.stat_result:
    try:  # O_NONBLOCK: opening a FIFO must not wait for a writer
        fd = os.open(value, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{value}: cannot read it: {exc.strerror}") from None
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


out_file = typed_as("path", check_out_file)


def out_file_with(suffixes: Sequence[str]) -> Callable[[str], object]:
    """An ``out_file`` whose name ends in one of ``suffixes`` (the format is read from it)."""

    def parse(value: str) -> str:
        if not value.lower().endswith(tuple(suffixes)):
            raise argparse.ArgumentTypeError(f"expected a file name ending in {', '.join(suffixes)}, got {value!r}")
        return check_out_file(value)

    return typed_as("path", parse)


out_dir = typed_as("folder", check_out_dir)
in_path_type = typed_as("path", in_path)


def emit_json(target: str | None, payload: str) -> str | None:
    """Write ``payload`` to stdout ('-') or to ``target`` (folders made); the file written, if any."""
    if target is None:
        return None
    if target == STDOUT:
        sys.stdout.write(payload + "\n")
        return None
    write_text(target, payload + "\n")
    return target


def write_text(target: str | os.PathLike[str], payload: str) -> Path:
    """Write atomically: a temporary file beside ``target`` renamed into place (folders made)."""
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(payload)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def text_out(json_target_value: str | None) -> TextIO:
    """Where the human-readable report goes: stderr when the JSON takes stdout."""
    return sys.stderr if json_target_value == STDOUT else sys.stdout


def report_written(paths: Sequence[str | os.PathLike[str] | None], out: TextIO | None = None) -> None:
    """The files a command wrote, one per line with its size, at the end of its output."""
    shown = [Path(p) for p in paths if p is not None and Path(p).exists()]
    if not shown:
        return
    stream = out or sys.stdout
    stream.write("wrote:\n")
    for p in shown:
        size = p.stat().st_size if p.is_file() else None
        kind = "folder" if p.is_dir() else f"{size / 1024:,.1f} KiB" if size is not None else ""
        stream.write(f"  {p}  ({kind})\n")
    stream.flush()
