"""Argument fuzz of the public Python API: every argument of every public call, hostile values.

The calls (``_calls``) are the runtime's public surface (``Engine.load``, ``engine.batch`` /
``step_many``, ``engine.stream(memory=)``, ``Stream.step`` / ``push`` / ``restore`` /
``set_memory`` / ``reset(memory=)``, ``Batch.join`` / ``leave`` /
``step`` / ``step_many`` / ``evict_idle``, ``infer_spec``, ``read_spec``), the device
loader and an app (``textgen.generate``). Their parameters are read from their signatures,
so a new parameter is fuzzed without a change here. Each case calls one of them with every
argument valid but one, which gets a value from ``values()``: wrong types (None, bool, float,
bytes, containers, arbitrary objects, arrays, a function), out-of-range numbers (NaN, ±inf,
-1, 2^70), odd strings (empty, NUL, a lone surrogate) and odd objects (a closed stream, a
stream of another engine, /dev/zero). The outcome must be ``accepted`` or a typed
``EdgeRNNError``; a refused call on a stream must leave its state bit for bit as it was
(``wrong: state changed`` otherwise).

Example:
    >>> ctx = setup(Path("/tmp/x"), 0)  # doctest: +SKIP
    >>> run_case(ctx, 0)                 # doctest: +SKIP
    'ArgumentError'
"""

from __future__ import annotations

import inspect
import itertools
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

MODEL = Path(__file__).resolve().parents[1] / "runtime" / "models" / "textgen.onnx"
MEMORY_MODEL = "memory.onnx"  # reliability/memmodel.py
Call = tuple[Callable[..., Any], dict[str, Any], Any]  # the callable, its valid arguments, a stream to watch or None


def values(ctx: dict[str, Any]) -> list[Any]:
    """The hostile values, in a fixed order (a case index names one)."""
    closed = ctx["engine"].stream()
    closed.close()
    return [
        None, True, 0, -1, 2**70, 2.5, float("nan"), float("inf"), "x", "", "\udcff", "a\x00b", b"x", [], {},
        (1,), object(), np.zeros(3), np.zeros((2, 2, 2)), lambda: 0, closed, ctx["foreign"].stream(),
        Path("/dev/zero"), ctx["fifo"], [None], {"x": 1}, np.float64("nan"), np.int64(-1), "cpu",
    ]  # fmt: skip


def _calls(ctx: dict[str, Any]) -> dict[str, Callable[[], Call]]:
    """Each public call with fresh objects and valid arguments (built per case: one case cannot spoil the next)."""
    from edgernn.devices import load_engine
    from edgernn.reliability.memmodel import example_memory
    from edgernn.runtime import Engine, infer_spec
    from edgernn.runtime.apps.textgen import generate
    from edgernn.runtime.specfile import read_spec

    e: Engine = ctx["engine"]
    path, spec_json = str(ctx["model"]), str(ctx["spec_json"])

    def stream(steps: int = 2) -> Any:
        s = e.stream()
        s.push([1, 2][:steps])
        return s

    def batch(n: int = 2) -> tuple[Any, list[Any]]:
        b = e.batch(max_streams=4)
        return b, [b.join() for _ in range(n)]

    def member(name: str) -> Callable[[], Call]:
        def make() -> Call:
            b, (s1, s2) = batch()
            valid = {
                "join": {"stream": None},
                "leave": {"stream": s1},
                "evict_idle": {"now": None},
                "step": {"frames": [1, 2]},
                "step_many": {"feeds": {s1: [1, 2], s2: []}, "chunk": 64},
            }[name]
            return getattr(b, name), valid, s1

        return make

    def on_stream(name: str, valid: dict[str, Any]) -> Callable[[], Call]:
        def make() -> Call:
            s = stream()
            args = {k: (v(s) if callable(v) else v) for k, v in valid.items()}
            return getattr(s, name), args, s

        return make

    m: Engine = ctx["memory_engine"]  # per-stream memory (spec version 3)
    rng = random.Random(0)

    def memory(length: int = 3) -> Any:
        return example_memory(m.spec, length, rng)

    def on_memory_stream(name: str, valid: dict[str, Any]) -> Callable[[], Call]:
        def make() -> Call:
            s = m.stream(memory=memory())
            s.push([1, 2])
            return getattr(s, name), {k: (v() if callable(v) else v) for k, v in valid.items()}, s

        return make

    def pair_many() -> Call:
        s1, s2 = stream(), stream(1)
        return e.step_many, {"streams": [s1, s2], "frames": [[1, 2], [3]], "chunk": 64}, s1

    return {
        "Engine.load": lambda: (Engine.load, {"path": path, "profile": None, "spec": None, "nonfinite": "raise"}, None),
        "Engine.batch": lambda: (
            e.batch,
            {"max_streams": 4, "idle_after": None, "on_evict": None, "clock": None},
            None,
        ),
        "Engine.step_many": pair_many,
        "Stream.step": on_stream("step", {"frame": 1}),
        "Stream.push": on_stream("push", {"frames": [1, 2, 3], "chunk": 64}),
        "Stream.restore": on_stream("restore", {"blob": lambda s: s.snapshot()}),
        "Batch.join": member("join"),
        "Batch.leave": member("leave"),
        "Batch.evict_idle": member("evict_idle"),
        "Batch.step": member("step"),
        "Batch.step_many": member("step_many"),
        "Engine.stream(memory)": lambda: (m.stream, {"memory": memory()}, None),
        "Stream.set_memory": on_memory_stream("set_memory", {"memory": lambda: memory(5)}),
        "Stream.reset(memory)": on_memory_stream("reset", {"memory": lambda: memory(2)}),
        "infer_spec": lambda: (infer_spec, {"model": path, "window": None}, None),
        "read_spec": lambda: (read_spec, {"path": spec_json}, None),
        "devices.load_engine": lambda: (load_engine, {"path": path, "device": "cpu", "strict": None}, None),
        "textgen.generate": lambda: (
            lambda **kw: "".join(itertools.islice(generate(**kw), 5)),  # a generator: n_chars=2**70 is lazy
            {"stream": stream(), "prompt": "And", "n_chars": 3, "temperature": 0.8, "top_k": 0, "seed": 0},
            None,
        ),
    }


