"""--device auto: every profile measured or skipped with its reason; the fastest chosen and recorded."""

from __future__ import annotations

import json
from dataclasses import replace

import onnxruntime as ort
import pytest

from edgernn.cli import main as edgernn_main
from edgernn.devices.auto import (
    AutoChoice,
    auto_engine,
    bench_engine,
    choose_device,
    default_record_path,
    recorded_choice,
)
from edgernn.devices.placement import load_engine
from edgernn.runtime.errors import ProfileError


def test_auto_measures_what_runs_and_says_why_the_rest_did_not(exported) -> None:
    _, path = exported["frames-gru"]
    choice = choose_device(path, batch=2, chunk=4, calls=60, warmup=5, names=["cpu", "cpu-int8", "directml"])
    by = {c.profile: c for c in choice.candidates}
    assert choice.chosen == "cpu"  # the only profile that can run an fp32 model on this CPU-only build
    assert by["cpu"].status == "measured" and 0 < by["cpu"].p50_us <= by["cpu"].p99_us
    assert by["cpu"].frames_per_second == pytest.approx(2 * 4 * 1e6 / by["cpu"].p50_us)
    assert by["cpu"].placement == {"CPUExecutionProvider": by["cpu"].placement["CPUExecutionProvider"]}
    assert by["cpu-int8"].status == "refused" and "no quantized operator" in by["cpu-int8"].reason
    if "DmlExecutionProvider" not in ort.get_available_providers():
        assert by["directml"].status == "skipped" and "Windows" in by["directml"].reason
    assert choice.candidates[0].profile == "cpu"  # measured first, fastest first
    assert (choice.batch, choice.chunk, choice.onnxruntime) == (2, 4, ort.__version__)
    assert len(choice.model_sha256) == 64


def test_choice_is_recorded_and_reused_for_the_same_model_only(exported, tmp_path) -> None:
    _, src = exported["frames-rnn"]
    path = tmp_path / "m.onnx"
    path.write_bytes(src.read_bytes())
    engine, report, choice = auto_engine(path, batch=1, chunk=1, calls=40)
    record = default_record_path(path, 1, 1)
    assert record.name == "m.device-auto.b1.t1.json" and record.is_file()
    assert AutoChoice.from_json(record.read_text()) == choice
    assert report.ok and engine.profile.name == choice.chosen
    # A recorded choice is used as is (no new measurement) while it is for this very model.
    marked = replace(choice, machine="recorded-before")
    marked.save(record)
    _, _, again = auto_engine(path, batch=1, chunk=1)
    assert again.machine == "recorded-before"
    assert recorded_choice(path, 1, 1, "0" * 64) is None  # another model's hash: measure again
    assert recorded_choice(path, 2, 1, choice.model_sha256) is None  # another batch: no record


def test_auto_cli_writes_the_record(exported, tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    _, path = exported["frames-lstm"]
    out = tmp_path / "choice.json"
    code = edgernn_main(["devices", "auto", str(path), "--batch", "3", "--chunk", "2", "--calls", "30",
                         "--profiles", "cpu,nnapi", "--record", str(out)])  # fmt: skip
    assert code == 0
    data = json.loads(out.read_text())
    assert data["chosen"] == "cpu" and data["batch"] == 3 and data["chunk"] == 2
    assert [c["profile"] for c in data["candidates"]] == ["cpu", "nnapi"]
    assert "chosen cpu" in capsys.readouterr().out


def test_bench_counts_frames_per_call(exported) -> None:
    _, path = exported["frames-gru"]
    engine, _ = load_engine(path, "cpu")
    stats = bench_engine(engine, batch=4, chunk=8, calls=30, warmup=3)
    assert stats.calls == 30 and stats.frames_per_call == 8 and stats.p50_us > 0


def test_auto_refuses_bad_sizes_and_models_nothing_can_run(exported) -> None:
    _, path = exported["gru"]
    with pytest.raises(ProfileError, match="batch and chunk must be >= 1, got batch 0"):
        choose_device(path, batch=0)
    with pytest.raises(ProfileError, match=r"no device profile can run it here \(cpu-int8: precision int8"):
        choose_device(path, names=["cpu-int8"], calls=5, warmup=1)
