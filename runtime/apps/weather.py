"""Next-day weather forecast from a stream of daily observations.

Each row (date, precipitation mm, max and min temperature °C, wind m/s) becomes one frame
of the features the model was trained on (``spec.task['inputs']``, normalised with
``input_mean`` / ``input_std``); after it, the model gives the next day's max and min
temperature (normalised with ``output_mean`` / ``output_std``) and a rain logit.

CSV is read by its header (``read_rows``, ``csv.DictReader``): the columns may come in any
order, extra columns are ignored, a UTF-8 byte-order mark is tolerated, and an error names
the line and the column. The feature formulas (``FEATURES``) have one owner, this module:
training (``train/data_weather.py``) reads its CSV with ``read_rows`` and builds its inputs
with ``raw_features``.

Example:
    >>> from edgernn.runtime.apps import load_app
    >>> from edgernn.runtime.apps.weather import Forecaster, read_rows
    >>> fc = Forecaster(load_app("weather"))
    >>> rows = read_rows(["wind,date,temp_min,temp_max,precipitation", "3.1,2015/06/01,12.2,24.4,0.0"])
    >>> [fc.update(row).date.isoformat() for _, row in rows]
    ['2015-06-02']
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edgernn.runtime.apps import task_field
from edgernn.runtime.engine import Engine
from edgernn.runtime.errors import InputError, SpecError

COLUMNS = ("date", "precipitation", "temp_max", "temp_min", "wind")


@dataclass(frozen=True)
class Row:
    """One day's observations."""

    date: dt.date
    precipitation: float  # mm
    temp_max: float  # °C
    temp_min: float  # °C
    wind: float  # m/s


@dataclass(frozen=True)
class Forecast:
    """The next day's forecast."""

    date: dt.date
    temp_max: float  # °C
    temp_min: float  # °C
    rain: float  # chance of any precipitation, 0..1


def _number(fields: Mapping[str, str], name: str, where: str) -> float:
    text = (fields.get(name) or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{where}: column {name!r} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise InputError(f"{where}: column {name!r} is {text!r}, not a finite number")
    if value < 0 and name in ("precipitation", "wind"):
        raise InputError(f"{where}: column {name!r} cannot be negative, got {text!r}")
    return value


def row_from(fields: Mapping[str, str], line_no: int = 0) -> Row:
    """A Row from one record, by column name (``COLUMNS``; others ignored); InputError naming
    the line and the column otherwise."""
    where = f"line {line_no}" if line_no else "row"
    text = (fields.get("date") or "").strip()
    try:
        date = dt.date.fromisoformat(text.replace("/", "-"))
    except ValueError:
        raise InputError(f"{where}: column 'date' must be YYYY-MM-DD or YYYY/MM/DD, got {text!r}") from None
    return Row(date, *(_number(fields, name, where) for name in COLUMNS[1:]))


def _header(names: Sequence[str]) -> list[str]:
    return [n.lstrip("\ufeff").strip().lower() for n in names]


def read_rows(lines: Iterable[str], on_note: Callable[[str], None] | None = None) -> Iterator[tuple[int, Row]]:
    """(line number, Row) for each record of CSV ``lines``, read by the header's column names.

    A first line that is a record, not a header (its first field is a date), is read as
    ``COLUMNS`` in that order, and ``on_note`` is told so. Blank lines are skipped. Lines are
    read one at a time, so rows typed at a terminal are answered as they come."""
    reader = csv.reader(lines)
    header: list[str] | None = None
    for fields in reader:
        n = reader.line_num
        if not any(f.strip() for f in fields):
            continue
        if header is None:
            fields[0] = fields[0].lstrip("\ufeff")
            names = _header(fields)
            if _looks_like_date(names[0]):
                header = list(COLUMNS)
                if on_note is not None:
                    on_note(f"line {n}: no header; reading the columns as {','.join(COLUMNS)}")
            else:
                missing = [c for c in COLUMNS if c not in names]
                if missing:
                    raise InputError(
                        f"line {n}: the header has no column {', '.join(map(repr, missing))} "
                        f"(it has {', '.join(map(repr, names))}; needed: {','.join(COLUMNS)}, in any order)"
                    )
                header = names
                continue
        if len(fields) < len(header):
            raise InputError(
                f"line {n}: {len(fields)} fields where the header names {len(header)} "
                f"(column {header[len(fields)]!r} is missing)"
            )
        yield n, row_from(dict(zip(header, fields)), n)


def _looks_like_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text.strip().replace("/", "-"))
    except ValueError:
        return False
    return True


