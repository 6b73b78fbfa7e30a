"""``edgernn reliability``: parse the flags, run ``edgernn.reliability.suite``, write RELIABILITY.md."""

from __future__ import annotations

import argparse

from edgernn.cli.options import add_json, add_out
from edgernn.cli.paths import emit_json, report_written, text_out, write_text
from edgernn.reliability.suite import SECTIONS

EXTRA = "all"
REQUIRES = ("torch", "onnx", "hypothesis")
HELP = (
    "Inject faults, fuzz (spec, snapshots, CLI flags, constant-folded bombs), soak and race the runtime "
    "in child processes under limits; write RELIABILITY.md."
)
EXAMPLE = (
    "edgernn reliability -o RELIABILITY.md          # quick pass (about a minute)\n"
    "  edgernn reliability --long -o RELIABILITY.md   # 10^6 steps, 10^4 streams (minutes)"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_out(p, "the report to write", default="RELIABILITY.md")  # checked writable while parsing, before the run
    p.add_argument("--long", action="store_true", help="full sizes: 10^6 steps, 10^4 streams x 100 steps")
    add_json(p, "the raw results")
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

    sizes = Sizes.pick(args.long)
    results = collect(sizes, args.skip, args.long)
    results["command"] = "edgernn reliability" + (" --long" if args.long else "")
    write_text(args.out, render(results))
    written = emit_json(args.json, json.dumps(results, indent=1, default=str))
    bad = failures(results)
    shown = text_out(args.json)
    report_written([args.out, written], shown)
    if not bad:
        print(f"all checks passed in {results['total_seconds']:.0f} s", file=shown)
        return 0
    import sys

    from edgernn.reliability.hostile import SURFACES

    examples = [f"  {name}: {e[:300]}" for name in SURFACES for e in results.get(name, {}).get("examples", [])]
    print(f"edgernn reliability: {len(bad)} check(s) FAILED: {', '.join(bad)}", file=sys.stderr)
    for line in examples[:20]:
        print(line, file=sys.stderr)
    return 1
