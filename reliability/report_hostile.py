"""RELIABILITY.md's section on the hostile surfaces (``reliability/hostile.py``) and their targets."""

from __future__ import annotations

from typing import Any

from edgernn.reliability.hostile import RSS_TARGET_MIB, SURFACES

WHAT = {
    "spec-fuzz": "stream spec: random JSON types at 1–3 random paths (and 1,000-deep nesting), written into a real "
    "model's metadata, `Engine.load` then push / snapshot / restore / `step_many`",
    "snapshot-fuzz": "forged snapshots: a valid sha256 around a mutated or hostile header (lists, `tensors: [1]`, "
    "5,000-deep), payload cut or padded; a refused restore must leave the state as it was",
    "bombs": "constant-folded memory bombs: ConstantOfShape / Expand / Tile / Range of a shape built through "
    "Identity, Concat, Mul, Add, Cast, Gather, Shape, Constant, an If branch; half above 1 GiB (must be refused), "
    "half small (must load and compute what the fold predicted)",
    "churn": "4 threads x 60 random operations on shared streams: `step_many`, `Batch.join` / `leave` / `step`, "
    "push, snapshot / restore across streams, close",
    "cli-fuzz": "every flag of every subcommand (read from the parser) with NaN, ±inf, 0, -1, huge, -0, empty, "
    "non-UTF-8, /dev/zero, a FIFO, a folder, a device node, /proc/x.json, a 300-character name; `edgernn.cli.main` "
    "in the child, a traceback or an exception escaping it is untyped",
    "api-fuzz": "every argument of every public Python call (`Engine.load`, `engine.batch` / `step_many`, `Stream` "
    "and `Batch` methods, `infer_spec`, `read_spec`, `devices.load_engine`, `textgen.generate`; parameters read "
    "from the signatures) given None, bools, NaN, ±inf, -1, 2^70, bytes, containers, arrays, a function, a closed "
    "or foreign stream, /dev/zero, a FIFO; a refused call on a stream must leave its state as it was",
}


def hostile_failures(r: dict[str, Any]) -> list[str]:
    bad = []
    for name in SURFACES:
        s = r.get(name)
        if s is None:
            continue
        if s["untyped"] or s["aborts"] or s["hangs"] or s.get("wrong"):
            bad.append(name)
        elif s["max_held_mib"] > RSS_TARGET_MIB:
            bad.append(f"{name} (memory held)")
    return bad


def render_hostile(r: dict[str, Any]) -> list[str]:
    ran = [n for n in SURFACES if n in r]
    if not ran:
        return []
    any_s = r[ran[0]]
    lines = [
        "## 6. Hostile surfaces in child processes",
        "",
        f"Each surface runs in a child process under a {any_s['address_space_gib']:g} GiB address-space limit, "
        "restarted at the next case after an abort (a signal) or a hang (no answer within the case's timeout). "
        "After every case the child measures its RSS after `gc.collect()` and `malloc_trim(0)`; *held* is the "
        "growth over the level before that case. Warnings are errors in the children (except the CLI's, "
        f"which print as a user sees them). Targets: **0 untyped, 0 aborts, 0 hangs, held <= {RSS_TARGET_MIB:g} "
        "MiB** per case (`bombs`, `api-fuzz`: also 0 wrong: no missed bomb, no false alarm, no state changed by a "
        "refused call).",
        "",
        "*Imports.* Each surface warms up before its first measurement (every CLI subcommand's baseline run, every "
        "API call once), but a fuzzed value can take a path that imports a module the warm-up did not (the first "
        "`train` that really trains after a restart imports torch's optimiser and data code: ~100 MiB, once per "
        "process). Importing is a one-time cost, not memory a case holds, so a case that imported modules and "
        f"grew RSS past {RSS_TARGET_MIB:g} MiB is run again at once, warm, and its *held* is the repeat's growth "
        "from the level after the first run (a case that leaks keeps growing on the repeat and still fails: "
        "`tests/test_reliability_hostile.py`). *repeated* counts those cases and gives the largest first-run "
        "growth; every other case is measured once.",
        "",
        "| surface | cases | outcomes | untyped | aborts | hangs | wrong | max held MiB | repeated (first run MiB) "
        "| children | time |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ran:
        s = r[name]
        outcomes = ", ".join(f"{k} {v}" for k, v in s["outcomes"].items() if not k.startswith(("untyped", "hang")))
        repeated = f"{s['repeated']} ({s['max_first_held_mib']:.1f})" if s.get("repeated") else "0"
        lines.append(
            f"| {name} | {s['cases']:,} | {outcomes} | **{s['untyped']}** | **{s['aborts']}** | **{s['hangs']}** | "
            f"{s.get('wrong', 0)} | {s['max_held_mib']:.2f} | {repeated} | {s['children']} | {s['seconds']:.0f} s |"
        )
    lines += ["", "What each surface does:", ""]
    lines += [f"- `{name}`: {WHAT[name]}." for name in ran]
    examples = [(name, e) for name in ran for e in r[name]["examples"]]
    if examples:
        lines += [
            "",
            "Findings (first cases of each surface; rerun one with `reliability/hostile.py`'s case index):",
            "",
        ]
        lines += [f"- {name}: `{e[:220]}`" for name, e in examples]
    return lines
