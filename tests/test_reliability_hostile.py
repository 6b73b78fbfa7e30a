"""The hostile-surface runner: aborts, hangs, untyped errors and held memory are counted per case,
in child processes restarted after each; the surfaces reach what they claim to."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from edgernn.reliability.hostile import run_surface
from edgernn.reliability.report import failures, render

FAKE = """
import os, time
def setup(root, seed):
    return {"keep": []}
def run_case(ctx, i):
    if i == 1:
        os.abort()
    if i == 2:
        time.sleep(60)
    if i == 3:
        raise ValueError("bare")
    if i == 4:
        from edgernn.runtime.errors import SpecError
        raise SpecError("typed")
    if i == 5:
        ctx["keep"].append(bytearray(40 << 20))  # 40 MiB kept alive: held memory
    return "accepted"
"""


def test_the_runner_counts_aborts_hangs_untyped_and_held_memory(tmp_path: Path) -> None:
    (tmp_path / "fakesurface.py").write_text(FAKE)
    res = run_surface("fakesurface", cases=7, timeout=5, root=tmp_path)
    assert (res["aborts"], res["hangs"], res["untyped"]) == (1, 1, 1), res
    assert res["outcomes"]["accepted"] == 3 and res["outcomes"]["SpecError"] == 1
    assert res["children"] == 3  # restarted after the abort and after the hang
    assert 39 <= res["max_held_mib"] <= 45 and res["worst_case"] == 5
    assert any("case 1: abort (signal 6)" in e for e in res["examples"])


IMPORTS = """
def setup(root, seed):
    return {}
def run_case(ctx, i):
    if i == 1:
        import onetime  # 40 MiB allocated once, at import: not memory the case holds
    if i == 2:
        import leaky    # imports AND keeps 20 MiB more at every call: held
        leaky.leak()
    return "accepted"
"""


def test_a_one_time_import_is_measured_on_a_warm_repeat_a_leak_still_counts(tmp_path: Path) -> None:
    (tmp_path / "importsurface.py").write_text(IMPORTS)
    (tmp_path / "onetime.py").write_text("BIG = bytearray(40 << 20)\nBIG[::4096] = b'x' * len(BIG[::4096])\n")
    (tmp_path / "leaky.py").write_text(
        "KEPT = []\ndef leak():\n    b = bytearray(20 << 20)\n    b[::4096] = b'x' * len(b[::4096])\n"
        "    KEPT.append(b)\n"
    )
    res = run_surface("importsurface", cases=3, timeout=20, root=tmp_path)
    assert res["repeated"] == 2 and res["max_first_held_mib"] >= 39, res
    assert 19 <= res["max_held_mib"] <= 25 and res["worst_case"] == 2, res  # the leak, measured warm
    assert failures({"churn": res | {"untyped": 0}}) == ["churn (memory held)"]


def test_the_report_fails_on_any_untyped_abort_hang_or_held_memory() -> None:
    clean = {"cases": 5, "outcomes": {"accepted": 5}, "untyped": 0, "wrong": 0, "aborts": 0, "hangs": 0,
             "examples": [], "max_held_mib": 0.5, "worst_case": 0, "children": 1, "seconds": 1.0,
             "timeout_s": 30, "address_space_gib": 4.0}  # fmt: skip
    assert failures({"churn": clean}) == []
    for key, value, name in (("hangs", 1, "churn"), ("aborts", 1, "churn"), ("untyped", 2, "churn"),
                             ("max_held_mib", 11.0, "churn (memory held)")):  # fmt: skip
        assert failures({"churn": clean | {key: value}}) == [name]
    machine = {"cpu": "x", "cores": 2, "memory_gib": 1, "platform": "p", "python": "3", "onnxruntime": "1",
               "numpy": "2"}  # fmt: skip
    doc = render({"machine": machine, "load": {"mean": 1, "max": 1}, "command": "c", "total_seconds": 1,
                  "sizes": {"mutants": 1, "fuzz_examples": 1, "soak_steps": 1, "many_streams": 1, "many_steps": 1,
                            "threads": 1, "per_thread": 1, "thread_steps": 1, "hostile": {"churn": 5}},
                  "churn": clean | {"hangs": 1, "examples": ["case 3: hang (no answer in 60 s)"]}})  # fmt: skip
    assert "| churn | 5 |" in doc and "**1 check(s) failed:** churn" in doc and "case 3: hang" in doc


def test_spec_mutants_load_as_typed_errors_or_models(exported, tmp_path: Path) -> None:
    """Engine.load over 300 structural spec mutants in this process: only SpecError / ModelLoadError or a model."""
    from edgernn.reliability.specfuzz import mutate, to_text, with_spec
    from edgernn.runtime import Engine
    from edgernn.runtime.errors import ModelLoadError, SpecError

    _, path = exported["gru"]
    data = path.read_bytes()
    base = Engine.load(path).spec.to_dict()
    rng = random.Random(5)
    loaded = 0
    for _ in range(300):
        case = tmp_path / "case.onnx"
        case.write_bytes(with_spec(data, to_text(mutate(base, rng))))
        try:
            Engine.load(case)
            loaded += 1
        except (SpecError, ModelLoadError):
            pass
    assert 0 < loaded < 100  # most mutants break the spec; a few touch only free-form facts


def test_cli_fuzz_reaches_every_flag_of_every_subcommand(tmp_path: Path) -> None:
    from edgernn.cli import COMMANDS
    from edgernn.reliability.clifuzz import _actions, enumerate_cases

    cases = enumerate_cases(tmp_path)
    assert {c for c, _, _ in cases} == set(COMMANDS)
    assert {(c, a.dest) for c, a, _ in cases} == {(c, a.dest) for c, a in _actions()}
    first = cases[: len(COMMANDS)]
    assert {c for c, _, _ in first} == set(COMMANDS)  # a quick run's first cases touch every subcommand
    numbers = [v for c, a, v in cases if c == "profile" and a.dest == "budget_ms"]
    assert {"nan", "inf", "-inf", "0", "-1", "", "\udcff"} <= set(numbers)


@pytest.mark.parametrize("surface", ["bombs", "snapshot-fuzz", "api-fuzz"])
def test_surfaces_run_in_children_without_aborts_or_hangs(surface: str) -> None:
    res = run_surface(surface, cases=12, seed=3)
    assert res["aborts"] == 0 and res["hangs"] == 0 and res["cases"] == 12
    if surface == "api-fuzz":  # every argument of every public call: typed or accepted, state kept
        assert res["wrong"] == 0 and res["untyped"] == 0, res["examples"]
    if surface == "bombs":  # class 4 (this work): every big one refused, every small one computed as folded
        assert res["wrong"] == 0 and res["untyped"] == 0, res["examples"]
        assert set(res["outcomes"]) == {"ModelLoadError", "accepted"}
    json.dumps(res)


def test_the_suite_runs_its_steps_on_worker_processes_and_keeps_section_order() -> None:
    """make reliability fits its time by running two steps at once (suite.collect); the report's order stays fixed."""
    from dataclasses import replace

    from edgernn.reliability.suite import SECTIONS, Sizes, collect

    sizes = replace(Sizes.pick(False), hostile={"api-fuzz": 6, "churn": 1})
    keep = {"api-fuzz", "churn"}
    res = collect(sizes, [s for s in SECTIONS if s not in keep], long=False, jobs=2)
    ran = [k for k in res if k in SECTIONS]
    assert ran == [s for s in SECTIONS if s in keep], ran
    assert res["api-fuzz"]["cases"] == 6 and res["api-fuzz"]["untyped"] == 0
    assert set(res["seconds"]) == keep and res["jobs"] == 2
