"""Export a translate checkpoint: two graphs of one spec family, checked against PyTorch.

- the encoder, ``<name>-encoder.onnx``: source tokens ``x`` (batch, time) → ``memory``
  (batch, time, H); no state (a whole source line per call);
- the decoder step, ``<name>.onnx``: previous token ``x`` (batch, time), state ``h`` →
  logits ``y`` (batch, time, V), attention ``attn`` (batch, time, src_len) and ``h_out``; its
  spec declares ``memory`` (batch, src_len, H) with ``max_length`` and the mask input
  ``memory_mask``, so each stream holds its own source (``engine.stream(memory=...)``).

A TM-augmented model (``task.tm``) also gets its translation memory, ``<stem>-memory.json.gz``
beside the decoder (the training pairs, read again from the catalogs and checked against the
checkpoint's digests), named by ``task.translation_memory``.

Both specs carry the same task facts (vocabularies, languages, limits), each with its
``role`` and the file name of its partner; the decoder's provenance holds the parity report.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from edgernn.export.errors import ExportError, OutputValueError
from edgernn.export.onnx_export import DEFAULT_OPSET, attach_spec, check_output, write_model
from edgernn.runtime.apps.translate_memory import TranslationMemory
from edgernn.runtime.spec import BATCH, TIME, MemorySpec, StateSpec, StreamSpec, TensorSpec
from edgernn.train.checkpoint import (
    CheckpointError,
    checkpoint_file,
    config_digest,
    file_sha256,
    read_checkpoint_meta,
    weights_digest,
)
from edgernn.train.translate import Seq2Seq, Seq2SeqConfig

SRC_LEN = "src_len"
MEMORY, MASK, ATTN = "memory", "memory_mask", "attn"


def is_translate(meta: dict[str, Any]) -> bool:
    return isinstance(meta.get("task"), dict) and meta["task"].get("name") == "translate"


def load_seq2seq(path: str | os.PathLike[str]) -> tuple[Seq2Seq, dict[str, Any]]:
    """Rebuild the encoder–decoder of a translate checkpoint, weights loaded strictly and checksummed."""
    from safetensors.torch import load_file

    path = checkpoint_file(path)
    meta = read_checkpoint_meta(path)
    try:
        cfg = Seq2SeqConfig(**meta["task"]["seq2seq"])
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: task.seq2seq is missing or invalid: {exc}") from None
    tensors = load_file(str(path))
    if weights_digest(tensors) != meta.get("weights_sha256"):
        raise CheckpointError(f"{path}: the weights do not match their checksum (corrupted or edited after saving)")
    model = Seq2Seq(cfg)
    own = model.state_dict()
    bad = sorted(set(own) ^ set(tensors)) + [k for k in own if k in tensors and own[k].shape != tensors[k].shape]
    if bad:
        raise CheckpointError(f"{path}: weights do not match task.seq2seq: {bad[:6]}")
    model.load_state_dict(tensors, strict=True)
    return model.eval(), meta


class EncoderGraph(nn.Module):
    def __init__(self, model: Seq2Seq) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(x)


class DecoderGraph(nn.Module):
    """forward(x, h, memory, memory_mask) -> (y, attn, h_out): the decoder step's graph signature."""

    def __init__(self, model: Seq2Seq) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, x: torch.Tensor, h: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y, h_out, attn = self.model.decode(x, h, memory, mask)
        return y, attn, h_out


def partner_names(output: Path) -> tuple[Path, Path]:
    """(decoder path, encoder path): the encoder is ``<stem>-encoder.onnx`` beside the decoder."""
    return output, output.with_name(f"{output.stem}-encoder.onnx")


def memory_name(output: Path) -> Path:
    """A TM-augmented model's translation memory: ``<stem>-memory.json.gz`` beside the decoder."""
    return output.with_name(f"{output.stem}-memory.json.gz")


def rebuild_memory(facts: dict[str, Any]) -> TranslationMemory:
    """The training pairs of a TM-augmented checkpoint, read again from the catalogs it names and
    checked against its digests (the catalogs on this machine must be the ones it was trained on)."""
    from edgernn.train.data_translate import load_pairs
    from edgernn.train.translate_eval import memory_of

    data = load_pairs(str(facts["target_lang"]), tuple(facts["catalogs"]))
    tm = memory_of(data)
    if data.digest() != facts.get("data_digest") or tm.digest() != facts.get("tm_digest"):
        raise ExportError(f"the catalogs of {facts['target_lang']!r} ({', '.join(facts['catalogs'])}) on this machine "
                          "are not the ones the model was trained on (data_digest / tm_digest differ)")  # fmt: skip
    return tm


