"""The ways to run a recurrent model that the bench compares, all on the same weights and input.

A contender is a factory ``make(subject) -> call``; ``call()`` advances ``case.batch``
streams by ``case.chunk`` frames with the state carried, and returns that call's output
(anything ``np.asarray`` turns into batch * chunk * vocab numbers), which the bench checks
against the float64 reference (``reliability/reference.py``) once before timing. A factory
raises ``NotAvailable`` with the reason when what it would time does not exist here (no
batched engine API, no quantizer).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgernn.reliability.reference import Reference
from edgernn.runtime.engine import Engine
from edgernn.runtime.profiling import PingPong, engine_call
from edgernn.runtime.session import CpuDefaults


class NotAvailable(Exception):
    """The contender cannot run in this tree or for this case; the message says why."""


@dataclass(frozen=True)
class Case:
    cell: str
    hidden: int
    batch: int
    chunk: int

    @property
    def label(self) -> str:
        return f"{self.cell} h{self.hidden} b{self.batch} c{self.chunk}"

    @property
    def frames(self) -> int:
        """Stream-frames one call advances."""
        return self.batch * self.chunk


@dataclass
class Subject:
    """What every contender of one case runs: the model file, its torch twin, the input."""

    case: Case
    path: Path  # the fp32 ONNX model
    int8_path: Path | None  # its int8 variant; None without a quantizer in this tree
    torch_model: Any  # fp32 PyTorch model with the same weights
    weights: dict[str, np.ndarray]
    x: np.ndarray  # (batch, chunk) int64 tokens
    int8_accurate_path: Path | None = None  # the two-part-weight int8 form (export's fallback)
    decomposed_path: Path | None = None  # the fp32 graph with the cell decomposed (export --decompose)
    native_path: Path | None = None  # the traced graph with the native RNN / GRU / LSTM op (export --form native)


Call = Callable[[], Any]


# -- onnxruntime ------------------------------------------------------------------------


def engine(s: Subject, path: Path | None = None) -> Call:
    """edgernn's Engine: Stream.step / Stream.push at batch 1; the batched API for batch > 1."""
    eng = Engine.load(path or s.path)
    b, t = s.x.shape
    if b == 1:  # the call `edgernn profile` and `edgernn devices auto` time (runtime.profiling.engine_call)
        return engine_call(eng, 1, t, s.x)[0]
    return batched_engine_call(eng, s.x)


def engine_int8(s: Subject) -> Call:
    """The engine on the int8 model (``edgernn.export.quantize.quantize_model``)."""
    if s.int8_path is None:
        raise NotAvailable("no int8 model: edgernn.export.quantize.quantize_model is absent from this tree")
    return engine(s, s.int8_path)


def engine_int8_accurate(s: Subject) -> Call:
    """The engine on the accurate int8 model (two int8 parts per weight), what export falls back to."""
    if s.int8_accurate_path is None:
        raise NotAvailable("no accurate int8 model: quantize_model(accurate=True) is absent from this tree")
    return engine(s, s.int8_accurate_path)


def engine_decomposed(s: Subject) -> Call:
    """The engine on the fp32 graph whose cell is written as MatMuls + gate math (``--decompose``)."""
    if s.decomposed_path is None:
        raise NotAvailable("no decomposed model: edgernn.export.decomposed is absent from this tree")
    return engine(s, s.decomposed_path)


def engine_native(s: Subject) -> Call:
    """The engine on the traced graph with onnxruntime's native cell op (``--form native``)."""
    if s.native_path is None or s.native_path == s.path:
        raise NotAvailable("no other form: edgernn.export.forms is absent from this tree")
    return engine(s, s.native_path)


