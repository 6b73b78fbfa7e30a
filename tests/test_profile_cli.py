"""``edgernn profile`` on the edge install: torch and onnx blocked, every figure sane, the budget gate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgernn.runtime.latency import LatencyStats
from edgernn.runtime.profiling import aggregate_trace

BLOCK = "import sys\nfor name in ('torch', 'onnx', 'safetensors'):\n    sys.modules[name] = None\n"


def profile(args: list[str], extra_block: str = "") -> subprocess.CompletedProcess[str]:
    code = BLOCK + extra_block + f"from edgernn.cli import main\nsys.exit(main(['profile', *{args!r}]))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def gru_report(exported, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    _, path = exported["gru"]
    out = tmp_path_factory.mktemp("prof") / "p.json"
    proc = profile(
        [
            str(path),
            "--calls",
            "400",
            "--warmup",
            "20",
            "--rate",
            "100",
            "--op-calls",
            "30",
            "--json",
            str(out),
            "--quiet",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    assert "p50" in proc.stdout and "per operator" in proc.stdout
    return json.loads(out.read_text()), path


def test_latency_figures_are_ordered_and_consistent(gru_report) -> None:
    r, _ = gru_report
    lat = r["latency_us"]
    assert 0 < lat["min_us"] <= lat["p50_us"] <= lat["p90_us"] <= lat["p99_us"] <= lat["max_us"]
    assert lat["min_us"] <= lat["mean_us"] <= lat["max_us"]
    assert r["calls"] == 400 and r["batch"] == 1 and r["chunk"] == 1
    assert r["frames_per_second"] == pytest.approx(1e6 / lat["p50_us"])
    assert r["stream_frames_per_second"] == pytest.approx(r["frames_per_second"])
    # at 100 Hz one call covers 10 ms of signal
    assert r["real_time_factor"] == pytest.approx(lat["mean_us"] / 10_000)
    assert r["real_time_factor_p99"] == pytest.approx(lat["p99_us"] / 10_000)
    assert r["path"] == "engine Stream.step"


def test_cold_start_memory_and_ops(gru_report) -> None:
    r, path = gru_report
    cold = r["cold_start_ms"]
    assert cold["load"] > 0 and cold["first_call"] > 0
    assert cold["total"] == pytest.approx(cold["load"] + cold["first_call"])
    mem = r["memory"]
    assert mem["model_bytes"] == os.path.getsize(path)
    assert mem["state_bytes_per_stream"] == 2 * 32 * 4  # 2 layers x hidden 32 x float32
    assert mem["peak_rss_bytes"] >= mem["rss_bytes"] > 10 * 2**20
    ops = {o["op"]: o for o in r["ops"]}
    assert "GRU" in ops and ops["GRU"]["nodes"] == 2  # one GRU node per layer
    assert sum(o["share"] for o in r["ops"]) == pytest.approx(1.0)
    assert r["ops_mean_run_us"] > 0
    assert r["budget_ms"] is None and r["within_budget"] is None


def test_impossible_budget_exits_2(exported, tmp_path: Path) -> None:
    _, path = exported["frames-lstm"]
    out = tmp_path / "p.json"
    proc = profile(
        [
            str(path),
            "--batch",
            "4",
            "--chunk",
            "8",
            "--calls",
            "100",
            "--warmup",
            "5",
            "--op-calls",
            "0",
            "--budget-ms",
            "0.000001",
            "--json",
            str(out),
            "--quiet",
        ]
    )
    assert proc.returncode == 2, proc.stderr
    assert "over budget" in proc.stderr
    r = json.loads(out.read_text())
    assert r["within_budget"] is False and r["ops"] == []
    assert r["stream_frames_per_second"] == pytest.approx(4 * 8 * 1e6 / r["latency_us"]["p50_us"])


def test_generous_budget_exits_0(exported) -> None:
    _, path = exported["rnn"]
    proc = profile([str(path), "--calls", "50", "--warmup", "5", "--op-calls", "0", "--budget-ms", "10000"])
    assert proc.returncode == 0, proc.stderr
    assert "within" in proc.stdout


def test_plot_without_matplotlib_says_so(exported, tmp_path: Path) -> None:
    _, path = exported["gru"]
    png = tmp_path / "p.png"
    proc = profile([str(path), "--calls", "20", "--plot", str(png)], extra_block="sys.modules['matplotlib'] = None\n")
    assert proc.returncode == 1
    assert "needs matplotlib" in proc.stderr and "pip install matplotlib" in proc.stderr
    assert not png.exists()


def test_plot_writes_a_png(exported, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    _, path = exported["gru"]
    png = tmp_path / "p.png"
    proc = profile(
        [str(path), "--calls", "200", "--warmup", "5", "--op-calls", "0", "--plot", str(png), "--budget-ms", "5"]
    )
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_latency_stats_from_known_times() -> None:
    us = np.arange(1, 101, dtype=np.float64)  # 1..100 µs
    s = LatencyStats.from_us(us, frames_per_call=4, streams=2)
    assert (s.min_us, s.max_us, s.mean_us) == (1.0, 100.0, 50.5)
    assert s.p50_us == pytest.approx(50.5) and s.p99_us == pytest.approx(99.01)
    assert s.frames_per_second == pytest.approx(4e6 / 50.5)
    assert s.stream_frames_per_second == pytest.approx(8e6 / 50.5)


def test_trace_aggregation_by_operator() -> None:
    def node(name: str, op: str, dur: int) -> dict:
        return {"cat": "Node", "name": f"{name}_kernel_time", "dur": dur, "args": {"op_name": op}}

    events = [
        {"cat": "Session", "name": "model_run", "dur": 50},
        node("/a/MatMul", "MatMul", 30),
        node("/b/MatMul", "MatMul", 10),
        node("/gru", "GRU", 60),
        {"cat": "Node", "name": "/gru_fence_before", "dur": 99, "args": {"op_name": "GRU"}},  # not a kernel time
        {"cat": "Session", "name": "model_run", "dur": 150},
    ]
    ops, mean_run = aggregate_trace(events, calls=2)
    assert mean_run == 100
    assert [(o.op, o.nodes, o.total_us, o.per_call_us) for o in ops] == [("GRU", 1, 60, 30), ("MatMul", 2, 40, 20)]
    assert [o.share for o in ops] == [pytest.approx(0.6), pytest.approx(0.4)]
