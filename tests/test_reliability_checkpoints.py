"""Checkpoints and snapshots from elsewhere: corrupted or foreign files are refused clearly; nothing unpickles."""

from __future__ import annotations

import hashlib
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_model
from safetensors.torch import save_file

from edgernn.reliability.faults import pickle_bomb
from edgernn.runtime import Engine
from edgernn.runtime.errors import CheckpointError, SnapshotError, StreamError
from edgernn.train.checkpoint import load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def ckpt(tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path / "m.safetensors", tiny_model("gru", hidden=8, layers=1), {"lr": 1e-3}, {})


def header_len(path: Path) -> int:
    return 8 + struct.unpack("<Q", path.read_bytes()[:8])[0]


def test_a_sound_checkpoint_round_trips(ckpt: Path) -> None:
    model, meta = load_checkpoint(ckpt)
    want = tiny_model("gru", hidden=8, layers=1).state_dict()
    assert meta["train"] == {"lr": 1e-3}
    assert all(torch.equal(v, want[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("cut", [0, 7, 40, -9])
def test_a_truncated_checkpoint_is_refused(ckpt: Path, cut: int) -> None:
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[:cut] if cut >= 0 else data[:cut])
    with pytest.raises(CheckpointError, match="m.safetensors"):
        load_checkpoint(ckpt)


def test_a_damaged_header_is_refused(ckpt: Path) -> None:
    data = bytearray(ckpt.read_bytes())
    data[header_len(ckpt) // 2] ^= 0x55
    ckpt.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        load_checkpoint(ckpt)


def test_foreign_checkpoints_are_refused_naming_the_reason(ckpt: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="not an edgernn checkpoint"):
        load_checkpoint(plain)
    with pytest.raises(CheckpointError, match="hidden_size"):
        load_checkpoint(ckpt, expect=tiny_model("gru", hidden=16, layers=1).config)
    lstm = save_checkpoint(tmp_path / "l.safetensors", tiny_model("lstm", hidden=8, layers=1), {}, {})
    with pytest.raises(CheckpointError, match="cell"):
        load_checkpoint(lstm, expect=tiny_model("gru", hidden=8, layers=1).config)


def _rewrite_meta(path: Path, edit: object) -> None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        meta = json.loads(fh.metadata()["edgernn"])
    edit(meta)  # type: ignore[operator]
    save_file(tensors, str(path), metadata={"edgernn": json.dumps(meta)})


def test_a_checkpoint_of_another_format_or_an_invalid_config_is_refused(ckpt: Path) -> None:
    _rewrite_meta(ckpt, lambda m: m.update(format=99))
    with pytest.raises(CheckpointError, match="format 99"):
        load_checkpoint(ckpt)
    _rewrite_meta(ckpt, lambda m: m.update(format=1) or m["model"].update(cell="transformer"))
    with pytest.raises(CheckpointError, match="transformer"):
        load_checkpoint(ckpt)


@pytest.mark.parametrize("kind", ["raw pickle", "torch.save zip"])
def test_a_pickle_bearing_checkpoint_is_refused_without_running_it(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.safetensors"
    if kind == "raw pickle":
        path.write_bytes(pickle_bomb(marker))
    else:
        torch.save({"weights": torch.zeros(2), "payload": _Bomb(str(marker))}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()
    with pytest.raises(Exception):  # noqa: B017 - also refused as a model, see test_reliability_files
        Engine.load(path)
    assert not marker.exists()


class _Bomb:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


def test_no_code_path_can_unpickle() -> None:
    """Every loader in the shipped code: no pickle, torch.load, allow_pickle or weights_only=False."""
    banned = re.compile(
        r"pickle\.loads?\(|torch\.load\(|allow_pickle\s*=\s*True|weights_only\s*=\s*False|"
        r"cloudpickle|dill\.|joblib\.load|marshal\.loads?\(|shelve\."
    )
    offenders = []
    for folder in ("runtime", "train", "export", "devices"):
        for path in (ROOT / folder).rglob("*.py"):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if banned.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == []


def test_a_bit_flip_in_the_weights_is_refused(ckpt: Path) -> None:
    data = bytearray(ckpt.read_bytes())
    data[header_len(ckpt) + 5] ^= 0x10
    ckpt.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        load_checkpoint(ckpt)


# -- snapshots ---------------------------------------------------------------------------------


@pytest.fixture()
def stepped(exported: dict) -> tuple[Engine, object]:
    engine = Engine.load(exported["lstm"][1])
    stream = engine.stream()
    stream.push(np.arange(20) % 7)
    return engine, stream


def _refused_unchanged(stream: object, blob: object, match: str) -> None:
    before = stream.state()  # type: ignore[attr-defined]
    with pytest.raises(SnapshotError, match=match):
        stream.restore(blob)  # type: ignore[attr-defined]
    after = stream.state()  # type: ignore[attr-defined]
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_damaged_snapshots_are_refused_and_state_kept(stepped: tuple) -> None:
    engine, stream = stepped
    blob = stream.snapshot()
    fresh = engine.stream()
    _refused_unchanged(fresh, blob[:-1], "checksum|truncated")
    _refused_unchanged(fresh, blob[: len(blob) // 2], "checksum|truncated")
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 1
    _refused_unchanged(fresh, bytes(flipped), "checksum")
    _refused_unchanged(fresh, b"", "not an edgernn snapshot")
    _refused_unchanged(fresh, "text", "bytes")
    fresh.restore(blob)
    assert all(np.array_equal(v, stream.state()[k]) for k, v in fresh.state().items())


def _forge(blob: bytes, edit: object) -> bytes:
    """Rewrite a snapshot's header and recompute its checksum (what an attacker can do)."""
    magic = b"EDGERNN-SNAP"
    fmt, head_len = struct.unpack_from("<II", blob, len(magic))
    start = len(magic) + 8
    header = json.loads(blob[start : start + head_len])
    edit(header)  # type: ignore[operator]
    head = json.dumps(header).encode()
    body = magic + struct.pack("<II", fmt, len(head)) + head + blob[start + head_len : -32]
    return body + hashlib.sha256(body).digest()


def test_forged_snapshots_are_refused(stepped: tuple, exported: dict) -> None:
    engine, stream = stepped
    blob = stream.snapshot()
    target = engine.stream()
    huge = _forge(blob, lambda h: h["tensors"][0].update(shape=[1, 1, 1 << 40]))
    _refused_unchanged(target, huge, "do not match")
    _refused_unchanged(target, _forge(blob, lambda h: h.update(contract="0" * 64)), "another model")
    _refused_unchanged(target, _forge(blob, lambda h: h.update(spec_version=99)), "spec version")
    other = Engine.load(exported["gru"][1]).stream().snapshot()
    _refused_unchanged(target, other, "another model")
    marker = Path(str(exported["lstm"][1]) + ".PWNED")
    _refused_unchanged(target, pickle_bomb(marker), "not an edgernn snapshot")
    assert not marker.exists()


def test_a_snapshot_moves_between_two_loads_of_one_file(stepped: tuple, exported: dict) -> None:
    engine, stream = stepped
    other = Engine.load(exported["lstm"][1]).stream()
    other.restore(stream.snapshot())
    x = np.array([3, 1, 4])
    np.testing.assert_array_equal(other.push(x), stream.push(x))


def test_restore_on_a_closed_stream_is_refused(stepped: tuple) -> None:
    engine, stream = stepped
    blob = stream.snapshot()
    s = engine.stream()
    s.close()
    with pytest.raises(StreamError):
        s.restore(blob)
