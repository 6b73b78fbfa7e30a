"""Forecasting any regular series: CSV by name, the grid, BPTT training, export parity, streaming."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edgernn.runtime import Engine
from edgernn.runtime.apps.forecast import SeriesForecaster
from edgernn.runtime.errors import InputError
from edgernn.runtime.series import MONTH, frames, parse_csv, read_csv, regular

torch = pytest.importorskip("torch")

from edgernn.train.forecast import model_forecasts, origins, scale, score  # noqa: E402
from edgernn.train.forecast_baselines import naive, seasonal_naive  # noqa: E402
from edgernn.train.forecast_data import elnino, write_csv  # noqa: E402
from edgernn.train.tasks import build_task, recipe  # noqa: E402
from edgernn.train.trainer import TrainingError, fit  # noqa: E402


def test_columns_are_read_by_name_in_any_order_with_a_bom() -> None:
    text = "\ufeffsales,extra,day\n3.5,x,2024-01-01\n4.0,y,2024-01-02\n5.5,z,2024-01-03\n"
    s = parse_csv(text, "day", "sales")
    assert s.times[0] == dt.datetime(2024, 1, 1) and s.target.tolist() == [3.5, 4.0, 5.5]
    assert regular(s).step == 86400


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("t,y\n2024-01-01,1\n2024-01-02,abc\n2024-01-03,2\n", "line 3, column 'y': expected a number, got 'abc'"),
        ("t,y\n2024-01-01,1\n2024-13-02,2\n2024-01-03,2\n", "line 3, column 't'"),
        ("t,y\n2024-01-01,1\n2024-01-02,nan\n2024-01-03,2\n", "line 3, column 'y': 'nan' is not a finite number"),
        ("t,z\n2024-01-01,1\n", "no column 'y'"),
    ],
)
def test_bad_rows_name_the_line_and_the_column(text: str, needle: str) -> None:
    with pytest.raises(InputError, match=needle.replace("(", r"\(").replace("'", "'")):
        parse_csv(text, "t", "y")


def test_the_grid_refuses_disorder_and_fills_gaps_only_when_asked() -> None:
    rows = "t,y\n2024-01-01,1\n2024-02-01,2\n2024-04-01,4\n2024-05-01,5\n"
    with pytest.raises(InputError, match="1 missing step"):
        regular(parse_csv(rows, "t", "y"))
    filled = regular(parse_csv(rows, "t", "y"), fill=True, max_fill=0.5)
    assert filled.step == MONTH and filled.filled == 1 and filled.target.tolist() == [1, 2, 3, 4, 5]
    with pytest.raises(InputError, match="does not follow"):
        regular(parse_csv("t,y\n2024-01-02,1\n2024-01-01,2\n2024-01-03,2\n", "t", "y"))


def test_baselines_forecast_what_they_say() -> None:
    y = np.arange(30, dtype=float)
    at = np.array([20, 25])
    assert naive(y, at, 3)[:, :, 0].tolist() == [[20, 20, 20], [25, 25, 25]]
    # one season (m = 4) back: y[t+h-4] for h <= 4, y[t+h-8] for 4 < h <= 8
    assert seasonal_naive(y, at, 6, 4)[0, :, 0].tolist() == [17, 18, 19, 20, 17, 18]
    assert scale(y, 20, 4) == 4.0
    assert score(naive(y, at, 2), y, at, 1.0) == {"mase": 1.5}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, object, Path]:
    """A forecaster trained briefly on a real CSV (El Nino, written as a user would bring it)."""
    root = tmp_path_factory.mktemp("forecast")
    csv_path = write_csv(elnino(), root / "elnino.csv")
    cfg = recipe("forecast", csv=str(csv_path), time_col="time", target_col="sst", horizon=6,
                 hidden_size=16, max_steps=40, seq_len=48)  # fmt: skip
    task = build_task(cfg)
    res = fit(task, cfg, out=root / "run", log=lambda s: None)
    from edgernn.export.pipeline import export_checkpoint

    onnx_path = root / "fc.onnx"
    export_checkpoint(root / "run" / "model.safetensors", onnx_path)
    return csv_path, task, res, onnx_path


def test_training_scores_the_held_out_tail(trained: tuple) -> None:
    _, task, res, _ = trained
    m = res.metrics
    assert task.facts["name"] == "forecast" and task.facts["horizon"] == 6
    assert 0 < m["mase"] < 5 and 0 <= m["coverage"] <= 1 and m["test_origins"] == 146 - 6 + 1


def test_the_stream_equals_the_trained_model_row_by_row(trained: tuple) -> None:
    csv_path, task, res, onnx_path = trained
    series = read_csv(csv_path, "time", "sst")
    fc = SeriesForecaster(Engine.load(onnx_path))
    at = np.arange(len(series) - 1)
    want = model_forecasts(res.model, frames(series, task.facts), series.target, at, task.facts)
    worst = 0.0
    for i, t in enumerate(series.times[:-1]):
        f = fc.update(t, float(series.target[i]))
        got = np.stack([f.low, f.median, f.high], axis=1)
        worst = max(worst, float(np.abs(got - want[i]).max()))
    print(f"forecast stream vs torch over {len(at)} carried rows: max |diff| {worst:.2e} deg C")
    assert worst < 1e-4


def test_a_row_out_of_order_is_refused_and_the_state_kept(trained: tuple) -> None:
    csv_path, _, _, onnx_path = trained
    series = read_csv(csv_path, "time", "sst")
    fc = SeriesForecaster(Engine.load(onnx_path))
    for i in range(5):
        fc.update(series.times[i], float(series.target[i]))
    before = {k: v.copy() for k, v in fc.stream.state().items()}
    for bad in (series.times[3], series.times[6], series.times[4]):
        with pytest.raises(InputError, match="not the next step"):
            fc.update(bad, 25.0)
    with pytest.raises(InputError, match="not a finite number"):
        fc.update(series.times[5], float("nan"))
    assert all(np.array_equal(before[k], v) for k, v in fc.stream.state().items())
    fc.update(series.times[5], float(series.target[5]))


def test_settings_the_series_cannot_serve_are_refused(trained: tuple) -> None:
    csv_path = trained[0]
    cfg = recipe("forecast", csv=str(csv_path), time_col="time", target_col="sst", horizon=60, seq_len=48)
    with pytest.raises(TrainingError, match="not shorter than the training window"):
        build_task(cfg)
    with pytest.raises(TrainingError, match="need at least"):
        build_task(replace(cfg, horizon=6, seq_len=700))
    with pytest.raises(TrainingError, match="exactly one of"):
        build_task(replace(cfg, dataset="co2"))
    assert len(origins(100, 80, 5)) == 16


def test_the_shipped_forecaster_streams_a_users_csv_on_the_edge_install(tmp_path: Path) -> None:
    from appcli import edgernn, shipped

    shipped("forecast")
    from edgernn.train.forecast_data import co2

    s = regular(co2(), fill=True)
    rows = "".join(f"x,{float(s.target[i])!r},{s.times[i]:%Y-%m-%d}\n" for i in range(480, 500))
    head = "\ufeffnote,co2,time\n" + rows  # columns in another order, an extra one, a BOM
    (tmp_path / "co2.csv").write_text(head, encoding="utf-8")
    out = edgernn("run", "forecast", "--input", str(tmp_path / "co2.csv")).stdout.splitlines()
    assert out[0].startswith("# co2: each row, then the forecast 12 step(s) ahead")
    last = out[-1].split()
    ahead = f"{s.times[499].year + 1}-{s.times[499].month:02d}-01"
    assert last[0] == f"{s.times[499]:%Y-%m-%d}" and last[3] == ahead
    median, low, high = float(last[4]), float(last[5].strip("[,")), float(last[6].strip("]"))
    truth = s.target[511]  # twelve months after the last row fed
    print(f"co2 {s.times[511]:%Y-%m}: forecast {median:.2f} [{low:.2f}, {high:.2f}] ppm, observed {truth:.2f}")
    assert low <= median <= high and abs(median - truth) < 3.0


def test_many_series_batched_equal_each_alone_and_snapshots_resume(trained: tuple) -> None:
    csv_path, task, _, onnx_path = trained
    series = read_csv(csv_path, "time", "sst")
    x = frames(series, task.facts)  # (rows, features): four series = four offsets into El Nino
    engine = Engine.load(onnx_path)
    starts = (0, 100, 250, 400)
    alone = [engine.stream().push(x[s : s + 200]) for s in starts]
    batch = engine.batch()
    members = [batch.join() for _ in starts]
    together = np.stack([batch.step(np.stack([x[s + t] for s in starts])) for t in range(200)], axis=1)
    worst = max(float(np.abs(together[i] - alone[i]).max()) for i in range(len(starts)))
    print(f"4 series batched vs alone over 200 rows: max |diff| {worst:.2e}")
    assert worst <= 1e-6 and len(members) == 4
    s = engine.stream()
    s.push(x[:120])
    blob = s.snapshot()
    want = s.push(x[120:200])
    t = engine.stream()
    t.restore(blob)
    assert np.array_equal(t.push(x[120:200]), want)
