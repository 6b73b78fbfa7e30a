"""``edgernn reliability``: parse the flags, run ``edgernn.reliability.suite``, write RELIABILITY.md."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from edgernn.reliability.suite import SECTIONS

HELP = (
    "Inject faults, fuzz (spec, snapshots, CLI flags, constant-folded bombs), soak and race the runtime "
    "in child processes under limits; write RELIABILITY.md."
)
EXAMPLE = (
    "edgernn reliability -o RELIABILITY.md          # quick pass (about a minute)\n"
    "  edgernn reliability --long -o RELIABILITY.md   # 10^6 steps, 10^4 streams (minutes)"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default="RELIABILITY.md", help="the report to write (default RELIABILITY.md)")
    p.add_argument("--long", action="store_true", help="full sizes: 10^6 steps, 10^4 streams x 100 steps")
    p.add_argument("--json", metavar="FILE", help="also write the raw results as JSON")
    p.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=SECTIONS,
        help="sections to leave out",
    )


def main(args: argparse.Namespace) -> int:
    import json

    from edgernn.reliability.report import failures, render
    from edgernn.reliability.suite import Sizes, collect

    for flag, target in (("--output", args.output), ("--json", args.json)):
        if target is not None:
            _check_output(flag, target)  # before the run, not after minutes of it
    sizes = Sizes.pick(args.long)
    results = collect(sizes, args.skip, args.long)
    results["command"] = "edgernn reliability" + (" --long" if args.long else "")
    Path(args.output).write_text(render(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    bad = failures(results)
    print(f"wrote {args.output}: " + ("all checks passed" if not bad else f"{len(bad)} failed: {', '.join(bad)}"))
    return 1 if bad else 0


def _check_output(flag: str, target: str) -> None:
    """EdgeRNNError unless ``target`` can be written as a regular file (folders are made)."""
    from edgernn.runtime.errors import EdgeRNNError

    path = Path(target)
    if not target or path.is_dir() or (path.exists() and not path.is_file()):
        raise EdgeRNNError(f"{flag} {target!r}: give the name of a regular file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeRNNError(f"{flag} {target!r}: cannot make its folder: {exc.strerror or exc}") from None
    try:  # what the file system says, not what the permission bits promise (root, /proc, read-only mounts)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        raise EdgeRNNError(f"{flag} {target!r}: cannot write into {path.parent}: {exc.strerror or exc}") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise EdgeRNNError(f"{flag} {target!r}: not writable")
