"""Issue 15 class 9: no command prints a traceback for a user error; values are checked before work.

Each case runs the real CLI (``edgernn.cli.main``) and asserts the whole answer: the exit status,
stderr exactly one line naming the flag, and no traceback. Runtime commands run in-process;
the shipped example models are the targets.
"""

from __future__ import annotations

import argparse
import io
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
from appcli import BLOCKED_CLI, shipped

from edgernn.cli import build_parser, main
from edgernn.cli.options import integer, number, text
from edgernn.cli.paths import in_file, out_file
from edgernn.runtime.engine import Engine
from edgernn.runtime.errors import ModelLoadError

LONG_NAME = "a" * 300 + ".onnx"


def refused(argv: list[str], capsys: pytest.CaptureFixture[str], status: int = 2) -> str:
    """Run ``edgernn argv``; assert it exits ``status`` with one line on stderr; return that line."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's exit, through CliParser.error
        code = exc.code
    err = capsys.readouterr().err
    assert code == status, f"edgernn {' '.join(argv)} exited {code}: {err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["run", "textgen", "--temperature", "nan"], "--temperature: expected a finite number from 0 to 100"),
        (["run", "textgen", "--temperature", "1e-30"], "--temperature: expected 0 (greedy) or a number from 0.01"),
        (["run", "textgen", "--seed", "-1"], "--seed: expected an integer from 0 to 4,294,967,295, got '-1'"),
        (["run", "langid", "--top", "0"], "--top: expected an integer from 1 to 100"),
        (["run", "textgen", "--chars", "1e400"], "--chars: expected an integer"),
        (["run", "textgen", "--prompt", ""], "--prompt: expected some text"),
        (["run", "textgen", "--prompt", "caf\udce9"], "is not valid UTF-8"),
        (["run", "weather", "--input", "/dev/zero"], "/dev/zero is not a regular file"),
        (["run", "weather", "--input", "/nonexistent/w.csv"], "No such file or directory"),
        (["export", "ckpt", "--opset", "99"], "--opset: expected an integer from 7 to 23, got '99'"),
        (["export", "ckpt", "--steps", "-5"], "--steps: expected an integer from 1 to 1,000,000, got '-5'"),
        (["export", "ckpt", "--steps", "0"], "--steps: expected an integer from 1"),
        (["export", "ckpt", "-o", LONG_NAME], "has 305 bytes; names up to"),
        (["export", "ckpt", "--tolerance", "inf"], "--tolerance: expected a finite number"),
        (["train", "textgen", "--lr", "nan"], "--lr: expected a finite number above 0"),
        (["train", "textgen", "--seq-len", "0"], "--seq-len: expected an integer from 1"),
        (["train", "textgen", "--hidden", "99999999999"], "--hidden: expected an integer from 1 to 8,192"),
        (["train", "textgen", "-o", "/proc/edgernn-run"], "cannot write into /proc"),
        (["train", "nosuchtask"], "invalid choice: 'nosuchtask'"),
        (["profile", "MODEL", "--budget-ms", "nan"], "--budget-ms: expected a finite number above 0"),
        (["profile", "MODEL", "--json", "/proc/x.json"], "--json: /proc/x.json: cannot write into /proc"),
        (["profile", "MODEL", "--json", "out.txt"], "unrecognized arguments: out.txt"),
        (["profile", "MODEL", "--plot", "/"], "expected a file name ending in .png"),
        (["profile", "MODEL", "--plot", "557327.3746107367"], "expected a file name ending in .png, .svg"),
        (["profile", "MODEL", "--threads", "4096"], "--threads: expected an integer from 1 to 256"),
        (["train", "textgen", "--threads", "100000"], "--threads: expected an integer from 0 to 256"),
        (["profile", "MODEL", "--batch", "-3"], "--batch: expected an integer from 1"),
        (["profile", "MODEL", "--rate=-inf"], "--rate: expected a finite number"),
        (["profile", "/dev/null"], "/dev/null is not a regular file"),
        (["devices", "check", "MODEL", "--calls", "0"], "--calls: expected an integer from 1"),
        (["bench", "--cells", "gru,xyz"], "--cells: expected names from rnn, gru, lstm"),
        (["bench", "--block-ms", "nan"], "--block-ms"),
        (["reliability", "-o", "/proc/R.md"], "cannot write into /proc"),
        (["inspect", "/tmp"], "/tmp is a folder, not a regular file"),
        (["nosuchcommand"], "invalid choice"),
    ],
)
def test_bad_values_are_one_line_before_any_work(argv, says, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    model = str(shipped("weather"))
    argv = [model if a == "MODEL" else str(ckpt) if a == "ckpt" else a for a in argv]
    line = refused(argv, capsys)
    assert says in line, line
    assert line.startswith("edgernn"), line


def test_profile_refuses_an_unwritable_json_before_the_run(capsys) -> None:
    """The JSON target is checked while parsing: nothing is timed (the old code failed after the whole run)."""
    t = time.perf_counter()
    refused(["profile", str(shipped("weather")), "--calls", "100000000", "--json", "/proc/x.json"], capsys)
    assert time.perf_counter() - t < 5.0  # 10^8 calls would take minutes


def test_weather_year_9999_and_non_utf8_input(tmp_path, capsys) -> None:
    shipped("weather")
    last = tmp_path / "last-day.csv"
    last.write_text("date,precipitation,temp_max,temp_min,wind\n9999-12-30,0,10,5,2\n9999-12-31,0,10,5,2\n")
    line = refused(["run", "weather", "--input", str(last)], capsys, status=1)
    assert "InputError" in line and "9999-12-31" in line and "past" in line
    latin = tmp_path / "latin1.csv"
    latin.write_bytes("date,precipitation,temp_max,temp_min,wind\n2015-01-01,0,10,5,2 \xb0C\n".encode("latin-1"))
    line = refused(["run", "weather", "--input", str(latin)], capsys, status=1)
    assert "not UTF-8 text" in line and "\\xb0" in line


def test_endless_line_is_refused_not_read_whole(tmp_path, capsys, monkeypatch) -> None:
    shipped("weather")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\0" * 300_000)))  # /dev/zero, cut short
    line = refused(["run", "weather"], capsys, status=1)
    assert "line 1 is longer than 100,000 characters" in line


def test_langid_non_utf8_stdin(capsys, monkeypatch) -> None:
    shipped("langid")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"Das ist \xff ein Haus\n"), encoding="latin-1"))
    line = refused(["run", "langid", "--final"], capsys, status=1)
    assert line.startswith("edgernn run: InputError: stdin: not UTF-8 text (byte b'\\xff'")


def test_langid_output_grows_linearly_with_the_line() -> None:
    """A 40,000-character line printed per character: each answer shows the line's end, not all of it."""
    shipped("langid")
    n = 40_000
    text = ("Das ist ein kleines Haus mit einem roten Dach " * 1000)[:n] + "\n"
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKED_CLI, "run", "langid"], input=text, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert len(out) == n
    assert max(len(line) for line in out) < 200  # the old output's last line alone had 40,000 characters
    assert len(proc.stdout) < 200 * n  # was 801 MB at this length (quadratic)
    assert out[-1].startswith("…" + text[n - 59 : n]) and "de " in out[-1]


