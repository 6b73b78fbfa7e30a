"""Arguments of the public Python calls are checked before any work (issue 15, round 2).

``Engine.load(path, 42)`` blamed the model file ("onnxruntime cannot load it"); a wrong type
elsewhere was an AttributeError or a bare TypeError / ValueError from deep inside. Now it is
an ``ArgumentError`` (an InputError and a TypeError) naming the call and the argument. The class
is fuzzed by the ``api-fuzz`` surface (``reliability/apifuzz.py``: every parameter of every
public call, read from the signatures); these are the cases it found, pinned.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fifo import refusal_of_a_fifo

from edgernn.runtime import Engine, infer_spec
from edgernn.runtime.errors import ArgumentError, InputError, SpecError, StreamError
from edgernn.runtime.specfile import read_spec

MODEL = Path(__file__).resolve().parents[1] / "runtime" / "models" / "textgen.onnx"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load(MODEL)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"profile": 42}, "profile"),
        ({"profile": []}, "profile"),
        ({"spec": 42}, "spec"),
        ({"spec": {"inputs": []}}, "spec"),
        ({"nonfinite": None}, "nonfinite"),
        ({"nonfinite": "ignore"}, "nonfinite"),
    ],
)
def test_engine_load_names_the_wrong_argument_not_the_model(kwargs: dict, named: str) -> None:
    with pytest.raises(ArgumentError, match=f"Engine.load: {named} must be") as info:
        Engine.load(MODEL, **kwargs)
    assert "onnxruntime" not in str(info.value) and isinstance(info.value, TypeError)


@pytest.mark.parametrize("path", [None, 42, 2.5, [], object()])
def test_engine_load_refuses_a_path_of_the_wrong_type(path: object) -> None:
    with pytest.raises(ArgumentError, match="Engine.load: path must be a path"):
        Engine.load(path)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"max_streams": 2.5}, "max_streams"),
        ({"max_streams": True}, "max_streams"),
        ({"max_streams": "4"}, "max_streams"),
        ({"max_streams": 0}, "max_streams"),
        ({"idle_after": float("nan")}, "idle_after"),
        ({"idle_after": "1"}, "idle_after"),
        ({"on_evict": 3}, "on_evict"),
        ({"clock": "now"}, "clock"),
    ],
)
def test_engine_batch_checks_its_arguments(engine: Engine, kwargs: dict, named: str) -> None:
    with pytest.raises(ArgumentError, match=f"Engine.batch: {named} must be"):
        engine.batch(**kwargs)


def test_batch_leave_and_evict_idle_refuse_wrong_types(engine: Engine) -> None:
    batch = engine.batch(max_streams=2)
    member = batch.join()
    member.step(3)
    before = member.state()
    with pytest.raises(StreamError, match="a batch takes edgernn Streams, got int"):
        batch.leave(42)  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="Batch.evict_idle: now must be"):
        batch.evict_idle("later")  # type: ignore[arg-type]
    assert all(np.array_equal(before[k], v) for k, v in member.state().items())


def test_infer_spec_read_spec_and_generate_refuse_wrong_types(engine: Engine) -> None:
    from edgernn.runtime.apps.textgen import generate

    with pytest.raises(ArgumentError, match="model must be a path"):
        infer_spec(None)  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="read_spec: path must be a path"):
        read_spec(None)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="NUL"):
        read_spec("a\x00b")
    with pytest.raises(ArgumentError, match="generate: stream must be"):
        next(generate(None, "And", 3))  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="generate: n_chars must be"):
        next(generate(engine.stream(), "And", None))  # type: ignore[arg-type]
    with pytest.raises(InputError):  # a bool is not a seed
        next(generate(engine.stream(), "And", 3, seed=True))


def test_devices_load_engine_strict_must_be_a_bool() -> None:
    from edgernn.devices import load_engine

    with pytest.raises(ArgumentError, match="strict must be True, False or None"):
        load_engine(MODEL, "cpu", strict="no")  # type: ignore[arg-type]


def test_read_spec_refuses_a_fifo_instead_of_waiting(tmp_path: Path) -> None:
    refused = refusal_of_a_fifo(tmp_path / "spec.json", "edgernn.runtime.specfile", "read_spec", "SpecError")
    assert "not a regular file" in refused, refused
