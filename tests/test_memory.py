"""Per-stream memory (spec version 3): a stream holds the encoder outputs a decoder step attends over.

A real graph: a torch GRU decoder with masked dot-product attention over ``enc`` (tests/memory_models.py),
exported with torch.onnx. Parity with torch over carried steps, the typed errors (the stream
unchanged), reset / fork / snapshots, and the spec's version, schema and byte limits.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import memory_models as mm  # noqa: E402

from edgernn.runtime import Engine  # noqa: E402
from edgernn.runtime.errors import InputError, SnapshotError, SpecError, StreamError  # noqa: E402
from edgernn.runtime.memory import example as example_memory  # noqa: E402
from edgernn.runtime.modelscan import Limits  # noqa: E402
from edgernn.runtime.safety import check_spec  # noqa: E402
from edgernn.runtime.snapshot import _HEAD, MAGIC  # noqa: E402
from edgernn.runtime.spec import SPEC_VERSION, MemorySpec, StreamSpec  # noqa: E402

RNG = np.random.default_rng(7)


@pytest.fixture(scope="module")
def decoder(tmp_path_factory: pytest.TempPathFactory) -> tuple[mm.AttnDecoder, Path]:
    path = tmp_path_factory.mktemp("memory") / "decoder.onnx"
    return mm.export(path), path


def _enc(length: int) -> np.ndarray:
    return RNG.standard_normal((length, mm.MEM)).astype(np.float32)


def _tokens(n: int) -> list[int]:
    return [int(t) for t in RNG.integers(0, mm.VOCAB, n)]


def test_steps_and_chunks_match_torch_over_carried_steps(decoder) -> None:
    model, path = decoder
    engine = Engine.load(path)
    assert engine.describe()["path"] == "bound"
    for length in (1, 9, mm.MAX_LEN):
        enc, tokens = _enc(length), _tokens(300)
        want, attn = mm.reference(model, tokens, torch.from_numpy(enc))
        stream = engine.stream(memory={"enc": enc})
        stepped = np.stack([stream.step(t) for t in tokens])
        pushed = engine.stream(memory={"enc": enc}).push(np.array(tokens), chunk=37)
        d_step, d_push = np.abs(stepped - want.numpy()).max(), np.abs(pushed - want.numpy()).max()
        d_attn = np.abs(stream.last_outputs["attn"] - attn[-1].numpy()).max()
        print(f"length {length}: 300 steps, max |diff| step {d_step:.2e} chunks {d_push:.2e} attention {d_attn:.2e}")
        assert d_step < 1e-5 and d_push < 1e-5 and d_attn < 1e-6
    assert engine.describe()["path"] == "bound"  # other lengths than the probe's did not demote it


def test_a_step_without_memory_is_a_stream_error_saying_what_to_call(decoder) -> None:
    engine = Engine.load(decoder[1])
    stream = engine.stream()
    for call in (lambda: stream.step(1), lambda: stream.push([1, 2, 3]), lambda: engine.step_many([stream], [[1]])):
        with pytest.raises(StreamError, match=r"holds none: call stream\.set_memory\(\{'enc'"):
            call()
    batch = engine.batch()
    batch.join(stream)
    with pytest.raises(StreamError, match=r"batch member 0 .*set_memory"):
        batch.step(np.array([1]))
    assert stream.memory == {} and not np.any(stream.state()["h"])


BAD = {
    "not a dict": ([1, 2], r"expected a dict \{name: array\}"),
    "unknown name": ({"enc": np.zeros((3, mm.MEM), np.float32), "dec": 1}, r"unknown \['dec'\]"),
    "missing": ({}, r"missing \['enc'\]"),
    "int dtype": ({"enc": np.zeros((3, mm.MEM), np.int64)}, r"tensor 'enc' has dtype int64, expected float32"),
    "rank": ({"enc": np.zeros((1, 3, mm.MEM), np.float32)}, r"tensor 'enc' has shape \[1, 3, 12\] \(rank 3\)"),
    "width": ({"enc": np.zeros((3, 5), np.float32)}, r"tensor 'enc' axis 1 has size 5, expected 12"),
    "too long": ({"enc": np.zeros((mm.MAX_LEN + 1, mm.MEM), np.float32)}, r"axis 0 \('src_len'.*is 33, expected 1 to"),
    "empty": ({"enc": np.zeros((0, mm.MEM), np.float32)}, r"axis 0 \('src_len'.*is 0, expected 1 to 32"),
    "nan": ({"enc": np.full((3, mm.MEM), np.nan, np.float32)}, r"tensor 'enc' holds NaN"),
    "ragged": ({"enc": [[1.0, 2.0], [1.0]]}, r"tensor 'enc' is not an array"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_memory_is_an_input_error_and_nothing_of_the_stream_changes(decoder, case: str) -> None:
    engine = Engine.load(decoder[1])
    enc = _enc(5)
    stream = engine.stream(memory={"enc": enc})
    stream.push(_tokens(4))
    before, snap = stream.state()["h"].copy(), stream.snapshot()
    given, message = BAD[case]
    for call in (stream.set_memory, lambda m: stream.reset(memory=m), lambda m: engine.stream(memory=m)):
        with pytest.raises(InputError, match=message):
            call(given)
    np.testing.assert_array_equal(stream.state()["h"], before)
    np.testing.assert_array_equal(stream.memory["enc"], enc)
    assert stream.snapshot() == snap


def test_set_memory_reset_and_the_read_only_view(decoder) -> None:
    model, path = decoder
    engine = Engine.load(path)
    a, b = _enc(4), _enc(11)
    tokens = _tokens(20)
    stream = engine.stream(memory={"enc": a})
    stream.push(tokens)
    stream.reset()  # the state goes back, the memory stays
    np.testing.assert_array_equal(stream.memory["enc"], a)
    want_a = mm.reference(model, tokens, torch.from_numpy(a))[0].numpy()
    assert np.abs(stream.push(tokens) - want_a).max() < 1e-5
    stream.reset(memory={"enc": b})
    want_b = mm.reference(model, tokens, torch.from_numpy(b))[0].numpy()
    assert np.abs(stream.push(tokens) - want_b).max() < 1e-5
    with pytest.raises(ValueError, match="read-only"):
        stream.memory["enc"][0, 0] = 1.0
    given = _enc(3)
    stream.set_memory({"enc": given.astype(np.float64)})  # float64 is cast; the values are copied
    given[:] = 0
    assert stream.memory["enc"].dtype == np.float32 and np.any(stream.memory["enc"])
    assert np.any(stream.state()["h"])  # set_memory alone leaves the state where it was


def test_fork_carries_the_memory_and_diverges(decoder) -> None:
    engine = Engine.load(decoder[1])
    stream = engine.stream(memory={"enc": _enc(6)})
    stream.push(_tokens(10))
    child = stream.fork()
    np.testing.assert_array_equal(child.memory["enc"], stream.memory["enc"])
    tokens = _tokens(15)
    np.testing.assert_array_equal(child.push(tokens), stream.push(tokens))
    child.set_memory({"enc": _enc(2)})  # the parent keeps its own
    assert stream.memory["enc"].shape == (6, mm.MEM) and child.memory["enc"].shape == (2, mm.MEM)


def _format(blob: bytes) -> int:
    return _HEAD.unpack_from(blob, len(MAGIC))[0]


def test_snapshots_carry_the_memory_in_format_3(decoder) -> None:
    engine = Engine.load(decoder[1])
    stream = engine.stream(memory={"enc": _enc(9)})
    stream.push(_tokens(12))
    blob = stream.snapshot()
    assert _format(blob) == 3
    other = engine.stream(memory={"enc": _enc(2)})
    other.restore(blob)
    np.testing.assert_array_equal(other.memory["enc"], stream.memory["enc"])
    tokens = _tokens(10)
    np.testing.assert_array_equal(other.push(tokens), stream.push(tokens))
    fresh = engine.stream()
    fresh.restore(blob)  # a stream without memory takes the snapshot's
    assert fresh.memory["enc"].shape == (9, mm.MEM)
    # a snapshot taken before any memory was set is format 2 and restores "no memory"
    empty = engine.stream().snapshot()
    assert _format(empty) == 2
    other.restore(empty)
    assert other.memory == {}
    with pytest.raises(StreamError, match="set_memory"):
        other.step(1)


def test_a_forged_memory_entry_is_a_snapshot_error(decoder) -> None:
    engine = Engine.load(decoder[1])
    stream = engine.stream(memory={"enc": _enc(3)})
    blob = stream.snapshot()
    fixed = len(MAGIC) + _HEAD.size
    head_len = _HEAD.unpack_from(blob, len(MAGIC))[1]
    header = json.loads(blob[fixed : fixed + head_len])
    import hashlib

    def forge(edit) -> bytes:
        h = json.loads(json.dumps(header))
        edit(h)
        head = json.dumps(h, sort_keys=True).encode()
        body = blob[fixed + head_len : -32]
        out = blob[: len(MAGIC)] + _HEAD.pack(3, len(head)) + head + body
        return out + hashlib.sha256(out).digest()

    target = engine.stream(memory={"enc": _enc(4)})
    before = target.snapshot()
    for edit, message in (
        (lambda h: h["tensors"][-1].update(name="__memory__:dec"), "memory tensors"),
        (lambda h: h["tensors"][-1].update(shape=[1, 4, mm.MEM]), "shorter than its header|does not match"),
        (lambda h: h["tensors"][-1].update(shape=[1, 12, 3]), r"axis 1 has size 3, expected 12"),
        (lambda h: h["tensors"][-1].update(shape=[1, 36, 1]), r"is 36, expected 1 to 32"),
        (lambda h: h["tensors"][-1].update(dtype="int32"), "dtype int32"),
    ):
        with pytest.raises(SnapshotError, match=message):
            target.restore(forge(edit))
        assert target.snapshot() == before


def test_the_spec_round_trips_and_its_schema_types_every_memory_field(decoder) -> None:
    spec = mm.spec()
    assert StreamSpec.from_json(spec.to_json()) == spec and spec.version == SPEC_VERSION == 3
    raw = json.loads(spec.to_json())
    for edit, message in (
        (lambda r: r["memory"][0].update(max_length=0), r"memory\[0\]\.max_length: got 0"),
        (lambda r: r["memory"][0].update(max_length="32"), r"memory\[0\]\.max_length: got '32'"),
        (lambda r: r["memory"][0].update(mask=5), r"memory\[0\]\.mask: got 5"),
        (lambda r: r["memory"][0].update(shape=["batch", "src_len", 0]), r"memory\[0\]\.shape\[2\]: got 0"),
        (lambda r: r["memory"][0].update(colour=1), r"memory\[0\]: unknown field\(s\) \['colour'\]"),
        (lambda r: r.update(memory={"enc": 1}), r"memory: got \{'enc': 1\}"),
        (lambda r: r["memory"][0].update(shape=["batch", "a", "b"]), "at most one length symbol"),
        (lambda r: r["memory"][0].update(shape=["src_len", 12]), "'batch' once"),
        (lambda r: r["memory"][0].update(shape=["batch", "time", 12]), "'time' is not a memory axis"),
        (lambda r: r["memory"][0].pop("max_length"), "needs max_length"),
        (lambda r: r["memory"][0].update(mask="x"), "graph input 'x' is declared twice"),
        (lambda r: r.update(version=2), "field 'memory' needs version 3"),
    ):
        bad = json.loads(json.dumps(raw))
        edit(bad)
        with pytest.raises(SpecError, match=message):
            StreamSpec.from_json(json.dumps(bad))
    with pytest.raises(SpecError, match="a mask needs a length axis"):
        MemorySpec("m", "float32", ("batch", 4), mask="k")


def test_version_2_specs_still_load(decoder, exported) -> None:
    """A v2 document (what every model exported before this change holds) reads as v3 without memory."""
    raw = json.loads(mm.spec().to_json())
    del raw["memory"]
    raw["version"] = 2
    assert StreamSpec.from_json(json.dumps(raw)).memory == ()
    engine = Engine.load(exported["gru"][1])  # exported with this edgernn's writer: check the v2 reader too
    v2 = json.loads(engine.spec.to_json()) | {"version": 2}
    assert StreamSpec.from_json(json.dumps(v2)) == engine.spec
    import onnx

    from edgernn.runtime.spec import METADATA_KEY

    models = sorted((Path(__file__).parents[1] / "runtime" / "models").glob("*.onnx"))
    shipped = [p for p in models if not p.name.startswith("translate")]  # translate declares memory: v3
    assert len(shipped) >= 5
    versions = {}
    for path in shipped:  # whichever version each was exported at, it loads and streams
        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        versions[path.stem] = json.loads(meta[METADATA_KEY])["version"]
        engine = Engine.load(path)
        assert engine.spec.version == 3
        stream = engine.stream(memory=example_memory(engine.spec).view(engine.spec) if engine.spec.memory else None)
        stream.push(np.zeros((2, *engine.frame_shape), engine.input_dtype))
    print(f"shipped models, spec version in their files: {versions}")
    assert set(versions.values()) <= {1, 2, 3}


def test_the_memory_counts_in_max_stream_bytes_at_its_max_length(decoder) -> None:
    data = decoder[1].read_bytes()
    spec = mm.spec(max_length=1 << 20)  # 2^20 positions x 12 floats = 48 MiB per stream
    check_spec(spec, data, limits=Limits(max_stream_bytes=1 << 28))
    with pytest.raises(SpecError, match=r"bytes per stream \(state, frame, context, output, memory\)"):
        check_spec(spec, data, limits=Limits(max_stream_bytes=1 << 25))


def test_describe_and_inspect_show_the_memory(decoder) -> None:
    from edgernn.cli.inspect import _spec_lines

    engine = Engine.load(decoder[1])
    assert engine.describe()["memory"] == [
        {"name": "enc", "dtype": "float32", "shape": ["batch", "src_len", 12], "max_length": 32, "mask": "enc_mask"}
    ]
    lines = _spec_lines(json.loads(engine.spec.to_json()))
    assert "  memory enc float32 ['batch', 'src_len', 12] (per stream, max_length 32, mask enc_mask)" in lines


def test_structural_fuzz_of_a_memory_spec_gives_only_typed_errors(decoder) -> None:
    """150 mutants of the decoder's spec (reliability/specfuzz.py), loaded and streamed with memory."""
    import random

    from edgernn.reliability.specfuzz import mutate, to_text, with_spec
    from edgernn.runtime.dtypes import NP_DTYPES
    from edgernn.runtime.errors import EdgeRNNError

    data = decoder[1].read_bytes()
    base = json.loads(mm.spec().to_json())
    rng = random.Random(0)
    outcomes: dict[str, int] = {}
    path = decoder[1].with_name("fuzz.onnx")
    for _ in range(150):
        path.write_bytes(with_spec(data, to_text(mutate(base, rng))))
        try:
            engine = Engine.load(path)
            given = {
                m.name: np.zeros([1 if isinstance(d, str) else d for i, d in enumerate(m.shape) if i != m.batch_axis],
                                 NP_DTYPES[m.dtype])
                for m in engine.spec.memory
            }  # fmt: skip
            stream = engine.stream(memory=given or None)
            stream.push(np.zeros(3, np.int64) if engine.spec.inputs[0].dtype == "int64" else np.zeros((3, 1)))
            other = engine.stream()
            other.restore(stream.snapshot())
            engine.step_many([stream, other], [np.zeros(2, np.int64), np.zeros(1, np.int64)])
            outcome = "accepted"
        except EdgeRNNError as exc:
            outcome = type(exc).__name__
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print(f"memory spec fuzz, 150 mutants: {outcomes}")
    assert sum(outcomes.values()) == 150 and outcomes.get("accepted", 0) > 0


