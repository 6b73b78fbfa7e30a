"""Export validation in three steps: output names, then shapes, then values through time.

Reference: PyTorch's whole-sequence forward (``validate_export``) or another ONNX graph run
in one call (``compare_graphs``, used for int8 / fp16 vs fp32). Checked against it, carrying
state across every call over ``steps`` frames:

- ``step/b1``   the runtime's Stream, one frame per call, batch 1;
- ``chunks/b1`` the runtime's Stream, chunks of random sizes, batch 1;
- ``step/bN``   onnxruntime directly, one frame per call, batch N (the Stream is batch 1);
- ``chunks/bN`` onnxruntime directly, chunks of random sizes, batch N.

Every output is compared: the streamed ones over all steps, the states at the end. Each
step fails with its own ParityError subclass naming the output and the difference.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnxruntime as ort

from edgernn.export.errors import ExportError, OutputNameError, OutputShapeError, OutputValueError
from edgernn.runtime.dtypes import NP_DTYPES
from edgernn.runtime.engine import Engine
from edgernn.runtime.session import SessionProfile
from edgernn.runtime.spec import StreamSpec

Outputs = dict[str, np.ndarray]  # streamed output -> (batch, time, ...); state output -> final state
Reference = Callable[[np.ndarray], Outputs]  # (batch, time, ...) inputs -> outputs from the initial state


def random_chunks(steps: int, rng: np.random.Generator, largest: int = 96) -> list[int]:
    """Chunk sizes in [1, largest] that add up to ``steps``."""
    sizes, t = [], 0
    while t < steps:
        n = min(int(rng.integers(1, largest + 1)), steps - t)
        sizes.append(n)
        t += n
    return sizes


def _initial_state(spec: StreamSpec, batch: int) -> dict[str, np.ndarray]:
    return {s.input: np.full(s.concrete_shape(batch), s.init, dtype=NP_DTYPES[s.dtype]) for s in spec.states}


def drive_session(session: ort.InferenceSession, spec: StreamSpec, xs: np.ndarray, chunks: Sequence[int]) -> Outputs:
    """Run ``xs`` (batch, time, ...) through ``session`` in ``chunks``, carrying state by name."""
    state = _initial_state(spec, xs.shape[0])
    names = [o.name for o in spec.outputs] + [s.output for s in spec.states]
    parts: dict[str, list[np.ndarray]] = {o.name: [] for o in spec.outputs}
    t = 0
    for n in chunks:
        results = dict(zip(names, session.run(names, {spec.inputs[0].name: xs[:, t : t + n], **state})))
        for o in spec.outputs:
            parts[o.name].append(results[o.name])
        state = {s.input: results[s.output] for s in spec.states}
        t += n
    out: Outputs = {k: np.concatenate(v, axis=1) for k, v in parts.items()}
    out.update({s.output: state[s.input] for s in spec.states})
    return out


def drive_engine(engine: Engine, xs: np.ndarray, chunks: Sequence[int] | None) -> Outputs:
    """Run one lane ``xs`` (time, ...) through a runtime Stream: ``step`` per frame, or ``push`` per chunk."""
    stream = engine.stream()
    spec = engine.spec
    if chunks is None:
        ys = [stream.step(x) for x in xs]
    else:
        ys, t = [], 0
        for n in chunks:
            ys.append(stream.push(xs[t : t + n], chunk=n))
            t += n
    first = np.stack(ys) if chunks is None else np.concatenate(ys)
    out: Outputs = {spec.outputs[0].name: first[None]}
    state = stream.state()
    out.update({s.output: state[s.input] for s in spec.states})
    return out


def check_names(session: ort.InferenceSession, spec: StreamSpec, expected: StreamSpec | None = None) -> None:
    """Step 1: the graph's inputs and outputs are exactly the names the spec (and ``expected``) promises."""
    graph_in = sorted(i.name for i in session.get_inputs())
    graph_out = sorted(o.name for o in session.get_outputs())
    for promise in [spec] + ([expected] if expected is not None else []):
        want_in = sorted([t.name for t in promise.inputs] + [s.input for s in promise.states])
        want_in += [c.name for c in promise.constants]
        want_out = sorted([t.name for t in promise.outputs] + [s.output for s in promise.states])
        for kind, got, want in (("input", graph_in, sorted(want_in)), ("output", graph_out, want_out)):
            if got != want:
                missing = sorted(set(want) - set(got))
                extra = sorted(set(got) - set(want))
                raise OutputNameError(f"graph {kind}s {got} differ from {want}: missing {missing}, unexpected {extra}")


