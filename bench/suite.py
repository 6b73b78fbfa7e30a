"""Interleaved timing of contenders, case by case: medians, p99 and a parity check first.

Within a case every contender runs in short blocks, round after round, the order rotated
each round, so a change in machine load touches them all alike; a contender's figure is
the median (and p99) over all its timed calls. Before timing, each contender's first
output (from the initial state) is compared with the float64 reference
(``reliability/reference.py``, the cell equations written once).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgernn.bench import models
from edgernn.bench.contenders import CONTENDERS, Case, NotAvailable, Subject
from edgernn.reliability.reference import Reference
from edgernn.runtime.latency import time_calls

# int8 error is bounded but not small: its first output is reported, not held to fp32 parity.
APPROXIMATE = ("engine int8", "engine int8 accurate")


@dataclass
class Timing:
    median_us: float
    p99_us: float
    calls: int
    max_abs_diff: float  # first output vs the float64 reference
    rounds: list[float] = field(default_factory=list)  # the median of each round's block


@dataclass
class CaseResult:
    case: Case
    timings: dict[str, Timing] = field(default_factory=dict)
    not_run: dict[str, str] = field(default_factory=dict)  # contender -> why

    def median(self, name: str) -> float | None:
        t = self.timings.get(name)
        return t.median_us if t is not None else None

    def ratio(self, num: str, den: str) -> float | None:
        """time(num) / time(den): the median over rounds of the two blocks' ratio in each round.

        Blocks of one round ran back to back, so a burst of machine load that lasts several
        blocks cancels out of the paired ratio; the ratio of the overall medians is the
        fallback when the rounds do not pair. None when either did not run.
        """
        a, b = self.timings.get(num), self.timings.get(den)
        if a is None or b is None:
            return None
        if a.rounds and len(a.rounds) == len(b.rounds):
            return float(np.median(np.asarray(a.rounds) / np.asarray(b.rounds)))
        return a.median_us / b.median_us

    def peer_ratio(self) -> float | None:
        """time(strongest PyTorch peer) / time(engine), paired by round: above 1 the engine is faster."""
        peer = self.peer()
        return self.ratio(peer[0], "engine") if peer is not None and "engine" in self.timings else None

    def peer(self) -> tuple[str, float] | None:
        """The strongest PyTorch contender that ran: (name, median µs)."""
        ran = [(n, t.median_us) for n, t in self.timings.items() if n.startswith("torch")]
        return min(ran, key=lambda r: r[1]) if ran else None


@dataclass(frozen=True)
class Settings:
    rounds: int = 15
    block_s: float = 0.015  # target time of one block of calls
    max_block: int = 4000
    min_block: int = 1  # calls per block even when one call outlasts block_s
    warmup: int = 5
    case_budget_s: float = 3.0  # rounds are cut (to no fewer than 3) to fit this per case


def subject_for(case: Case, seed: int = 0, int8: bool = False) -> Subject:
    """Build (or read from the cache) the model for ``case`` and the input every contender gets."""
    key = models.ModelKey(case.cell, case.hidden)
    torch_model = models.torch_model(key, seed)
    int8_path = models.int8_path(key, seed) if int8 else None
    accurate = models.int8_path(key, seed, accurate=True) if int8 else None
    decomposed = models.decomposed_path(key, seed) if int8 else None
    rng = np.random.default_rng(seed)
    x = rng.integers(0, models.VOCAB, size=(case.batch, case.chunk), dtype=np.int64)
    weights = models.numpy_weights(torch_model)
    native = models.fp32_path(key, seed)
    path = models.auto_path(key, seed)  # what `edgernn export` writes: the engine, raw and session.run run it
    return Subject(case, path, int8_path, torch_model, weights, x, accurate, decomposed, native)


def run_case(case: Case, names: list[str], settings: Settings, log: Callable[[str], None] | None = None) -> CaseResult:
    """Time ``names`` on ``case``, interleaved; contenders that cannot run are recorded with the reason."""
    result = CaseResult(case)
    subject = subject_for(case, int8="engine int8" in names)
    ref, _ = Reference(subject.weights, subject.torch_model.config).sequences(subject.x)
    calls: dict[str, Callable[[], Any]] = {}
    diffs: dict[str, float] = {}
    for name in names:
        try:
            call = CONTENDERS[name](subject)
            first = np.asarray(call(), dtype=np.float32).reshape(ref.shape)
        except NotAvailable as exc:
            result.not_run[name] = str(exc)
            continue
        diffs[name] = float(np.abs(first - ref).max())
        calls[name] = call
    times = _interleave(calls, settings)
    for name, blocks in times.items():
        us = np.concatenate(blocks)
        result.timings[name] = Timing(
            median_us=float(np.median(us)),
            p99_us=float(np.percentile(us, 99)),
            calls=int(us.size),
            max_abs_diff=diffs[name],
            rounds=[float(np.median(b)) for b in blocks],
        )
    if log is not None:
        log(summary_line(result))
    return result


def _interleave(calls: dict[str, Callable[[], Any]], s: Settings) -> dict[str, list[np.ndarray]]:
    """Per contender, one array of per-call µs per round.

    Warm-up runs up to ``s.warmup`` calls (at most ~0.2 s); blocks hold ~``s.block_s`` of
    calls (at least ``s.min_block`` when that stays under 0.1 s); the number of rounds is cut
    to fit ``s.case_budget_s`` (never below 3), so a grid with 1-second calls stays finite.
    """
    names = list(calls)
    per_call: dict[str, float] = {}
    for name in names:  # warm-up, and a first estimate of the call's cost (a median: load spikes)
        t0 = time.perf_counter()
        warm: list[float] = []
        while len(warm) < s.warmup and (not warm or time.perf_counter() - t0 < 0.2):
            t = time.perf_counter()
            calls[name]()
            warm.append(time.perf_counter() - t)
        per_call[name] = max(float(np.median(warm)), 1e-7)
    block = {}
    for name in names:
        k = int(min(s.max_block, max(1, s.block_s / per_call[name])))
        if k < s.min_block and per_call[name] * s.min_block <= 0.1:
            k = s.min_block
        block[name] = k
    round_s = sum(block[n] * per_call[n] for n in names)
    rounds = max(min(s.rounds, 3), min(s.rounds, int(s.case_budget_s / max(round_s, 1e-9))))
    out: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)] if names else []:
            out[name].append(time_calls(calls[name], block[name]))  # the project's one timed loop
    return out


def summary_line(r: CaseResult) -> str:
    parts = [f"{r.case.label:<22}"]
    for name, t in r.timings.items():
        parts.append(f"{name} {t.median_us:,.1f}")
    ratio = r.ratio("engine", "raw ping-pong")
    if ratio is not None:
        parts.append(f"engine/raw {ratio:.2f}")
    return "  ".join(parts)


# -- the plan -----------------------------------------------------------------------------


BASE_NAMES = [
    "engine",
    "engine native",
    "raw ping-pong",
    "session.run",
    "engine separate",
    "torch eager",
    "torchscript",
    "numpy",
]
INT8_SHAPES = ((1, 1), (1, 64), (64, 1))  # (batch, chunk) where int8 is timed beside fp32


def plan(
    quick: bool,
    compile_peer: bool,
    cells: tuple[str, ...] = ("rnn", "gru", "lstm"),
    small: int = 128,
    big: int = 512,
    hiddens: Sequence[int] = (128, 256, 512),
) -> list[tuple[Case, list[str]]]:
    """Which cases run with which contenders.

    Quick: the target cases on one cell (GRU by default) at ``small``, and fp32 vs int8 at
    ``big``. Full: every cell x ``hiddens`` x batch 1/8/64 x chunk 1/16/64, int8 beside fp32
    at three shapes, torch.compile at batch 1 chunk 1 for ``small`` and ``big``.
    """
    cases: list[tuple[Case, list[str]]] = []

    def names(hidden: int, b: int, t: int) -> list[str]:
        out = list(BASE_NAMES)
        if (b, t) in INT8_SHAPES and (not quick or hidden == big):
            out[2:2] = ["engine int8", "engine int8 accurate", "engine decomposed"]
        if compile_peer and (b, t) == (1, 1) and hidden in (small, big):
            out.append("torch.compile")
        return out

    if quick:
        cell = "gru" if "gru" in cells else cells[0]
        shapes = [(small, 1, 1), (small, 1, 64), (small, 64, 1), (big, 1, 1), (big, 1, 64)]
        return [(Case(cell, h, b, t), names(h, b, t)) for h, b, t in shapes]
    for cell in cells:
        for hidden in hiddens:
            for b in (1, 8, 64):
                for t in (1, 16, 64):
                    cases.append((Case(cell, hidden, b, t), names(hidden, b, t)))
    return cases


def run_plan(
    cases: list[tuple[Case, list[str]]], settings: Settings, log: Callable[[str], None] | None = None
) -> list[CaseResult]:
    return [run_case(case, names, settings, log) for case, names in cases]