def batched_engine_call(eng: Engine, x: np.ndarray) -> Call:
    """The engine's many-streams-in-one-call API, whichever this tree has; NotAvailable if none.

    ``engine.batch(max_streams)`` → ``Batch.join()`` / ``Batch.step(frames)`` (one frame per
    member) / ``Batch.step_many({stream: frames})``; else ``engine.step_many(streams, frames)``.
    """
    b, t = x.shape
    make_batch = getattr(eng, "batch", None)
    try:
        if callable(make_batch):
            group = make_batch(max_streams=b)
            members = [group.join() for _ in range(b)]
            if t == 1:
                frames = x[:, 0].copy()
                return lambda: group.step(frames)
            rows = [x[i] for i in range(b)]
            engine_many = getattr(eng, "step_many", None)
            if callable(engine_many):  # the members, T frames each: a list of (T, ...) outputs
                return lambda: engine_many(members, rows)
            ragged = dict(zip(members, rows))
            return lambda: list(group.step_many(ragged).values())
        step_many = getattr(eng, "step_many", None)
        if callable(step_many):
            streams = [eng.stream() for _ in range(b)]
            rows = [x[i] for i in range(b)]
            return lambda: step_many(streams, rows)
    except (AttributeError, TypeError, ImportError) as exc:
        raise NotAvailable(f"the engine's batched API did not work here: {type(exc).__name__}: {exc}") from None
    raise NotAvailable("runtime/ has no batched multi-stream API (engine.batch / engine.step_many) at this commit")


def engine_separate(s: Subject) -> Call:
    """``batch`` engine streams, each called on its own: what batching is measured against."""
    b, t = s.x.shape
    if b == 1:
        raise NotAvailable("batch 1: the same as engine")
    if t > 1:
        raise NotAvailable("timed at chunk 1 only (what batching is judged against; chunked, it costs minutes)")
    eng = Engine.load(s.path)
    streams = [eng.stream() for _ in range(b)]
    frames = [s.x[i, 0:1].reshape(()) for i in range(b)]
    return lambda: [st.step(f) for st, f in zip(streams, frames)]


def _bare_session(path: Path) -> Any:
    import onnxruntime as ort

    profile = CpuDefaults()
    return ort.InferenceSession(str(path), sess_options=profile.session_options(), providers=["CPUExecutionProvider"])


def raw_pingpong(s: Subject) -> Call:
    """Hand-written onnxruntime: two pre-built IOBindings swapping the state buffers, nothing else —
    the runtime's own reference loop (``edgernn.runtime.raw.raw_pingpong``, public API), so the bench,
    ``edgernn profile`` and ``edgernn devices auto`` time the same primitive; ``PingPong`` where it is absent."""
    eng = Engine.load(s.path)
    b, t = s.x.shape
    x = s.x
    try:
        from edgernn.runtime.raw import raw_pingpong as runtime_loop
    except ImportError:
        loop = PingPong(_bare_session(s.path), eng.spec, b, t)
        return lambda: loop(x)
    call = runtime_loop(eng, batch=b, time=t, public=True)
    return lambda: call(x)


def session_run(s: Subject) -> Call:
    """``session.run`` with numpy state carried by the caller (how most hand-written loops run)."""
    path = s.path
    spec = Engine.load(path).spec
    sess = _bare_session(path)
    feeds = {st.input: np.zeros(st.concrete_shape(s.x.shape[0]), dtype=np.float32) for st in spec.states}
    names = [spec.outputs[0].name, *[st.output for st in spec.states]]
    ins = [st.input for st in spec.states]
    x, x_name = s.x, spec.inputs[0].name

    def call() -> Any:
        out = sess.run(names, {x_name: x, **feeds})
        for name, value in zip(ins, out[1:]):
            feeds[name] = value
        return out[0]

    return call


# -- PyTorch ----------------------------------------------------------------------------


def _torch_state(s: Subject) -> tuple[Any, ...]:
    return tuple(s.torch_model.initial_state(s.x.shape[0]))


def torch_eager(s: Subject) -> Call:
    """PyTorch eager: the nn.GRU/LSTM/RNN model called on (batch, chunk) with the state carried."""
    import torch

    model, x = s.torch_model, torch.from_numpy(s.x)
    state = [_torch_state(s)]

    def call() -> Any:
        with torch.inference_mode():
            y, state[0] = model(x, state[0])
        return y

    return call


def torchscript(s: Subject) -> Call:
    """The strongest PyTorch CPU peer measured: a TorchScript-frozen step.

    Chunk 1 runs a frozen cell (RNNCell/GRUCell/LSTMCell, weights shared with the model);
    longer chunks run the frozen whole model (the fused sequence kernel beats a cell loop).
    """
    import torch

    x = torch.from_numpy(s.x)
    module = cell_step(s.torch_model) if s.x.shape[1] == 1 else _seq_step(s.torch_model)
    args = (x[:, 0], *_torch_state(s)) if s.x.shape[1] == 1 else (x, *_torch_state(s))
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation notes and tracer warnings
        frozen = torch.jit.freeze(torch.jit.trace(module.eval(), args))
    return _carry(frozen, args)


