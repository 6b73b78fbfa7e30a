"""Thread churn: step_many, Batch join/leave/step, close and snapshots on shared streams at once.

Each case starts four threads on one engine with a shared pool of loose streams and one
batch; for a fixed number of operations each thread picks at random: ``engine.step_many``
over two or three pool streams, ``batch.join`` of a pool stream, ``batch.leave``,
``batch.step``, ``stream.push``, ``snapshot`` / ``restore`` across streams, or ``close`` (the
stream is replaced in the pool). Refusals must be typed (a closed stream, a stream in a
batch); anything else is counted as untyped; a deadlock is a hang (the parent's timeout).

Example:
    >>> ctx = setup(Path("/tmp/x"), 0)  # doctest: +SKIP
"""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

from edgernn.reliability.specfuzz import MODEL, example_frames
from edgernn.reliability.specfuzz import prepare as prepare_model

THREADS = 4
OPS = 60


def prepare(root: Path, seed: int) -> None:
    prepare_model(root, seed)


def setup(root: Path, seed: int) -> dict[str, Any]:
    from edgernn.runtime.engine import Engine

    return {"engine": Engine.load(root / MODEL), "seed": seed}


def run_case(ctx: dict[str, Any], i: int) -> str:
    from edgernn.runtime.errors import EdgeRNNError

    engine = ctx["engine"]
    pool = [engine.stream() for _ in range(6)]
    batch = engine.batch(max_streams=8)
    lock = threading.Lock()  # guards the pool list only (not the streams)
    errors: list[str] = []
    typed: dict[str, int] = {}

    def pick(rng: random.Random, k: int = 1) -> list[Any]:
        with lock:
            return rng.sample(pool, k)

    def op(rng: random.Random) -> None:
        kind = rng.random()
        if kind < 0.25:
            streams = pick(rng, rng.randint(2, 3))
            engine.step_many(streams, [example_frames(engine, rng.randint(0, 3), rng) for _ in streams])
        elif kind < 0.4:
            batch.join(pick(rng)[0])
        elif kind < 0.5:
            batch.leave(pick(rng)[0])
        elif kind < 0.6:
            if batch.streams:  # one frame per member (a member that left meanwhile: InputError, typed)
                batch.step(example_frames(engine, len(batch.streams), rng))
        elif kind < 0.75:
            pick(rng)[0].push(example_frames(engine, rng.randint(1, 5), rng), chunk=2)
        elif kind < 0.9:
            a, b = pick(rng, 2)
            b.restore(a.snapshot())
        else:
            victim = pick(rng)[0]
            victim.close()
            with lock:
                if victim in pool:  # another thread may have replaced it already
                    pool[pool.index(victim)] = engine.stream()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(OPS):
            try:
                op(rng)
            except EdgeRNNError as exc:
                with lock:
                    typed[type(exc).__name__] = typed.get(type(exc).__name__, 0) + 1
            except Exception as exc:  # the finding: recorded, the thread goes on
                with lock:
                    errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")

    threads = [threading.Thread(target=worker, args=(ctx["seed"] * 1_000_003 + i * 31 + t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batch.close()
    for s in pool:
        s.close()
    if errors:
        return f"untyped: {errors[0]}"
    return "accepted" if not typed else "typed: " + ", ".join(sorted(typed))
