"""A user's time series: read by column name from a CSV, checked regular, turned into frames.

The one owner of the forecasting task's input formulas: ``edgernn train forecast`` imports
them to build training frames and the ``forecast`` app uses them to build each streamed
frame, so the two cannot drift apart. numpy and the standard library only.

A series is regular: one row per ``step`` (seconds, or whole months / years for calendar
steps). Rows out of order or duplicated are refused; missing steps are refused unless
``fill=True`` (then filled by linear interpolation and counted, so the caller can say so).
Frame of step t (the order of ``frame_names``)::

    d1      = (y_t - y_{t-1}) / diff_std          (0 at the first row)
    level   = (y_t - y_mean) / y_std
    <cov>   = (c_t - c_mean) / c_std              for each covariate
    calendar: sin/cos of the hour of day (steps < 1 day), of the weekday (steps < 1 week),
              of the day of the year (steps < 1 month), of the month (monthly steps)

The model predicts, for each horizon h = 1..H, quantiles of (y_{t+h} - y_t) / delta_std[h]:
forecasts are changes from the last value, so a trend past the training range is no problem.

Example:
    >>> import datetime as dt
    >>> s = Series("demo", [dt.datetime(2024, 1, d) for d in (1, 2, 3)], np.array([1.0, 2.0, 4.0]), {}, "y")
    >>> regular(s).step
    86400
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from edgernn.runtime.errors import InputError

MAX_CSV_BYTES = 256 * 2**20  # a series file larger than this is refused before reading
MONTH, YEAR = -1, -12  # calendar steps (months); seconds otherwise
QUANTILES = (0.1, 0.5, 0.9)


@dataclass(frozen=True)
class Series:
    """Timestamps, the target and named covariates (float64), in time order."""

    source: str
    times: list[dt.datetime]
    target: np.ndarray  # (n,)
    covariates: dict[str, np.ndarray]  # name -> (n,)
    target_name: str
    step: int = 0  # seconds, or MONTH / YEAR; 0 until ``regular`` has checked it
    filled: int = 0  # rows added by interpolation

    def __len__(self) -> int:
        return len(self.times)


def parse_time(text: str) -> dt.datetime:
    """ISO date or date-time (``T`` or space), ``YYYY/MM/DD``, ``YYYY-MM`` or ``YYYY``; naive UTC."""
    s = text.strip().replace("/", "-")
    try:
        if len(s) == 4 and s.isdigit():
            return dt.datetime(int(s), 1, 1)
        if len(s) == 7 and s[4] == "-":
            return dt.datetime(int(s[:4]), int(s[5:]), 1)
        t = dt.datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"not a date or time: {text!r} (YYYY-MM-DD[ HH:MM[:SS]], YYYY-MM or YYYY)") from None
    return t.astimezone(dt.timezone.utc).replace(tzinfo=None) if t.tzinfo else t


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{where}: expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise InputError(f"{where}: {text!r} is not a finite number")
    return value


def read_csv(path: str | os.PathLike[str], time: str, target: str, covariates: Sequence[str] = ()) -> Series:
    """The series in ``path``, columns read by header name (any order, others ignored, BOM allowed)."""
    name = os.fspath(path)
    try:
        if not os.path.isfile(name):
            raise InputError(f"{name}: not a regular file")
        if os.path.getsize(name) > MAX_CSV_BYTES:
            raise InputError(f"{name}: larger than {MAX_CSV_BYTES >> 20} MiB")
        with open(name, "rb") as fh:
            raw = fh.read(MAX_CSV_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{name}: cannot read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    return parse_csv(text, time, target, covariates, source=name)


def parse_csv(text: str, time: str, target: str, covariates: Sequence[str] = (), source: str = "<csv>") -> Series:
    """``read_csv`` on text already in memory."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in reader.fieldnames or []]
    reader.fieldnames = header
    missing = [c for c in (time, target, *covariates) if c not in header]
    if missing:
        raise InputError(f"{source}: no column {', '.join(map(repr, missing))}; the header has {header}")
    times: list[dt.datetime] = []
    ys: list[float] = []
    covs: dict[str, list[float]] = {c: [] for c in covariates}
    for row in reader:
        line = reader.line_num
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        try:
            times.append(parse_time(row[time] or ""))
        except ValueError as exc:
            raise InputError(f"{source}: line {line}, column {time!r}: {exc}") from None
        ys.append(_number(row[target] or "", f"{source}: line {line}, column {target!r}"))
        for c in covariates:
            covs[c].append(_number(row[c] or "", f"{source}: line {line}, column {c!r}"))
    if len(times) < 3:
        raise InputError(f"{source}: {len(times)} data rows; a series needs at least 3")
    arrays = {c: np.array(v) for c, v in covs.items()}
    return Series(source, times, np.array(ys), arrays, target)


