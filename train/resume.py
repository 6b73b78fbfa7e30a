"""Where a run keeps its resume state, and ``--resume``: the weights from the checkpoint, and
(when present and belonging to it) the optimizer, carried state and RNG from the train state
(``train.checkpoint`` reads and checks both)."""

from __future__ import annotations

from pathlib import Path

import torch

from edgernn.runtime.spec import ModelConfig
from edgernn.train.checkpoint import CHECKPOINT, checkpoint_file, load_checkpoint, load_train_state
from edgernn.train.model import RecurrentModel, State

TRAIN_STATE = "train_state.safetensors"


def run_paths(out: Path | None) -> tuple[Path | None, Path | None]:
    return (out / CHECKPOINT, out / TRAIN_STATE) if out is not None else (None, None)


def resume_run(
    path: Path, expect: ModelConfig, opt: torch.optim.Optimizer, fresh: RecurrentModel
) -> tuple[RecurrentModel, int, float, State | None]:
    """Load weights (refusing another config, naming the field) and, if present, the train state."""
    ckpt = checkpoint_file(path)
    model, meta = load_checkpoint(ckpt, expect=expect)
    fresh.load_state_dict(model.state_dict())
    tpath = ckpt.parent / TRAIN_STATE
    if not tpath.exists():
        return fresh, 0, 0.0, None
    step, seconds, carry = load_train_state(tpath, meta, opt)
    return fresh, step, seconds, carry
