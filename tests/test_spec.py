from __future__ import annotations

import json

import onnx
import pytest

from edgernn.runtime import Engine, SpecError
from edgernn.runtime.spec import METADATA_KEY, SPEC_VERSION, ModelConfig, StateSpec, StreamSpec


def lstm_config() -> ModelConfig:
    return ModelConfig(cell="lstm", input_kind="frames", input_size=5, hidden_size=16, num_layers=3, output_size=2)


def test_round_trip_through_json_keeps_every_field() -> None:
    spec = StreamSpec.for_model(lstm_config(), task={"labels": ["a", "b"]}, provenance={"sha": "x"})
    back = StreamSpec.from_json(spec.to_json())
    assert back == spec
    assert [s.input for s in back.states] == ["h", "c"]
    assert back.states[1].concrete_shape(batch=7) == (3, 7, 16)
    assert back.inputs[0].concrete_shape(batch=2, time=9) == (2, 9, 5)


def test_round_trip_through_onnx_metadata(exported) -> None:
    _, path = exported["lstm"]
    proto = onnx.load(str(path))
    stored = {p.key: p.value for p in proto.metadata_props}
    spec = StreamSpec.from_metadata(stored)
    assert spec.model is not None and spec.model.cell == "lstm"
    assert Engine.load(path).spec == spec


def test_unknown_version_is_refused() -> None:
    raw = StreamSpec.for_model(lstm_config()).to_dict()
    raw["version"] = SPEC_VERSION + 1
    with pytest.raises(SpecError, match=f"version {SPEC_VERSION + 1} is not supported"):
        StreamSpec.from_json(json.dumps(raw))


def test_model_without_spec_names_the_metadata_key(exported, tmp_path) -> None:
    _, path = exported["gru"]
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(SpecError, match=METADATA_KEY):
        Engine.load(bare)


def test_unknown_field_and_bad_state_are_named() -> None:
    raw = StreamSpec.for_model(lstm_config()).to_dict()
    raw["colour"] = "red"
    with pytest.raises(SpecError, match="colour"):
        StreamSpec.from_dict(raw)
    with pytest.raises(SpecError, match="'batch' axis exactly once"):
        StateSpec("h", "h_out", "float32", (2, 128))


def test_model_config_rejects_unknown_cell() -> None:
    with pytest.raises(SpecError, match="rnn, gru, lstm"):
        ModelConfig(cell="transformer", input_kind="tokens", input_size=3, hidden_size=4, num_layers=1, output_size=3)


def test_own_spec_whose_output_size_disagrees_with_the_graph_is_refused(exported, tmp_path) -> None:
    """The graph computes 60 logits; a spec that says 7 is refused, naming the output.

    ``Engine.load`` refuses it already from the graph's declared sizes (runtime/safety.py);
    building the Engine on the session directly reaches the check on what the graph
    computes, the one that catches graphs whose output sizes are declared symbolic.
    """
    _, path = exported["gru"]
    proto = onnx.load(str(path))
    spec = StreamSpec.from_metadata({p.key: p.value for p in proto.metadata_props})
    lying = StreamSpec.from_json(spec.to_json().replace('"shape":["batch","time",60]', '"shape":["batch","time",7]'))
    assert lying.outputs[0].shape == ("batch", "time", 7)
    with pytest.raises(SpecError, match=r"output 'y' has frame shape \(60,\) in the graph, \(7,\) in the spec"):
        Engine(Engine.load(path).session, lying, Engine.load(path).profile, "x", str(path))
