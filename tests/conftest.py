"""Shared fixtures: small real models exported with the real exporter (no mocks)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from edgernn.export.onnx_export import export_model  # noqa: E402
from edgernn.runtime.spec import ModelConfig  # noqa: E402
from edgernn.train.model import RecurrentModel, build_model  # noqa: E402

VOCAB = "\n !,.:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
CELLS = ("rnn", "gru", "lstm")


def tiny_model(
    cell: str, input_kind: str = "tokens", hidden: int = 32, layers: int = 2, seed: int = 0
) -> RecurrentModel:
    torch.manual_seed(seed)
    size = len(VOCAB) if input_kind == "tokens" else 6
    out = len(VOCAB) if input_kind == "tokens" else 3
    cfg = ModelConfig(
        cell=cell, input_kind=input_kind, input_size=size, hidden_size=hidden, num_layers=layers, output_size=out
    )
    return build_model(cfg).eval()


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[RecurrentModel, Path]]:
    """One exported token model per cell, keyed by cell name, plus 'frames-<cell>' frame models."""
    root = tmp_path_factory.mktemp("models")
    out: dict[str, tuple[RecurrentModel, Path]] = {}
    for cell in CELLS:
        for kind in ("tokens", "frames"):
            model = tiny_model(cell, kind)
            key = cell if kind == "tokens" else f"frames-{cell}"
            path = root / f"{key}.onnx"
            export_model(model, path, task={"name": "test", "vocabulary": VOCAB if kind == "tokens" else ""})
            out[key] = (model, path)
    return out