def test_engine_load_with_nul_in_the_path_is_a_model_load_error() -> None:
    with pytest.raises(ModelLoadError, match="NUL"):
        Engine.load("a\x00b")


# -- the validation layer itself ------------------------------------------------------------


def test_typed_values() -> None:
    assert integer(1, 5)("3") == 3 and number(0.0, 1.0)("0.5") == 0.5
    for bad in ("nan", "inf", "-inf", "1e400", "", "x", "-0.1"):
        with pytest.raises(argparse.ArgumentTypeError):
            number(0.0, 1.0)(bad)
    for bad in ("0", "6", "2.5", "", "1e3", "nan"):
        with pytest.raises(argparse.ArgumentTypeError):
            integer(1, 5)(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="NUL"):
        text()("a\x00b")
    assert math.isclose(number(0.0, 1.0, lo_open=True)("1e-300"), 1e-300)
    with pytest.raises(argparse.ArgumentTypeError):
        number(0.0, 1.0, lo_open=True)("0")


def test_paths(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    import os

    os.mkfifo(fifo)
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * 101)
    for bad, says in (
        (str(fifo), "not a regular file"),
        (str(tmp_path), "is a folder"),
        (str(big), "101 bytes, above the limit 100"),
        ("", "empty"),
    ):
        with pytest.raises(argparse.ArgumentTypeError, match=says):
            in_file(100)(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="not a regular file; only those are replaced"):
        out_file(str(fifo))
    with pytest.raises(argparse.ArgumentTypeError, match="is not a folder"):
        out_file(str(big / "x.json"))
    new = tmp_path / "a" / "b" / "new.json"
    assert out_file(str(new)) == str(new) and not new.parent.exists()  # checked, nothing made
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.txt", "fifo"]  # the probe left nothing


def test_every_flag_is_typed() -> None:
    """No flag takes a bare int, float or unchecked string: every value goes through the validation layer."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    loose = []
    for name, p in sub.choices.items():
        for action in p._actions:
            takes_value = action.nargs != 0 and not isinstance(action, argparse._HelpAction)
            if takes_value and action.choices is None and action.type in (None, int, float, str):
                loose.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert loose == []