def _months(a: dt.datetime, b: dt.datetime) -> int:
    return (b.year - a.year) * 12 + b.month - a.month


def step_between(a: dt.datetime, b: dt.datetime, step: int) -> int:
    """How many ``step``s from ``a`` to ``b`` (exact; -1 when ``b`` is off the grid)."""
    if step < 0:
        n, r = divmod(_months(a, b), -step)
        same = (a.day, a.time()) == (b.day, b.time())
        return n if r == 0 and same else -1
    q, rest = divmod((b - a).total_seconds(), step)
    return int(q) if rest == 0 else -1


def advance(t: dt.datetime, step: int, n: int = 1) -> dt.datetime:
    """``t`` plus ``n`` steps."""
    if step < 0:
        months = t.year * 12 + t.month - 1 + n * -step
        return t.replace(year=months // 12, month=months % 12 + 1)
    return t + dt.timedelta(seconds=step * n)


def infer_step(times: Sequence[dt.datetime]) -> int:
    """The series' step: the most common gap (calendar months / years when the dates say so)."""
    if all(t.day == times[0].day and t.time() == times[0].time() for t in times):
        gaps = [_months(a, b) for a, b in zip(times, times[1:])]
        gap = int(np.median(gaps))
        if gap in (1, 3, 6, 12) and gaps.count(gap) >= len(gaps) / 2:
            return -gap
    seconds = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
    return int(np.median(seconds))


def regular(series: Series, fill: bool = False, max_fill: float = 0.1) -> Series:
    """``series`` on its regular grid: order checked, missing steps refused or interpolated."""
    times, step = series.times, infer_step(series.times)
    if step == 0:
        raise InputError(f"{series.source}: duplicate timestamps (the most common gap is 0)")
    index = [0]
    for i, (a, b) in enumerate(zip(times, times[1:]), start=2):
        if b <= a:
            raise InputError(f"{series.source}: data row {i}: {b} does not follow {a} (rows must be in time order)")
        n = step_between(a, b, step)
        if n < 1:
            raise InputError(f"{series.source}: data row {i}: {b} is not a whole number of steps after {a}")
        index.append(index[-1] + n)
    missing = index[-1] + 1 - len(times)
    if missing and not fill:
        raise InputError(
            f"{series.source}: {missing} missing step(s) on the grid of {describe_step(step)} "
            f"(first after {times[next(i for i in range(1, len(index)) if index[i] - index[i - 1] > 1) - 1]}); "
            "pass fill=True (--fill) to interpolate them"
        )
    if missing > max_fill * (index[-1] + 1):
        raise InputError(f"{series.source}: {missing} of {index[-1] + 1} steps missing; more than {max_fill:.0%}")
    grid = np.arange(index[-1] + 1)
    idx = np.array(index)

    def interp(v: np.ndarray) -> np.ndarray:
        return np.interp(grid, idx, v)

    return replace(
        series,
        times=[advance(times[0], step, int(k)) for k in grid],
        target=interp(series.target),
        covariates={c: interp(v) for c, v in series.covariates.items()},
        step=step,
        filled=missing,
    )


def describe_step(step: int) -> str:
    if step < 0:
        return {MONTH: "1 month", YEAR: "1 year"}.get(step, f"{-step} months")
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if step % size == 0:
            return f"{step // size} {unit}(s)"
    return f"{step} s"


def calendar_names(step: int) -> list[str]:
    """The calendar features a series of this step gets (see the module docstring)."""
    names: list[str] = []
    if 0 < step < 86400:
        names += ["sin_hour", "cos_hour"]
    if 0 < step < 7 * 86400:
        names += ["sin_weekday", "cos_weekday"]
    if 0 < step < 28 * 86400:
        names += ["sin_doy", "cos_doy"]
    if step == MONTH or (28 * 86400 <= step < 360 * 86400):
        names += ["sin_month", "cos_month"]
    return names


def calendar(t: dt.datetime, names: Sequence[str]) -> list[float]:
    """The named calendar features of ``t``."""
    angle = {
        "hour": 2 * math.pi * (t.hour + t.minute / 60) / 24,
        "weekday": 2 * math.pi * t.weekday() / 7,
        "doy": 2 * math.pi * (t.timetuple().tm_yday - 1) / 365.25,
        "month": 2 * math.pi * (t.month - 1) / 12,
    }
    return [(math.sin if n.startswith("sin") else math.cos)(angle[n[4:]]) for n in names]


def facts_for(series: Series, horizon: int, train_end: int) -> dict[str, object]:
    """Normalisation and layout facts from the first ``train_end`` rows (stored in the spec)."""
    y = series.target[:train_end]
    d1 = np.diff(y)
    deltas = [y[h:] - y[:-h] for h in range(1, horizon + 1)]
    covs = {c: v[:train_end] for c, v in series.covariates.items()}
    cal = calendar_names(series.step)
    return {
        "target": series.target_name,
        "covariates": list(series.covariates),
        "step": series.step,
        "horizon": horizon,
        "quantiles": list(QUANTILES),
        "calendar": cal,
        "frame_names": ["d1", "level", *series.covariates, *cal],
        "y_mean": float(y.mean()),
        "y_std": float(y.std() or 1.0),
        "diff_std": float(d1.std() or 1.0),
        "delta_std": [float(d.std() or 1.0) for d in deltas],
        "cov_mean": [float(v.mean()) for v in covs.values()],
        "cov_std": [float(v.std() or 1.0) for v in covs.values()],
    }


def frames(series: Series, facts: dict) -> np.ndarray:
    """(n, features) float32 frames of every row (formula in the module docstring)."""
    y = series.target
    d1 = np.concatenate([[0.0], np.diff(y)]) / facts["diff_std"]
    cols = [d1, (y - facts["y_mean"]) / facts["y_std"]]
    for c, m, s in zip(facts["covariates"], facts["cov_mean"], facts["cov_std"]):
        cols.append((series.covariates[c] - m) / s)
    cal = np.array([calendar(t, facts["calendar"]) for t in series.times]).reshape(len(y), -1)
    return np.concatenate([np.stack(cols, axis=1), cal], axis=1).astype(np.float32)


def frame(
    facts: dict, y: float, previous: float | None, t: dt.datetime, covariates: Sequence[float] = ()
) -> np.ndarray:
    """The frame of one row (the streaming form of ``frames``)."""
    d1 = 0.0 if previous is None else (y - previous) / facts["diff_std"]
    cols = [d1, (y - facts["y_mean"]) / facts["y_std"]]
    cols += [(c - m) / s for c, m, s in zip(covariates, facts["cov_mean"], facts["cov_std"])]
    return np.array(cols + calendar(t, facts["calendar"]), dtype=np.float32)


def decode(facts: dict, out: np.ndarray, last: float) -> np.ndarray:
    """(H, quantiles) forecasts in the target's units from one step's output (H * quantiles,)."""
    q = len(facts["quantiles"])
    z = np.sort(out.reshape(facts["horizon"], q).astype(np.float64), axis=-1)  # quantiles never cross
    return last + z * np.array(facts["delta_std"])[:, None]
