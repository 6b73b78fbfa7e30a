"""``edgernn run weather`` end to end on the shipped model (torch blocked), its CSV reader, one feature owner.

The model was trained on 2012–2014 and is scored here on 2015, the held-out year: every row
of the file is streamed through the CLI (state carried from 2012-01-01, as in training's
evaluation) and the forecasts for 2015's days are compared with what happened.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from appcli import BLOCKED_CLI, edgernn, shipped

from edgernn.runtime.apps import load_app
from edgernn.runtime.apps.weather import Forecaster, raw_features, read_rows

vega = pytest.importorskip("vega_datasets")
CSV = Path(vega.__file__).parent / "_data" / "seattle-weather.csv"
LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d)  forecast (\d{4}-\d\d-\d\d): max +(-?[\d.]+) °C  min +(-?[\d.]+) °C  rain +(\d+)%$"
)


def truth() -> dict[dt.date, tuple[float, float, bool]]:
    with open(CSV, newline="") as fh:
        return {
            dt.date.fromisoformat(r["date"].replace("/", "-")): (
                float(r["temp_max"]),
                float(r["temp_min"]),
                float(r["precipitation"]) > 0,
            )
            for r in csv.DictReader(fh)
        }


def shuffled_csv(path: Path, rows: int | None = None) -> Path:
    """The Seattle file with its columns in another order, an extra column, a BOM and CRLF lines."""
    with open(CSV, newline="") as fh:
        records = list(csv.DictReader(fh))[:rows]
    order = ["wind", "station", "temp_min", "date", "weather", "precipitation", "temp_max"]
    with open(path, "w", newline="", encoding="utf-8-sig") as fh:
        w = csv.DictWriter(fh, fieldnames=order, lineterminator="\r\n")
        w.writeheader()
        w.writerows({**r, "station": "SEA"} for r in records)
    return path


def test_weather_reads_columns_by_name_in_any_order(tmp_path: Path) -> None:
    """The header decides: reordered columns, an extra one and a BOM give the same forecasts."""
    plain = tmp_path / "plain.csv"
    plain.write_text("".join(CSV.read_text().splitlines(keepends=True)[:61]))
    moved = shuffled_csv(tmp_path / "moved.csv", rows=60)
    first = edgernn("run", "weather", "--input", str(plain)).stdout.splitlines()
    assert len(first) == 60 and first == edgernn("run", "weather", "--input", str(moved)).stdout.splitlines()


def test_training_reads_the_weather_csv_with_the_apps_reader(tmp_path: Path) -> None:
    """One owner of the features: train's data are the app's rows and formulas, whatever the column order."""
    from edgernn.train.data_weather import FEATURES as TRAIN_FEATURES
    from edgernn.train.data_weather import load_weather

    ours, moved = load_weather(), load_weather(shuffled_csv(tmp_path / "moved.csv"))
    assert ours.raw.shape == (1461, len(TRAIN_FEATURES)) and np.array_equal(ours.raw, moved.raw)
    assert ours.dates == moved.dates and np.array_equal(ours.precipitation, moved.precipitation)
    rows = [row for _, row in read_rows(CSV.read_text().splitlines())]
    assert np.array_equal(np.stack([raw_features(r, TRAIN_FEATURES) for r in rows]).astype(np.float32), ours.raw)
    assert Forecaster(load_app("weather", shipped("weather"))).inputs == list(TRAIN_FEATURES)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("date,temp_max,wind\n2015/07/01,30,2\n", "line 1: the header has no column 'precipitation', 'temp_min'"),
        ("wind,date,precipitation,temp_max,temp_min\n3,2015/07/01,0,hot,12\n",
         "line 2: column 'temp_max' must be a number, got 'hot'"),
        ("date,precipitation,temp_max,temp_min,wind\n\n2015/07/01,0,30,12\n",
         "line 3: 4 fields where the header names 5 (column 'wind' is missing)"),
        ("date,precipitation,temp_max,temp_min,wind\n2015/13/01,0,30,12,3\n",
         "line 2: column 'date' must be YYYY-MM-DD or YYYY/MM/DD, got '2015/13/01'"),
    ],
)  # fmt: skip
def test_weather_errors_name_the_line_and_the_column(text: str, message: str) -> None:
    bad = subprocess.run(
        [sys.executable, "-c", BLOCKED_CLI, "run", "weather"], input=text, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 1 and message in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr


def test_weather_forecasts_the_held_out_year_within_a_sane_error() -> None:
    spec = load_app("weather", shipped("weather")).spec
    lines = edgernn("run", "weather", "--input", str(CSV)).stdout.splitlines()
    assert len(lines) == 1461  # one forecast per row; the header is skipped
    seen = truth()
    err_max, err_min, brier = [], [], []
    for line in lines:
        m = LINE.match(line)
        assert m, line
        day, target = dt.date.fromisoformat(m[1]), dt.date.fromisoformat(m[2])
        assert target - day == dt.timedelta(days=1)
        if target.year != 2015 or target not in seen:
            continue
        tmax, tmin, rained = seen[target]
        err_max.append(abs(float(m[3]) - tmax))
        err_min.append(abs(float(m[4]) - tmin))
        brier.append((int(m[5]) / 100 - rained) ** 2)
    mae_max, mae_min, b = float(np.mean(err_max)), float(np.mean(err_min)), float(np.mean(brier))
    assert len(err_max) == 365
    assert mae_max < 3.0 and mae_min < 2.5, (mae_max, mae_min)  # °C, a day ahead
    metrics = spec.provenance["metrics"]
    # better than tomorrow = today, and the same figures training measured on this year
    assert mae_max < metrics["persistence_mae_tmax"] and b < metrics["climatology_brier"], metrics
    assert abs(mae_max - metrics["mae_tmax"]) < 0.02 and abs(mae_min - metrics["mae_tmin"]) < 0.02, metrics
    assert abs(b - metrics["brier"]) < 0.002, metrics


def test_weather_reads_stdin_and_names_a_bad_row() -> None:
    rows = (
        "date,precipitation,temp_max,temp_min,wind,weather\n"
        "2015/07/01,0.0,32.2,17.2,4.3,sun\n"
        "2015/07/02,0.0,33.3,17.8,3.4,sun\n"
    )
    out = edgernn("run", "weather", stdin=rows).stdout.splitlines()
    assert [line[:10] for line in out] == ["2015-07-01", "2015-07-02"]
    assert edgernn("run", "weather", "--device", "cpu", stdin=rows).stdout.splitlines() == out  # via edgernn.devices
    assert all(float(LINE.match(line)[3]) > 20 for line in out)  # type: ignore[index]  # a July day ahead
    bad = subprocess.run(
        [sys.executable, "-c", BLOCKED_CLI, "run", "weather"],
        input="2015/07/01,0.0,hot,17.2,4.3\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "line 1: column 'temp_max' must be a number, got 'hot'" in bad.stderr
