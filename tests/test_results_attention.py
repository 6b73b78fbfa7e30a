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
        train = {"max_seconds": ra.CPU_SECONDS, "batch_size": 64, "seq_len": 128, "precision": "bf16", "lr": 2e-3,
                 "warmup_steps": 30, "lr_final": 0.0}  # fmt: skip
        metrics = {"valid_bpc": bpc[name], "valid_chars": chars, "5gram_bpc": 1.904, "steps": 500,
                   "train_seconds": 1800.0, "train_cpu_seconds": ra.CPU_SECONDS + 0.3}  # fmt: skip
        runs[name] = (metrics, {"model": model, "train": train}, {"threads": 1, "load_start": 9.5, "load_end": 16.0})
    return runs


def test_the_winning_window_and_the_budget_come_from_the_runs(tmp_path: Path) -> None:
    bpc = {"attention-text-w32": 2.2, "attention-text-w64": 2.1, "attention-text-w128": 2.3,
           "attention-text-gru": 2.4, "attention-text-lstm": 2.25}  # fmt: skip
    runs = fake_runs(bpc)
    text = "\n".join(ra.section(runs.get, tmp_path))
    assert "The window that wins at this budget: W = 64 (W 32: 2.200, W 64: 2.100, W 128: 2.300 bpc)." in text
    assert f"{ra.CPU_SECONDS:.0f} s of process CPU time spent training" in text
    assert "load average 9.5–16.0" in text and "Scored on 209,080 validation characters" in text
    assert "| GRU 768x1 | ? | 500 | 240 (1800) | 2.400 | — | — |" in text
    assert "| smoothed 5-gram (the same characters) | | | | 1.904 | | |" in text
    runs["attention-text-gru"][0]["valid_chars"] = 1_000  # a partial evaluation would not be comparable
    assert "Scored on different numbers of validation characters" in "\n".join(ra.section(runs.get, tmp_path))


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
