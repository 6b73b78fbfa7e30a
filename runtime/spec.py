"""The stream spec: the contract between export and runtime, stored in the ONNX metadata.

One JSON document under the metadata key ``edgernn.stream_spec`` says everything needed to
stream a model: which inputs carry frames (with symbolic ``batch`` and ``time`` axes), which
input/output pairs carry state (any rank, batch axis anywhere), constant inputs, an optional
input context window, per-stream memory (a tensor set once per stream and fed to every call,
e.g. the encoder outputs a decoder attends over: ``MemorySpec``), and the model's own facts
(``ModelConfig``, task facts, provenance).

``StreamSpec`` lives here; its parts (tensors, states, constants, context, memory) in
runtime/specparts.py and ``ModelConfig`` in runtime/modelconfig.py, all importable from here.

Example:
    >>> cfg = ModelConfig(cell="gru", input_kind="tokens", input_size=64, hidden_size=32,
    ...                   num_layers=1, output_size=64)
    >>> spec = StreamSpec.for_model(cfg)
    >>> StreamSpec.from_json(spec.to_json()) == spec
    True
    >>> spec.states[0].concrete_shape(batch=4)
    (1, 4, 32)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from edgernn.runtime.errors import SpecError
from edgernn.runtime.modelconfig import (
    CELLS,
    INPUT_KINDS,
    INPUT_X,
    OUTPUT_Y,
    STATE_ATTENTION,
    STATE_C,
    STATE_H,
    ModelConfig,
)
from edgernn.runtime.specparts import (
    BATCH,
    DTYPES,
    TIME,
    ConstantSpec,
    ContextSpec,
    Dim,
    MemorySpec,
    StateSpec,
    TensorSpec,
)
from edgernn.runtime.specschema import load_json, validate

__all__ = [  # the parts live in specparts.py and modelconfig.py; every name is imported from here as before
    "BATCH", "CELLS", "DTYPES", "INPUT_KINDS", "INPUT_X", "METADATA_KEY", "OUTPUT_Y", "READABLE_VERSIONS",
    "SPEC_VERSION", "STATE_ATTENTION", "STATE_C", "STATE_H", "TIME", "ConstantSpec", "ContextSpec", "Dim",
    "MemorySpec", "ModelConfig", "StateSpec", "StreamSpec", "TensorSpec",
]  # fmt: skip

SPEC_VERSION = 3
# version 1: no ``window`` field (read as window = None); version 2: no ``memory`` field (read as none)
READABLE_VERSIONS = (1, 2, 3)
METADATA_KEY = "edgernn.stream_spec"


@dataclass(frozen=True)
class StreamSpec:
    """Everything needed to stream one ONNX graph; see the module docstring."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    states: tuple[StateSpec, ...]
    constants: tuple[ConstantSpec, ...] = ()
    context: ContextSpec | None = None
    model: ModelConfig | None = None
    task: Mapping[str, Any] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)
    version: int = SPEC_VERSION
    window: int | None = None  # items of the time axis per call (audio: samples per frame); None: any
    memory: tuple[MemorySpec, ...] = ()  # per-stream inputs set once per stream (version 3)

    def __post_init__(self) -> None:
        if self.version not in READABLE_VERSIONS:
            raise SpecError(
                f"stream spec version {self.version!r} is not supported (this edgernn reads {READABLE_VERSIONS})"
            )
        if self.window is not None:
            if isinstance(self.window, bool) or not isinstance(self.window, int) or not 1 <= self.window <= 1 << 24:
                raise SpecError(
                    f"stream spec: window must be an int in [1, 2**24] (items per call), got {self.window!r}"
                )
            if self.inputs and self.inputs[0].time_axis is None:
                raise SpecError(
                    f"stream spec: window={self.window} needs a 'time' axis on input {self.inputs[0].name!r}"
                )
        if not self.inputs:
            raise SpecError("stream spec: no streamed input")
        if not self.outputs:
            raise SpecError("stream spec: no output; fix: list at least one graph output under 'outputs'")
        seen: set[str] = set()
        fed = [t.name for t in self.inputs] + [s.input for s in self.states] + [c.name for c in self.constants]
        fed += [m.name for m in self.memory] + [m.mask for m in self.memory if m.mask is not None]
        for name in fed:
            if name in seen:
                raise SpecError(f"stream spec: graph input {name!r} is declared twice")
            seen.add(name)
        outs = [t.name for t in self.outputs] + [s.output for s in self.states]
        if len(set(outs)) != len(outs):
            raise SpecError(f"stream spec: an output is declared twice in {outs}")
        for t in self.inputs:
            if t.batch_axis is None:
                raise SpecError(f"stream spec: input {t.name!r} has no 'batch' axis in {list(t.shape)}")
            if not t.fully_known or t.shape.count(BATCH) != 1 or t.shape.count(TIME) > 1:
                raise SpecError(
                    f"stream spec: input {t.name!r} has shape {list(t.shape)}; a streamed input holds 'batch' "
                    "once, 'time' at most once and ints (the runtime sizes its frames from them)"
                )
        if self.context is not None:
            names = [t.name for t in self.inputs]
            if self.context.input not in names:
                raise SpecError(f"stream spec: context input {self.context.input!r} is not one of {names}")
        lengths = {m.length_symbol: m.max_length for m in self.memory if m.length_symbol is not None}
        for m in self.memory:
            if m.length_symbol is not None and lengths[m.length_symbol] != m.max_length:
                raise SpecError(
                    f"stream spec: memories sharing the length axis {m.length_symbol!r} must have one max_length"
                )
        if set(lengths) & {d for t in self.inputs for d in t.shape}:
            raise SpecError("stream spec: a memory length symbol may not name an axis of a streamed input")

    @property
    def time_axis_input(self) -> TensorSpec:
        return self.inputs[0]

    @classmethod
    def for_model(
        cls,
        config: ModelConfig,
        task: Mapping[str, Any] | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> StreamSpec:
        """The spec of a graph exported from ``config`` by ``edgernn.export``."""
        if config.input_kind == "tokens":
            x = TensorSpec(INPUT_X, "int64", (BATCH, TIME))
        else:
            x = TensorSpec(INPUT_X, "float32", (BATCH, TIME, config.input_size))
        states = tuple(
            StateSpec(i, o, "float32", shape) for (i, o), shape in zip(config.state_names, config.state_shapes)
        )
        y = TensorSpec(OUTPUT_Y, "float32", (BATCH, TIME, config.output_size))
        return cls(
            inputs=(x,),
            outputs=(y,),
            states=states,
            model=config,
            task=dict(task or {}),
            provenance=dict(provenance or {}),
        )

    def with_provenance(self, **extra: Any) -> StreamSpec:
        merged = dict(self.provenance)
        merged.update(extra)
        return StreamSpec(**{**self._fields(), "provenance": merged})

    def _fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    # -- serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["inputs"] = [asdict(t) | {"shape": list(t.shape)} for t in self.inputs]
        out["outputs"] = [asdict(t) | {"shape": list(t.shape)} for t in self.outputs]
        out["states"] = [asdict(s) | {"shape": list(s.shape)} for s in self.states]
        out["constants"] = [asdict(c) | {"shape": list(c.shape)} for c in self.constants]
        out["memory"] = [asdict(m) | {"shape": list(m.shape)} for m in self.memory]
        if not self.memory:
            del out["memory"]  # a spec without memory reads as before
        out["task"] = dict(self.task)
        out["provenance"] = dict(self.provenance)
        if self.model is not None:
            out["model"] = self.model.to_dict()
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> StreamSpec:
        """Build a spec from parsed JSON, after checking every field's type and bounds
        (``runtime/specschema.py``): one SpecError lists every wrong field with its fix."""
        if not isinstance(raw, Mapping):
            raise SpecError(f"stream spec must be a JSON object, got {type(raw).__name__}")
        version = raw.get("version")
        if isinstance(version, bool) or version not in READABLE_VERSIONS:
            raise SpecError(
                f"stream spec version {version!r} is not supported (this edgernn reads {READABLE_VERSIONS})"
            )
        if version == 1 and raw.get("window") is not None:
            raise SpecError("stream spec: field 'window' needs version 2 (this spec says version 1)")
        if version < 3 and raw.get("memory"):
            raise SpecError(f"stream spec: field 'memory' needs version 3 (this spec says version {version})")
        validate(raw)
        try:
            model = raw.get("model")
            context = raw.get("context")
            return cls(
                inputs=tuple(TensorSpec(**t) for t in raw["inputs"]),
                outputs=tuple(TensorSpec(**t) for t in raw["outputs"]),
                states=tuple(StateSpec(**s) for s in raw["states"]),
                constants=tuple(ConstantSpec(**c) for c in raw.get("constants", ())),
                context=ContextSpec(**context) if context is not None else None,
                model=ModelConfig.from_dict(model) if model is not None else None,
                task=dict(raw.get("task", {})),
                provenance=dict(raw.get("provenance", {})),
                version=SPEC_VERSION,  # read as the current version: v1 / v2 are v3 without a window / memory
                window=raw.get("window"),
                memory=tuple(MemorySpec(**m) for m in raw.get("memory", ())),
            )
        except TypeError as exc:
            raise SpecError(f"stream spec: malformed entry: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> StreamSpec:
        return cls.from_dict(load_json(text, f"stream spec: metadata {METADATA_KEY!r}"))

    @classmethod
    def from_metadata(cls, custom: Mapping[str, str], source: str = "model") -> StreamSpec:
        """Read the spec from an ONNX model's custom metadata map (``metadata_props``)."""
        if METADATA_KEY not in custom:
            raise SpecError(
                f"{source}: no stream spec in its metadata (key {METADATA_KEY!r}); export it with "
                "edgernn, or pass a StreamSpec (hand-written or from infer_spec) or a spec.json "
                "(`edgernn spec MODEL -o spec.json`) to Engine.load(spec=...) / --spec"
            )
        return cls.from_json(custom[METADATA_KEY])
