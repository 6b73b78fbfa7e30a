"""Infer a stream spec for a stateful ONNX model that was not made here.

From the graph's input / output names, shapes and dtypes:

* **state pairs**: an input and the output named after it (``h``→``h_out`` / ``hn`` /
  ``h_new`` / ``next_h``, ``state``→``stateN``, ``h0``→``hn``, ``x_in``→``x_out``,
  ``past_k``→``present_k``), or as given in ``pairs``; two candidates is an error that
  names both;
* **constants**: scalar (0-d) inputs and the names in ``constants``, fed the value given
  there (a scalar without a value is an error that says so);
* **streamed inputs**: the rest; the batch axis is the first symbolic axis (or
  ``batch_axes[name]``), the time axis the second (or ``time_axes[name]``, -1 for none);
* a state's batch axis: its axis whose symbol is the streamed input's batch symbol, else
  its only symbolic axis, else its only axis of size 1 — otherwise an error asking for
  ``batch_axes[name]``;
* ``context={input: K}`` adds an input context window of K frames.

Example:
    >>> spec = infer_spec("silero_vad.onnx", constants={"sr": 16000}, context={"input": 64})  # doctest: +SKIP
    >>> engine = Engine.load("silero_vad.onnx", spec=spec)                                    # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import onnxruntime as ort

from edgernn.runtime.errors import SpecError
from edgernn.runtime.safety import read_model
from edgernn.runtime.spec import BATCH, TIME, ConstantSpec, ContextSpec, StateSpec, StreamSpec, TensorSpec

_ORT = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


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
    model: str | os.PathLike[str] | ort.InferenceSession,
    *,
    constants: Mapping[str, Any] | None = None,
    pairs: Mapping[str, str] | None = None,
    batch_axes: Mapping[str, int] | None = None,
    time_axes: Mapping[str, int] | None = None,
    context: Mapping[str, int] | None = None,
) -> StreamSpec:
    """A StreamSpec for ``model`` (path or session); SpecError names anything ambiguous. See the module doc."""
    session = model if isinstance(model, ort.InferenceSession) else _session(model)
    constants, pairs = dict(constants or {}), dict(pairs or {})
    batch_axes, time_axes = dict(batch_axes or {}), dict(time_axes or {})
    ins = {i.name: (_dtype(i), list(i.shape)) for i in session.get_inputs()}
    outs = {o.name: (_dtype(o), list(o.shape)) for o in session.get_outputs()}
    state_pairs = _pair_states(ins, outs, constants, pairs)
    streamed = [n for n in ins if n not in state_pairs and n not in constants and ins[n][1] != []]
    scalars = [n for n in ins if n not in state_pairs and n not in constants and ins[n][1] == []]
    if scalars:
        raise SpecError(f"input(s) {scalars} are scalars (constants): give their values with constants={{name: value}}")
    if not streamed:
        raise SpecError(f"no streamed input left among {sorted(ins)} after states {state_pairs} and constants")
    inputs, batch_symbol = [], None
    for name in streamed:
        dtype, shape = ins[name]
        b, t = _axes(name, shape, batch_axes, time_axes)
        batch_symbol = batch_symbol or (shape[b] if isinstance(shape[b], str) else None)
        inputs.append(TensorSpec(name, dtype, _sym(shape, b, t)))
    states = []
    for i_name, o_name in state_pairs.items():
        dtype, shape = ins[i_name]
        given = batch_axes.get(i_name)
        sb = given if given is not None else _state_batch_axis(i_name, shape, batch_symbol)
        dims = [BATCH if k == sb else _int_dim(i_name, k, d) for k, d in enumerate(shape)]
        states.append(StateSpec(i_name, o_name, dtype, tuple(dims)))
    outputs = []
    for name, (dtype, shape) in outs.items():
        if name in state_pairs.values():
            continue
        ob = next((k for k, d in enumerate(shape) if d == batch_symbol and batch_symbol), 0 if shape else None)
        t = next((k for k, d in enumerate(shape) if isinstance(d, str) and k != ob and d != batch_symbol), None)
        if time_axes.get(name) is not None:
            t = time_axes[name] if time_axes[name] >= 0 else None
        outputs.append(TensorSpec(name, dtype, _sym(shape, ob, t) if shape else ()))
    consts = tuple(
        ConstantSpec(n, ins[n][0], _plain(v), tuple(int(d) for d in ins[n][1] if isinstance(d, int)))
        for n, v in constants.items()
        if n in ins
    )
    unknown = sorted(set(constants) - set(ins))
    if unknown:
        raise SpecError(f"constants {unknown} are not graph inputs; inputs are {sorted(ins)}")
    ctx = None
    if context:
        if len(context) != 1:
            raise SpecError(f"context: one input only, got {sorted(context)}")
        ((c_name, frames),) = context.items()
        ctx = ContextSpec(c_name, int(frames))
    return StreamSpec(inputs=tuple(inputs), outputs=tuple(outputs), states=tuple(states), constants=consts, context=ctx)


def _session(path: str | os.PathLike[str]) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(read_model(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _dtype(node: Any) -> str:
    if node.type not in _ORT:
        raise SpecError(f"tensor {node.name!r}: type {node.type} is not supported")
    return _ORT[node.type]


def _pair_states(
    ins: dict[str, Any], outs: dict[str, Any], constants: Mapping[str, Any], given: Mapping[str, str]
) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for i_name in ins:
        if i_name in constants:
            continue
        if i_name in given:
            if given[i_name] not in outs:
                raise SpecError(f"pairs: output {given[i_name]!r} for state {i_name!r} is not a graph output")
            pairs[i_name] = given[i_name]
            continue
        found = [o for o in output_candidates(i_name) if o in outs and _state_like(ins[i_name], outs[o])]
        if len(found) > 1:
            raise SpecError(
                f"state input {i_name!r} could pair with outputs {found}: name one with pairs={{{i_name!r}: ...}}"
            )
        if found:
            pairs[i_name] = found[0]
    taken = list(pairs.values())
    dup = sorted({o for o in taken if taken.count(o) > 1})
    if dup:
        raise SpecError(f"output(s) {dup} pair with more than one state input: name them with pairs=")
    return pairs


def _state_like(inp: tuple[str, list[Any]], out: tuple[str, list[Any]]) -> bool:
    """Could ``out`` carry the next value of ``inp``: same dtype and rank, at most one symbolic axis, same sizes."""
    (di, si), (do, so) = inp, out
    if di != do or len(si) != len(so) or sum(not isinstance(d, int) for d in si) > 1:
        return False
    return all(a == b or not isinstance(a, int) or not isinstance(b, int) for a, b in zip(si, so))


def _axes(
    name: str, shape: list[Any], batch_axes: Mapping[str, int], time_axes: Mapping[str, int]
) -> tuple[int, int | None]:
    symbolic = [k for k, d in enumerate(shape) if not isinstance(d, int)]
    b = batch_axes.get(name, symbolic[0] if symbolic else None)
    if b is None:
        raise SpecError(f"input {name!r}: shape {shape} has no symbolic axis; name its batch axis with batch_axes=")
    if name in time_axes:
        t = time_axes[name] if time_axes[name] >= 0 else None
    else:
        rest = [k for k in symbolic if k != b]
        t = rest[0] if rest else None
    return b, t


def _state_batch_axis(name: str, shape: list[Any], batch_symbol: str | None) -> int:
    if batch_symbol is not None and shape.count(batch_symbol) == 1:
        return shape.index(batch_symbol)
    symbolic = [k for k, d in enumerate(shape) if not isinstance(d, int)]
    if len(symbolic) == 1:
        return symbolic[0]
    ones = [k for k, d in enumerate(shape) if d == 1]
    if not symbolic and len(ones) == 1:
        return ones[0]
    raise SpecError(
        f"state {name!r}: cannot tell its batch axis from shape {shape} "
        f"(candidates {symbolic or ones or list(range(len(shape)))}); name it with batch_axes={{{name!r}: axis}}"
    )


def _int_dim(name: str, axis: int, d: Any) -> int:
    if not isinstance(d, int):
        raise SpecError(
            f"state {name!r}: axis {axis} is symbolic ({d!r}) but is not the batch axis; states need fixed sizes"
        )
    return d


def _sym(shape: list[Any], b: int | None, t: int | None) -> tuple[Any, ...]:
    dims: list[Any] = []
    for k, d in enumerate(shape):
        if k == b:
            dims.append(BATCH)
        elif k == t:
            dims.append(TIME)
        elif isinstance(d, int):
            dims.append(d)
        else:
            dims.append(f"d{k}")
    return tuple(dims)


def _plain(v: Any) -> Any:
    return v.tolist() if hasattr(v, "tolist") else v