def _day_angle(d: dt.date) -> float:
    return 2.0 * math.pi * (d.timetuple().tm_yday - 1) / 365.25


# Feature name → formula on one row: the one definition, training imports it (train/data_weather.py).
FEATURES: dict[str, Callable[[Row], float]] = {
    "log1p_precipitation": lambda r: math.log1p(r.precipitation),
    "rained": lambda r: 1.0 if r.precipitation > 0 else 0.0,
    "temp_max": lambda r: r.temp_max,
    "temp_min": lambda r: r.temp_min,
    "wind": lambda r: r.wind,
    "sin_doy": lambda r: math.sin(_day_angle(r.date)),
    "cos_doy": lambda r: math.cos(_day_angle(r.date)),
}


def raw_features(row: Row, names: Sequence[str]) -> np.ndarray:
    """The features ``names`` of ``row`` before normalisation, float64."""
    return np.array([FEATURES[n](row) for n in names], dtype=np.float64)


def _floats(engine: Engine, key: str, n: int) -> np.ndarray:
    raw = task_field(engine, key, list)
    arr = np.asarray(raw, dtype=np.float64)
    if arr.shape != (n,) or not np.isfinite(arr).all():
        raise SpecError(f"{engine.source}: spec.task[{key!r}] must hold {n} finite numbers, got {raw!r}")
    return arr


class Forecaster:
    """Daily rows in, the next day's forecast out; the stream carries the whole history."""

    def __init__(self, engine: Engine) -> None:
        self.inputs = [str(x) for x in task_field(engine, "inputs", list)]
        unknown = [n for n in self.inputs if n not in FEATURES]
        if unknown:
            raise SpecError(
                f"{engine.source}: spec.task['inputs'] names features {unknown} this runtime cannot "
                f"compute; known: {sorted(FEATURES)}"
            )
        if engine.frame_shape != (len(self.inputs),):
            raise SpecError(
                f"{engine.source}: frames have shape {engine.frame_shape}, "
                f"spec.task['inputs'] names {len(self.inputs)} features"
            )
        outputs = [str(x) for x in task_field(engine, "outputs", list)]
        if outputs[:3] != ["temp_max", "temp_min", "rain"]:
            raise SpecError(f"{engine.source}: spec.task['outputs'] must be temp_max, temp_min, rain; got {outputs}")
        self.in_mean = _floats(engine, "input_mean", len(self.inputs))
        self.in_std = _floats(engine, "input_std", len(self.inputs))
        self.out_mean = _floats(engine, "output_mean", 2)
        self.out_std = _floats(engine, "output_std", 2)
        self.stream = engine.stream()
        self.last: Row | None = None

    def frame(self, row: Row) -> np.ndarray:
        """The normalised feature frame of ``row``."""
        return ((raw_features(row, self.inputs) - self.in_mean) / self.in_std).astype(np.float32)

    def update(self, row: Row) -> Forecast:
        """Feed one day; the forecast for the day after it."""
        if self.last is not None and row.date <= self.last.date:
            raise InputError(f"weather: rows must be in date order; {row.date} follows {self.last.date}")
        if row.date >= dt.date.max:  # checked before the step: the stream stays as it was
            raise InputError(f"weather: date {row.date}: the forecast day would be past {dt.date.max}")
        y = self.stream.step(self.frame(row)).astype(np.float64)
        self.last = row
        tmax, tmin = y[:2] * self.out_std + self.out_mean
        return Forecast(row.date + dt.timedelta(days=1), float(tmax), float(tmin), float(1.0 / (1.0 + math.exp(-y[2]))))

    def reset(self) -> None:
        self.stream.reset()
        self.last = None
