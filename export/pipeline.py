"""Checkpoint → ONNX → validation → (int8 / fp16) → (Triton repository): ``edgernn export`` as one function.

Every output is checked before any work (exists without ``force``, not writable) and written
atomically, so a failure leaves nothing half-written behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

from edgernn.export.errors import ExportError, OutputExistsError
from edgernn.export.onnx_export import DEFAULT_OPSET, attach_spec, check_output, to_onnx_proto, write_model
from edgernn.export.parity import ParityReport, check_parity, sample_batch
from edgernn.runtime.spec import StreamSpec
from edgernn.train.checkpoint import checkpoint_file, config_digest, file_sha256, load_checkpoint, read_checkpoint_meta

if TYPE_CHECKING:
    from edgernn.export.translate import TranslateParity

INT8_TOLERANCE = 2e-2  # max |int8 - fp32| on normalised outputs (log-softmax for tokens)


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    output: str | os.PathLike[str],
    opset: int = DEFAULT_OPSET,
    validate: bool = True,
    steps: int = 1000,
    tolerance: float = 1e-5,
    force: bool = False,
    quantize: str | None = None,
    triton: str | os.PathLike[str] | None = None,
    quant_tolerance: float = INT8_TOLERANCE,
    decompose: bool = False,
    form: str | None = None,
    device: str | None = None,
    int8_form: str | None = None,
) -> tuple[StreamSpec, ParityReport | TranslateParity | None]:
    """Export ``checkpoint`` to ``output``; with ``validate`` the parity report goes into the metadata.

    ``quantize`` ('int8' or 'fp16') writes that variant to ``output`` instead of fp32; with
    ``validate`` it is compared with the fp32 graph (``spec.provenance['quantization']``).
    ``triton`` writes a Triton model repository of the same graph there. ``checkpoint`` may be
    a run directory (its model.safetensors).

    ``decompose`` writes the fp32 cell as plain MatMuls and gate math with a Scan over time
    (``edgernn.export.decomposed``) instead of the native RNN / GRU / LSTM op: the same names,
    shapes, spec and parity suite. On the CPU provider it is faster for Elman RNNs and, one frame
    per call, where the input product is wide (it folds into the embedding table); level or
    slower for small models and GRU / LSTM chunks (BENCHMARKS.md has the figures). GPU and
    NPU providers run the native ops better than a Scan, so it is opt-in.

    ``form`` (``edgernn.export.forms``): which fp32 graph to write. ``"auto"`` (the default for
    fp32) branches on each call's time and batch between the decomposed graph and the native
    op, whichever the CPU provider runs faster (docs/ARCHITECTURE.md); ``"native"`` keeps the
    traced ops (GPU / NPU profiles: ``devices/*.toml`` name their form); ``"decomposed"`` is
    ``decompose=True``. int8 and fp16 are made from the native graph whatever the form.
    ``device`` (a profile name or .toml path): its ``form`` is the default, and int8 is refused
    for a provider whose ``int8_form`` is "none".

    ``int8_form`` (with ``quantize="int8"``): "dynamic" (the CPU provider's contrib ops, the default)
    or "qdq" (static QuantizeLinear / DequantizeLinear, one step per call, calibrated on the first
    batches of the checkpoint's own training data: ``edgernn.export.qdq``); a ``device`` profile's
    ``int8_form`` is the default.
    """
    from edgernn.export.forms import FORMS, build_form

    if form is not None and form not in FORMS:
        raise ExportError(f"--form {form!r}: expected one of {', '.join(FORMS)}")
    if decompose and form not in (None, "decomposed"):
        raise ExportError(f"--decompose with --form {form}: --decompose is --form decomposed")
    if decompose:
        form = "decomposed"
    if device is not None:
        from edgernn.devices.profiles import load_profile

        profile = load_profile(device)
        form = form or (profile.form if quantize is None else None)  # int8 / fp16 have their own forms
        if quantize == "int8" and profile.int8_form == "none":
            raise ExportError(
                f"--device {profile.name} with --quantize int8: that profile takes no int8 form edgernn makes "
                "(DynamicQuantizeMatMul / DynamicQuantizeLSTM run on the CPU provider only)"
            )
        int8_form = int8_form or (profile.int8_form if quantize == "int8" else None)
    if int8_form is not None and (quantize != "int8" or int8_form not in ("dynamic", "qdq")):
        raise ExportError(f"--int8-form {int8_form!r}: expected 'dynamic' or 'qdq', with --quantize int8")
    out_path = check_output(output, force)
    checkpoint = checkpoint_file(checkpoint)
    if quantize not in (None, "int8", "fp16"):
        raise ExportError(f"--quantize {quantize!r}: expected 'int8' or 'fp16'")
    if form in ("decomposed", "auto") and quantize is not None:
        flag = "--decompose" if decompose else f"--form {form}"
        raise ExportError(
            f"{flag} with --quantize {quantize}: --decompose / --form are for the fp32 graph (int8 decomposes "
            "the cells itself; fp16 is for GPU providers, which run the native ops better than a Scan)"
        )
    if form is None:
        form = "native" if quantize is not None else "auto"
    if read_checkpoint_meta(checkpoint).get("task", {}).get("name") == "translate":  # two graphs: export/translate.py
        if quantize is not None or triton is not None or form == "decomposed":
            raise ExportError("a translate checkpoint exports as fp32 traced graphs only (no --quantize, --triton, "
                              "--form decomposed)")  # fmt: skip
        from edgernn.export.translate import export_translate

        return export_translate(checkpoint, out_path, validate, steps, max(tolerance, 1e-5), force, opset)
    if triton is not None:
        _check_triton_root(Path(triton), force)
    model, meta = load_checkpoint(checkpoint)
    if model.config.cell == "attention":  # traced ops only: the decomposed and int8 forms are for the cells
        if form == "decomposed" or quantize == "int8":
            raise ExportError("the attention cell exports as traced ops only (no --form decomposed / --quantize int8)")
        form = "native"
    provenance = {
        "checkpoint_sha256": file_sha256(checkpoint),
        "train_config_digest": config_digest(meta.get("train", {})),
        "metrics": meta.get("metrics", {}),
        "opset": opset,
        "exporter": "torch.onnx.export(dynamo=False)" + _FORM_NOTE[form],
        "form": form,
    }
    spec = StreamSpec.for_model(model.config, task=meta.get("task", {}), provenance=provenance)
    proto = build_form(to_onnx_proto(model, opset), spec, form, opset)
    report = None
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "fp32.onnx"
        if validate:
            write_model(attach_spec(proto, spec), probe)
            report = check_parity(model, probe, steps=steps, tolerance=tolerance)
            spec = spec.with_provenance(parity=report.to_dict())
        proto = attach_spec(proto, spec)
        if quantize is not None:
            calibration = None
            if int8_form == "qdq":
                from edgernn.export.qdq import training_chunks

                task = meta.get("task", {}).get("name", "its task")
                data = training_chunks(meta.get("train", {}))
                calibration = (data, f"the {task} training data (its first training batches)")
            proto, spec = _convert(
                proto, quantize, validate, probe, Path(tmp), model, steps, quant_tolerance, int8_form, calibration
            )
    write_model(proto, out_path, force=force)
    if triton is not None:
        from edgernn.export.triton import model_name, write_repository

        write_repository(triton, proto, spec, name=model_name(out_path.stem), force=force)
    return spec, report


_FORM_NOTE = {
    "native": "",
    "decomposed": ", cell decomposed (edgernn.export.decomposed)",
    "auto": ", form auto: decomposed cell or native op by call shape (edgernn.export.forms)",
}


def _check_triton_root(root: Path, force: bool) -> None:
    if root.exists() and not root.is_dir():
        raise ExportError(f"--triton {root}: exists and is not a folder")
    if root.is_dir() and any(root.iterdir()) and not force:
        raise OutputExistsError(f"--triton {root}: folder exists and is not empty; pass --force to replace the model")


def _convert(
    proto: onnx.ModelProto,
    mode: str,
    validate: bool,
    probe: Path,
    tmp: Path,
    model: Any,
    steps: int,
    tolerance: float,
    int8_form: str | None = None,
    calibration: tuple[Any, str] | None = None,
) -> tuple[onnx.ModelProto, StreamSpec]:
    from edgernn.export.quantize import convert_proto

    qdq = int8_form == "qdq"
    data, source = calibration if calibration is not None else (None, "")
    out, spec = convert_proto(
        proto, mode, int8_form=int8_form or "dynamic", calibration=data, calibration_source=source
    )
    note = dict(spec.provenance["quantization"])
    if validate:
        from edgernn.export.errors import OutputValueError
        from edgernn.export.validate import compare_graphs, sample_from_graph

        tokens = model.config.input_kind == "tokens"  # char models: text they write themselves
        xs = sample_from_graph(probe, steps, 3, seed=7) if tokens else sample_batch(model, steps, 3, seed=7)

        def check(candidate_proto: onnx.ModelProto, name: str) -> dict:
            candidate = tmp / f"{mode}-{name}.onnx"
            write_model(candidate_proto, candidate)
            return compare_graphs(probe, candidate, xs, tolerance=tolerance)

        try:
            result = check(out, "fast")
        except OutputValueError as fast_error:
            if mode != "int8":
                raise
            # The fast form missed the tolerance: the accurate one (two-part weights; for QDQ two-part
            # activations) or the error.
            out, spec = convert_proto(
                proto, mode, accurate=True, int8_form="qdq" if qdq else "dynamic", calibration=data,
                calibration_source=source,
            )  # fmt: skip
            note = dict(spec.provenance["quantization"])
            note["fast_form_refused"] = str(fast_error)[:300]
            result = check(out, "accurate")
        note["parity_vs_fp32"] = {
            "max_abs_normalised": result["max_abs_normalised"],
            "normalised": result["normalised"],
            **({"max_abs_log_softmax": result["max_abs_log_softmax"]} if "max_abs_log_softmax" in result else {}),
            "tolerance": tolerance,
            "scale": result["scales"][spec.outputs[0].name],
            "steps": result["steps"],
            "modes": result["modes"],
        }
        spec = spec.with_provenance(quantization=note)
    return attach_spec(out, spec), spec
