"""Class 10 of issue 15: files that train and export write, and the train state a resume reads.

--force replaces only regular files (never a device node or a FIFO); every file train and
export produce gets the user's umask (0644 under 022, not 0600); a resume refuses a train state
that does not belong to its checkpoint (older, byte-flipped, truncated) with CheckpointError.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from conftest import tiny_model

from edgernn.export.errors import ExportError
from edgernn.export.onnx_export import export_model
from edgernn.runtime.errors import CheckpointError
from edgernn.train.checkpoint import TRAIN_STATE_KEY
from edgernn.train.tasks import build_task, recipe
from edgernn.train.trainer import TRAIN_STATE, fit


def tiny(steps: int):
    base = dict(hidden_size=8, embed_size=4, delay=3, batch_size=8, max_steps=steps, log_every=1, lr=1e-2)
    return recipe("recall", **base)


def test_force_does_not_replace_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "out.onnx"
    os.mkfifo(fifo)
    with pytest.raises(ExportError, match="not a regular file"):
        export_model(tiny_model("gru", "tokens"), fifo, force=True)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_force_does_not_replace_a_device_node(tmp_path: Path) -> None:
    node = tmp_path / "full"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # what /dev/full is
    except PermissionError:
        pytest.skip("making a device node needs root (the case of the finding: export -o /dev/full --force as root)")
    with pytest.raises(ExportError, match="not a regular file"):
        export_model(tiny_model("gru", "tokens"), node, force=True)
    assert stat.S_ISCHR(os.lstat(node).st_mode)


def test_force_still_replaces_a_regular_file(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    out.write_bytes(b"old")
    export_model(tiny_model("gru", "tokens"), out, force=True)
    assert out.stat().st_size > 1000


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_train_and_export_write_files_with_the_users_umask(tmp_path: Path, mask: int) -> None:
    old = os.umask(mask)
    try:
        fit(build_task(tiny(2)), tiny(2), out=tmp_path / "run", log=lambda s: None)
        export_model(tiny_model("gru", "tokens"), tmp_path / "m.onnx")
    finally:
        os.umask(old)
    want = 0o666 & ~mask
    files = [p for p in (tmp_path / "run").iterdir() if p.is_file()] + [tmp_path / "m.onnx"]
    names = {p.name for p in files}
    assert {"model.safetensors", TRAIN_STATE, "config.json", "m.onnx"} <= names
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {p.name: oct(want) for p in files}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory trained 4 steps, with a copy of its train state kept, then resumed to 8."""
    root = tmp_path_factory.mktemp("trained")
    out = root / "run"
    fit(build_task(tiny(4)), tiny(4), out=out, log=lambda s: None)
    shutil.copy(out / TRAIN_STATE, root / "state-at-4.safetensors")
    fit(build_task(tiny(8)), tiny(8), out=out, resume=out, log=lambda s: None)
    return root


@pytest.fixture()
def run(trained: Path, tmp_path: Path) -> Path:
    """A fresh copy of the trained run directory (each test damages its own)."""
    shutil.copytree(trained, tmp_path / "copy")
    return tmp_path / "copy" / "run"


def _resume(out: Path) -> None:
    fit(build_task(tiny(9)), tiny(9), resume=out, log=lambda s: None)


def test_resume_refuses_a_train_state_older_than_its_checkpoint(run: Path) -> None:
    shutil.copy(run.parent / "state-at-4.safetensors", run / TRAIN_STATE)
    with pytest.raises(CheckpointError, match="belongs to another checkpoint"):
        _resume(run)


def test_resume_refuses_a_byte_flipped_train_state(run: Path) -> None:
    data = bytearray((run / TRAIN_STATE).read_bytes())
    data[-3] ^= 0x01  # in the tensors' bytes
    (run / TRAIN_STATE).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its checksum"):
        _resume(run)


def test_resume_refuses_a_train_state_with_an_edited_step(run: Path) -> None:
    data = (run / TRAIN_STATE).read_bytes()
    assert TRAIN_STATE_KEY.encode() in data and b'\\"step\\": 8,' in data  # JSON inside JSON
    (run / TRAIN_STATE).write_bytes(data.replace(b'\\"step\\": 8,', b'\\"step\\": 9,'))
    with pytest.raises(CheckpointError, match="does not match its checksum"):
        _resume(run)


def test_resume_refuses_a_truncated_train_state(run: Path) -> None:
    data = (run / TRAIN_STATE).read_bytes()
    (run / TRAIN_STATE).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable train state"):
        _resume(run)


def test_resume_with_its_own_train_state_goes_on(run: Path) -> None:
    assert fit(build_task(tiny(9)), tiny(9), resume=run, log=lambda s: None).steps == 9
