"""The attention section of docs/TRAINING_RESULTS.md, rendered from run records: the window that
wins is the lowest validation figure, the budget and the characters scored come from the runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgernn.train import results_attention as ra


def fake_runs(bpc: dict[str, float], chars: int = 209_080) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    for name, overrides in ra.TEXT_RUNS:
        cell = overrides["cell"]
        size = {"hidden_size": overrides.get("hidden_size", 768), "num_layers": overrides.get("num_layers", 1)}
        model = {"cell": cell, **size}
        if cell == "attention":
            model |= {"window": overrides["window"], "heads": overrides["heads"]}
        train = {"max_seconds": overrides["max_seconds"], "batch_size": 64, "seq_len": 128, "precision": "bf16",
                 "lr": 2e-3, "warmup_steps": 30, "lr_final": 0.0}  # fmt: skip
        metrics = {"valid_bpc": bpc[name], "valid_chars": chars, "5gram_bpc": 1.904, "steps": 500,
                   "train_seconds": 1800.0, "train_cpu_seconds": overrides["max_seconds"] + 0.3}  # fmt: skip
        runs[name] = (metrics, {"model": model, "train": train}, {"threads": 1, "load_start": 9.5, "load_end": 16.0})
    return runs


def test_the_winning_window_and_the_budget_come_from_the_runs(tmp_path: Path) -> None:
    short = {"w32": 2.2, "w64": 2.1, "w128": 2.3, "gru": 2.4, "lstm": 2.25}
    long = {"w32": 1.85, "w64": 1.80, "w128": 1.9, "gru": 1.99, "lstm": 2.0}
    bpc = {ra.text_name(240, k): v for k, v in short.items()} | {ra.text_name(1200, k): v for k, v in long.items()}
    assert set(bpc) == {name for name, _ in ra.TEXT_RUNS}  # the runs both budgets name
    runs = fake_runs(bpc)
    text = "\n".join(ra.section(runs.get, tmp_path))
    # each budget its own table, the (1,200 s) first
    assert text.index("### 1200 CPU-seconds per model") < text.index("### 240 CPU-seconds per model")
    headline, sweep = text.split("### 240 CPU-seconds per model")
    assert "the issue's budget (10 minutes on 2 cores = 1,200 core-seconds)" in headline
    assert "The window that wins at this budget: W = 64 (W 32: 1.850, W 64: 1.800, W 128: 1.900 bpc)." in headline
    assert "The lowest at this budget: attention 256x2, window 64, 4 heads, 1.800 bpc. 3 of 5 models beat the " \
        "smoothed 5-gram (1.904 bpc); the lowest by 0.104 bpc." in headline  # fmt: skip
    assert "| GRU 768x1 | ? | 500 | 1200 (1800) | 1.990 | — | — |" in headline
    assert "1/5 of the issue's budget" in sweep and "`--cpu-seconds 240`" in sweep
    assert "The window that wins at this budget: W = 64 (W 32: 2.200, W 64: 2.100, W 128: 2.300 bpc)." in sweep
    assert "No model beats the smoothed 5-gram (1.904 bpc): the lowest is 0.196 bpc above it." in sweep
    assert "| GRU 768x1 | ? | 500 | 240 (1800) | 2.400 | — | — |" in sweep
    assert "load average 9.5–16.0 at their starts and ends" in text  # no load.log: each run's own figures
    assert "Scored on 209,080 validation characters" in text
    assert text.count("| smoothed 5-gram (the same characters) | | | | 1.904 | | |") == 2
    assert "not on disk" not in text
    # the recall paragraph names the window study's winner (the 1,200 s table, first on a tie of windows: W 64
    # here, not the stacked W 32)
    runs[ra.STACKED_RUNS[0][0]] = ({"accuracy": 1.0, "steps": 400},)
    stacked = "The same task for {}, 2 layers with window 32"
    assert stacked.format("the configuration that led the text comparison when these ran") in "\n".join(
        ra.section(runs.get, tmp_path)
    )
    runs[ra.text_name(1200, "w32")][0]["valid_bpc"] = 1.75
    assert stacked.format("the text comparison's winner") in "\n".join(ra.section(runs.get, tmp_path))
    runs[ra.text_name(240, "gru")][0]["valid_chars"] = 1_000  # a partial evaluation would not be comparable
    del runs[ra.text_name(1200, "lstm")]
    text = "\n".join(ra.section(runs.get, tmp_path))
    assert "Scored on different numbers of validation characters" in text.split("### 240")[1]
    assert f"| (not on disk when this was written: {ra.text_name(1200, 'lstm')}) |" in text.split("### 240")[0]


def test_the_load_sampled_while_the_runs_trained(tmp_path: Path) -> None:
    name = ra.text_name(1200, "gru")
    (tmp_path / name).mkdir()
    (tmp_path / name / "load.log").write_text("22:00:00 2.50 1.0 1.0 3/100 1\n22:01:00 8.50 2.0 1.0 9/120 2\n")
    text = "\n".join(ra.section({name: fake_runs({n: 2.0 for n, _ in ra.TEXT_RUNS})[name]}.get, tmp_path))
    assert "1-minute load average 2.5–8.5, mean 5.5, sampled each minute, 2 samples" in text


def test_nothing_on_disk_renders_nothing(tmp_path: Path) -> None:
    assert ra.section(lambda name: None, tmp_path) == []


def test_the_recall_table_gains_the_attention_rows() -> None:
    runs = {"attention-recall-20": ({"accuracy": 1.0, "steps": 1000},),
            "attention-recall-80": ({"accuracy": 0.14, "steps": 1000},),
            f"attention-recall-{ra.LAYERS}x{ra.STACKED_WINDOW}-40": ({"accuracy": 0.5, "steps": 400},)}  # fmt: skip
    rows = ra.recall_rows(runs.get, (5, 20, 40, 80))
    assert rows == [
        f"| attention, 1 layer, window {ra.WINDOW} (1000 updates) | — | 1.000 [seed 0] | — | 0.140 [seed 0] |",
        f"| attention, {ra.LAYERS} layers, window {ra.STACKED_WINDOW} (400 updates) | — | — | 0.500 [seed 0] | — |",
    ]
    assert ra.recall_rows(lambda name: None, (5,)) == []
    text = "\n".join(ra.section(runs.get, Path(".")))
    assert f"k = 40 (past it, inside the {ra.LAYERS} layers' reach of {ra.LAYERS * ra.STACKED_WINDOW}): 0.50" in text


def test_only_attention_replaces_the_recall_tables_attention_rows() -> None:
    doc = Path(__file__).resolve().parents[1] / "docs" / "TRAINING_RESULTS.md"
    text = doc.read_text()
    once = ra.splice_recall_rows(text, ["| attention, new row |"])
    twice = ra.splice_recall_rows(once, ["| attention, newer row |"])
    assert twice.count("| attention, ") == 1 and "| attention, newer row |" in twice
    table = twice.split(ra.RECALL_HEADING)[1].split("\n\n")[2]  # heading, paragraph, table
    assert table.splitlines()[-1] == "| attention, newer row |" and "| LSTM |" in table
    assert "| attention, " not in ra.splice_recall_rows(twice, []).split(ra.RECALL_HEADING)[1].split("\n## ")[0]
    assert ra.splice_recall_rows("no table here", ["| attention, x |"]) == "no table here"


def test_runs_trained_at_different_loads_say_so(tmp_path: Path) -> None:
    busy, quiet = ra.text_name(1200, "w32"), ra.text_name(1200, "w64")
    for name, line in ((busy, "22:00:00 7.00 1 1 3/100 1\n"), (quiet, "23:00:00 2.00 1 1 3/100 1\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "load.log").write_text(line)
    runs = fake_runs({n: 2.0 for n, _ in ra.TEXT_RUNS})
    text = "\n".join(ra.section({n: runs[n] for n in (busy, quiet)}.get, tmp_path))
    assert "the runs trained in groups, mean load while each trained: W 32 7.0, W 64 2.0" in text
    (tmp_path / quiet / "load.log").write_text("23:00:00 7.50 1 1 3/100 1\n")
    assert "in groups" not in "\n".join(ra.section({n: runs[n] for n in (busy, quiet)}.get, tmp_path))