def specs(model: Seq2Seq, facts: dict[str, Any], decoder: Path, encoder: Path,
          provenance: dict[str, Any]) -> tuple[StreamSpec, StreamSpec]:  # fmt: skip
    cfg = model.cfg
    enc = StreamSpec(
        inputs=(TensorSpec("x", "int64", (BATCH, TIME)),),
        outputs=(TensorSpec(MEMORY, "float32", (BATCH, TIME, cfg.hidden)),),
        states=(),
        task={**facts, "role": "encoder", "decoder": decoder.name},
        provenance=provenance,
    )
    dec = StreamSpec(
        inputs=(TensorSpec("x", "int64", (BATCH, TIME)),),
        outputs=(TensorSpec("y", "float32", (BATCH, TIME, cfg.target_size)),
                 TensorSpec(ATTN, "float32", (BATCH, TIME, SRC_LEN))),
        states=(StateSpec("h", "h_out", "float32", (1, BATCH, cfg.hidden)),),
        model=cfg.model_config(),
        memory=(MemorySpec(MEMORY, "float32", (BATCH, SRC_LEN, cfg.hidden), max_length=int(facts["max_source"]),
                           mask=MASK),),
        task={**facts, "role": "decoder", "encoder": encoder.name},
        provenance=provenance,
    )  # fmt: skip
    return enc, dec


def _trace(module: nn.Module, args: tuple[torch.Tensor, ...], names: list[str], outs: list[str],
           axes: dict[str, dict[int, str]], opset: int) -> onnx.ModelProto:  # fmt: skip
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, buf, dynamo=False, input_names=names, output_names=outs,  # type: ignore[arg-type]
                          dynamic_axes=axes, opset_version=opset)  # fmt: skip
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto, full_check=True)
    return proto


def to_protos(model: Seq2Seq, opset: int = DEFAULT_OPSET) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """(encoder, decoder) traced with the legacy exporter: dynamic batch, time and source length."""
    cfg = model.cfg
    src = torch.randint(3, cfg.source_size, (2, 5))
    enc = _trace(EncoderGraph(model).eval(), (src,), ["x"], [MEMORY],
                 {"x": {0: BATCH, 1: TIME}, MEMORY: {0: BATCH, 1: TIME}}, opset)  # fmt: skip
    args = (torch.randint(3, cfg.target_size, (2, 3)), torch.zeros(1, 2, cfg.hidden),
            torch.randn(2, 5, cfg.hidden), torch.ones(2, 5))  # fmt: skip
    axes = {"x": {0: BATCH, 1: TIME}, "h": {1: BATCH}, MEMORY: {0: BATCH, 1: SRC_LEN}, MASK: {0: BATCH, 1: SRC_LEN},
            "y": {0: BATCH, 1: TIME}, ATTN: {0: BATCH, 1: TIME, 2: SRC_LEN}, "h_out": {1: BATCH}}  # fmt: skip
    dec = _trace(DecoderGraph(model).eval(), args, ["x", "h", MEMORY, MASK], ["y", ATTN, "h_out"], axes, opset)
    return enc, dec


@dataclass(frozen=True)
class TranslateParity:
    """Max |torch - onnx| of the encoder's memory and, over carried decoder steps, of logits,
    attention weights and state: one token per call and in chunks."""

    steps: int
    sources: int
    encoder: float
    step: dict[str, float]
    chunked: dict[str, float]
    tolerance: float

    @property
    def max_abs(self) -> float:
        return max(self.encoder, *self.step.values(), *self.chunked.values())

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "sources": self.sources, "max_abs_encoder": self.encoder,
                "max_abs_step": self.step, "max_abs_chunked": self.chunked, "max_abs": self.max_abs,
                "tolerance": self.tolerance}  # fmt: skip

    def verdict(self) -> str:
        word = "PASS" if self.max_abs <= self.tolerance else "FAIL"
        return (f"{word}  parity vs PyTorch: encoder memory {self.encoder:.3g}; decoder over {self.steps} carried "
                f"steps x {self.sources} sources, step {max(self.step.values()):.3g}, chunked "
                f"{max(self.chunked.values()):.3g} (max |torch - onnx| over logits, attention, state; "
                f"tolerance {self.tolerance:g})")  # fmt: skip