def torch_compiled(s: Subject) -> Call:
    """``torch.compile`` (inductor) of the eager model; compile time is not timed."""
    import torch

    compiled = torch.compile(_seq_step(s.torch_model).eval())
    args = (torch.from_numpy(s.x), *_torch_state(s))
    try:
        with torch.inference_mode():
            compiled(*args)  # compile now, not in the timed loop
    except Exception as exc:  # inductor needs a C compiler and may fail in many ways
        raise NotAvailable(f"torch.compile failed: {type(exc).__name__}: {str(exc)[:120]}") from None
    return _carry(compiled, args)


def _carry(fn: Any, args: tuple[Any, ...]) -> Call:
    import torch

    x = args[0]
    state = [tuple(args[1:])]

    def call() -> Any:
        with torch.inference_mode():
            y, *new = fn(x, *state[0])
        state[0] = tuple(new)
        return y

    return call


def _seq_step(model: Any) -> Any:
    """An nn.Module: forward(x, *state) -> (y, *state) over the whole model."""
    from torch import nn

    class SeqStep(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: Any, *state: Any) -> Any:
            y, new = self.model(x, tuple(state))
            return (y, *new)

    return SeqStep()


def cell_step(model: Any) -> Any:
    """An nn.Module: one frame through encoder → RNNCell/GRUCell/LSTMCell (the model's weights) → head."""
    import torch
    from torch import nn

    cfg = model.config
    width = cfg.embed_size or cfg.hidden_size
    cells = []
    for layer in range(cfg.num_layers):
        size_in = width if layer == 0 else cfg.hidden_size
        if cfg.cell == "rnn":
            cell: Any = nn.RNNCell(size_in, cfg.hidden_size, nonlinearity="tanh")
        elif cfg.cell == "gru":
            cell = nn.GRUCell(size_in, cfg.hidden_size)
        else:
            cell = nn.LSTMCell(size_in, cfg.hidden_size)
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, kind).data = getattr(model.rnn, f"{kind}_l{layer}").data
        cells.append(cell)
    lstm = cfg.cell == "lstm"

    class CellStep(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder, self.head = model.encoder, model.head
            self.cells = nn.ModuleList(cells)

        def forward(self, x: Any, h: Any, c: Any = None) -> Any:
            inp = self.encoder(x)  # (batch, width)
            hs, cs = [], []
            for i, cell in enumerate(self.cells):
                if lstm:
                    hi, ci = cell(inp, (h[i], c[i]))
                    cs.append(ci)
                else:
                    hi = cell(inp, h[i])
                hs.append(hi)
                inp = hi
            y = self.head(inp)[:, None]  # (batch, 1, vocab)
            if lstm:
                return y, torch.stack(hs), torch.stack(cs)
            return y, torch.stack(hs)

    return CellStep()


# -- numpy ------------------------------------------------------------------------------


def numpy_reference(s: Subject) -> Call:
    """The model in plain numpy, float32: the reference's own cell math (``reliability/reference.py``)."""
    ref = Reference(s.weights, s.torch_model.config, dtype=np.float32)
    state = [ref.initial_state(s.x.shape[0])]
    x = s.x

    def call() -> Any:
        y, state[0] = ref.sequences(x, state[0])
        return y

    return call


# The suite, in column order. "torch.compile" is opt-in (compiling costs tens of seconds).
CONTENDERS: dict[str, Callable[[Subject], Call]] = {
    "engine": engine,
    "engine native": engine_native,
    "engine int8": engine_int8,
    "engine int8 accurate": engine_int8_accurate,
    "engine decomposed": engine_decomposed,
    "raw ping-pong": raw_pingpong,
    "session.run": session_run,
    "engine separate": engine_separate,
    "torch eager": torch_eager,
    "torchscript": torchscript,
    "torch.compile": torch_compiled,
    "numpy": numpy_reference,
}
