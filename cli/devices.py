"""``edgernn devices``: list the device profiles, check where a model's nodes run, pick the fastest.

edgernn devices                                   # every profile: available here or not, and why
edgernn devices check model.onnx --device cuda    # placement report; exit 1 if strict refuses
edgernn devices auto model.onnx --batch 1 --chunk 1   # measure each available profile, record the choice
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any

import onnxruntime as ort

from edgernn.cli.options import add_json, integer, text
from edgernn.cli.paths import emit_json, in_file, out_file, report_written, text_out

HELP = "List device profiles (available here or not), report node placement, pick the fastest (--device auto)."
EXAMPLE = "edgernn devices check runs/demo/model.onnx --device openvino"
ACTIONS = ("list", "check", "auto")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=ACTIONS, default="list", help="what to do (default: list)")
    p.add_argument("model", nargs="?", type=in_file(), help="an .onnx model (check, auto)")
    p.add_argument(
        "--device", type=text(200), default="cpu", help="profile name or .toml path for check; 'auto' = the auto action"
    )
    p.add_argument("--no-strict", action="store_true", help="report a fallback instead of refusing the load")
    p.add_argument("--batch", type=integer(1, 65_536), default=1, help="streams per call to measure (auto)")
    p.add_argument("--chunk", type=integer(1, 65_536), default=1, help="frames per call to measure (auto)")
    p.add_argument("--calls", type=integer(1, 10_000_000), default=500, help="timed calls per profile (auto)")
    p.add_argument(
        "--profiles", type=text(2000), default="", help="comma-separated profiles to try (auto; default: all)"
    )
    p.add_argument("--record", type=out_file, help="where to write the choice (auto; default: beside the model)")
    add_json(p, "the answer")


def list_profiles(as_json: str | None) -> int:
    from edgernn.devices.profiles import load_profile, profile_names

    rows: list[dict[str, Any]] = []
    for name in profile_names():
        prof = load_profile(name)
        missing = prof.missing_providers()
        rows.append(
            {
                "profile": name,
                "available": not missing,
                "reason": "; ".join(f"{p}: {r}" for p, r in missing),
                "providers": list(prof.provider_names),
                "device": prof.device,
                "precision": prof.precision,
                "strict": prof.strict,
                "description": prof.description,
            }
        )
    if as_json:
        report_written([emit_json(as_json, json.dumps(rows, indent=2))])
        return 0
    print(f"onnxruntime {ort.__version__}; providers here: {', '.join(ort.get_available_providers())}")
    for r in rows:
        state = "available" if r["available"] else "not here"
        print(f"  {r['profile']:<11} {state:<10} {r['device']:<5} {r['precision']:<5} {', '.join(r['providers'])}")
        if not r["available"]:
            print(f"  {'':<11} -> {r['reason']}")
    return 0


def main(args: argparse.Namespace) -> int:
    if args.action == "list":
        return list_profiles(args.json)
    if not args.model:
        print(f"edgernn devices {args.action}: give a model path", file=sys.stderr)
        return 2
    if args.action == "auto" or args.device == "auto":
        from edgernn.devices.auto import choose_device, default_record_path

        names = [n.strip() for n in args.profiles.split(",") if n.strip()] or None
        choice = choose_device(args.model, args.batch, args.chunk, calls=args.calls, names=names)
        path = choice.save(args.record or default_record_path(args.model, args.batch, args.chunk))
        print(choice, file=text_out(args.json))
        report_written([path, emit_json(args.json, choice.to_json())], text_out(args.json))
        return 0
    from edgernn.devices.placement import FallbackWarning, load_engine

    with warnings.catch_warnings():  # the report is printed below
        warnings.simplefilter("ignore", FallbackWarning)
        _, report = load_engine(args.model, args.device, strict=False if args.no_strict else None)
    if args.json:
        report_written([emit_json(args.json, json.dumps(report.to_dict(), indent=2))])
    else:
        print(report)
    return 0 if report.ok else 1
