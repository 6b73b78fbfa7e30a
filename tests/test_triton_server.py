"""A real tritonserver (nvidia-pytriton's 2.51, Python backend) serving the twin, driven by the real
tritonclient over HTTP and gRPC: interleaved sequences equal to the engine alone, Triton's own
errors for unknown / idle sequences, END and idle eviction measured in the twin, bad input refused
without touching any other sequence. Run by `make triton` (skips in a plain `make test`)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from conftest import tiny_model
from tritonhelp import IDLE_US, TEXTGEN, chunks, make_repository, reference, server_venv

from edgernn.export.onnx_export import attach_spec, to_onnx_proto
from edgernn.export.triton_route import TwinClient
from edgernn.export.triton_server import LocalTriton
from edgernn.export.triton_twin import write_twin
from edgernn.runtime import Engine
from edgernn.runtime.spec import StreamSpec

pytestmark = pytest.mark.triton
VOCAB = 78


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    venv = server_venv()
    repo = make_repository(tmp_path_factory.mktemp("repo"))
    model = tiny_model("lstm", "frames")  # two states (h, c), float frames of 6 features
    spec = StreamSpec.for_model(model.config)
    write_twin(repo / "lstm_twin", attach_spec(to_onnx_proto(model), spec), spec, "lstm_twin")
    s = LocalTriton(repo, venv=venv, models=["char_twin", "idle_twin", "oldest_twin", "lstm_twin"])
    try:
        s.start()
        pgid = s.pid
        yield s
    finally:
        s.cleanup()
        assert not s.running()
    assert pgid is not None and not LocalTriton.group_alive(pgid)  # no server, no backend stub left


def url(server: LocalTriton, protocol: str) -> str:
    return server.http_url if protocol == "http" else server.grpc_url


def triton_error(protocol: str) -> type[Exception]:
    if protocol == "http":
        from tritonclient.utils import InferenceServerException
    else:
        from tritonclient.grpc import InferenceServerException  # type: ignore[no-redef]
    return InferenceServerException


@pytest.mark.parametrize(("protocol", "model"), [("http", "char_twin"), ("grpc", "char_twin"), ("grpc", "oldest_twin")])
def test_interleaved_sequences_equal_the_engine_alone(server, protocol, model) -> None:
    n = 10
    plans = {1000 + i: chunks(seed=i, total=12 + 5 * i, vocab=VOCAB) for i in range(n)}  # 12..57 frames
    got: dict[int, list[np.ndarray]] = {c: [] for c in plans}
    errors: list[BaseException] = []
    before = TwinClient(url(server, protocol), model, protocol).info()

    def run(corrid: int, delay: float) -> None:
        try:
            time.sleep(delay)  # different start times
            client = TwinClient(url(server, protocol), model, protocol)
            parts = plans[corrid]
            for k, frames in enumerate(parts):
                got[corrid].append(client.step(corrid, frames, start=k == 0, end=k == len(parts) - 1))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c, 0.02 * (i % 4))) for i, c in enumerate(plans)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[0]
    worst = 0.0
    for corrid, parts in plans.items():
        want = reference(parts)
        y = np.concatenate(got[corrid])
        assert y.shape == want.shape
        worst = max(worst, float(np.abs(y - want).max()))
    after = TwinClient(url(server, protocol), model, protocol).info()
    print(f"{protocol} {model}: {n} interleaved sequences through tritonserver vs the engine alone: max |diff| "
          f"{worst:.2e}; {after['stepped'] - before['stepped']} requests in {after['calls'] - before['calls']} "
          f"batched calls, up to {after['max_in_call']} in one; {after['fillers'] - before['fillers']} READY=0 fillers")
    assert worst <= 1e-6
    assert after["max_in_call"] > 1  # the batcher did put several sequences into one engine call
    if model == "char_twin":  # `direct` fills empty slots with READY=0 requests: they reached the twin, harmlessly
        assert after["fillers"] > before["fillers"]
    assert after["corrids"] == []  # every sequence ended: no member left


def test_lstm_with_float_frames_and_two_states(server) -> None:
    engine = Engine.load(server.repository / "lstm_twin" / "1" / "model.onnx")
    rng = np.random.default_rng(7)
    plans = {4000 + i: [rng.standard_normal((int(rng.integers(1, 4)), 6)).astype(np.float32) for _ in range(6 + i)]
             for i in range(8)}
    got: dict[int, list[np.ndarray]] = {c: [] for c in plans}
    errors: list[BaseException] = []

    def run(corrid: int) -> None:
        try:
            client = TwinClient(server.grpc_url, "lstm_twin", "grpc")
            for k, frames in enumerate(plans[corrid]):
                got[corrid].append(client.step(corrid, frames, start=k == 0, end=k == len(plans[corrid]) - 1))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[0]
    worst = 0.0
    for corrid, parts in plans.items():
        stream = engine.stream()
        want = np.concatenate([stream.push(f) for f in parts])
        worst = max(worst, float(np.abs(np.concatenate(got[corrid]) - want).max()))
    print(f"LSTM (h, c), float frames: 8 interleaved sequences vs the engine alone: max |diff| {worst:.2e}")
    assert worst <= 1e-6


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_unknown_sequence_without_start_gets_tritons_error(server, protocol) -> None:
    client = TwinClient(url(server, protocol), "char_twin", protocol)
    with pytest.raises(triton_error(protocol), match="must specify the START flag"):
        client.step(777_001, np.array([1, 2], np.int64))


def test_end_frees_the_sequence_state(server) -> None:
    client = TwinClient(server.http_url, "char_twin")
    base = client.info()
    client.step(5001, np.array([3, 4, 5], np.int64), start=True)
    live = client.info()
    assert live["corrids"] == [*base["corrids"], 5001] and live["members"] == base["members"] + 1
    per_member = live["state_bytes"] - base["state_bytes"]
    state = Engine.load(TEXTGEN).stream().state()
    assert per_member == 2 * sum(v.nbytes for v in state.values())  # ping-pong: two buffers per state
    client.step(5001, np.array([6], np.int64), end=True)
    gone = client.info()
    print(f"END: members {live['members']} -> {gone['members']}, state bytes {live['state_bytes']} -> "
          f"{gone['state_bytes']} (one member holds {per_member} bytes)")
    assert gone["corrids"] == base["corrids"] and gone["state_bytes"] == base["state_bytes"]


def test_idle_sequence_is_dropped_by_triton_and_freed_by_the_twin(server) -> None:
    client = TwinClient(server.http_url, "idle_twin")
    client.step(6001, np.array([1, 2], np.int64), start=True)
    client.step(6002, np.array([1], np.int64), start=True)
    assert client.info()["corrids"] == [6001, 6002]
    deadline = time.monotonic() + IDLE_US / 1e6 * 2 + 1.0
    while time.monotonic() < deadline:  # 6002 stays busy; 6001 idles past max_sequence_idle_microseconds
        client.step(6002, np.array([1], np.int64))
        time.sleep(0.2)
    # the twin freed 6001 by itself (Triton never tells the backend): idle_after = the same limit
    info = client.info()
    print(f"idle {IDLE_US / 1e6}s: live in the twin {info['corrids']}, state bytes {info['state_bytes']}")
    assert info["corrids"] == [6002]
    with pytest.raises(triton_error("http"), match="must specify the START flag"):
        client.step(6001, np.array([3], np.int64))  # Triton dropped it too
    client.step(6002, np.array([1], np.int64), end=True)
    assert client.info()["corrids"] == []


def test_bad_input_is_refused_and_no_other_sequence_changes(server) -> None:
    import tritonclient.http as http
    from tritonclient.utils import InferenceServerException

    client = TwinClient(server.http_url, "char_twin")
    plan = chunks(seed=99, total=30, vocab=VOCAB)
    outs = [client.step(8001, plan[0], start=True)]
    victim = 8002
    client.step(victim, np.array([1, 2], np.int64), start=True)

    def raw(inp: http.InferInput, corrid: int = victim) -> None:
        client.client.infer("char_twin", [inp], sequence_id=corrid)

    wrong_dtype = http.InferInput("x", [1, 2], "FP32")
    wrong_dtype.set_data_from_numpy(np.array([[1.0, 2.0]], np.float32))
    with pytest.raises(InferenceServerException, match="(?i)data.?type.*x|x.*data.?type"):
        raw(wrong_dtype)
    wrong_shape = http.InferInput("x", [1, 2, 3], "INT64")
    wrong_shape.set_data_from_numpy(np.zeros((1, 2, 3), np.int64))
    with pytest.raises(InferenceServerException, match="(?i)shape.*x|x.*shape"):
        raw(wrong_shape)
    with pytest.raises(InferenceServerException, match="'x'.*78|token"):
        client.step(victim, np.array([1, 500], np.int64))  # a token outside the vocabulary
    blob = client.snapshot(victim)
    damaged = blob[:40] + bytes([blob[40] ^ 0xFF]) + blob[41:]
    with pytest.raises(InferenceServerException, match="corrupted|checksum"):
        client.restore(8003, damaged)
    foreign = Engine.load(ROOT_MODELS / "weather.onnx").stream().snapshot()
    with pytest.raises(InferenceServerException, match="another model"):
        client.restore(8004, foreign)
    with pytest.raises(InferenceServerException, match="has no state in this instance"):
        client.step(8003, np.array([1], np.int64))  # the failed restore joined nothing
    assert client.snapshot(victim) == blob  # the victim's state is exactly as it was
    for k, frames in enumerate(plan[1:], start=1):  # and the other sequence carries on unchanged
        outs.append(client.step(8001, frames, end=k == len(plan) - 1))
    diff = float(np.abs(np.concatenate(outs) - reference(plan)).max())
    print(f"after 5 refused requests: other sequence vs the engine alone max |diff| {diff:.2e}")
    assert diff <= 1e-6
    client.snapshot(victim, end=True)
    for corrid in (8003, 8004):  # started in Triton by the refused restores: end them
        with pytest.raises(InferenceServerException, match="has no state"):
            client.snapshot(corrid, end=True)
    assert client.info()["corrids"] == []


ROOT_MODELS = TEXTGEN.parent
