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
RUN_FILES = (CONFIG, METRICS_LINES, METRICS, LOSS_PNG, "model.safetensors", "train_state.safetensors")


def check_out(root: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to train into a directory that already holds files, unless resuming or told to
    overwrite; ``overwrite`` removes the earlier run's files (only those a run writes)."""
    from edgernn.train.trainer import TrainingError

    root = Path(root)
    if root.exists() and not root.is_dir():
        raise TrainingError(f"--out {root}: exists and is not a directory")
    held = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    if not held or resume:
        return
    if not overwrite:
        shown = ", ".join(held[:4]) + (f" and {len(held) - 4} more" if len(held) > 4 else "")
        raise TrainingError(
            f"--out {root} already holds files ({shown}): pass --force to replace that run, "
            f"--resume {root} to continue it, or another --out"
        )
    for name in RUN_FILES:
        (root / name).unlink(missing_ok=True)


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


def warm_plotting() -> None:
    """Import matplotlib and draw once now (seconds on a cold start: the import, the fonts), so
    that the final save does not pay for it."""
    import io

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(1, 1), dpi=20)
    ax.plot([0, 1], [0, 1])
    ax.set_title("warm-up")
    fig.savefig(io.BytesIO(), format="png")
    plt.close(fig)


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
