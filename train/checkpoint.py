"""Checkpoints: weights in safetensors plus JSON metadata. Never pickled code.

The metadata holds the ModelConfig (which rebuilds the model), the training config, the
task's facts (vocabulary, labels, normalisation statistics) and a format version.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from edgernn.runtime.errors import CheckpointError, SpecError
from edgernn.runtime.spec import ModelConfig
from edgernn.train.model import RecurrentModel, build_model

CHECKPOINT_FORMAT = 1
CHECKPOINT = "model.safetensors"  # the checkpoint's name inside a run directory
_META_KEY = "edgernn"


def checkpoint_file(path: str | os.PathLike[str]) -> Path:
    """``path`` itself, or the checkpoint inside it when it is a run directory."""
    p = Path(path)
    if not p.is_dir():
        return p
    if not (p / CHECKPOINT).is_file():
        raise CheckpointError(f"{p}: a directory without {CHECKPOINT}: expected a run directory or a checkpoint file")
    return p / CHECKPOINT


def config_digest(train_config: dict[str, Any]) -> str:
    """A short stable digest of the training config (sorted JSON, sha256)."""
    text = json.dumps(train_config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_checkpoint(
    path: str | os.PathLike[str],
    model: RecurrentModel,
    train_config: dict[str, Any],
    task: dict[str, Any],
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` to ``path`` atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": CHECKPOINT_FORMAT,
        "model": asdict(model.config),
        "train": train_config,
        "task": task,
        "metrics": metrics or {},
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta["weights_sha256"] = weights_digest(tensors)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata={_META_KEY: json.dumps(meta)})
    os.replace(tmp, path)
    return path


def read_checkpoint_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    from safetensors import safe_open

    path = checkpoint_file(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(_META_KEY)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint: {exc}") from None
    if raw is None:
        raise CheckpointError(f"{path}: no {_META_KEY!r} metadata; not an edgernn checkpoint")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: metadata is not valid JSON: {exc}") from None
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {meta.get('format')!r} is not supported (expected {CHECKPOINT_FORMAT})"
        )
    return dict(meta)


def load_checkpoint(
    path: str | os.PathLike[str], expect: ModelConfig | None = None
) -> tuple[RecurrentModel, dict[str, Any]]:
    """Rebuild the model from ``path`` with strict weight loading.

    ``expect``, when given, must equal the stored config; a mismatch names the field.
    ``path`` may be a run directory (its model.safetensors).
    """
    path = checkpoint_file(path)
    meta = read_checkpoint_meta(path)
    try:
        config = ModelConfig.from_dict(meta["model"])
    except (SpecError, KeyError) as exc:
        raise CheckpointError(f"{path}: model config is invalid: {exc}") from None
    if expect is not None and expect != config:
        diff = [k for k, v in asdict(expect).items() if asdict(config)[k] != v]
        raise CheckpointError(
            f"{path}: checkpoint was made for another model config; mismatching field(s): "
            + ", ".join(f"{k} (checkpoint {asdict(config)[k]!r}, expected {asdict(expect)[k]!r})" for k in diff)
        )
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: weights cannot be read: {exc}") from None
    model = build_model(config)
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    if missing or extra:
        raise CheckpointError(f"{path}: weights do not match the config: missing {missing}, unexpected {extra}")
    for name, value in tensors.items():
        if tuple(value.shape) != tuple(own[name].shape):
            raise CheckpointError(
                f"{path}: tensor {name!r} has shape {tuple(value.shape)}, the config needs {tuple(own[name].shape)}"
            )
    stored = meta.get("weights_sha256")
    if stored is None:
        raise CheckpointError(f"{path}: no weights checksum in its metadata; re-save it with this edgernn")
    if weights_digest(tensors) != stored:
        raise CheckpointError(f"{path}: the weights do not match their checksum (corrupted or edited after saving)")
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model, meta


def weights_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