def check_shapes(got: Outputs, want: Outputs, where: str) -> None:
    """Step 2: every output has the reference's shape."""
    for name, ref in want.items():
        if name not in got:
            raise OutputNameError(f"output {name!r}: produced by the reference, not by the graph ({where})")
        if got[name].shape != ref.shape:
            raise OutputShapeError(f"output {name!r}: shape {got[name].shape}, the reference has {ref.shape} ({where})")


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) if a.size else 0.0


def run_modes(
    path: str | os.PathLike[str],
    xs: np.ndarray,
    steps_shape_check: Reference | None,
    seed: int,
    profile: SessionProfile | None = None,
    expected: StreamSpec | None = None,
) -> tuple[ort.InferenceSession, StreamSpec, dict[str, Outputs]]:
    """Steps 1 and 2 (names vs the file's spec and ``expected``; shapes on a short call vs the
    reference), then the four ways of running ``xs`` (batch, time, ...) through the graph at ``path``."""
    engine = Engine.load(path, profile)
    spec, session = engine.spec, engine.session
    check_names(session, spec, expected)
    rng = np.random.default_rng(seed)
    batch, steps = xs.shape[:2]
    if steps_shape_check is not None:  # step 2 on a short call before the long runs
        probe = xs[:, :3]
        check_shapes(
            drive_session(session, spec, probe, [probe.shape[1]]),
            steps_shape_check(probe),
            f"batch {batch}, {probe.shape[1]} frames in one call",
        )
    modes = {
        "step/b1": drive_engine(engine, xs[0], None),
        "chunks/b1": drive_engine(engine, xs[0], random_chunks(steps, rng)),
        f"step/b{batch}": drive_session(session, spec, xs, [1] * steps),
        # a graph whose time axis is fixed at 1 (the QDQ step form) takes one frame per session call
        f"chunks/b{batch}": drive_session(
            session, spec, xs, random_chunks(steps, rng) if engine.max_chunk > 1 else [1] * steps
        ),
    }
    return session, spec, modes


def lane(outputs: Outputs, spec: StreamSpec, index: int) -> Outputs:
    """Lane ``index`` of batched outputs, keeping a batch axis of 1."""
    out = {o.name: outputs[o.name][index : index + 1] for o in spec.outputs}
    for s in spec.states:
        ax = s.batch_axis
        out[s.output] = np.take(outputs[s.output], [index], axis=ax)
    return out


