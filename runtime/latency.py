"""Per-call latency measurement: warm-up, then a timed loop, summarised in percentiles.

Example:
    >>> stats = measure(lambda: sum(range(10)), calls=200, warmup=10)
    >>> stats.min_us <= stats.p50_us <= stats.p99_us <= stats.max_us
    True
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class LatencyStats:
    """Percentiles of per-call latency in µs; a call advances ``streams`` streams by ``frames_per_call`` frames."""

    calls: int
    frames_per_call: int
    min_us: float
    p50_us: float
    p90_us: float
    p99_us: float
    max_us: float
    mean_us: float = 0.0
    streams: int = 1

    @classmethod
    def from_us(cls, us: np.ndarray, frames_per_call: int = 1, streams: int = 1) -> LatencyStats:
        """Summarise per-call times ``us`` (µs)."""
        if us.size == 0:
            raise ValueError("no timed calls to summarise")
        p50, p90, p99 = (float(v) for v in np.percentile(us, [50, 90, 99]))
        return cls(
            calls=int(us.size),
            frames_per_call=frames_per_call,
            min_us=float(us.min()),
            p50_us=p50,
            p90_us=p90,
            p99_us=p99,
            max_us=float(us.max()),
            mean_us=float(us.mean()),
            streams=streams,
        )

    @property
    def frames_per_second(self) -> float:
        """Frames per second for one stream, at the median call time."""
        return self.frames_per_call * 1e6 / self.p50_us

    @property
    def stream_frames_per_second(self) -> float:
        """Frames per second summed over the streams one call advances."""
        return self.streams * self.frames_per_second

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["frames_per_second"] = self.frames_per_second
        out["stream_frames_per_second"] = self.stream_frames_per_second
        return out

    def __str__(self) -> str:
        text = (
            f"{self.calls} calls: p50 {self.p50_us:.1f} µs  p99 {self.p99_us:.1f} µs  "
            f"(min {self.min_us:.1f}, max {self.max_us:.1f})  {self.frames_per_second:,.0f} frames/s"
        )
        if self.streams > 1:
            text += f"  {self.stream_frames_per_second:,.0f} stream-frames/s"
        return text


def time_calls(call: Callable[[], object], calls: int, warmup: int = 0, progress: Progress | None = None) -> np.ndarray:
    """Per-call times in µs of ``calls`` timed calls after ``warmup`` untimed ones.

    ``progress(done, total)`` is called every 1024 calls (outside the timed region).
    """
    for _ in range(warmup):
        call()
    times = np.empty(calls, dtype=np.int64)
    clock = time.perf_counter_ns
    every = 1024
    for start in range(0, calls, every):
        for i in range(start, min(calls, start + every)):
            t = clock()
            call()
            times[i] = clock() - t
        if progress is not None:
            progress(min(calls, start + every), calls)
    return times / 1e3


def measure(call: Callable[[], object], calls: int = 2000, warmup: int = 200, frames_per_call: int = 1) -> LatencyStats:
    """Time ``call`` ``calls`` times after ``warmup`` untimed calls."""
    return LatencyStats.from_us(time_calls(call, calls, warmup), frames_per_call)
