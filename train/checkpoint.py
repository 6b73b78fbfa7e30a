"""Checkpoints: weights in safetensors plus JSON metadata. Never pickled code.

The metadata holds the ModelConfig (which rebuilds the model), the training config, the
task's facts (vocabulary, labels, normalisation statistics), the step, a checksum of the
weights and a format version.

The resume state (``train_state.safetensors``: optimizer moments, carried state, RNG) is
saved beside its checkpoint and tied to it: it holds the checkpoint's step and weights
digest, and a checksum of its own tensors and metadata. ``load_train_state`` refuses, with
CheckpointError, a state older or newer than its checkpoint, a byte-flipped or truncated one.

Every file is written to a temp file and renamed into place, with the mode the user's umask
gives a new file (0644 under the usual 022; safetensors itself writes 0600).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as _load_bytes
from safetensors.torch import save as _save_bytes

from edgernn.runtime.errors import CheckpointError, SpecError
from edgernn.runtime.spec import ModelConfig
from edgernn.train.model import RecurrentModel, build_model

CHECKPOINT_FORMAT = 1
CHECKPOINT = "model.safetensors"  # the checkpoint's name inside a run directory
_META_KEY = "edgernn"
_MAX_HEADER = 100 << 20  # safetensors' own bound on the JSON header


def save_file(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike[str], metadata: dict[str, str]) -> None:
    """safetensors bytes written by Python's own file I/O: any name the OS takes works, non-UTF-8
    bytes included (safetensors' ``save_file`` / ``safe_open`` refuse a path that is not valid UTF-8)."""
    data = _save_bytes(dict(tensors), metadata=metadata)
    with open(path, "wb") as fh:
        fh.write(data)


def _open_regular(path: str | os.PathLike[str]) -> Any:
    """``path`` opened for reading if it is a regular file (a FIFO or a device is refused, never waited on)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    fh = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        fh.close()
        raise ValueError("not a regular file")
    return fh


def load_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, read by Python's file I/O (see ``save_file``)."""
    with _open_regular(path) as fh:
        return dict(_load_bytes(fh.read()))


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file, from its header alone (bounded, checked against the size).

    ValueError: not a safetensors file (too short, a header too large or not a JSON object, data
    offsets past the end of the file).
    """
    with _open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(8)
        if len(head) < 8:
            raise ValueError("shorter than a safetensors header")
        n = int.from_bytes(head, "little")
        if n > min(_MAX_HEADER, size - 8):
            raise ValueError(f"the header declares {n:,} bytes in a file of {size:,}")
        doc = json.loads(fh.read(n))
    if not isinstance(doc, dict):
        raise ValueError("the header is not a JSON object")
    ends = [e["data_offsets"][1] for k, e in doc.items() if k != "__metadata__" and isinstance(e, dict)
            and isinstance(e.get("data_offsets"), list) and len(e["data_offsets"]) == 2]  # fmt: skip
    if len(ends) != len(doc) - ("__metadata__" in doc) or 8 + n + max(ends, default=0) > size:
        raise ValueError("truncated or not a safetensors file (tensor data past the end of the file)")
    meta = doc.get("__metadata__") or {}
    if not isinstance(meta, dict):
        raise ValueError("__metadata__ is not a JSON object")
    return meta


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
    step: int | None = None,
) -> Path:
    """Write ``model`` to ``path`` atomically (temp file, then rename); ``step`` ties a train state to it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": CHECKPOINT_FORMAT,
        "model": model.config.to_dict(),
        "train": train_config,
        "task": task,
        "metrics": metrics or {},
        "step": step,
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta["weights_sha256"] = weights_digest(tensors)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, tmp, metadata={_META_KEY: json.dumps(meta)})
    publish(tmp, path)
    return path


def umask_mode() -> int:
    """The mode a new file gets under the user's umask (0o644 under the usual 022)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc: read it by setting it, then put it back at once
    os.umask(mask)
    return 0o666 & ~mask


def publish(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Give ``tmp`` the umask's mode (temp files are 0600) and rename it onto ``path``."""
    os.chmod(tmp, umask_mode())
    os.replace(tmp, path)


