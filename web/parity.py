"""One parity case, run the same way by parity.html (the JS engine) and by the Python engine.

A case is a run of items (tokens, frames or samples) of the model's streamed input (a dict of
them, the same count each, for a model with several streamed inputs) and:

* a step phase: ``steps`` calls of ``step`` on ``step_items`` items each (1, or the window);
* a push phase: ``push`` calls of the given sizes from item 0 (``chunk`` frames per call inside),
  then ``flush()`` for a window model; the page snapshots after push call ``snapshot_after``;
* a restore phase: a snapshot Python took (``python_snapshot``) restored in the page, then
  pushes of ``after_pushes`` from item ``after_start`` (and a flush);
* a bad step (``bad``: a token id, "nan" for a frame of NaN, "wide" for one value too many in the
  first input's frame) that must fail typed, with the state kept.

``write_case`` puts ``inputs.json`` and ``inputs.bin`` (the items, little-endian, one input after
the other) into the site;
``python_run`` runs the same phases on a Python stream; ``read_result`` decodes the page's answer.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgernn.runtime import Engine, Stream


@dataclass
class Case:
    items: np.ndarray | dict[str, np.ndarray]  # (n, *frame) of the input's dtype, or one per input
    steps: int
    step_items: int
    pushes: list[int]
    chunk: int = 64
    snapshot_after: int = 1  # push calls before the page's snapshot
    after_start: int = 0
    after_pushes: list[int] = field(default_factory=list)
    bad: Any = "nan"
    python_snapshot: bytes = b""
    memory: dict[str, np.ndarray] | None = None  # per-stream memory every stream of the case holds

    def meta(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("items")
        d["python_snapshot"] = base64.b64encode(self.python_snapshot).decode()
        d["inputs"] = [{"name": k, "dtype": str(v.dtype), "values": int(v.size)} for k, v in self.named().items()]
        d["n"] = count(self.items)
        d["memory"] = {k: v.ravel().tolist() for k, v in self.memory.items()} if self.memory else None
        return d

    def stream(self, engine: Engine) -> Stream:
        return engine.stream(memory=self.memory) if self.memory else engine.stream()

    def named(self) -> dict[str, np.ndarray]:
        return self.items if isinstance(self.items, dict) else {"": self.items}


def take(items: np.ndarray | dict[str, np.ndarray], a: int, b: int) -> Any:
    """Items ``a:b`` (of every input)."""
    return {k: v[a:b] for k, v in items.items()} if isinstance(items, dict) else items[a:b]


def count(items: np.ndarray | dict[str, np.ndarray]) -> int:
    return int(next(iter(items.values())).shape[0]) if isinstance(items, dict) else int(items.shape[0])


def flat_rows(rows: Any) -> np.ndarray:
    return np.concatenate([np.asarray(r, dtype=np.float32).ravel() for r in rows]) if len(rows) else np.zeros(0)


def pushes(stream: Stream, items: Any, start: int, sizes: list[int], chunk: int) -> list[np.ndarray]:
    """Push ``sizes`` items from ``start`` (and flush a window model); the rows returned, one per frame / call."""
    rows: list[np.ndarray] = []
    at = start
    for size in sizes:
        rows.extend(stream.push(take(items, at, at + size), chunk=chunk))
        at += size
    if stream.engine.window is not None:
        rows.extend(stream.flush())
    return rows


def python_run(engine: Engine, case: Case) -> dict[str, Any]:
    """The case's phases on Python streams: stepped and pushed rows, the snapshot the page should restore."""
    xs, k = case.items, case.step_items
    s = case.stream(engine)
    one = (lambda i: {n: v[i] for n, v in xs.items()}) if isinstance(xs, dict) else (lambda i: xs[i])
    stepped = [s.step(take(xs, i * k, (i + 1) * k) if k > 1 else one(i)) for i in range(case.steps)]
    p = case.stream(engine)
    pushed = pushes(p, xs, 0, case.pushes, case.chunk)
    return {"stepped": flat_rows(stepped), "pushed": flat_rows(pushed)}


def write_case(root: Path, case: Case) -> None:
    (root / "inputs.json").write_text(json.dumps(case.meta()))
    blocks = (np.ascontiguousarray(v, dtype=v.dtype.newbyteorder("<")).tobytes() for v in case.named().values())
    (root / "inputs.bin").write_bytes(b"".join(blocks))


def read_result(text: str) -> dict[str, Any]:
    got = json.loads(text)
    if "error" in got:
        raise AssertionError(f"the page failed: {got['error']}")
    for key in ("stepped", "pushed", "fromPython"):
        got[key] = np.frombuffer(base64.b64decode(got[key]), dtype="<f4")
    got["snapshot"] = base64.b64decode(got["snapshot"])
    return got