def compare_modes(
    modes: dict[str, Outputs],
    ref: Outputs,
    spec: StreamSpec,
    tolerance: float,
    normalise: Callable[[str, np.ndarray], np.ndarray] | None = None,
    gate: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Step 3: max |difference| per mode and output; OutputValueError past ``tolerance`` on a gated output."""
    norm = normalise or (lambda _name, a: a)
    per_mode: dict[str, dict[str, float]] = {}
    max_rel, identical = 0.0, True
    for mode, got in modes.items():
        want = lane(ref, spec, 0) if mode.endswith("/b1") else ref
        check_shapes(got, want, mode)
        per_mode[mode] = {}
        for name in want:
            a, b = norm(name, got[name]), norm(name, want[name])
            d = _max_abs(a, b)
            per_mode[mode][name] = d
            identical = identical and bool(np.array_equal(got[name], want[name]))
            denom = np.abs(b.astype(np.float64)) + 1e-6
            max_rel = max(max_rel, float((np.abs(a.astype(np.float64) - b) / denom).max()) if a.size else 0.0)
    steps = next(iter(modes.values()))[spec.outputs[0].name].shape[1]
    # absolute for unit-scale values, relative beyond (an LSTM's cell state grows to tens)
    scales = {name: max(1.0, float(np.abs(norm(name, ref[name])).max())) if ref[name].size else 1.0 for name in ref}
    for mode, diffs in per_mode.items():
        for name, d in diffs.items():
            limit = tolerance * scales[name]
            if (gate is None or name in gate) and not d <= limit:
                raise OutputValueError(
                    f"output {name!r}: max |reference - onnx| {d:.3g} exceeds the effective tolerance "
                    f"{effective_tolerance(tolerance, scales[name])} ({mode}, {steps} carried steps)"
                )
    return {"modes": per_mode, "max_rel": max_rel, "bit_identical": identical, "scales": scales}


def effective_tolerance(tolerance: float, scale: float) -> str:
    """How the bound on one output was set: ``tolerance``, times the output's largest magnitude when above 1."""
    if scale <= 1.0:
        return f"{tolerance:.3g}"
    return f"{tolerance * scale:.3g} (= {tolerance:g} x max|reference| {scale:.3g}: scaled where values exceed 1)"


def log_softmax(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    m = a.max(axis=-1, keepdims=True)
    return a - m - np.log(np.exp(a - m).sum(axis=-1, keepdims=True))


def describe_normalisation(spec: StreamSpec) -> str:
    tokens = spec.model is not None and spec.model.input_kind == "tokens"
    return "softmax(y) (probabilities)" if tokens else "y / rms(fp32 y) per channel"


def normaliser(spec: StreamSpec, ref: Outputs) -> Callable[[str, np.ndarray], np.ndarray]:
    """How outputs are compared across precisions: char logits as the probabilities they stand
    for (softmax), real-valued outputs divided by the fp32 reference's RMS per channel, states as
    they are. (Log-probabilities are reported too: see ``compare_graphs``.)"""
    tokens = spec.model is not None and spec.model.input_kind == "tokens"
    first = spec.outputs[0].name
    rms = np.sqrt((ref[first].astype(np.float64) ** 2).mean(axis=(0, 1))) + 1e-12

    def norm(name: str, a: np.ndarray) -> np.ndarray:
        if name != first:
            return a
        return np.exp(log_softmax(a)) if tokens else a.astype(np.float64) / rms

    return norm


def compare_graphs(
    reference: str | os.PathLike[str],
    candidate: str | os.PathLike[str],
    xs: np.ndarray,
    tolerance: float = 2e-2,
    seed: int = 0,
) -> dict[str, Any]:
    """A converted graph (int8, fp16) against its fp32 source over the four modes, on normalised outputs.

    The gate is the first (streamed) output after ``normaliser``; state differences are reported.
    An fp16 graph loads at the optimisation level ``session.safe_options`` allows on the CPU EP.
    """
    ref_engine = Engine.load(reference)
    spec = ref_engine.spec
    ref = drive_session(ref_engine.session, spec, xs, [xs.shape[1]])
    _, _, modes = run_modes(candidate, xs, None, seed, expected=spec)
    result = compare_modes(modes, ref, spec, tolerance, normaliser(spec, ref), gate=[spec.outputs[0].name])
    first = spec.outputs[0].name
    worst = max(m[first] for m in result["modes"].values())
    extra = {}
    if spec.model is not None and spec.model.input_kind == "tokens":
        extra["max_abs_log_softmax"] = max(
            _max_abs(log_softmax(got[first]), log_softmax((lane(ref, spec, 0) if m.endswith("/b1") else ref)[first]))
            for m, got in modes.items()
        )
    return {
        "max_abs_normalised": worst,
        **extra,
        "normalised": describe_normalisation(spec),
        "tolerance": tolerance,
        "steps": xs.shape[1],
        "batch": xs.shape[0],
        **result,
    }


def sample_from_graph(path: str | os.PathLike[str], steps: int, batch: int, seed: int = 0) -> np.ndarray:
    """(batch, steps) tokens a char model writes itself (each next token drawn from its softmax):
    in-distribution input for comparing precisions, with no corpus needed."""
    engine = Engine.load(path)
    spec, rng = engine.spec, np.random.default_rng(seed)
    vocab = spec.outputs[0].shape[-1]
    if not isinstance(vocab, int):  # (edgernn's char models fix it; a hand-made graph may leave it symbolic)
        name = spec.outputs[0].name
        raise ExportError(f"{path}: output {name!r} has the symbolic last axis {vocab!r}, not a vocabulary size")
    xs = np.zeros((batch, steps), np.int64)
    xs[:, 0] = rng.integers(0, vocab, batch)
    state = _initial_state(spec, batch)
    names = [spec.outputs[0].name] + [s.output for s in spec.states]
    for t in range(steps - 1):
        y, *new = engine.session.run(names, {spec.inputs[0].name: xs[:, t : t + 1], **state})
        p = np.exp(log_softmax(y[:, 0]))
        xs[:, t + 1] = [rng.choice(vocab, p=row / row.sum()) for row in p]
        state = {s.input: v for s, v in zip(spec.states, new)}
    return xs


def bits_per_char(path: str | os.PathLike[str], ids: np.ndarray, chunk: int = 256) -> float:
    """The task metric of a character model: bits per character predicting ``ids[1:]`` from ``ids[:-1]``,
    state carried through the whole text by the runtime (the graph at ``path`` as users run it)."""
    stream = Engine.load(path).stream()
    logits = stream.push(ids[:-1], chunk=chunk)  # (time, vocab)
    logp = log_softmax(logits)
    return float(-logp[np.arange(len(ids) - 1), ids[1:]].mean() / np.log(2.0))
