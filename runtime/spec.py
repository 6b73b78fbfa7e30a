"""The stream spec: the contract between export and runtime, stored in the ONNX metadata.

One JSON document under the metadata key ``edgernn.stream_spec`` says everything needed to
stream a model: which inputs carry frames (with symbolic ``batch`` and ``time`` axes), which
input/output pairs carry state (any rank, batch axis anywhere), constant inputs, an optional
input context window, per-stream memory (a tensor set once per stream and fed to every call,
e.g. the encoder outputs a decoder attends over: ``MemorySpec``), and the model's own facts
(``ModelConfig``, task facts, provenance).

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

from edgernn.runtime.dtypes import NAMES
from edgernn.runtime.errors import SpecError
from edgernn.runtime.specschema import load_json, validate

SPEC_VERSION = 3
# version 1: no ``window`` field (read as window = None); version 2: no ``memory`` field (read as none)
READABLE_VERSIONS = (1, 2, 3)
METADATA_KEY = "edgernn.stream_spec"
BATCH = "batch"
TIME = "time"
CELLS = ("rnn", "gru", "lstm", "attention")
INPUT_KINDS = ("tokens", "frames")
DTYPES = NAMES  # runtime/dtypes.py owns the table

# Names of our own graphs' inputs and outputs, defined once.
INPUT_X = "x"
OUTPUT_Y = "y"
STATE_H = ("h", "h_out")
STATE_C = ("c", "c_out")
STATE_ATTENTION = (("k", "k_out"), ("v", "v_out"), ("pos", "pos_out"))  # the windowed-attention cell's caches

Dim = int | str


def _check_dtype(dtype: str, where: str) -> None:
    if dtype not in DTYPES:
        raise SpecError(f"{where}: dtype {dtype!r} is not one of {', '.join(DTYPES)}")


def _shape(raw: Any, where: str) -> tuple[Dim, ...]:
    if not isinstance(raw, (list, tuple)):
        raise SpecError(f"{where}: shape must be a list, got {type(raw).__name__}")
    out: list[Dim] = []
    for i, d in enumerate(raw):
        if isinstance(d, bool) or not isinstance(d, (int, str)):
            raise SpecError(f"{where}: axis {i} must be an int or a symbol, got {d!r}")
        if isinstance(d, int) and d < 0:
            raise SpecError(f"{where}: axis {i} has negative size {d}")
        out.append(d)
    return tuple(out)


def _concrete(shape: tuple[Dim, ...], batch: int, time: int, where: str) -> tuple[int, ...]:
    dims: list[int] = []
    for d in shape:
        if d == BATCH:
            dims.append(batch)
        elif d == TIME:
            dims.append(time)
        elif isinstance(d, int):
            dims.append(d)
        else:
            raise SpecError(f"{where}: symbolic axis {d!r} has no value (only 'batch' and 'time' do)")
    return tuple(dims)


@dataclass(frozen=True)
class TensorSpec:
    """A streamed input or an output: ``shape`` holds ints and the symbols 'batch' / 'time'."""

    name: str
    dtype: str
    shape: tuple[Dim, ...]

    def __post_init__(self) -> None:
        _check_dtype(self.dtype, f"tensor {self.name!r}")
        object.__setattr__(self, "shape", _shape(self.shape, f"tensor {self.name!r}"))

    @property
    def batch_axis(self) -> int | None:
        return self.shape.index(BATCH) if BATCH in self.shape else None

    @property
    def time_axis(self) -> int | None:
        return self.shape.index(TIME) if TIME in self.shape else None

    def concrete_shape(self, batch: int = 1, time: int = 1) -> tuple[int, ...]:
        return _concrete(self.shape, batch, time, f"tensor {self.name!r}")

    @property
    def fully_known(self) -> bool:
        """True when every axis is an int, 'batch' or 'time' (the runtime can preallocate it)."""
        return all(isinstance(d, int) or d in (BATCH, TIME) for d in self.shape)


@dataclass(frozen=True)
class StateSpec:
    """A recurrent state carried from output ``output`` of one call to input ``input`` of the next."""

    input: str
    output: str
    dtype: str
    shape: tuple[Dim, ...]
    init: float = 0.0

    def __post_init__(self) -> None:
        where = f"state {self.input!r}"
        _check_dtype(self.dtype, where)
        shape = _shape(self.shape, where)
        object.__setattr__(self, "shape", shape)
        if shape.count(BATCH) != 1:
            raise SpecError(f"{where}: shape {list(shape)} must hold the 'batch' axis exactly once")
        if TIME in shape or any(isinstance(d, str) and d != BATCH for d in shape):
            raise SpecError(f"{where}: shape {list(shape)} may hold only ints and 'batch'")

    @property
    def batch_axis(self) -> int:
        return self.shape.index(BATCH)

    def concrete_shape(self, batch: int = 1) -> tuple[int, ...]:
        return _concrete(self.shape, batch, 1, f"state {self.input!r}")

    @property
    def size_per_stream(self) -> int:
        """Number of elements one stream holds."""
        n = 1
        for d in self.concrete_shape(1):
            n *= d
        return n


@dataclass(frozen=True)
class ConstantSpec:
    """An input fed the same value on every call (a sample rate, a flag)."""

    name: str
    dtype: str
    value: Any
    shape: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _check_dtype(self.dtype, f"constant {self.name!r}")
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))


@dataclass(frozen=True)
class ContextSpec:
    """The last ``frames`` items of input ``input`` (along its time axis) are prepended to the next call."""

    input: str
    frames: int

    def __post_init__(self) -> None:
        if isinstance(self.frames, bool) or not isinstance(self.frames, int) or self.frames < 1:
            raise SpecError(f"context of {self.input!r}: frames must be an int >= 1, got {self.frames!r}")


@dataclass(frozen=True)
class MemorySpec:
    """A per-stream input set once (at creation, ``reset(memory=...)`` or ``set_memory``) and fed to every call.

    ``shape`` holds ``'batch'`` once and at most one other symbol, the *length axis* (e.g.
    ``'src_len'``), whose size each stream chooses, up to ``max_length``. ``mask``, when
    given, names a float32 graph input ``[batch, length]`` the engine fills with 1.0 on a
    stream's valid positions and 0.0 on padding (streams of different lengths share a call
    padded to the longest); without one, streams in one call must have equal lengths.
    """

    name: str
    dtype: str
    shape: tuple[Dim, ...]
    max_length: int | None = None
    mask: str | None = None

    def __post_init__(self) -> None:
        where = f"memory {self.name!r}"
        _check_dtype(self.dtype, where)
        shape = _shape(self.shape, where)
        object.__setattr__(self, "shape", shape)
        symbols = [d for d in shape if isinstance(d, str) and d != BATCH]
        if shape.count(BATCH) != 1 or TIME in shape or len(symbols) > 1:
            raise SpecError(
                f"{where}: shape {list(shape)} must hold 'batch' once, at most one length symbol (e.g. 'src_len') "
                "and ints; 'time' is not a memory axis"
            )
        if symbols and self.max_length is None:
            raise SpecError(f"{where}: the length axis {symbols[0]!r} needs max_length (the longest memory accepted)")
        top = self.max_length
        if top is not None and (isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= 1 << 24):
            raise SpecError(f"{where}: max_length must be an int in [1, 2**24], got {self.max_length!r}")
        if self.mask is not None and not symbols:
            raise SpecError(f"{where}: a mask needs a length axis; shape {list(shape)} has none")

    @property
    def batch_axis(self) -> int:
        return self.shape.index(BATCH)

    @property
    def length_axis(self) -> int | None:
        """The axis of the length symbol, or None for a memory of fixed shape."""
        return next((i for i, d in enumerate(self.shape) if isinstance(d, str) and d != BATCH), None)

    @property
    def length_symbol(self) -> str | None:
        axis = self.length_axis
        return None if axis is None else str(self.shape[axis])

    def concrete_shape(self, batch: int = 1, length: int = 1) -> tuple[int, ...]:
        """The shape for ``batch`` streams of memory length ``length`` (graph layout)."""
        axis = self.length_axis
        return tuple(batch if d == BATCH else length if i == axis else int(d) for i, d in enumerate(self.shape))


@dataclass(frozen=True)
class ModelConfig:
    """What a model made by edgernn is: the one description that travels checkpoint → ONNX → runtime.

    ``input_size`` is the vocabulary size for ``input_kind='tokens'`` and the feature count
    for ``'frames'``. State shapes are computed from this, never typed twice.
    """

    cell: str
    input_kind: str
    input_size: int
    hidden_size: int
    num_layers: int
    output_size: int
    dropout: float = 0.0
    embed_size: int = 0
    window: int = 0  # attention: positions each token sees before itself
    heads: int = 0  # attention: heads (hidden_size divisible by it)

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise SpecError(f"model config: cell {self.cell!r} is not one of {', '.join(CELLS)}")
        if self.input_kind not in INPUT_KINDS:
            raise SpecError(f"model config: input_kind {self.input_kind!r} is not one of {', '.join(INPUT_KINDS)}")
        for name in ("input_size", "hidden_size", "num_layers", "output_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(f"model config: {name} must be a positive int, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise SpecError(f"model config: dropout must be in [0, 1), got {self.dropout}")
        if self.cell == "attention" and (self.window < 1 or self.heads < 1 or self.hidden_size % self.heads):
            raise SpecError(
                f"model config: the attention cell needs window >= 1 and heads >= 1 dividing hidden_size "
                f"{self.hidden_size}; got window {self.window}, heads {self.heads}"
            )

    @property
    def state_names(self) -> tuple[tuple[str, str], ...]:
        if self.cell == "attention":
            return STATE_ATTENTION
        return (STATE_H, STATE_C) if self.cell == "lstm" else (STATE_H,)

    @property
    def state_shapes(self) -> tuple[tuple[Dim, ...], ...]:
        """One shape per state pair; the batch axis is axis 1 in every one."""
        if self.cell == "attention":
            cache = (self.num_layers, BATCH, self.window, self.hidden_size)  # (layers, batch, window, hidden)
            return (cache, cache, (1, BATCH, 1))
        return tuple(self.state_shape for _ in self.state_names)

    @property
    def state_shape(self) -> tuple[Dim, ...]:
        return (self.num_layers, BATCH, self.hidden_size)  # (layers, batch, hidden)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict; the attention-only fields left out for the recurrent cells, so their
        specs read as before."""
        out = asdict(self)
        if self.cell != "attention":
            out.pop("window")
            out.pop("heads")
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ModelConfig:
        validate(raw, "model", "model config")
        try:
            return cls(**raw)
        except TypeError as exc:
            raise SpecError(f"model config: {exc}") from None


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