def read_checkpoint_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    path = checkpoint_file(path)
    try:
        raw = read_metadata(path).get(_META_KEY)
    except (OSError, ValueError) as exc:
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
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: weights cannot be read: {exc}") from None
    model = build_model(config)
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    if missing or extra:
        raise CheckpointError(f"{path}: weights do not match the config: missing {missing}, unexpected {extra}")
    for name in own:  # in the model's order: the first mismatch named is the same whatever the file's order
        value = tensors[name]
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
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")  # 0-d too
    return h.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


TRAIN_STATE_KEY = "edgernn.train_state"


def save_train_state(
    path: Path, checkpoint: Path, opt: torch.optim.Optimizer, step: int, seconds: float, state: Any
) -> None:
    """Optimizer moments, carried state and RNG beside ``checkpoint`` (just saved), for ``--resume``.

    The metadata names the checkpoint's step and weights digest, and a sha256 over every tensor
    and the rest of the metadata (``state_digest``), so a resume can refuse a state that does
    not belong to its checkpoint or was damaged.
    """
    ckpt = read_checkpoint_meta(checkpoint)
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for idx, slots in sd["state"].items():
        for key, value in slots.items():
            tensors[f"opt.{idx}.{key}"] = torch.as_tensor(value).detach().clone().contiguous()
    for i, s in enumerate(state or ()):
        tensors[f"carry.{i}"] = s.detach().contiguous()
    tensors["rng"] = torch.get_rng_state()
    meta = {
        "step": step,
        "seconds": seconds,
        "param_groups": sd["param_groups"],
        "checkpoint_step": ckpt.get("step"),
        "checkpoint_weights_sha256": ckpt.get("weights_sha256"),
    }
    meta["state_digest"] = _state_digest(tensors, meta)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, tmp, metadata={TRAIN_STATE_KEY: json.dumps(meta)})
    publish(tmp, path)


def _state_digest(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> str:
    rest = {k: v for k, v in meta.items() if k != "state_digest"}
    h = hashlib.sha256(weights_digest(tensors).encode())
    h.update(json.dumps(rest, sort_keys=True, default=str).encode())
    return h.hexdigest()


def load_train_state(
    path: Path, checkpoint_meta: Mapping[str, Any], opt: torch.optim.Optimizer
) -> tuple[int, float, Any]:
    """(step, seconds, carried state) from ``path``, after checking it belongs to the checkpoint
    whose metadata is ``checkpoint_meta``; the optimizer and the RNG are restored from it.

    CheckpointError: unreadable or truncated, checksum mismatch (a byte flipped), or made for
    another checkpoint (another step or other weights: an older state beside a newer checkpoint).
    """
    try:
        meta = json.loads(read_metadata(path)[TRAIN_STATE_KEY])
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a readable train state: {type(exc).__name__}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("state_digest") != _state_digest(tensors, meta):
        raise CheckpointError(f"{path}: the train state does not match its checksum (corrupted or edited)")
    want = (checkpoint_meta.get("step"), checkpoint_meta.get("weights_sha256"))
    got = (meta.get("checkpoint_step"), meta.get("checkpoint_weights_sha256"))
    if got != want or meta.get("step") != want[0]:
        raise CheckpointError(
            f"{path}: the train state belongs to another checkpoint (its step {meta.get('step')}, "
            f"checkpoint step {want[0]}; weights {str(got[1])[:12]} vs {str(want[1])[:12]}): "
            "resume from the checkpoint it was saved with, or delete it to resume the weights alone"
        )
    slots: dict[int, dict[str, torch.Tensor]] = {}
    try:
        for name, value in tensors.items():
            if name.startswith("opt."):
                _, idx, key = name.split(".", 2)
                slots.setdefault(int(idx), {})[key] = value
        opt.load_state_dict({"state": slots, "param_groups": meta["param_groups"]})
        torch.set_rng_state(tensors["rng"])
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: the train state does not fit this optimizer: {exc}") from None
    carry = tuple(tensors[f"carry.{i}"] for i in range(2) if f"carry.{i}" in tensors)
    return int(meta["step"]), float(meta["seconds"]), carry or None
