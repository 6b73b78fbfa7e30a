"""The training loop: determinism, resume, run directory, NaN guard, refusals, bad names."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from edgernn.runtime.errors import CheckpointError
from edgernn.train.checkpoint import load_checkpoint, read_checkpoint_meta
from edgernn.train.tasks import build_task, recipe
from edgernn.train.trainer import TrainConfig, TrainingError, fit


def tiny(steps: int = 12, **kw) -> TrainConfig:
    base = dict(hidden_size=8, embed_size=4, delay=3, batch_size=8, max_steps=steps, log_every=1, lr=1e-2)
    return recipe("recall", **{**base, **kw})


def losses(history: list[dict]) -> list[float]:
    return [row["loss"] for row in history]


def test_same_seed_gives_the_same_losses_twice_and_another_seed_does_not() -> None:
    a = fit(build_task(tiny()), tiny(), log=lambda s: None)
    b = fit(build_task(tiny()), tiny(), log=lambda s: None)
    c = fit(build_task(tiny(seed=1)), tiny(seed=1), log=lambda s: None)
    assert len(losses(a.history)) == 12
    assert losses(a.history) == losses(b.history)
    assert losses(a.history) != losses(c.history)


def test_resume_continues_exactly_where_the_run_stopped(tmp_path: Path) -> None:
    # A constant learning rate, so the 6-step run is the first half of the 12-step one.
    straight = fit(build_task(tiny(12)), tiny(12, lr_final=1.0), log=lambda s: None)
    fit(build_task(tiny(6)), tiny(6, lr_final=1.0), out=tmp_path, log=lambda s: None)
    resumed = fit(build_task(tiny(12)), tiny(12, lr_final=1.0), resume=tmp_path, log=lambda s: None)
    assert resumed.steps == 12
    assert losses(resumed.history) == pytest.approx(losses(straight.history)[6:], rel=1e-6)
    for a, b in zip(resumed.model.parameters(), straight.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_run_directory_holds_checkpoint_config_metrics_and_curve(tmp_path: Path) -> None:
    cfg = tiny(8)
    res = fit(build_task(cfg), cfg, out=tmp_path, log=lambda s: None)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in lines if "loss" in r]
    assert lines[-1]["eval"]["accuracy"] == res.metrics["accuracy"]
    assert [r["step"] for r in rows] == list(range(1, 9))
    assert rows[-1]["loss"] == res.history[-1]["loss"]
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "config.json").read_text())["train"]["delay"] == 3
    meta = read_checkpoint_meta(tmp_path / "model.safetensors")
    assert meta["task"] == {"name": "recall", "symbols": 8, "distractors": 8, "query_id": 16, "delay": 3}
    assert meta["train"]["max_steps"] == 8 and meta["metrics"]["steps"] == 8
    model, _ = load_checkpoint(tmp_path / "model.safetensors")
    for a, b in zip(model.parameters(), res.model.parameters()):
        assert torch.equal(a, b)


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    cfg = tiny(10, eval_every=1)
    task = build_task(cfg)
    calls = {"n": 0}
    good = task.loss_sum

    def poisoned(y, batch):
        calls["n"] += 1
        loss = good(y, batch)
        return loss * math.nan if calls["n"] == 4 else loss

    task.loss_sum = poisoned
    expected = r"loss became nan .* at step 4.*last good checkpoint is .*model.safetensors"
    with pytest.raises(TrainingError, match=expected):
        fit(task, cfg, out=tmp_path, log=lambda s: None)
    model, meta = load_checkpoint(tmp_path / "model.safetensors")
    assert all(torch.isfinite(p).all() for p in model.parameters())
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in lines) == 3  # nothing after the last good update


def test_resume_from_another_model_config_is_refused_naming_the_field(tmp_path: Path) -> None:
    fit(build_task(tiny(2)), tiny(2), out=tmp_path, log=lambda s: None)
    other = tiny(4, hidden_size=16)
    with pytest.raises(CheckpointError, match=r"hidden_size \(checkpoint 8, expected 16\)"):
        fit(build_task(other), other, resume=tmp_path, log=lambda s: None)


RECIPE_CHOICES = "'textgen', 'langid', 'weather', 'recall', 'forecast', 'music', 'demo', 'shipped-textgen'"
RECIPE_NAMES = (
    "textgen, langid, weather, recall, forecast, music, demo, "
    "shipped-textgen, shipped-langid, shipped-weather, shipped-music, shipped-forecast"
)


def test_unknown_recipe_and_cell_list_the_valid_names() -> None:
    with pytest.raises(TrainingError, match=f"unknown recipe 'speech'; valid recipes: {RECIPE_NAMES}"):
        recipe("speech")
    with pytest.raises(TrainingError, match="unknown cell 'transformer'; valid cells: rnn, gru, lstm"):
        recipe("recall", cell="transformer")


def test_cosine_schedule_values() -> None:
    cfg = TrainConfig(lr=1e-2, lr_final=0.1, max_steps=100, warmup_steps=10)
    assert cfg.lr_at(cfg.progress(0, 0), 0) == pytest.approx(1e-3)  # warm-up: 1/10 of the peak
    assert cfg.lr_at(cfg.progress(10, 0), 10) == pytest.approx(1e-2 * (0.1 + 0.9 * 0.5 * (1 + math.cos(0.1 * math.pi))))
    assert cfg.lr_at(cfg.progress(50, 0), 50) == pytest.approx(1e-2 * 0.55)
    assert cfg.lr_at(cfg.progress(100, 0), 100) == pytest.approx(1e-3)


def test_cli_trains_a_preset_into_a_run_directory(tmp_path: Path, capsys) -> None:
    from edgernn.cli import main

    rc = main(["train", "recall", "--hidden", "8", "--delay", "2", "--steps", "5", "--out", str(tmp_path)])
    assert rc == 0
    assert "recall: accuracy" in capsys.readouterr().out
    assert read_checkpoint_meta(tmp_path / "model.safetensors")["metrics"]["steps"] == 5
    with pytest.raises(SystemExit) as refused:  # checked while parsing, before any work
        main(["train", "speech"])
    assert refused.value.code == 2
    assert f"invalid choice: 'speech' (choose from {RECIPE_CHOICES}" in capsys.readouterr().err


def test_bf16_autocast_trains_close_to_fp32_and_keeps_fp32_weights_and_state() -> None:
    from edgernn.train.trainer import autocast

    a = fit(build_task(tiny(cell="lstm")), tiny(cell="lstm"), log=lambda s: None)
    b = fit(build_task(tiny(cell="lstm", precision="bf16")), tiny(cell="lstm", precision="bf16"), log=lambda s: None)
    la, lb = losses(a.history), losses(b.history)
    print(f"fp32 losses {la[:3]} bf16 losses {lb[:3]}")
    assert la != lb  # bf16 really ran (bfloat16 products round differently)
    assert all(math.isfinite(v) for v in lb)
    assert abs(la[0] - lb[0]) < 0.05 * la[0]  # the same model and batch: within bf16 rounding
    assert all(p.dtype == torch.float32 for p in b.model.parameters())
    with pytest.raises(TrainingError, match="precision 'fp8' is not one of fp32, bf16"):
        autocast("fp8")
