"""Untrusted model files: each fault gives its typed error in a child process; nothing outside the folder is read."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import tiny_model

from edgernn.export.onnx_export import attach_spec, to_onnx_proto
from edgernn.reliability.faults import ANY_TYPED, Case, cases, pickle_bomb, prepare, run_all, run_group, run_mutants
from edgernn.runtime import Engine
from edgernn.runtime.errors import ModelLoadError, SpecError
from edgernn.runtime.protowire import WireError, field_bytes, field_varint, iter_fields, read_varint
from edgernn.runtime.safety import Limits, inspect_model, read_model
from edgernn.runtime.spec import StreamSpec


@pytest.fixture(scope="module")
def base() -> onnx.ModelProto:
    model = tiny_model("gru", hidden=8, layers=1)
    return attach_spec(to_onnx_proto(model), StreamSpec.for_model(model.config))


@pytest.fixture(scope="module")
def results(base: onnx.ModelProto) -> dict[str, object]:
    return {r.name: r for r in run_all(base)}


CASES = {c.name: c for c in cases()}


@pytest.mark.parametrize("name", list(CASES))
def test_each_fault_gives_its_typed_error_in_a_child_process(name: str, results: dict) -> None:
    r = results[name]
    case = CASES[name]
    assert r.outcome not in ("crash", "timeout", "untyped"), f"{name}: {r.outcome} {r.error} {r.message}"
    if case.expect == "loaded":
        assert r.outcome == "loaded", r.message
    elif case.expect != ANY_TYPED:
        assert (r.outcome, r.error) == ("typed", case.expect), r.message
    assert r.bait_opened == [], f"{name} opened {r.bait_opened}"
    assert not r.code_ran
    assert r.ok


def test_messages_name_the_file_and_the_reason(results: dict) -> None:
    assert "escapes the model's folder" in results["external-traversal"].message
    assert "is absolute" in results["external-absolute"].message
    assert "escapes the model's folder" in results["external-symlink"].message
    assert "No such file" in results["external-cwd"].message  # looked in the folder, not the cwd
    assert "memory bomb" in results["bomb-constantofshape"].message
    assert results["bomb-at-run"].message.startswith(
        "at run, state unchanged: True, the next step ran, a push failing in its second chunk rolled back: True"
    )
    assert "pickle" in results["pickle"].message
    assert "axis 2 is 8 in the graph, 999 in the spec" in results["spec-state-size"].message
    for name in ("empty", "text", "external-traversal", "spec-not-json", "spec-state-size"):
        assert "model.onnx" in results[name].message or "model" in results[name].message


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_external_cases_were_traced_at_the_system_call_level(results: dict) -> None:
    traced = [n for n, r in results.items() if n.startswith("external")]
    assert traced and all(results[n].traced for n in traced)


def test_random_mutants_of_a_model_never_crash_the_loader(base: onnx.ModelProto) -> None:
    r = run_mutants(base, 60, seed=3)
    assert r["not_ok"] == []
    assert sum(r["outcomes"].values()) == 60
    assert set(r["outcomes"]) <= {"ModelLoadError", "SpecError", "loaded"}
    assert r["outcomes"].get("ModelLoadError", 0) > 0


def test_the_bait_detector_sees_an_opened_bait(base: onnx.ModelProto, tmp_path: Path) -> None:
    """Control: a 'model' that is the bait itself is opened, and the detector must say so."""
    case = Case("control", "load the bait itself", ANY_TYPED, lambda d, b: d / "outside" / "bait.bin")
    item = (case, *prepare(case, tmp_path, base))
    for strace in {False, shutil.which("strace") is not None}:
        r = run_group([item], tmp_path, strace)["control"]
        assert r.outcome == "typed" and r.bait_opened, r
        assert not r.ok


def test_external_data_inside_the_folder_runs_like_the_inline_model(results: dict) -> None:
    inline, external = results["valid"].outputs, results["external-inside"].outputs
    assert inline is not None and external is not None
    np.testing.assert_array_equal(np.array(inline), np.array(external))
    assert np.abs(np.array(inline)).max() > 0


def test_inlined_bytes_hold_no_external_reference(base: onnx.ModelProto, tmp_path: Path) -> None:
    proto = onnx.ModelProto()
    proto.CopyFrom(base)
    init = max(proto.graph.initializer, key=lambda t: len(t.raw_data))
    (tmp_path / "w.bin").write_bytes(b"\0" * 16 + init.raw_data)
    n = len(init.raw_data)
    init.ClearField("raw_data")
    init.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", "w.bin"), ("offset", "16"), ("length", str(n))):
        e = init.external_data.add()
        e.key, e.value = key, value
    (tmp_path / "m.onnx").write_bytes(proto.SerializeToString())
    inspection = inspect_model((tmp_path / "m.onnx").read_bytes(), "m.onnx", str(tmp_path))
    assert inspection.inlined == ["w.bin"]
    again = onnx.load_from_string(inspection.data)
    back = next(t for t in again.graph.initializer if t.name == init.name)
    assert back.data_location == onnx.TensorProto.DEFAULT and len(back.external_data) == 0
    assert back.raw_data == next(t for t in base.graph.initializer if t.name == init.name).raw_data
    onnx.checker.check_model(again)


def test_limits_refuse_and_admit(exported: dict, tmp_path: Path) -> None:
    _, path = exported["gru"]
    with pytest.raises(ModelLoadError, match="Limits.max_tensor_bytes"):
        read_model(path, Limits(max_tensor_bytes=1000))
    with pytest.raises(ModelLoadError, match="above the limit 100"):
        read_model(path, Limits(max_file_bytes=100))
    with pytest.raises(SpecError, match="bytes per stream"):
        read_model(path, Limits(max_stream_bytes=64))
    assert read_model(path) == path.read_bytes()  # a clean model passes through unchanged


def test_pickle_file_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    (tmp_path / "model.onnx").write_bytes(pickle_bomb(marker))
    with pytest.raises(ModelLoadError, match="pickle"):
        Engine.load(tmp_path / "model.onnx")
    assert not marker.exists()


def test_engine_load_refuses_a_truncated_export(exported: dict, tmp_path: Path) -> None:
    _, path = exported["lstm"]
    data = path.read_bytes()
    for cut in (5, len(data) // 3, len(data) - 7):
        (tmp_path / "cut.onnx").write_bytes(data[:cut])
        with pytest.raises((ModelLoadError, SpecError)):
            Engine.load(tmp_path / "cut.onnx")


def test_protowire_bounds() -> None:
    msg = field_bytes(3, b"abc") + field_varint(4, 300)
    assert [(f.number, f.wire) for f in iter_fields(msg)] == [(3, 2), (4, 0)]
    assert read_varint(field_varint(1, 300), 1, 3) == (300, 3)
    for bad in (msg[:-1], msg[:3], b"\x0a\xff\xff\xff\xff\x0f", b"\x00", b"\x0f", b"\x80" * 11):
        with pytest.raises(WireError):
            list(iter_fields(bad))


def _bomb_spec(spec: StreamSpec, hidden: int) -> StreamSpec:
    from edgernn.runtime.spec import StateSpec

    state = StateSpec("h", "h_out", "float32", (2, "batch", hidden))  # (layers, batch, hidden)
    return StreamSpec(inputs=spec.inputs, outputs=spec.outputs, states=(state,))


def _extra_state(spec: StreamSpec, size: int) -> StreamSpec:
    from edgernn.runtime.spec import StateSpec

    extra = StateSpec("z", "z_out", "float32", (1, "batch", size))  # not in the graph: only its size is checked
    return StreamSpec(inputs=spec.inputs, outputs=spec.outputs, states=(*spec.states, extra))


def test_check_spec_refuses_a_hand_written_spec_that_disagrees_or_explodes(exported: dict) -> None:
    from edgernn.runtime.safety import check_spec

    _, path = exported["gru"]
    data = path.read_bytes()
    spec = Engine.load(path).spec
    check_spec(spec, data, "m.onnx")  # the exported spec agrees
    with pytest.raises(SpecError, match="axis 2 is 32 in the graph, 64 in the spec"):
        check_spec(_bomb_spec(spec, 64), data, "m.onnx")
    with pytest.raises(SpecError, match="memory bomb"):
        check_spec(_extra_state(spec, 10**11), data, "m.onnx", Limits())
    with pytest.raises(ModelLoadError):
        check_spec(spec, b"\x0f\x01", "m.onnx")


_EXPLICIT_CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from edgernn.runtime import Engine
from edgernn.runtime.spec import StateSpec, StreamSpec
spec = Engine.load(sys.argv[1]).spec
state = StateSpec("h", "h_out", "float32", (2, "batch", 10**11))
bomb = StreamSpec(inputs=spec.inputs, outputs=spec.outputs, states=(state,))
try:
    Engine.load(sys.argv[1], spec=bomb)
    print("accepted")
except Exception as exc:
    print(type(exc).__name__)
"""


