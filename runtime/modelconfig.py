"""What a model made by edgernn is (``ModelConfig``), and the names of its graph's inputs,
outputs and state pairs, defined once: the exporter writes them, ``StreamSpec.for_model``
(runtime/spec.py) and the runtime read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from edgernn.runtime.errors import SpecError
from edgernn.runtime.specparts import BATCH, Dim
from edgernn.runtime.specschema import validate

CELLS = ("rnn", "gru", "lstm", "attention")
INPUT_KINDS = ("tokens", "frames")

# Names of our own graphs' inputs and outputs, defined once.
INPUT_X = "x"
OUTPUT_Y = "y"
STATE_H = ("h", "h_out")
STATE_C = ("c", "c_out")
STATE_ATTENTION = (("k", "k_out"), ("v", "v_out"), ("pos", "pos_out"))  # the windowed-attention cell's caches


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
