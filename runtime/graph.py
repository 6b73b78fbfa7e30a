"""The spec-vs-graph check, in one place: the graph's declared shapes, then the loaded session.

Two entry points, one owner (this module):

* ``check_declared_shapes`` compares the spec's ranks and fixed sizes with the sizes the
  graph declares. ``safety.check_spec`` calls it on the raw bytes' declarations (before
  onnxruntime sees them), next to its own bound on the memory a stream asks for;
* ``check_against_graph`` runs once per load on the session: every graph input is fed,
  every name the spec reads exists, dtypes agree, and the axes the graph fixes are read:

  - a batch axis fixed in the graph (often 1) caps how many streams one call can hold;
  - a time axis fixed in the graph sets the items per call (the window), less the context;
  - no axis of a streamed input, a state or a constant may be 0: onnxruntime's recurrent
    kernels abort the process on zero-length inputs, so such a spec is a SpecError here.

What the graph *computes* (output sizes declared symbolic) is the load-time probe's to check
(``Engine._probe``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import onnxruntime as ort

from edgernn.runtime.dtypes import FROM_ORT
from edgernn.runtime.errors import SpecError
from edgernn.runtime.spec import BATCH, TIME, StreamSpec


@dataclass(frozen=True)
class GraphFacts:
    """What the graph fixes: the batch size (None: free) and the time items per call (None: free)."""

    fixed_batch: int | None = None
    fixed_time: int | None = None


def check_declared_shapes(spec: StreamSpec, declared: Mapping[str, Sequence[int | str] | None], source: str) -> None:
    """Ranks and fixed sizes of the spec's tensors against the graph's declared ``name -> dims``.

    A dim is an int (fixed) or anything else (symbolic, unnamed): only int-vs-int sizes are
    compared. A name the graph does not declare, or declares with no shape, is skipped here
    (a missing name is ``check_against_graph``'s to report, on the session).
    """
    shaped = [(t.name, t.shape) for t in spec.inputs + spec.outputs]
    shaped += [(n, s.shape) for s in spec.states for n in (s.input, s.output)]
    shaped += [(m.name, m.shape) for m in spec.memory]
    shaped += [(m.mask, (BATCH, m.length_symbol)) for m in spec.memory if m.mask is not None and m.length_symbol]
    for name, want in shaped:
        got = declared.get(name)
        if got is None:
            continue
        if len(got) != len(want):
            raise SpecError(
                f"{source}: tensor {name!r} has rank {len(got)} in the graph {list(got)}, "
                f"rank {len(want)} in the spec {list(want)}"
            )
        for axis, (g, w) in enumerate(zip(got, want)):
            if isinstance(g, int) and isinstance(w, int) and g != w:
                raise SpecError(f"{source}: tensor {name!r} axis {axis} is {g} in the graph, {w} in the spec")


def check_against_graph(spec: StreamSpec, session: ort.InferenceSession, source: str) -> GraphFacts:
    """Every graph input is fed by the spec, every spec name exists in the graph, dtypes agree; the fixed axes."""
    graph_in = {i.name: i for i in session.get_inputs()}
    graph_out = {o.name: o for o in session.get_outputs()}
    fed = [t.name for t in spec.inputs] + [s.input for s in spec.states] + [c.name for c in spec.constants]
    fed += [m.name for m in spec.memory] + [m.mask for m in spec.memory if m.mask is not None]
    for name in fed:
        if name not in graph_in:
            raise SpecError(f"{source}: the spec feeds input {name!r}, the graph's inputs are {sorted(graph_in)}")
    missing = sorted(set(graph_in) - set(fed))
    if missing:
        raise SpecError(
            f"{source}: graph input(s) {missing} are not in the spec (not streamed, state, constant or memory)"
        )
    produced = [t.name for t in spec.outputs] + [s.output for s in spec.states]
    for name in produced:
        if name not in graph_out:
            raise SpecError(f"{source}: the spec reads output {name!r}, the graph's outputs are {sorted(graph_out)}")
    declared = {t.name: t.dtype for t in spec.inputs}
    declared.update({s.input: s.dtype for s in spec.states})
    declared.update({c.name: c.dtype for c in spec.constants})
    declared.update({m.name: m.dtype for m in spec.memory})
    declared.update({m.mask: "float32" for m in spec.memory if m.mask is not None})
    declared.update({t.name: t.dtype for t in spec.outputs})
    declared.update({s.output: s.dtype for s in spec.states})
    for name, dtype in declared.items():
        node = graph_in.get(name) or graph_out[name]
        graph_dtype = FROM_ORT.get(node.type)
        if graph_dtype is not None and graph_dtype != dtype:
            raise SpecError(f"{source}: tensor {name!r} is {graph_dtype} in the graph, {dtype} in the spec")
    shaped = [(t.name, t.shape, "input") for t in spec.inputs] + [(s.input, s.shape, "state") for s in spec.states]
    shaped += [(c.name, c.shape, "constant") for c in spec.constants]
    shaped += [(m.name, m.shape, "memory") for m in spec.memory]
    for name, shape, what in shaped:
        for axis, d in enumerate(shape):
            if d == 0:
                raise SpecError(
                    f"{source}: {what} {name!r} axis {axis} has size 0 in the spec {list(shape)}; every axis "
                    "must hold at least one item"
                )
    if spec.outputs and any(d == 0 for o in spec.outputs for d in o.shape):
        raise SpecError(f"{source}: an output has an axis of size 0 in the spec: every axis must be >= 1")
    return _fixed_axes(spec, graph_in, source)


def _fixed_axes(spec: StreamSpec, graph_in: dict[str, ort.NodeArg], source: str) -> GraphFacts:
    batches: dict[str, int] = {}
    times: dict[str, int] = {}
    axes = [(t.name, t.batch_axis, t.time_axis) for t in spec.inputs]
    axes += [(s.input, s.batch_axis, None) for s in spec.states]
    axes += [(m.name, m.batch_axis, None) for m in spec.memory]
    for name, b, tx in axes:
        shape = graph_in[name].shape
        if not isinstance(shape, list):
            continue
        for axis, kind, into in ((b, BATCH, batches), (tx, TIME, times)):
            if axis is None or axis >= len(shape) or not isinstance(shape[axis], int):
                continue
            size = shape[axis]
            if size < 1:
                raise SpecError(
                    f"{source}: tensor {name!r} has its {kind} axis ({axis}) fixed to {size} in the graph; "
                    "no call can feed it (every axis must hold at least one item)"
                )
            into[name] = size
    if len(set(batches.values())) > 1:
        raise SpecError(f"{source}: the graph fixes the batch axis to different sizes: {batches}")
    fixed_time = None
    if times:
        ctx = spec.context
        items = {n: v - (ctx.frames if ctx is not None and ctx.input == n else 0) for n, v in times.items()}
        if len(set(items.values())) > 1:
            raise SpecError(f"{source}: the graph fixes the time axis to different sizes: {times}")
        fixed_time = next(iter(items.values()))
        if fixed_time < 1:
            raise SpecError(
                f"{source}: the graph fixes the time axis to {times} items, which the context window of "
                f"{ctx.frames if ctx else 0} leaves no room for new items in"
            )
        if spec.window is not None and spec.window != fixed_time:
            raise SpecError(
                f"{source}: the spec's window is {spec.window} items, the graph fixes the time axis to {fixed_time}"
            )
    return GraphFacts(next(iter(batches.values()), None), fixed_time)
