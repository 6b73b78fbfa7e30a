"""CLI argument fuzz: every flag of every subcommand with boundary and random values.

The flags are read from the parser itself (``edgernn.cli.build_parser``), so a new flag is
fuzzed without a change here. Each case runs ``edgernn.cli.main`` in the child on a cheap
valid command line of its subcommand with one argument replaced: for numbers NaN, ±inf, 0,
-1, huge, -0, empty, non-UTF-8; for names and paths empty, non-UTF-8, ``/dev/zero``, a FIFO,
a folder, a character device, ``/proc/x.json``, a 300-character name, a missing folder; for
choices an unknown one. Outcomes: ``accepted`` (exit 0), ``refused`` (exit 1 with an
``edgernn CMD: SomeError: ...`` line), ``usage`` (argparse's exit 2), and ``untyped`` when an
exception escapes ``main`` or a traceback is printed (what a user would see). Each case has
a time budget; past it the case is stopped: a hang for a command whose valid run is short, a
long run for ``bench`` / ``demo`` (a valid value may ask for minutes of work, e.g. ``--rounds
10000``). Their baselines are the smallest runs they take (a few seconds), so most valid
values run to the end.

Example:
    >>> ctx = setup(Path("/tmp/x"), 0)  # doctest: +SKIP
    >>> run_case(ctx, 0)                 # doctest: +SKIP
    'usage'
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import signal
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgernn.reliability.suite import SECTIONS

BUDGET_S = 30
LONG = ("bench", "demo")  # a valid value may start minutes of work: stopped at the budget, not a hang
RESTART_AFTER = ("long run", "hang")  # outcomes after which the child process is replaced (hostile.py)
NUMBERS = ["nan", "inf", "-inf", "0", "-1", "1e308", str(2**63), "", "\udcff", "-0"]
NAMES = ["", "\udcff", "/dev/zero", "{root}/fifo", "{root}/dir", "{root}/chardev", "/proc/x.json",
         "{root}/" + "x" * 300, "{root}/missing/deep/x.onnx",
         "{root}/ünï cødé ✓", "{root}/bad\udcff\udcfe\nx 'y\""]  # fmt: skip  (odd names: not UTF-8, newline, quotes)


class Budget(BaseException):
    """Raised in the case by the timer (BaseException: no ``except Exception`` swallows it)."""


_SMALL_BENCH: dict[str, str | None] = {
    "--cells": "gru", "--hidden": "8", "--streams": "1", "--hiddens": "8", "--no-scale": None, "--soak": "0",
    "--no-compile": None, "--rounds": "1", "--block-ms": "1",
}  # fmt: skip  (a few seconds instead of minutes)


def _baselines(root: Path) -> dict[str, tuple[list[str], dict[str, str | None]]]:
    """A cheap valid command line per subcommand: (positionals, {flag: value or None for a switch})."""
    model = str(root / "m.onnx")
    return {
        "train": (["recall"], {"--hidden": "8", "--steps": "2", "--batch": "4", "--out": f"{root}/run", "--force": None}),  # noqa: E501
        "export": ([str(root / "ck.safetensors")], {"-o": f"{root}/out.onnx", "--force": None}),
        "inspect": ([model], {"--no-providers": None}),
        "run": (["textgen"], {"--model": str(root / "textgen.onnx"), "--chars": "5"}),
        "profile": ([model], {"--calls": "5", "--warmup": "1", "--quiet": None}),
        "bench": ([], {"--quick": None, "--out": f"{root}/bench.md", **_SMALL_BENCH}),
        "devices": (["list"], {}),
        "demo": ([], {"--seconds": "1", "--hidden": "8", "--chars": "5", "--out": f"{root}/demo", "--force": None}),
        "reliability": ([], {"-o": f"{root}/rel.md", "--skip": " ".join(SECTIONS)}),
        "serve-route": ([], {"--servers": "127.0.0.1:1", "--owner": "1"}),  # no connection for --owner
        "spec": ([model], {}),
    }


def prepare(root: Path, seed: int) -> None:
    """A tiny checkpoint and its export, and the special files the paths point at (needs torch)."""
    import shutil

    import torch

    from edgernn.export.onnx_export import export_model
    from edgernn.runtime.spec import ModelConfig
    from edgernn.train.checkpoint import save_checkpoint
    from edgernn.train.model import build_model

    torch.manual_seed(seed)
    cfg = ModelConfig(cell="gru", input_kind="tokens", input_size=8, hidden_size=8, num_layers=1, output_size=8)
    model = build_model(cfg).eval()
    save_checkpoint(root / "ck.safetensors", model, {}, {})
    export_model(model, root / "m.onnx")
    shipped = Path(__file__).resolve().parents[1] / "runtime" / "models" / "textgen.onnx"
    if shipped.is_file():
        shutil.copy(shipped, root / "textgen.onnx")
    os.mkfifo(root / "fifo")
    (root / "dir").mkdir()
    try:  # what /dev/full is, made here so that a --force that replaces it harms nothing
        os.mknod(root / "chardev", stat.S_IFCHR | 0o666, os.makedev(1, 7))
    except OSError:
        (root / "chardev").symlink_to("/dev/full")


def _actions() -> list[tuple[str, argparse.Action]]:
    from edgernn.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = []
    for name, p in sub.choices.items():
        out += [(name, a) for a in p._actions if not isinstance(a, argparse._HelpAction)]
    return out


def _values(action: argparse.Action, root: Path) -> Sequence[str | None]:
    if action.nargs == 0:
        return [None]
    if action.choices:
        return ["", "\udcff", "x" * 300, "nope"]
    numeric = ("_ints", "integer", "number", "integers", "temperature")  # the CLI's typed values (cli/options.py)
    if action.type in (int, float) or getattr(action.type, "__name__", "") in numeric:
        return NUMBERS
    names = [v.format(root=root) for v in NAMES]
    if isinstance(action, argparse._AppendAction):  # NAME=VALUE hints
        names += ["x=nan", "x=", "=1", "x=1e400", "x=-1", "x=" + "9" * 5000]
    return names


def setup(root: Path, seed: int) -> dict[str, Any]:
    import warnings

    warnings.resetwarnings()  # library warnings print, as they would for a user
    cases = enumerate_cases(root)
    base = _baselines(root)
    ctx: dict[str, Any] = {"root": root, "seed": seed, "cases": cases, "base": base}
    for cmd, (positionals, options) in base.items():  # warm: imports and first-call caches
        if cmd not in LONG:  # those would only run into their budget
            invoke(cmd, [cmd, *positionals, *_flags(options)])
    return ctx


def enumerate_cases(root: Path) -> list[tuple[str, argparse.Action, str | None]]:
    """Every (subcommand, flag, value), ordered so that any prefix reaches every subcommand and, as
    it grows, every flag's first value, then every flag's second value, and so on."""
    per_cmd: dict[str, list[list[tuple[str, argparse.Action, str | None]]]] = {}
    for cmd, action in _actions():
        per_cmd.setdefault(cmd, []).append([(cmd, action, v) for v in _values(action, root)])
    cases = []
    for k in range(max(len(_values(a, root)) for _, a in _actions())):
        rows = [[vals[k] for vals in flags if k < len(vals)] for flags in per_cmd.values()]
        for r in range(max(len(row) for row in rows)):
            cases += [row[r] for row in rows if r < len(row)]
    return cases


def argv_for(ctx: dict[str, Any], i: int) -> tuple[str, list[str]]:
    """The command line of case ``i``: in a run of at least ``len(cases)`` cases, every enumerated boundary
    case (``enumerate_cases``) once, then random values for random flags; in a shorter run (the quick
    pass) every fifth case random, the others the enumerated ones in order."""
    cases, total = ctx["cases"], ctx.get("total", 0)
    random_case = i >= len(cases) if total >= len(cases) else (i % 5 == 4 or i - i // 5 >= len(cases))
    if random_case:
        rng = random.Random(ctx["seed"] * 1_000_003 + i)
        cmd, action, _ = rng.choice(cases)
        value = _random_value(rng) if action.nargs != 0 else None
    else:
        cmd, action, value = cases[i if total >= len(cases) else i - i // 5]
    positionals, options = ctx["base"].get(cmd, ([], {}))  # a subcommand without a baseline: its flags alone
    positionals, options = list(positionals), dict(options)
    if action.option_strings:
        for flag in action.option_strings:
            options.pop(flag, None)
        options[action.option_strings[-1]] = value
    else:
        index = [a.dest for c, a, _ in cases if c == cmd and not a.option_strings].index(action.dest)
        while len(positionals) <= index:
            positionals.append("")
        positionals[index] = value or ""
    return cmd, [cmd, *positionals, *_flags(options)]


def _random_value(rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        return repr(rng.uniform(-1e6, 1e6))
    if kind == 1:
        return str(rng.randint(-(2**70), 2**70))
    if kind == 2:
        return "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randint(0, 20)))
    return rng.choice(["1e-320", "0x10", "1_000", " 3 ", "1,2,3", "--", "-", "~", "$HOME", "a\nb"])


def _flags(options: dict[str, str | None]) -> list[str]:
    argv: list[str] = []
    for flag, v in options.items():
        argv += [flag] if v is None else ([flag, *v.split(" ")] if flag == "--skip" else [flag, v])
    return argv


class _Bounded(io.StringIO):
    """Keeps the first 64 KiB and the last 8 KiB (where the error line is), counts the rest: a command
    that floods its output still ends, and its closing message is still read."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.tail = ""

    def write(self, s: str) -> int:
        self.total += len(s)
        if self.tell() < 1 << 16:
            super().write(s[: (1 << 16) - self.tell()])
        self.tail = (self.tail + s)[-(1 << 13) :]
        return len(s)

    def getvalue(self) -> str:
        head = super().getvalue()
        return head if self.total <= len(head) else head + "\n...\n" + self.tail


