"""Checkpoint → ONNX → parity → metadata: what ``edgernn export`` does, as one function."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from edgernn.export.onnx_export import DEFAULT_OPSET, attach_spec, to_onnx_proto, write_model
from edgernn.export.parity import ParityReport, check_parity
from edgernn.runtime.spec import StreamSpec
from edgernn.train.checkpoint import config_digest, file_sha256, load_checkpoint


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    output: str | os.PathLike[str],
    opset: int = DEFAULT_OPSET,
    validate: bool = True,
    steps: int = 1000,
    tolerance: float = 1e-5,
    force: bool = False,
) -> tuple[StreamSpec, ParityReport | None]:
    """Export ``checkpoint`` to ``output``; with ``validate`` the parity report goes into the metadata."""
    output = Path(output)
    if output.exists() and not force:
        raise FileExistsError(f"{output} exists; pass --force to replace it")
    model, meta = load_checkpoint(checkpoint)
    provenance = {
        "checkpoint_sha256": file_sha256(checkpoint),
        "train_config_digest": config_digest(meta.get("train", {})),
        "metrics": meta.get("metrics", {}),
        "opset": opset,
    }
    spec = StreamSpec.for_model(model.config, task=meta.get("task", {}), provenance=provenance)
    proto = to_onnx_proto(model, opset)
    report = None
    if validate:
        with tempfile.TemporaryDirectory() as tmp:
            probe = Path(tmp) / "probe.onnx"
            write_model(attach_spec(proto, spec), probe)
            report = check_parity(model, probe, steps=steps, tolerance=tolerance)
        spec = spec.with_provenance(parity=report.to_dict())
    write_model(attach_spec(proto, spec), output, force=force)
    return spec, report
