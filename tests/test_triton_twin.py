"""The Python-backend twin written by `export --triton` (no server needed): its config parsed by Triton's
own ModelConfig protobuf and checked against the edge graph, and the router's hash ring."""

from __future__ import annotations

import numpy as np
import pytest
from tritonhelp import TEXTGEN, make_repository, model_config_pb2, parse_config

from edgernn.export.triton_route import HashRing, RouteError
from edgernn.export.triton_twin import twin_config_pbtxt
from edgernn.runtime import Engine


def test_twin_config_parses_and_runs_the_edge_graph(tmp_path) -> None:
    repo = make_repository(tmp_path)
    assert sorted(p.name for p in repo.iterdir()) == ["char", "char_twin", "idle_twin", "oldest_twin"]
    cfg, pb2 = parse_config(repo / "char_twin" / "config.pbtxt")
    assert cfg.name == "char_twin" and cfg.backend == "python" and cfg.max_batch_size == 64
    twin = Engine.load(repo / "char_twin" / "1" / "model.onnx")  # the edge graph, spec in its metadata
    shipped = Engine.load(TEXTGEN)
    assert twin.spec.to_json() == shipped.spec.to_json()
    tokens = np.arange(40) % 78
    np.testing.assert_array_equal(twin.stream().push(tokens), shipped.stream().push(tokens))
    assert (repo / "char_twin" / "1" / "model.py").read_text().startswith('"""Triton Python-backend model')
    inputs = {t.name: t for t in cfg.input}
    assert inputs["x"].data_type == pb2.TYPE_INT64 and list(inputs["x"].dims) == [-1] and inputs["x"].optional
    assert inputs["RESTORE"].data_type == pb2.TYPE_STRING and inputs["COMMAND"].optional
    outputs = {t.name: t for t in cfg.output}
    assert list(outputs["y"].dims) == [-1, 78] and outputs["SNAPSHOT"].data_type == pb2.TYPE_STRING
    sb = cfg.sequence_batching
    assert sb.WhichOneof("strategy_choice") == "direct" and sb.max_sequence_idle_microseconds == 60_000_000
    kinds = {c.name: c.control[0].kind for c in sb.control_input}
    K = pb2.ModelSequenceBatching.Control
    assert kinds == {"START": K.CONTROL_SEQUENCE_START, "END": K.CONTROL_SEQUENCE_END,
                     "READY": K.CONTROL_SEQUENCE_READY, "CORRID": K.CONTROL_SEQUENCE_CORRID}
    corrid = next(c for c in sb.control_input if c.name == "CORRID")
    assert corrid.control[0].data_type == pb2.TYPE_UINT64
    assert len(sb.state) == 0  # the Python backend ignores implicit state: the twin keeps it itself
    idle, _ = parse_config(repo / "idle_twin" / "config.pbtxt")
    assert idle.sequence_batching.max_sequence_idle_microseconds == 1_500_000


def test_oldest_strategy_and_bad_strategy() -> None:
    spec = Engine.load(TEXTGEN).spec
    text = twin_config_pbtxt(spec, "m", max_batch_size=16, strategy="oldest", queue_delay_microseconds=500)
    from google.protobuf import text_format

    cfg = text_format.Parse(text, model_config_pb2().ModelConfig())
    oldest = cfg.sequence_batching.oldest
    assert cfg.sequence_batching.WhichOneof("strategy_choice") == "oldest"
    assert oldest.max_candidate_sequences == 16 and oldest.max_queue_delay_microseconds == 500
    with pytest.raises(ValueError, match="strategy must be one of"):
        twin_config_pbtxt(spec, "m", strategy="fifo")


def test_hash_ring_moves_only_the_removed_servers_keys() -> None:
    ring = HashRing(["a", "b", "c"])
    before = {k: ring.owner(k) for k in range(3000)}
    assert {s: list(before.values()).count(s) for s in "abc"} == pytest.approx({s: 1000 for s in "abc"}, rel=0.35)
    ring.remove("b")
    after = {k: ring.owner(k) for k in range(3000)}
    assert all(after[k] == before[k] for k in before if before[k] != "b")  # nobody else moves
    assert all(after[k] in "ac" for k in before if before[k] == "b")
    ring.remove("a")
    ring.remove("c")
    with pytest.raises(RouteError, match="no server left"):
        ring.owner(1)


