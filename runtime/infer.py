"""Infer a stream spec for a stateful ONNX model that was not made here.

Read from the graph's declared inputs and outputs (names, dtypes, shapes), straight from
the model's bytes: no onnxruntime session is opened, so ``Engine.load`` loads the model once.

* **states**: an input whose dtype and shape equal an output's is a state candidate. Pairs
  come from ``pairs`` first, then from name rules (``h``→``h_out`` / ``hn``, ``state``→
  ``stateN``, ``in_cache0``→``out_cache0``, ``cache``→``next_cache``, ``past_k``→
  ``present_k``, see ``output_candidates``), then by shape: the one output of that shape
  that no name rule claimed. One input stays streamed: where every input left could be a
  state, which one streams is asked, not guessed.
* **constants**: the names in ``constants``, fed that value; a scalar (0-d) input without
  a value is asked for.
* **streamed inputs**: the batch axis is a symbolic axis named like a batch (``batch``,
  ``B``, ``N``), else the first symbolic axis not named like time, else the one axis of
  size 1 (a graph with its batch fixed at 1); the time axis a symbolic axis named like
  time (``time``, ``T``, ``seq``, ``len``, ``frames``, ``samples``) or the next symbolic
  one. A fixed axis is part of the frame unless ``time_axes`` says it is time.
* **hints**: ``batch_axes`` / ``time_axes`` (``{tensor: axis}``, ``-1`` for no time axis),
  ``shapes`` (``{tensor: [dims]}`` with ints for fixed frame sizes and ``"batch"`` /
  ``"time"`` for the axes), ``context`` (``{input: K}``: K frames of the previous call
  prepended), for any input, output or state by name; ``window=N``: N items of the time
  axis per call (audio: samples per frame), buffered by the stream (``push`` / ``flush``).

Nothing is left unresolved: every axis of the spec is an int, ``batch`` or ``time``.
Whatever cannot be told is reported at once, in one ``HintError`` (a ``SpecError``) that
names each tensor and the exact hint that settles it, and ends with the whole call.
The axis rules (batch, time, the rest) live in runtime/inferaxes.py; the state pairing and the
hints here.

Example (the DTLN noise suppressor, stage 1, from ``make thirdparty``):
    >>> infer_spec("build/thirdparty/dtln_1.onnx")                             # doctest: +SKIP
    HintError: build/thirdparty/dtln_1.onnx: infer_spec needs 2 hints: ...
    >>> spec = infer_spec("build/thirdparty/dtln_1.onnx", pairs={"input_3": "tf_op_layer_stack_2"},
    ...                   batch_axes={"input_2": 0})                           # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from edgernn.runtime.errors import SpecError
from edgernn.runtime.graphio import Dims, GraphIO, graph_signature
from edgernn.runtime.inferaxes import (
    Asks,
    BatchAxis,
    input_axes,
    output_axes,
    resolve,
    show,
    state_batch_axis,
    state_dims,
)
from edgernn.runtime.spec import BATCH, TIME, ConstantSpec, ContextSpec, StateSpec, StreamSpec, TensorSpec

__all__ = ["HintError", "infer_spec", "output_candidates"]


class HintError(SpecError):
    """infer_spec cannot tell everything from the graph; ``hints`` is the keyword set that would settle it."""

    def __init__(self, message: str, hints: dict[str, dict[str, Any]]) -> None:
        super().__init__(message)
        self.hints = hints


def output_candidates(name: str) -> list[str]:
    """Output names that, by common convention, carry the next value of state input ``name``."""
    out = [f"{name}{suf}" for suf in ("_out", "_new", "_next", "n", "N", "_o", "_n", "out")]
    out += [f"{pre}{name}" for pre in ("new_", "next_", "out_", "present_")]
    for a, b in (("in", "out"), ("input", "output"), ("past", "present"), ("prev", "next"), ("0", "n")):
        pattern = rf"(?<![A-Za-z]){a}(?![a-z])" if a.isalpha() else rf"{a}$"
        if re.search(pattern, name):
            out.append(re.sub(pattern, b, name, count=1))
    return list(dict.fromkeys(out))


def infer_spec(
    model: str | os.PathLike[str] | bytes | Any,
    *,
    constants: Mapping[str, Any] | None = None,
    pairs: Mapping[str, str] | None = None,
    batch_axes: Mapping[str, int] | None = None,
    time_axes: Mapping[str, int] | None = None,
    shapes: Mapping[str, Sequence[int | str]] | None = None,
    context: Mapping[str, int] | None = None,
    window: int | None = None,
) -> StreamSpec:
    """A StreamSpec for ``model`` (a path, the model's bytes, or an onnxruntime session); see the module doc.

    HintError (a SpecError) names every tensor that needs a hint, with the hint.
    """
    io = graph_signature(model)
    source = io.source
    constants, pairs = dict(constants or {}), dict(pairs or {})
    batch_axes, time_axes = dict(batch_axes or {}), dict(time_axes or {})
    hints = {"constants": constants, "pairs": pairs, "batch_axes": batch_axes, "time_axes": time_axes}
    hints |= {"shapes": dict(shapes or {}), "context": dict(context or {})}
    io = _apply_shapes(io, hints["shapes"], batch_axes, time_axes)
    _check_names(io, hints)
    asks = Asks()
    state_pairs = _pair_states(io, constants, pairs, asks)
    streamed = [n for n in io.inputs if n not in state_pairs and n not in constants and io.inputs[n][1] != []]
    for n in io.inputs:
        if n not in state_pairs and n not in constants and io.inputs[n][1] == []:
            asks.add(
                f"input {n!r} is a scalar: give its value with constants={{{n!r}: VALUE}}", "constants", n, "VALUE"
            )
    if not streamed and not asks.lines:
        raise SpecError(f"{source}: no streamed input left among {sorted(io.inputs)} after states and constants")
    inputs, batch = [], BatchAxis()
    for name in streamed:
        dtype, dims = io.inputs[name]
        b, t = input_axes(name, dims, batch_axes, time_axes, asks)
        batch.note(dims, b, t)
        inputs.append(TensorSpec(name, dtype, resolve(name, "input", dims, b, t, asks)))
    outputs = []
    for name, (dtype, dims) in io.outputs.items():
        if name not in state_pairs.values():
            b, t = output_axes(name, dims, batch, batch_axes, time_axes, asks)
            outputs.append(TensorSpec(name, dtype, resolve(name, "output", dims, b, t, asks)))
    states = []
    for i_name, o_name in state_pairs.items():
        dtype, dims = io.inputs[i_name]
        b = state_batch_axis(i_name, dims, batch, batch_axes, asks)
        states.append(StateSpec(i_name, o_name, dtype, state_dims(i_name, dims, io.outputs[o_name][1], b, asks)))
    consts = tuple(
        ConstantSpec(n, io.inputs[n][0], _plain(v), _const_shape(n, io.inputs[n][1], v)) for n, v in constants.items()
    )
    if asks.lines:
        raise _hint_error(source, asks, hints, window)
    ctx = None
    if hints["context"]:
        if len(hints["context"]) != 1:
            raise SpecError(f"{source}: context: one input only, got {sorted(hints['context'])}")
        ((c_name, frames),) = hints["context"].items()
        ctx = ContextSpec(c_name, int(frames))
    try:
        return StreamSpec(
            inputs=tuple(inputs), outputs=tuple(outputs), states=tuple(states), constants=consts, context=ctx,
            window=window,
        )
    except SpecError as exc:
        raise SpecError(f"{source}: {exc}") from None


# -- hints ------------------------------------------------------------------------------


def _apply_shapes(io: GraphIO, shapes: Mapping[str, Sequence[int | str]], batch_axes: dict, time_axes: dict) -> GraphIO:
    """Shape hints: ints fix symbolic sizes (they must agree with fixed ones), 'batch' / 'time' mark axes."""
    ins, outs = dict(io.inputs), dict(io.outputs)
    for name, hint in shapes.items():
        table = ins if name in ins else outs if name in outs else None
        if table is None:
            raise SpecError(f"{io.source}: shapes: {name!r} is not a graph input or output")
        dtype, dims = table[name]
        hint = list(hint)
        if len(hint) != len(dims):
            raise SpecError(f"{io.source}: shapes[{name!r}] has rank {len(hint)}, the graph's {name!r} is {dims}")
        new: list[int | str | None] = []
        for k, (h, d) in enumerate(zip(hint, dims)):
            if h in (BATCH, TIME):
                (batch_axes if h == BATCH else time_axes)[name] = k
                new.append(d)
            elif isinstance(h, int) and not isinstance(h, bool) and h >= 1:
                if isinstance(d, int) and d != h:
                    raise SpecError(f"{io.source}: shapes[{name!r}] axis {k} is {h}, the graph fixes it at {d}")
                new.append(h)
            else:
                raise SpecError(
                    f"{io.source}: shapes[{name!r}] axis {k}: expected a size >= 1, 'batch' or 'time', got {h!r}"
                )
        table[name] = (dtype, new)
    return GraphIO(io.source, ins, outs)


def _check_names(io: GraphIO, hints: Mapping[str, Mapping[str, Any]]) -> None:
    known = set(io.inputs) | set(io.outputs)
    for kind, table in hints.items():
        where = set(io.inputs) if kind in ("constants", "pairs", "context") else known
        bad = sorted(set(table) - where)
        if bad:
            what = "graph inputs" if kind in ("constants", "pairs", "context") else "graph inputs or outputs"
            raise SpecError(
                f"{io.source}: {kind}: {bad} are not {what}; inputs {list(io.inputs)}, outputs {list(io.outputs)}"
            )
    for i_name, o_name in hints["pairs"].items():
        if o_name not in io.outputs:
            raise SpecError(
                f"{io.source}: pairs: output {o_name!r} for state {i_name!r} is not a graph output {list(io.outputs)}"
            )


def _hint_error(
    source: str, asks: Asks, hints: Mapping[str, Mapping[str, Any]], window: int | None = None
) -> HintError:
    merged: dict[str, Any] = {k: dict(v) for k, v in hints.items() if v}
    for kind, table in asks.hints.items():
        merged.setdefault(kind, {}).update(table)
    call = ", ".join(f"{k}={_py(v)}" for k, v in merged.items())
    if window is not None:
        merged["window"] = window
        call += f", window={window}"
    n = len(asks.lines)
    lines = "\n".join(f"  - {line}" for line in asks.lines)
    message = (
        f"{source}: infer_spec needs {n} hint{'s' if n > 1 else ''}:\n{lines}\n"
        f"all at once: infer_spec({source!r}, {call})"
    )
    return HintError(message, merged)


def _py(table: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k!r}: {v if v == 'VALUE' else repr(v)}" for k, v in table.items()) + "}"


# -- states ---------------------------------------------------------------------------------


def _pair_states(io: GraphIO, constants: Mapping[str, Any], given: Mapping[str, str], asks: Asks) -> dict[str, str]:
    """Given pairs, then name rules, then shape; where every input left could be a state, one streams."""
    ins, outs = io.inputs, io.outputs
    pairs = dict(given)
    open_in = [n for n in ins if n not in constants and n not in pairs and ins[n][1] != []]
    for name in list(open_in):
        taken = set(pairs.values())
        found = [o for o in output_candidates(name) if o in outs and o not in taken and _state_like(ins[name], outs[o])]
        if len(found) > 1:
            asks.add(
                f"state input {name!r} could pair with outputs {found} by name: pairs={{{name!r}: {found[0]!r}}}",
                "pairs",
                name,
                found[0],
            )
            open_in.remove(name)
        elif found:
            pairs[name] = found[0]
            open_in.remove(name)
    claimed = set(pairs.values()) | set(asks.hints.get("pairs", {}).values())
    shaped = {n: [o for o in outs if o not in claimed and _same_shape(ins[n], outs[o])] for n in open_in}
    shaped = {n: found for n, found in shaped.items() if found}
    if shaped and len(shaped) == len(open_in):  # every input left has an output's shape: one of them streams
        if len(shaped) == 1:
            return pairs
        names = list(shaped)
        options = [
            "pairs={" + ", ".join(f"{m!r}: {shaped[m][0]!r}" for m in names if m != n) + f"}} ({n!r} streamed)"
            for n in names
        ]
        asks.add(
            f"inputs {names} each have the shape of an output "
            f"({', '.join(f'{n!r} ~ {shaped[n]}' for n in names)}); one of them is the streamed input, "
            f"the others states: {' or '.join(options)}",
        )
        for n in names[1:]:
            asks.hints.setdefault("pairs", {})[n] = shaped[n][0]
        return pairs
    for name, found in shaped.items():
        free = [o for o in found if o not in pairs.values()]
        if len(free) == 1:
            pairs[name] = free[0]
        elif len(free) > 1:
            asks.add(
                f"state input {name!r} has the shape of outputs {free}: pairs={{{name!r}: {free[0]!r}}}",
                "pairs",
                name,
                free[0],
            )
    return pairs


def _state_like(inp: tuple[str, Dims], out: tuple[str, Dims]) -> bool:
    """Could ``out`` carry the next value of ``inp``: same dtype and rank, at most one symbolic axis, same sizes."""
    (di, si), (do, so) = inp, out
    if di != do or len(si) != len(so) or not si or sum(not isinstance(d, int) for d in si) > 1:
        return False
    return all(a == b or not isinstance(a, int) or not isinstance(b, int) for a, b in zip(si, so))


def _same_shape(inp: tuple[str, Dims], out: tuple[str, Dims]) -> bool:
    """Equal dtype and shape: fixed sizes equal, symbolic axes where the input has one symbolic axis at most."""
    si, so = inp[1], out[1]
    if not _state_like(inp, out):
        return False
    return all(a == b or (not isinstance(a, int) and not isinstance(b, int)) for a, b in zip(si, so))


def _const_shape(name: str, dims: Dims, value: Any) -> tuple[int, ...]:
    if all(isinstance(d, int) for d in dims):
        return tuple(int(d) for d in dims)
    shape = getattr(value, "shape", None)
    if shape is None:
        raise SpecError(f"constant {name!r}: the graph's shape {show(dims)} is symbolic; give the value as an array")
    return tuple(int(d) for d in shape)


def _plain(v: Any) -> Any:
    return v.tolist() if hasattr(v, "tolist") else v
