"""The CUDA stream: state on the device, ping-pong bindings, lanes in lockstep, parity with the CPU.

Its logic is tested everywhere on host memory (``device_memory = "cpu"``: the same bindings, copies
and ping-pong, with onnxruntime's CPU OrtValues); the real CUDA tests skip without a GPU
build and run on a GPU machine (``bench/gpu_check.py`` runs this file).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from edgernn.devices import load_engine
from edgernn.devices.cuda import CudaStream, cuda_runtime, stream_options
from edgernn.devices.profiles import load_profile
from edgernn.export.parity import sample_inputs
from edgernn.runtime import Engine
from edgernn.runtime.errors import InputError, StreamError

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()
needs_cuda = pytest.mark.skipif(
    not HAS_CUDA, reason="no CUDAExecutionProvider here (onnxruntime-gpu + NVIDIA GPU): run bench/gpu_check.py there"
)


class HostStream(CudaStream):
    """CudaStream's logic on host OrtValues: what runs on the GPU, minus the GPU."""

    device_memory = "cpu"


def lanes(model, n: int, steps: int) -> np.ndarray:
    return np.stack([sample_inputs(model, steps, seed=10 + i) for i in range(n)], axis=1)  # (steps, lanes, ...)


@pytest.mark.parametrize("key", ["frames-gru", "frames-lstm"])
def test_device_stream_logic_matches_the_cpu_stream(exported, key: str) -> None:
    model, path = exported[key]
    engine = Engine.load(path)
    xs = sample_inputs(model, 200, seed=3)
    dev, ref = HostStream(engine), engine.stream()
    got = np.concatenate([np.stack([dev.step(x) for x in xs[:120]]), dev.push(xs[120:], chunk=16)])
    want = np.stack([ref.step(x) for x in xs])
    assert got.shape == want.shape == (200, 3)
    assert np.abs(got - want).max() <= 1e-6
    for k, v in ref.state().items():
        np.testing.assert_allclose(dev.state()[k], v, atol=1e-6)
    assert dev.transfer == "pageable" and dev.rt is None
    dev.reset()
    np.testing.assert_allclose(dev.step(xs[0]), Engine.load(path).stream().step(xs[0]), atol=1e-7)


def test_lanes_advance_in_lockstep_like_separate_streams(exported) -> None:
    model, path = exported["frames-gru"]
    engine = Engine.load(path)
    xs = lanes(model, 4, 30)
    batch = HostStream(engine, lanes=4)
    got = np.stack([batch.step(x) for x in xs])  # (steps, lanes, out)
    for i in range(4):
        one = engine.stream()
        np.testing.assert_allclose(got[:, i], np.stack([one.step(x) for x in xs[:, i]]), atol=1e-6)
    with pytest.raises(InputError, match=r"axis 0 \(lanes\) has size 3, expected 4"):
        batch.step(xs[0, :3])
    with pytest.raises(InputError, match="steps 4 lanes in lockstep"):
        batch.push(xs[:, 0])


def test_bad_input_and_closed_stream_leave_state_alone(exported) -> None:
    model, path = exported["frames-rnn"]
    dev = HostStream(Engine.load(path))
    dev.step(sample_inputs(model, 1)[0])
    before = dev.state()
    with pytest.raises(InputError, match=r"input 'x': frame axis 0 has size 5, expected 6"):
        dev.step(np.zeros(5, np.float32))
    with pytest.raises(InputError, match="NaN or Inf"):
        dev.push(np.full((4, 6), np.nan, np.float32))
    for k, v in before.items():
        np.testing.assert_array_equal(dev.state()[k], v)
    dev.close()
    with pytest.raises(StreamError, match="closed"):
        dev.step(np.zeros(6, np.float32))


def test_cuda_pieces_stand_down_without_cuda() -> None:
    if HAS_CUDA:
        pytest.skip("CUDA is here: the no-CUDA path is not this machine's")
    assert cuda_runtime() is None
    assert stream_options("CUDAExecutionProvider", {}) == {}
    assert load_profile("cuda").providers() == [("CUDAExecutionProvider", {
        "device_id": "0", "arena_extend_strategy": "kSameAsRequested", "cudnn_conv_algo_search": "DEFAULT",
        "do_copy_in_default_stream": "1", "use_tf32": "0"})]  # fmt: skip


@needs_cuda
@pytest.mark.parametrize("profile", ["cuda", "cuda-graph"])
@pytest.mark.parametrize("key", ["frames-gru", "frames-lstm", "frames-rnn"])
def test_cuda_matches_cpu_over_300_carried_steps(exported, profile: str, key: str) -> None:
    model, path = exported[key]
    engine, report = load_engine(path, profile)
    assert report.ok, str(report)
    assert set(report.counts()) == {"CUDAExecutionProvider"}
    stream = engine.stream()
    assert isinstance(stream, CudaStream) and stream.graphs == (profile == "cuda-graph")
    assert stream.transfer in ("pinned+stream", "pinned", "pageable")
    xs = sample_inputs(model, 300, seed=4)
    got = np.stack([stream.step(x) for x in xs])
    ref = Engine.load(path).stream()
    want = np.stack([ref.step(x) for x in xs])
    err = float(np.abs(got - want).max())
    print(f"{profile} {key}: max |diff| vs CPU over 300 steps {err:.2e}, transfer {stream.transfer}")
    assert err <= 1e-4
    pushed = engine.stream().push(xs, chunk=64)
    assert np.abs(pushed - want).max() <= 1e-4


@needs_cuda
def test_cuda_graph_lanes_match_batch_one(exported) -> None:
    model, path = exported["frames-gru"]
    engine, _ = load_engine(path, "cuda-graph")
    xs = lanes(model, 8, 50)
    batch = CudaStream(engine, lanes=8)
    got = np.stack([batch.step(x) for x in xs])
    ref = Engine.load(path)
    for i in (0, 7):
        one = ref.stream()
        np.testing.assert_allclose(got[:, i], np.stack([one.step(x) for x in xs[:, i]]), atol=1e-4)
