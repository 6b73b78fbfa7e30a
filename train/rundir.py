"""A run directory: config.json, metrics.jsonl (one JSON object a line), metrics.json, loss.png.

The checkpoint (model.safetensors) and the resume state (train_state.safetensors) are
written beside them by the training loop.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

CONFIG = "config.json"
METRICS_LINES = "metrics.jsonl"
METRICS = "metrics.json"
LOSS_PNG = "loss.png"


class RunDir:
    def __init__(self, root: Path, cfg: Any, task: Any) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        doc = {"train": asdict(cfg), "model": asdict(task.config), "baselines": task.baselines}
        (self.root / CONFIG).write_text(json.dumps(doc, indent=2) + "\n")
        self.loss_name = task.loss_name
        self.title = f"{task.name}: {task.config.cell.upper()} {task.config.hidden_size}x{task.config.num_layers}"

    def append(self, row: dict[str, Any]) -> None:
        with open(self.root / METRICS_LINES, "a") as fh:
            fh.write(json.dumps(row) + "\n")

    def finish(self, metrics: dict[str, Any], history: list[dict[str, Any]]) -> None:
        (self.root / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
        plot_loss(history, self.root / LOSS_PNG, self.loss_name, self.title)


def plot_loss(history: list[dict[str, Any]], path: Path, key: str, title: str) -> Path | None:
    """Training loss against step as a PNG; None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = [r for r in history if key in r]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot([r["step"] for r in rows], [r[key] for r in rows], lw=1.2)
    ax.set_xlabel("update")
    ax.set_ylabel(f"training {key}")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
