"""Seattle daily weather (``vega_datasets``' local ``seattle-weather.csv``, 2012–2015), numpy only.

The CSV is read, and each row turned into features, by the weather app's own code
(``runtime.apps.weather``: ``read_rows`` by column name, ``FEATURES`` the formulas), so
the model is trained on exactly what the app computes. For a row (date, precipitation [mm],
temp_max [°C], temp_min [°C], wind [m/s]) the raw features are

    log1p_precipitation = log(1 + precipitation)
    rained              = 1.0 if precipitation > 0 else 0.0
    temp_max, temp_min, wind            (as given)
    sin_doy = sin(2π (doy - 1) / 365.25),   cos_doy = cos(2π (doy - 1) / 365.25)

(doy: day of the year, 1 = January 1st), in the order of ``FEATURES``; the frame is
``(raw - input_mean) / input_std`` with the task facts' statistics (training years only).
The targets of day t are day t+1's temp_max and temp_min, normalised with ``output_mean``
and ``output_std``, and whether it rains (precipitation > 0); the model's third output is a
logit: sigmoid(logit) is the chance of rain.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgernn.runtime.apps.weather import Row, read_rows
from edgernn.runtime.apps.weather import raw_features as app_features

FEATURES = ("log1p_precipitation", "rained", "temp_max", "temp_min", "wind", "sin_doy", "cos_doy")
OUTPUTS = ("temp_max", "temp_min", "rain")
TEST_YEAR = 2015


def weather_csv() -> Path:
    """The CSV shipped inside the ``vega_datasets`` package (no network)."""
    spec = importlib.util.find_spec("vega_datasets")
    if spec is None or not spec.submodule_search_locations:
        from edgernn.train.trainer import MissingDataError

        raise MissingDataError("the weather task reads vega_datasets' seattle-weather.csv: pip install vega_datasets")
    return Path(next(iter(spec.submodule_search_locations))) / "_data" / "seattle-weather.csv"


def raw_features(row: Row) -> np.ndarray:
    """(len(FEATURES),) float32 features of one day, before normalisation (the app's formulas)."""
    return app_features(row, FEATURES).astype(np.float32)


def weather_frame(row: Row, facts: Mapping[str, Any]) -> np.ndarray:
    """The model's input frame (len(inputs),) float32 for one raw row, normalised with ``facts``."""
    mean = np.asarray(facts["input_mean"], dtype=np.float32)
    std = np.asarray(facts["input_std"], dtype=np.float32)
    return ((raw_features(row) - mean) / std).astype(np.float32)


@dataclass(frozen=True)
class WeatherData:
    dates: list[dt.date]
    raw: np.ndarray  # (days, features)
    precipitation: np.ndarray  # (days,)

    @property
    def test_start(self) -> int:
        """Index of the first day whose *target* (the next day) lies in the test year."""
        return next(i for i, d in enumerate(self.dates) if d.year == TEST_YEAR) - 1


def load_weather(path: Path | None = None) -> WeatherData:
    """The days of ``path`` (default: vega_datasets' Seattle file), read by the app's reader."""
    with open(path or weather_csv(), newline="", encoding="utf-8") as fh:
        rows = [row for _, row in read_rows(fh)]
    return WeatherData(
        dates=[r.date for r in rows],
        raw=np.stack([raw_features(r) for r in rows]),
        precipitation=np.array([r.precipitation for r in rows]),
    )


def facts_from_training(data: WeatherData) -> dict[str, Any]:
    """Normalisation statistics from the training years only."""
    train = data.raw[: data.test_start + 1]
    mean, std = train.mean(axis=0), train.std(axis=0) + 1e-6
    temps = train[:, 2:4]
    return {
        "name": "weather",
        "inputs": list(FEATURES),
        "input_mean": [round(float(v), 6) for v in mean],
        "input_std": [round(float(v), 6) for v in std],
        "outputs": list(OUTPUTS),
        "output_mean": [round(float(v), 6) for v in temps.mean(axis=0)],
        "output_std": [round(float(v), 6) for v in temps.std(axis=0)],
        "frame_rate": "1/day",
    }


def baselines(data: WeatherData) -> dict[str, float]:
    """Persistence and a day-of-year climatology (training years, ±7-day window) on the test year."""
    a = data.test_start
    days = np.arange(a, len(data.dates) - 1)  # inputs; targets are days + 1
    truth = data.raw[days + 1, 2:4]
    rain = (data.precipitation[days + 1] > 0).astype(np.float64)
    persist_t = data.raw[days, 2:4]
    persist_r = (data.precipitation[days] > 0).astype(np.float64)
    doy = np.array([d.timetuple().tm_yday for d in data.dates])
    train_idx = np.arange(0, a + 1)
    clim_t, clim_r = [], []
    for i in days + 1:
        gap = np.abs(doy[train_idx] - doy[i])
        near = train_idx[np.minimum(gap, 365 - gap) <= 7]
        clim_t.append(data.raw[near, 2:4].mean(axis=0))
        clim_r.append((data.precipitation[near] > 0).mean())
    out = {}
    for name, t, r in (("persistence", persist_t, persist_r), ("climatology", np.array(clim_t), np.array(clim_r))):
        out[f"{name}_mae_tmax"] = round(float(np.abs(t[:, 0] - truth[:, 0]).mean()), 3)
        out[f"{name}_mae_tmin"] = round(float(np.abs(t[:, 1] - truth[:, 1]).mean()), 3)
        out[f"{name}_brier"] = round(float(((r - rain) ** 2).mean()), 4)
    return out