def prepare(root: Path, seed: int) -> None:
    """The decoder with per-stream memory (in the parent: needs torch)."""
    from edgernn.reliability.memmodel import export

    export(root / MEMORY_MODEL, seed)


def setup(root: Path, seed: int) -> dict[str, Any]:
    from edgernn.runtime import Engine
    from edgernn.runtime.specfile import spec_json as to_json

    engine = Engine.load(MODEL)
    spec_json = root / "spec.json"
    spec_json.write_text(to_json(engine.spec))
    ctx: dict[str, Any] = {"engine": engine, "model": MODEL, "spec_json": spec_json, "seed": seed}
    ctx["fifo"] = root / "fifo"  # a read of it would block forever
    if not ctx["fifo"].exists():
        os.mkfifo(ctx["fifo"])
    ctx["memory_engine"] = Engine.load(root / MEMORY_MODEL)
    ctx["foreign"] = Engine.load(MODEL)  # another engine of the same model: its streams are foreign here
    ctx["calls"] = _calls(ctx)
    ctx["cases"] = enumerate_cases(ctx)
    for make in ctx["calls"].values():  # warm: imports and first-call caches are not held memory of a case
        fn, valid, _ = make()
        fn(**valid)
    return ctx


def enumerate_cases(ctx: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(call, parameter, value index), ordered so that any prefix reaches every call and parameter."""
    pairs = []
    for name, make in ctx["calls"].items():
        fn, valid, _ = make()
        params = [p for p in _parameters(fn) if p in valid] or list(valid)
        pairs += [(name, p) for p in params]
    n = len(values(ctx))
    return [(name, p, k) for k in range(n) for name, p in pairs]


def _parameters(fn: Callable[..., Any]) -> list[str]:
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return []


def _state(stream: Any) -> list[np.ndarray] | None:
    if stream is None or stream.closed:
        return None
    return [np.array(v, copy=True) for v in stream.state().values()]


def run_case(ctx: dict[str, Any], i: int) -> str:
    from edgernn.runtime.errors import EdgeRNNError

    cases = ctx["cases"]
    if i >= len(cases):  # past the enumeration: a random (call, parameter, value)
        rng = random.Random(ctx["seed"] * 1_000_003 + i)
        name, param, _ = rng.choice(cases)
        k = rng.randrange(len(values(ctx)))
    else:
        name, param, k = cases[i]
    fn, valid, watched = ctx["calls"][name]()
    value = values(ctx)[k]
    before = _state(watched)
    try:
        fn(**{**valid, param: value})
        return "accepted"
    except EdgeRNNError as exc:
        after = _state(watched)
        if before is not None and after is not None and not all(np.array_equal(a, b) for a, b in zip(before, after)):
            return f"wrong: state changed by a refused {name}({param}={value!r:.40})"
        return type(exc).__name__
    except Exception as exc:  # the finding: counted by the runner with the call and the argument
        return f"untyped: {name}({param}={value!r:.40}): {type(exc).__name__}: {str(exc)[:100]}"


def case_count(ctx: dict[str, Any]) -> int:
    return len(ctx["cases"])
