"""torch → ONNX with an explicit stateful step, the stream spec written into the metadata.

The legacy TorchScript exporter (``dynamo=False``) is used: it emits the native ONNX
RNN / GRU / LSTM ops and keeps the batch and time axes dynamic. The dynamo exporter
unrolls tanh RNNs and fixes the time axis to the example's length.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from edgernn.export.errors import ExportError, OutputExistsError
from edgernn.runtime.spec import BATCH, INPUT_X, METADATA_KEY, OUTPUT_Y, TIME, StreamSpec
from edgernn.train.checkpoint import publish
from edgernn.train.model import RecurrentModel

DEFAULT_OPSET = 17


class StepGraph(nn.Module):
    """forward(x, *state) -> (y, *next_state): the signature the exported graph has."""

    def __init__(self, model: RecurrentModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y, new_state = self.model(x, tuple(state))
        return (y, *new_state)


def example_inputs(model: RecurrentModel, batch: int = 2, time: int = 3) -> tuple[torch.Tensor, ...]:
    cfg = model.config
    if cfg.input_kind == "tokens":
        x = torch.randint(0, cfg.input_size, (batch, time), dtype=torch.int64)
    else:
        x = torch.randn(batch, time, cfg.input_size)
    return (x, *model.initial_state(batch))


def to_onnx_proto(model: RecurrentModel, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Trace ``model`` into an ONNX ModelProto (no metadata yet)."""
    spec = StreamSpec.for_model(model.config)
    state_in = [s.input for s in spec.states]
    state_out = [s.output for s in spec.states]
    dynamic: dict[str, dict[int, str]] = {INPUT_X: {0: BATCH, 1: TIME}, OUTPUT_Y: {0: BATCH, 1: TIME}}
    for name in state_in + state_out:
        dynamic[name] = {1: BATCH}  # (layers, batch, hidden)
    buf = io.BytesIO()
    model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and batch-size notes
        torch.onnx.export(
            StepGraph(model),
            example_inputs(model),
            buf,  # type: ignore[arg-type]  # a file object works; the stub says path only
            dynamo=False,
            input_names=[INPUT_X, *state_in],
            output_names=[OUTPUT_Y, *state_out],
            dynamic_axes=dynamic,
            opset_version=opset,
        )
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto, full_check=True)
    return proto


def attach_spec(proto: onnx.ModelProto, spec: StreamSpec) -> onnx.ModelProto:
    """Write (or replace) the stream spec in ``proto.metadata_props``."""
    kept = [p for p in proto.metadata_props if p.key != METADATA_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    entry = proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = spec.to_json()
    proto.producer_name = "edgernn"
    return proto


def check_output(path: str | os.PathLike[str], force: bool = False) -> Path:
    """Refuse early, before any work: ``path`` exists without ``force``, is a folder, or cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"{path} is a folder; give a file name for the model")
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists; pass force=True (--force) to replace it")
    if path.exists() and not path.is_file():  # --force replaces a file, never a device node, FIFO or socket
        raise ExportError(f"{path} is not a regular file (a device, FIFO or socket): --force replaces only files")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:  # folders are made only when writing
        parent = parent.parent
    try:
        if not parent.is_dir():
            raise NotADirectoryError(20, "not a folder")
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise ExportError(f"{path}: cannot write into {parent}: {exc.strerror or exc}") from None
    return path


def write_model(proto: onnx.ModelProto, path: str | os.PathLike[str], force: bool = False) -> Path:
    """Write atomically: a temp file beside ``path`` renamed into place; nothing half-written stays."""
    path = check_output(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        onnx.save(proto, str(tmp))
        check_output(path, force)  # again: the path may have changed while the model was written
        publish(tmp, path)  # the umask's mode (mkstemp made it 0600), then renamed into place
    except OSError as exc:
        raise ExportError(f"{path}: cannot write the model: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def export_model(
    model: RecurrentModel,
    path: str | os.PathLike[str],
    task: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
    opset: int = DEFAULT_OPSET,
    force: bool = False,
) -> StreamSpec:
    """Export ``model`` to ``path`` with its stream spec; returns the spec written."""
    spec = StreamSpec.for_model(model.config, task=task, provenance=provenance)
    proto = attach_spec(to_onnx_proto(model, opset), spec)
    write_model(proto, path, force=force)
    return spec
