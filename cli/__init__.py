"""The one CLI, ``edgernn``, with subcommands.

Each subcommand lives beside the code it drives, in a module with ``HELP``, ``EXAMPLE``,
``add_arguments(parser)`` and ``main(args) -> int``. Those modules import torch or onnx only
inside ``main``, so runtime subcommands work on an edge install.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

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


def _module(name: str) -> ModuleType:
    return importlib.import_module(COMMANDS[name])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgernn",
        description="Train, export, stream and profile recurrent networks on the edge.",
        epilog="example: edgernn demo",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        mod = _module(name)
        p = sub.add_parser(
            name,
            help=mod.HELP,
            description=mod.HELP,
            epilog=f"example:\n  {mod.EXAMPLE}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        mod.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 1
    from edgernn.runtime.errors import EdgeRNNError

    try:
        return int(_module(args.command).main(args) or 0)
    except EdgeRNNError as exc:
        print(f"edgernn {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
