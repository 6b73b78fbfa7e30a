"""``edgernn bench``: contenders agree with the numpy reference, ratios and targets are computed right.

No test asserts an absolute time: timings here are only checked to exist and be positive;
target verdicts are checked on figures made up for the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from edgernn.bench.contenders import Case  # noqa: E402
from edgernn.bench.suite import CaseResult, Settings, Timing, plan, run_case  # noqa: E402
from edgernn.bench.targets import (  # noqa: E402
    FAIL,
    NOT_MEASURABLE,
    NOT_RUN,
    PASS,
    RunFigures,
    evaluate,
    load_targets,
)

TINY = Settings(rounds=2, block_s=0.001, warmup=1)


@pytest.fixture(autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGERNN_BENCH_CACHE", str(tmp_path_factory.getbasetemp() / "bench-models"))


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_every_contender_matches_the_reference_and_is_timed(cell: str) -> None:
    names = ["engine", "raw ping-pong", "session.run", "engine separate", "torch eager", "torchscript", "numpy"]
    r = run_case(Case(cell, 24, 3, 5), names, TINY)
    for name in names:
        assert name in r.timings or name in r.not_run, name
    assert {"raw ping-pong", "session.run", "torch eager", "torchscript", "numpy"} <= set(r.timings)
    assert "chunk 1 only" in r.not_run["engine separate"]  # chunked separate calls are not timed
    for name, t in r.timings.items():
        assert t.max_abs_diff < 1e-4, (name, t.max_abs_diff)
        assert t.calls >= TINY.rounds and 0 < t.median_us <= t.p99_us
    if "engine" in r.timings:
        e, raw = r.timings["engine"], r.timings["raw ping-pong"]
        assert len(e.rounds) == len(raw.rounds) == TINY.rounds
        paired = sorted(a / b for a, b in zip(e.rounds, raw.rounds))
        assert r.ratio("engine", "raw ping-pong") == pytest.approx((paired[0] + paired[1]) / 2)
    else:
        assert r.not_run["engine"]  # a reason, never a silent gap
    peer = r.peer()
    assert peer is not None and peer[0] in ("torch eager", "torchscript")
    assert peer[1] == min(r.timings["torch eager"].median_us, r.timings["torchscript"].median_us)


def test_plans_cover_the_grid() -> None:
    full = plan(quick=False, compile_peer=True)
    shapes = {(c.cell, c.hidden, c.batch, c.chunk) for c, _ in full}
    assert len(full) == len(shapes) == 3 * 3 * 3 * 3
    int8 = [c for c, names in full if "engine int8" in names]
    assert {(c.batch, c.chunk) for c in int8} == {(1, 1), (1, 64), (64, 1)} and len(int8) == 27
    assert all("torch.compile" not in names for c, names in full if (c.batch, c.chunk) != (1, 1))
    quick = plan(quick=True, compile_peer=False)
    assert {(c.hidden, c.batch, c.chunk) for c, _ in quick} >= {(128, 1, 1), (128, 1, 64), (128, 64, 1), (512, 1, 64)}


def _result(case: Case, **medians: float) -> CaseResult:
    r = CaseResult(case)
    for name, us in medians.items():
        r.timings[name.replace("_", " ").replace("ping pong", "ping-pong")] = Timing(us, us * 2, 10, 0.0)
    return r


def test_targets_judge_made_up_figures(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from edgernn.bench import targets

    monkeypatch.setattr(targets, "GPU_RESULTS", tmp_path / "none.json")  # no GPU check committed
    cases = [
        _result(Case("gru", 128, 1, 1), engine=9.0, raw_ping_pong=8.0),  # +1.0 µs, 1.125x: PASS
        _result(Case("lstm", 128, 1, 1), engine=12.0, raw_ping_pong=8.0),  # +4 µs, 1.5x: FAIL
        _result(Case("gru", 128, 64, 1), engine=100.0, raw_ping_pong=95.0, engine_separate=400.0),
        _result(Case("gru", 128, 1, 64), engine=100.0, raw_ping_pong=96.0),
        _result(Case("gru", 512, 1, 1), engine=20.0, engine_native=40.0, engine_int8=15.0),
    ]
    cases[2].not_run["session.run"] = "not asked"
    memory = {"model": "gru-h256", "streams": 100, "state_bytes": 1024, "stepped_bytes_per_stream": 1900.0}
    soak = {"model": "gru-h256", "steps": 10**6, "growth_bytes": 4096, "samples": []}
    verdicts = evaluate(load_targets(), RunFigures(cases, memory, soak))
    got = {(v.target, v.row): v.status for v in verdicts}
    assert got[("engine-step-overhead", "gru h128 b1 c1")] == PASS
    assert got[("engine-step-overhead", "lstm h128 b1 c1")] == FAIL
    assert got[("engine-batched-vs-raw", "gru h128 b64 c1")] == PASS  # 0.95x >= 0.9x
    assert got[("engine-batched-vs-separate", "gru h128 b64 c1")] == FAIL  # 4x < 5x
    assert got[("engine-push-vs-raw", "gru h128 b1 c64")] == PASS  # 0.96x >= 0.95x
    assert got[("engine-batched-vs-raw", "lstm h128 b64 c1")] == NOT_RUN
    assert got[("engine-idle-memory", "gru-h256, 100 streams")] == PASS
    assert got[("engine-no-growth", "gru-h256")] == PASS
    assert got[("export-int8-step", "gru h512 b1 c1")] == PASS  # 2.67x against the native-op graph
    v = next(v for v in verdicts if (v.target, v.row) == ("export-int8-step", "gru h512 b1 c1"))
    assert "vs the fp32 auto form: 1.33x" in v.note
    assert got[("export-int8-step", "gru h512 b1 c64")] == NOT_RUN
    assert got[("device-gpu-vs-cuda-graph-peer", "")] == NOT_MEASURABLE
    assert {v.status for v in verdicts if v.target.startswith("engine-vs-pytorch")} == {NOT_RUN}
    ids = {t.id for t in load_targets()}
    assert {v.target for v in verdicts} == ids


def test_peer_targets_name_every_losing_case_and_judge_the_mean_on_the_full_grid() -> None:
    cases = [
        _result(Case("rnn", 128, 64, 64), engine=300.0, torch_eager=200.0, torchscript=250.0),  # 0.67x
        _result(Case("gru", 128, 1, 1), engine=10.0, torch_eager=40.0, torchscript=30.0),  # 3x
    ]
    every, mean = (t for t in load_targets() if t.id.startswith("engine-vs-pytorch"))
    (v,) = targets_mod().peer_every_case(every, RunFigures(cases))
    assert v.status == FAIL and "rnn h128 b64 c64 0.67x" in v.measured and "min 0.67x; 1 below" in v.measured
    (m,) = targets_mod().peer_geomean(mean, RunFigures(cases))
    assert m.status == NOT_RUN and "1.41x" in m.measured  # sqrt(0.667 * 3), judged only on all 81 cases
    grid = [_result(Case("gru", 128, b, t), engine=10.0, torch_eager=16.0) for b in range(9) for t in range(9)]
    (m,) = targets_mod().peer_geomean(mean, RunFigures(grid))
    assert m.status == PASS and m.measured.startswith("1.60x")
    (v,) = targets_mod().peer_every_case(every, RunFigures(grid))
    assert v.status == PASS and v.row == "81 cases"


def targets_mod():  # type: ignore[no-untyped-def]
    from edgernn.bench import targets

    return targets


def test_gpu_target_judges_the_committed_gpu_check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from edgernn.bench import targets

    def case(batch: int, ours: float, peer: float) -> dict:
        parts = {"ort-cuda-graph": {"latency": {"p50_us": ours}}, "torch": {"torch-graph-pinned": {"p50_us": peer}}}
        return {"batch": batch, "hidden": 256, "parts": parts, "ratio_ort_graph_over_torch_graph": ours / peer}

    res = {"device": "GPU X", "measured_at": "today", "cases": [case(1, 30.0, 25.0), case(256, 90.0, 100.0)]}
    res["cases"].append({"batch": 8, "hidden": 256, "parts": {}})  # a case that crashed
    path = tmp_path / "gpu-check.json"
    path.write_text(json.dumps(res))
    monkeypatch.setattr(targets, "GPU_RESULTS", path)
    gpu = [t for t in load_targets() if t.check == "needs_gpu"][0]
    got = {v.row: (v.status, v.measured) for v in targets.needs_gpu(gpu, RunFigures([]))}
    # judged on the GPU machine, reported as recorded there: never a FAIL of this run (--check)
    assert got["GRU batch 1 / hidden 256"] == (FAIL + targets.RECORDED, "1.20x (30 / 25 µs)")
    assert got["GRU batch 256 / hidden 256"] == (PASS + targets.RECORDED, "0.90x (90 / 100 µs)")
    assert targets.failed(targets.needs_gpu(gpu, RunFigures([]))) == []
    assert got["GRU batch 8 / hidden 256"][0] == NOT_RUN


def test_memory_over_budget_and_short_soak_are_not_passed() -> None:
    memory = {"model": "m", "streams": 10, "state_bytes": 1024, "stepped_bytes_per_stream": 2049.0}
    soak = {"model": "m", "steps": 1000, "growth_bytes": 0, "samples": []}
    got = {v.target: v for v in evaluate(load_targets(), RunFigures([], memory, soak))}
    assert got["engine-idle-memory"].status == FAIL
    assert got["engine-no-growth"].status == NOT_RUN and "1,000 steps" in got["engine-no-growth"].note


def test_bench_cli_writes_the_report(tmp_path: Path) -> None:
    out, js = tmp_path / "B.md", tmp_path / "B.json"
    cmd = [
        sys.executable,
        "-m",
        "edgernn",
        "bench",
        "--quick",
        "--hidden",
        "24,40",
        "--streams",
        "1,4",
        "--hiddens",
        "24",
        "--memory-hidden",
        "24",
        "--soak-hidden",
        "24",
        "--rounds",
        "2",
        "--block-ms",
        "1",
        "--soak",
        "3000",
        "--no-compile",
        "--out",
        str(out),
        "--json",
        str(js),
        "--note",
        "test run",
        "--check",
    ]
    env = dict(os.environ)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    text = out.read_text()
    run = json.loads(js.read_text())
    fails = [v for v in run["verdicts"] if v["status"] == FAIL]
    assert proc.returncode == (1 if fails else 0), proc.stderr[-2000:]  # --check: non-zero exactly on a FAIL
    assert ("--check:" in proc.stdout) == bool(fails)
    for heading in (
        "## Machine",
        "## Targets",
        "## Comparison",
        "## fp32 vs int8",
        "## Scale",
        "## Memory",
        "## Against the limit",
        "## Notes (`bench/notes.md`",
    ):
        assert heading in text, heading
    assert text.rstrip().endswith((Path(__file__).parents[1] / "bench" / "notes.md").read_text().rstrip())
    assert "| gru 24 1 1 |" in text and "| gru 24 64 1 |" in text and "| gru 40 1 64 |" in text
    assert "**Conditions.** test run" in text
    assert len(run["cases"]) == 5
    first = run["cases"][0]
    assert first["timings"]["raw ping-pong"]["median_us"] > 0
    statuses = {v["status"] for v in run["verdicts"]}
    assert statuses <= {PASS, FAIL, NOT_RUN, NOT_MEASURABLE, PASS + " (recorded)", FAIL + " (recorded)"}
    assert run["soak"]["steps"] == 3000 and len(run["soak"]["samples"]) == 10
    soak = run["soak"]  # live memory (after malloc_trim) is what the target judges; raw RSS beside it
    assert len(soak["trimmed"]) == 10 and soak["growth_bytes"] == soak["trimmed"][-1][1] - soak["trimmed"][0][1]
    assert soak["raw_growth_bytes"] == soak["samples"][-1][1] - soak["samples"][0][1]
    assert run["floors"] and run["floors"][0]["flops"] == 2 * (3 * 40 * 40 * 2 + 64 * 40)
    assert "Parity: every timed contender" in text


def test_qdq_target_judges_the_committed_openvino_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from edgernn.bench import targets

    def row(name: str, diff: float, rel: float | None = None) -> dict:
        out = {"name": name, "placed": ["OpenVINOExecutionProvider"], "max_abs_normalised": diff}
        out |= {"fp32_us_b1": 60.0, "qdq_us_b1": 30.0}
        return out | ({"metric": "valid_bpc", "metric_rel": rel} if rel is not None else {})

    qdq = [t for t in load_targets() if t.check == "qdq_recorded"][0]
    monkeypatch.setattr(targets, "QDQ_RESULTS", tmp_path / "none.json")
    (v,) = targets.qdq_recorded(qdq, RunFigures([]))
    assert v.status == NOT_RUN and "make openvino-qdq" in v.note
    rows = [row("textgen", 1e-3, 0.002), row("langid", 1e-3, 0.02), row("bench gru h256", 3e-2)]
    (tmp_path / "q.json").write_text(json.dumps(rows))
    monkeypatch.setattr(targets, "QDQ_RESULTS", tmp_path / "q.json")
    got = {v.row: v for v in targets.qdq_recorded(qdq, RunFigures([]))}
    assert got["textgen"].status == PASS + targets.RECORDED and "0.20%" in got["textgen"].measured
    assert got["langid"].status == FAIL + targets.RECORDED  # metric 2% off
    assert got["bench gru h256"].status == FAIL + targets.RECORDED  # parity 3e-2
    assert "fp32 / qdq b1 2.00x" in got["textgen"].note and "on OpenVINO" in got["textgen"].note