def test_the_cuda_stream_refuses_memory_and_every_stream_kind_keeps_the_protocol(decoder, exported) -> None:
    """CudaStream's logic on host OrtValues (as tests/test_devices_cuda.py runs it): a memory spec is refused."""
    from edgernn.devices.cuda import CudaStream
    from edgernn.runtime.protocol import StreamLike

    class HostStream(CudaStream):
        device_memory = "cpu"

    engine = Engine.load(decoder[1])
    with pytest.raises(StreamError, match="declares per-stream memory.*use the runtime's Stream"):
        HostStream(engine)
    stream = engine.stream(memory={"enc": _enc(3)})
    assert isinstance(stream, StreamLike)
    plain = HostStream(Engine.load(exported["gru"][1]))
    assert isinstance(plain, StreamLike) and plain.memory == {}
    with pytest.raises(InputError, match="declares no memory"):
        plain.set_memory({"enc": _enc(3)})
    with pytest.raises(InputError, match="declares no memory"):
        plain.reset(memory={"enc": _enc(3)})


def test_a_triton_repository_refuses_a_memory_spec(decoder, tmp_path: Path) -> None:
    import onnx

    from edgernn.export.errors import ExportError
    from edgernn.export.triton import write_repository

    with pytest.raises(ExportError, match=r"per-stream memory \['enc'\].*serve this model with the engine"):
        write_repository(tmp_path / "repo", onnx.load(str(decoder[1])), mm.spec())
    assert not (tmp_path / "repo").exists() or not any((tmp_path / "repo").iterdir())


def test_profile_times_a_memory_model_at_its_max_length(decoder) -> None:
    """``edgernn profile`` / ``devices auto`` time the engine's own call; a memory model gets memory at max_length."""
    from edgernn.runtime.profiling import cold_start, engine_call, op_breakdown

    engine, cold = cold_start(str(decoder[1]))
    assert cold.first_call_ms > 0
    for batch, chunk in ((1, 1), (1, 8), (4, 1), (4, 3)):
        call, label = engine_call(engine, batch, chunk)
        call()
        assert "engine" in label
    stream = engine.stream(memory=example_memory(engine.spec).view(engine.spec))
    assert stream.memory["enc"].shape == (mm.MAX_LEN, mm.MEM)
    costs, mean_us = op_breakdown(str(decoder[1]), batch=2, calls=5)
    assert mean_us > 0 and any(c.op == "MatMul" for c in costs)
