"""Triton repository: config.pbtxt parsed by Triton's own ModelConfig protobuf, checked against the
graph, and the graph driven as Triton's sequence batcher drives it (START / steps / START, READY)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import tiny_model
from tritonhelp import parse_config

from edgernn.export.errors import OutputExistsError
from edgernn.export.onnx_export import to_onnx_proto
from edgernn.export.parity import sample_batch, torch_outputs
from edgernn.export.quantize import convert_proto
from edgernn.export.triton import state_names, write_repository
from edgernn.runtime.spec import StreamSpec


@pytest.fixture(scope="module", params=["gru", "lstm"])
def repo(request, tmp_path_factory):
    model = tiny_model(request.param)
    spec = StreamSpec.for_model(model.config)
    root = tmp_path_factory.mktemp("triton")
    folder = write_repository(root, to_onnx_proto(model), spec, name="char")
    return model, spec, folder


def test_config_parses_and_matches_the_graph(repo) -> None:
    model, spec, folder = repo
    cfg, pb2 = parse_config(folder / "config.pbtxt")
    session = ort.InferenceSession(str(folder / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    graph_in = {i.name: i for i in session.get_inputs()}
    graph_out = {o.name: o for o in session.get_outputs()}
    types = {pb2.TYPE_FP32: "tensor(float)", pb2.TYPE_INT64: "tensor(int64)", pb2.TYPE_INT32: "tensor(int32)"}
    assert cfg.name == "char" and cfg.backend == "onnxruntime" and cfg.max_batch_size == 64
    # with max_batch_size > 0 Triton prepends the batch axis: graph shape == ['batch'] + dims
    for tensor, graph in [(t, graph_in) for t in cfg.input] + [(t, graph_out) for t in cfg.output]:
        node = graph[tensor.name]
        assert types[tensor.data_type] == node.type
        assert node.shape[0] == "batch" and len(node.shape) == len(tensor.dims) + 1
        for want, got in zip(tensor.dims, node.shape[1:]):
            assert want == got or (want == -1 and isinstance(got, str))
    sb = cfg.sequence_batching
    assert sb.WhichOneof("strategy_choice") == "direct"
    kinds = {c.name: c.control[0].kind for c in sb.control_input}
    assert kinds == {"START": pb2.ModelSequenceBatching.Control.CONTROL_SEQUENCE_START,
                     "READY": pb2.ModelSequenceBatching.Control.CONTROL_SEQUENCE_READY}
    for c in sb.control_input:
        assert list(c.control[0].int32_false_true) == [0, 1]
        assert graph_in[c.name].type == "tensor(int32)" and graph_in[c.name].shape == ["batch", 1]
    assert len(sb.state) == len(spec.states)
    for st, s in zip(sb.state, spec.states):
        assert (st.input_name, st.output_name) == state_names(s.input)
        want = [model.config.num_layers, model.config.hidden_size]  # batch-first: (batch, layers, hidden)
        assert list(st.dims) == want and graph_in[st.input_name].shape == ["batch", *want]
        assert graph_out[st.output_name].shape == ["batch", *want]
        assert st.initial_state[0].zero_data and list(st.initial_state[0].dims) == want


def drive(session, spec, x, start, ready, state):
    feeds = {"x": x, "START": np.array(start, np.int32)[:, None], "READY": np.array(ready, np.int32)[:, None], **state}
    names = ["y"] + [state_names(s.input)[1] for s in spec.states]
    y, *new = session.run(names, feeds)
    return y, {state_names(s.input)[0]: v for s, v in zip(spec.states, new)}


def test_start_steps_start_as_triton_drives_it(repo) -> None:
    model, spec, folder = repo
    session = ort.InferenceSession(str(folder / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    xs = sample_batch(model, 40, 2, seed=3)  # two sequences, batched into slots 0 and 1
    ref = torch_outputs(model, xs)["y"]
    garbage = {state_names(s.input)[0]: np.full((2, 2, 32), 7.0, np.float32) for s in spec.states}
    # first request of each sequence: START=1; the incoming state is whatever Triton holds (here garbage)
    y, state = drive(session, spec, xs[:, :5], [1, 1], [1, 1], garbage)
    outs = [y]
    for t0 in range(5, 40, 7):  # the rest in requests of up to 7 frames: state carried by Triton
        y, state = drive(session, spec, xs[:, t0 : t0 + 7], [0, 0], [1, 1], state)
        outs.append(y)
    np.testing.assert_allclose(np.concatenate(outs, axis=1), ref, atol=1e-5)
    # START again on slot 1 only: slot 1 starts over, slot 0 carries on
    y, after = drive(session, spec, xs[:, :5], [0, 1], [1, 1], state)
    np.testing.assert_allclose(y[1], ref[1, :5], atol=1e-5)
    assert np.abs(y[0] - ref[0, :5]).max() > 1e-3
    # READY=0 on slot 0 (an empty slot in the batch): its state passes through untouched
    _, kept = drive(session, spec, xs[:, :1], [0, 0], [0, 1], after)
    for name, value in kept.items():
        np.testing.assert_array_equal(value[0], after[name][0])
        assert np.abs(value[1] - after[name][1]).max() > 0


def test_int8_graph_gets_a_triton_variant_too(tmp_path) -> None:
    model = tiny_model("rnn")
    spec = StreamSpec.for_model(model.config)
    from edgernn.export.onnx_export import attach_spec

    q, qspec = convert_proto(attach_spec(to_onnx_proto(model), spec), "int8")
    folder = write_repository(tmp_path, q, qspec, name="rnn8")
    session = ort.InferenceSession(str(folder / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    xs = sample_batch(model, 12, 2, seed=1)
    state = {"h_state_in": np.zeros((2, 2, 32), np.float32)}
    y, _ = drive(session, qspec, xs, [1, 1], [1, 1], state)
    assert np.abs(y - torch_outputs(model, xs)["y"]).max() < 0.1
    meta = {p.key for p in onnx.load(str(folder / "1" / "model.onnx")).metadata_props}
    assert "edgernn.triton" in meta and "edgernn.stream_spec" not in meta  # the runtime cannot stream it


def test_existing_model_folder_needs_force(tmp_path) -> None:
    model = tiny_model("gru", layers=1)
    spec = StreamSpec.for_model(model.config)
    proto = to_onnx_proto(model)
    write_repository(tmp_path, proto, spec, name="m")
    before = (tmp_path / "m" / "config.pbtxt").read_text()
    with pytest.raises(OutputExistsError, match="exists; pass force=True"):
        write_repository(tmp_path, proto, spec, name="m", max_batch_size=8)
    assert (tmp_path / "m" / "config.pbtxt").read_text() == before
    write_repository(tmp_path, proto, spec, name="m", max_batch_size=8, force=True)
    assert "max_batch_size: 8" in (tmp_path / "m" / "config.pbtxt").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "m_twin"]  # no staging folder left
    assert "max_batch_size: 8" in (tmp_path / "m_twin" / "config.pbtxt").read_text()
