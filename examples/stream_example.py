"""The streaming engine end to end: streams, chunks, snapshots, forks, a batch with ragged frames.

Run:  python examples/stream_example.py [model.onnx]
(default: the example character model shipped in edgernn/runtime/models/textgen.onnx;
build it with `make models` if it is missing). Needs only numpy and onnxruntime.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import edgernn.runtime
from edgernn.runtime import Engine

DEFAULT = Path(edgernn.runtime.__file__).parent / "models" / "textgen.onnx"


def frames(engine: Engine, n: int, rng: np.random.Generator) -> np.ndarray:
    """n valid frames for any model: token ids, or real-valued feature frames."""
    if engine.vocab_size is not None:
        return rng.integers(0, engine.vocab_size, size=n, dtype=np.int64)
    return rng.standard_normal((n, *engine.frame_shape)).astype(engine.input_dtype)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default=str(DEFAULT), help="an ONNX model exported by edgernn")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    engine = Engine.load(args.model)  # the stream spec comes from the model's metadata
    print(f"{args.model}: frame {engine.frame_shape} {engine.input_dtype.__name__}, profile {engine.profile.name}")

    # One caller: step one frame at a time, or push any number (cut into chunks inside).
    stream = engine.stream()
    xs = frames(engine, 200, rng)
    stepped = np.stack([stream.step(x) for x in xs[:100]])
    pushed = stream.push(xs[100:], chunk=64)
    print(f"stepped {stepped.shape}, pushed {pushed.shape}")

    # Snapshots: bytes to save or move; a restored stream continues bit-identically. Forks branch.
    blob = stream.snapshot()
    other = engine.stream()
    other.restore(blob)
    branch = stream.fork()
    nxt = frames(engine, 10, rng)
    a, b, c = stream.push(nxt), other.push(nxt), branch.push(nxt)
    same = np.array_equal(a, b) and np.array_equal(a, c)
    print(f"snapshot of {len(blob)} bytes; the restored stream and the fork continue identically: {same}")

    # Many streams, one call: a batch. step() takes one frame per member; step_many() any counts.
    evicted: list[bytes] = []
    batch = engine.batch(max_streams=8, idle_after=30.0, on_evict=lambda s: evicted.append(s.snapshot()))
    members = [batch.join() for _ in range(4)]
    ys = batch.step(frames(engine, 4, rng))  # frames[i] for batch.streams[i]
    outs = batch.step_many({members[0]: frames(engine, 5, rng), members[1]: frames(engine, 2, rng), members[2]: []})
    print(f"batch step {ys.shape}; ragged: {[o.shape for o in outs.values()]} (member 2 fed nothing: untouched)")
    batch.leave(members[3])  # leaves with its state; goes on as a loose stream
    members[3].step(frames(engine, 1, rng)[0])
    for s in (stream, other, branch):
        s.close()
    batch.close()


if __name__ == "__main__":
    main()
