"""Output paths with non-ASCII letters, bytes that are not UTF-8, spaces and newlines (issue 15).

The class: a path handed as a string to a library that requires valid UTF-8 (safetensors'
``save_file`` / ``safe_open`` refused ``--out <folder with \\xff>``: ``demo`` and ``train``
could not write their checkpoint) or pasted into a text format (a Triton model name taken
from the file name broke ``config.pbtxt``: UnicodeEncodeError, or a quote / newline inside the
name). Every subcommand's output flags are fuzzed with such names by ``reliability/clifuzz.py``;
these are the fixed cases, end to end.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import tiny_model
from fifo import refusal_of_a_fifo

from edgernn.cli import main
from edgernn.train.checkpoint import load_checkpoint, read_checkpoint_meta, save_checkpoint

ODD = [
    "ünï cødé ✓",
    os.fsdecode(b"bad\xff\xfe name"),  # not UTF-8: reaches Python as surrogate escapes
    "new\nline 'q\"",
]


@pytest.mark.parametrize("name", ODD, ids=["unicode", "not-utf8", "newline-quotes"])
def test_checkpoint_round_trip_under_an_odd_name(tmp_path: Path, name: str) -> None:
    model = tiny_model("gru", "tokens")
    path = save_checkpoint(tmp_path / name / "model.safetensors", model, {"lr": 1.0}, {}, step=3)
    assert read_checkpoint_meta(path)["step"] == 3
    loaded, meta = load_checkpoint(tmp_path / name)  # the run directory form too
    assert meta["train"] == {"lr": 1.0}
    for key, value in model.state_dict().items():
        assert loaded.state_dict()[key].equal(value)


def test_train_then_export_with_triton_into_odd_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / ODD[1]
    argv = ["train", "recall", "--hidden", "8", "--steps", "2", "--batch", "4", "--out", str(run)]
    assert main(argv) == 0
    onnx_out, triton = run / f"{ODD[2]}.onnx", tmp_path / ODD[0]
    assert main(["export", str(run), "-o", str(onnx_out), "--steps", "3", "--triton", str(triton)]) == 0
    assert onnx_out.stat().st_size > 1000
    folders = sorted(p.name for p in triton.iterdir())
    assert folders == ["new_line__q_", "new_line__q__twin"], folders  # ASCII names Triton and its URLs take
    config = (triton / folders[0] / "config.pbtxt").read_text()
    assert config.startswith('name: "new_line__q_"\n')
    assert "Traceback" not in capsys.readouterr().err


def test_a_fifo_given_as_a_checkpoint_is_refused_not_waited_on(tmp_path: Path) -> None:
    """safetensors' reader blocked on the FIFO holding the GIL (a hang)."""
    fifo = tmp_path / "model.safetensors"
    refused = refusal_of_a_fifo(fifo, "edgernn.train.checkpoint", "load_checkpoint", "CheckpointError")
    assert "not a regular file" in refused, refused
