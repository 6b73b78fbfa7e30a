"""Per-call latency measurement: warm-up, then a timed loop, summarised in percentiles."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    calls: int
    frames_per_call: int
    min_us: float
    p50_us: float
    p90_us: float
    p99_us: float
    max_us: float

    @property
    def frames_per_second(self) -> float:
        return self.frames_per_call * 1e6 / self.p50_us

    def __str__(self) -> str:
        return (
            f"{self.calls} calls: p50 {self.p50_us:.1f} µs  p99 {self.p99_us:.1f} µs  "
            f"(min {self.min_us:.1f}, max {self.max_us:.1f})  {self.frames_per_second:,.0f} frames/s"
        )


def measure(call: Callable[[], object], calls: int = 2000, warmup: int = 200, frames_per_call: int = 1) -> LatencyStats:
    """Time ``call`` ``calls`` times after ``warmup`` untimed calls."""
    for _ in range(warmup):
        call()
    times = np.empty(calls, dtype=np.float64)
    clock = time.perf_counter_ns
    for i in range(calls):
        t = clock()
        call()
        times[i] = clock() - t
    us = times / 1e3
    return LatencyStats(
        calls=calls,
        frames_per_call=frames_per_call,
        min_us=float(us.min()),
        p50_us=float(np.percentile(us, 50)),
        p90_us=float(np.percentile(us, 90)),
        p99_us=float(np.percentile(us, 99)),
        max_us=float(us.max()),
    )