@torch.no_grad()
def check_parity(model: Seq2Seq, decoder: Path, encoder: Path, steps: int = 300, sources: int = 3,
                 tolerance: float = 1e-4, seed: int = 0) -> TranslateParity:  # fmt: skip
    """Run both graphs in the engine against PyTorch: each source through the encoder, then
    ``steps`` decoder tokens (BOS first, then random characters) carried one per call and in
    random chunks; ``OutputValueError`` when a difference exceeds ``tolerance``."""
    from edgernn.runtime.engine import Engine

    enc_engine, dec_engine = Engine.load(encoder), Engine.load(decoder)
    rng = np.random.default_rng(seed)
    cfg = model.cfg
    max_source = int(dec_engine.spec.memory[0].max_length or 1)
    enc_d, step_d, chunk_d = 0.0, {"y": 0.0, ATTN: 0.0, "h": 0.0}, {"y": 0.0, ATTN: 0.0, "h": 0.0}
    for k in range(sources):
        n = int(rng.integers(1, max_source + 1)) if k else max_source  # the longest the spec allows, then others
        src = rng.integers(3, cfg.source_size, n)
        ref_mem = model.encode(torch.from_numpy(src)[None])[0]  # (S, H)
        mem = enc_engine.stream().push(src, chunk=n)  # (S, H)
        enc_d = max(enc_d, float(np.abs(mem - ref_mem.numpy()).max()))
        tokens = np.concatenate([[0], rng.integers(3, cfg.target_size, steps - 1)])  # BOS, then characters
        ref_y, ref_h, ref_a = model.decode(torch.from_numpy(tokens)[None], torch.zeros(1, 1, cfg.hidden),
                                           ref_mem[None], torch.ones(1, n))  # fmt: skip
        ref = (ref_y[0].numpy(), ref_a[0].numpy(), ref_h[0, 0].numpy())
        stream = dec_engine.stream(memory={MEMORY: mem})
        ys, attns, ends = [], [], []
        for t, tok in enumerate(tokens):
            ys.append(stream.step(int(tok)))
            attns.append(stream.last_outputs[ATTN].reshape(-1)[-n:])  # the latest frame's weights
            ends.append(t)
        _diff(step_d, ref, np.stack(ys), np.stack(attns), ends, stream.state()["h"].reshape(-1))
        stream = dec_engine.stream(memory={MEMORY: mem})
        ys, attns, ends, at = [], [], [], 0
        while at < steps:
            size = min(int(rng.integers(1, 33)), steps - at)
            ys.append(stream.push(tokens[at : at + size], chunk=size))
            attns.append(stream.last_outputs[ATTN].reshape(-1)[-n:])
            at += size
            ends.append(at - 1)
        _diff(chunk_d, ref, np.concatenate(ys), np.stack(attns), ends, stream.state()["h"].reshape(-1))
    report = TranslateParity(steps, sources, enc_d, step_d, chunk_d, tolerance)
    if report.max_abs > tolerance:
        raise OutputValueError(f"{decoder}: {report.verdict()}")
    return report


def _diff(into: dict[str, float], ref: tuple[np.ndarray, np.ndarray, np.ndarray], y: np.ndarray,
          attn: np.ndarray, ends: list[int], h: np.ndarray) -> None:  # fmt: skip
    """Fold max |ref - onnx| into ``into``: every frame's logits, each call's last attention row, the final state."""
    into["y"] = max(into["y"], float(np.abs(ref[0] - y).max()))
    into[ATTN] = max(into[ATTN], float(np.abs(ref[1][ends] - attn).max()))
    into["h"] = max(into["h"], float(np.abs(ref[2] - h).max()))


def export_translate(checkpoint: str | os.PathLike[str], output: str | os.PathLike[str], validate: bool = True,
                     steps: int = 300, tolerance: float = 1e-4, force: bool = False,
                     opset: int = DEFAULT_OPSET) -> tuple[StreamSpec, TranslateParity | None]:  # fmt: skip
    """Write the decoder to ``output`` and the encoder beside it (``<stem>-encoder.onnx``)."""
    dec_path, enc_path = partner_names(Path(output))
    check_output(dec_path, force)
    check_output(enc_path, force)
    checkpoint = checkpoint_file(checkpoint)
    model, meta = load_seq2seq(checkpoint)
    provenance = {
        "checkpoint_sha256": file_sha256(checkpoint),
        "train_config_digest": config_digest(meta.get("train", {})),
        "metrics": {k: v for k, v in meta.get("metrics", {}).items() if k != "examples"},
        "opset": opset,
        "exporter": "torch.onnx.export(dynamo=False), encoder and decoder step (edgernn.export.translate)",
    }
    facts = dict(meta["task"])
    memory = None
    if facts.get("tm"):
        check_output(memory_name(dec_path), force)
        memory = rebuild_memory(facts)
        facts["translation_memory"] = memory_name(dec_path).name
    enc_spec, dec_spec = specs(model, facts, dec_path, enc_path, provenance)
    enc_proto, dec_proto = to_protos(model, opset)
    report = None
    if validate:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            d, e = partner_names(Path(tmp) / dec_path.name)
            write_model(attach_spec(enc_proto, enc_spec), e)
            write_model(attach_spec(dec_proto, dec_spec), d)
            if memory is not None:
                memory.save(memory_name(d))
            report = check_parity(model, d, e, steps=steps, tolerance=tolerance)
        dec_spec = dec_spec.with_provenance(parity=report.to_dict())
    if not dec_spec.memory:
        raise ExportError("the decoder spec lost its memory declaration")
    write_model(attach_spec(enc_proto, enc_spec), enc_path, force=force)
    if memory is not None:
        memory.save(memory_name(dec_path))
    write_model(attach_spec(dec_proto, dec_spec), dec_path, force=force)
    return dec_spec, report
