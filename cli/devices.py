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

import onnxruntime as ort

HELP = "List device profiles (available here or not), report node placement, pick the fastest (--device auto)."
EXAMPLE = "edgernn devices check runs/demo/model.onnx --device openvino"
ACTIONS = ("list", "check", "auto")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=ACTIONS, default="list", help="what to do (default: list)")
    p.add_argument("model", nargs="?", help="an .onnx model (check, auto)")
    p.add_argument("--device", default="cpu", help="profile name or .toml path for check; 'auto' = the auto action")
    p.add_argument("--no-strict", action="store_true", help="report a fallback instead of refusing the load")
    p.add_argument("--batch", type=int, default=1, help="streams per call to measure (auto)")
    p.add_argument("--chunk", type=int, default=1, help="frames per call to measure (auto)")
    p.add_argument("--calls", type=int, default=500, help="timed calls per profile (auto)")
    p.add_argument("--profiles", default="", help="comma-separated profiles to try (auto; default: all)")
    p.add_argument("--record", default="", help="where to write the choice (auto; default: beside the model)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def list_profiles(as_json: bool) -> int:
    from edgernn.devices.profiles import load_profile, profile_names

    rows = []
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
        print(json.dumps(rows, indent=2))
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
        print(choice.to_json() if args.json else f"{choice}\nrecorded in {path}")
        return 0
    from edgernn.devices.placement import FallbackWarning, load_engine

    with warnings.catch_warnings():  # the report is printed below
        warnings.simplefilter("ignore", FallbackWarning)
        _, report = load_engine(args.model, args.device, strict=False if args.no_strict else None)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report)
    return 0 if report.ok else 1