def _alarm(signum: int, frame: Any) -> None:
    raise Budget


def _stopped(cmd: str, argv: list[str]) -> str:
    return "long run (stopped at the budget)" if cmd in LONG else f"hang: {cmd} ran past {BUDGET_S} s: {argv}"


def _interrupted(exc: BaseException | None) -> bool:
    """True when ``Budget`` is anywhere in ``exc``'s chain of causes."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, Budget):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def run_case(ctx: dict[str, Any], i: int) -> str:
    cmd, argv = argv_for(ctx, i)
    return invoke(cmd, argv)


def invoke(cmd: str, argv: list[str]) -> str:
    """Run ``edgernn ARGV`` in this process under the case's time budget; the outcome (see the module doc)."""
    from edgernn.cli import main

    out, err = _Bounded(), _Bounded()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, BUDGET_S)
    stdin = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(b"\xff\xfe hello\n"), encoding="utf-8")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except Budget:  # the child is restarted after this case (an import cut short would poison the next ones)
        return _stopped(cmd, argv)
    except SystemExit as exc:  # sys.exit(None) is 0; sys.exit("text") prints the text and exits 1
        code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
        if code == 2:
            return "usage"
        if isinstance(exc.code, str) and exc.code:
            return "refused"
    except Exception as exc:  # escaped main(): the user sees a traceback
        if _interrupted(exc):  # the budget's signal landed inside code that wrapped it (a class body: RuntimeError)
            return _stopped(cmd, argv)
        return f"untyped: {cmd}: {type(exc).__name__}: {str(exc)[:100]} <- {argv[1:]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        sys.stdin = stdin
    text = err.getvalue()
    if "Traceback" in text:
        return f"untyped: {cmd}: a traceback was printed <- {argv[1:]}"
    if code == 0:
        return "accepted"
    if any(line.startswith(f"edgernn {cmd}:") for line in text.splitlines()) or "error:" in text:
        return "refused"
    return f"untyped: {cmd}: exit {code} without a message <- {argv[1:]}"


def case_count(root: Path = Path("/r")) -> int:
    """How many enumerated cases there are (every flag x every boundary value)."""
    return len(enumerate_cases(root))
