"""The models the bench times: random weights, real export, cached on disk by configuration.

Each model is built with ``edgernn.train.model.build_model`` and exported with
``edgernn.export.onnx_export.export_model`` (the real graph a user gets); int8 variants come
from ``edgernn.export.quantize.quantize_model`` when that module exists.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VOCAB = 64  # token ids in, logits over the same vocabulary out: a character model's shape


@dataclass(frozen=True)
class ModelKey:
    cell: str
    hidden: int
    layers: int = 1

    @property
    def name(self) -> str:
        return f"{self.cell}-h{self.hidden}" + (f"-l{self.layers}" if self.layers != 1 else "")


def cache_dir() -> Path:
    """Where exported bench models are kept between runs ($EDGERNN_BENCH_CACHE or a temp folder)."""
    root = os.environ.get("EDGERNN_BENCH_CACHE") or os.path.join(tempfile.gettempdir(), "edgernn-bench-models")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_of(key: ModelKey) -> Any:
    from edgernn.runtime.spec import ModelConfig

    return ModelConfig(
        cell=key.cell,
        input_kind="tokens",
        input_size=VOCAB,
        hidden_size=key.hidden,
        num_layers=key.layers,
        output_size=VOCAB,
    )


def torch_model(key: ModelKey, seed: int = 0) -> Any:
    """The PyTorch model (eval mode) with the seed's random weights; the same weights every call."""
    import torch

    from edgernn.train.model import build_model

    torch.manual_seed(seed + 1000 * key.hidden + {"rnn": 1, "gru": 2, "lstm": 3}[key.cell])
    return build_model(config_of(key)).eval()


def code_digest() -> str:
    """A digest of the code that makes a bench model: a cached file from other code is not reused."""
    import hashlib

    import edgernn.export.onnx_export as exporter
    import edgernn.train.model as model_code

    h = hashlib.sha256()
    for module in (model_code, exporter):
        h.update(Path(module.__file__ or "").read_bytes())
    return h.hexdigest()[:10]


def fp32_path(key: ModelKey, seed: int = 0) -> Path:
    """The exported fp32 model for ``key`` (exported once per code digest, then read from the cache)."""
    from edgernn.export.onnx_export import export_model

    path = cache_dir() / f"{key.name}-s{seed}-{code_digest()}.onnx"
    if not path.exists():
        export_model(torch_model(key, seed), path, task={"name": "bench"}, force=True)
    return path


def auto_path(key: ModelKey, seed: int = 0) -> Path:
    """What ``edgernn export`` writes for ``key`` by default: the auto form (``edgernn.export.forms``),
    or the native graph in a tree without it."""
    src = fp32_path(key, seed)
    try:
        forms = importlib.import_module("edgernn.export.forms")
    except ImportError:
        return src
    path = src.with_name(src.stem + "-auto.onnx")
    if _stale(path, src, "edgernn.export.forms", "edgernn.export.decomposed", "edgernn.export.graphbuild"):
        import onnx

        from edgernn.export.onnx_export import write_model
        from edgernn.export.quantize import read_spec

        proto = onnx.load(str(src))
        opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
        out = forms.build_form(proto, read_spec(proto), "auto", opset)
        out.metadata_props.extend(proto.metadata_props)
        write_model(out, path, force=True)
    return path


def quantizer() -> Any | None:
    """``edgernn.export.quantize.quantize_model`` if it exists in this tree, else None."""
    try:
        module = importlib.import_module("edgernn.export.quantize")
    except ImportError:
        return None
    return getattr(module, "quantize_model", None)


def int8_path(key: ModelKey, seed: int = 0, accurate: bool = False) -> Path | None:
    """The int8 model for ``key`` (``accurate``: the two-part-weight form), or None without a quantizer."""
    quantize = quantizer()
    if quantize is None:
        return None
    src = fp32_path(key, seed)
    path = src.with_name(src.stem + ("-int8acc.onnx" if accurate else "-int8.onnx"))
    if _stale(path, src, "edgernn.export.quantize", "edgernn.export.decomposed", "edgernn.export.graphbuild"):
        tmp = path.with_name(path.name + ".part.onnx")
        quantize(str(src), str(tmp), **({"accurate": True} if accurate else {}))
        os.replace(tmp, path)
    return path


def _stale(path: Path, src: Path, *modules: str) -> bool:
    """Is the derived model at ``path`` missing or older than its source or the code that makes it?"""
    made_by = [Path(importlib.import_module(m).__file__ or src) for m in modules]
    return not path.exists() or path.stat().st_mtime < max(p.stat().st_mtime for p in [src, *made_by])


def numpy_weights(model: Any) -> dict[str, Any]:
    """The model's parameters as float32 numpy arrays, keyed by their PyTorch names."""
    return {k: v.detach().cpu().numpy().astype("float32") for k, v in model.state_dict().items()}


def decomposed_path(key: ModelKey, seed: int = 0) -> Path | None:
    """The fp32 model for ``key`` with its cell decomposed (``edgernn export --decompose``), or None
    without ``edgernn.export.decomposed`` in this tree."""
    try:
        module = importlib.import_module("edgernn.export.decomposed")
        from edgernn.export.onnx_export import write_model
        from edgernn.export.quantize import read_spec
    except ImportError:
        return None
    src = fp32_path(key, seed)
    path = src.with_name(src.stem + "-dec.onnx")
    if _stale(path, src, "edgernn.export.decomposed", "edgernn.export.graphbuild"):
        import onnx

        proto = onnx.load(str(src))
        spec = read_spec(proto)
        opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
        out = module.build_decomposed(module.read_weights(proto, spec), spec, opset, quantize=False)
        out.metadata_props.extend(proto.metadata_props)
        write_model(out, path, force=True)
    return path