def test_engine_load_refuses_a_hand_written_memory_bomb_spec(exported: dict) -> None:
    import subprocess
    import sys

    _, path = exported["gru"]
    out = subprocess.run(
        [sys.executable, "-c", _EXPLICIT_CHILD, str(path)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-400:]
    assert out.stdout.strip() == "SpecError"


def test_a_repeated_singular_field_is_read_as_protobuf_reads_it(tmp_path: Path) -> None:
    """data_type given twice (uint8, then double): protobuf keeps the last, and so must the size check."""
    from onnx import TensorProto, helper

    from edgernn.runtime.protowire import encode_field

    t = TensorProto()
    t.name, t.data_type = "w", TensorProto.UINT8
    t.dims.extend([1 << 27])  # 128 MiB as uint8, 1 GiB as double
    graph = helper.make_graph([], "g", [], [helper.make_tensor_value_info("w", TensorProto.DOUBLE, None)], [t])
    data = helper.make_model(graph).SerializeToString()
    forged_tensor = t.SerializeToString() + field_varint(2, TensorProto.DOUBLE)
    parts = []
    for f in iter_fields(data):
        if f.number != 7:
            parts.append(encode_field(f))
            continue
        inner = [encode_field(g) if g.number != 5 else field_bytes(5, forged_tensor) for g in iter_fields(f.payload)]
        parts.append(field_bytes(7, b"".join(inner)))
    (tmp_path / "m.onnx").write_bytes(b"".join(parts))
    assert onnx.load(str(tmp_path / "m.onnx")).graph.initializer[0].data_type == TensorProto.DOUBLE
    with pytest.raises(ModelLoadError, match=r"1073741824 bytes"):
        read_model(tmp_path / "m.onnx", Limits(max_tensor_bytes=1 << 28))
