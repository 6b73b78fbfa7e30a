"""The forecasting rows of docs/TRAINING_RESULTS.md: three real series, the model beside the
baselines forecasters use (``forecast_baselines``), all scored on the same held-out origins."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

# (run name, preset overrides): one daily, two monthly (one with a trend), all seasonal.
RUNS: list[tuple[str, dict[str, Any]]] = [
    ("forecast-co2", {"dataset": "co2", "fill_missing": True, "horizon": 12}),
    ("forecast-elnino", {"dataset": "elnino", "horizon": 12}),
    ("forecast-seattle", {"dataset": "seattle", "horizon": 7, "season": 365}),
]
BASELINES = ("naive", "seasonal naive", "ets", "arima")


def write_baselines(cfg: Any, out: Path) -> dict[str, Any]:
    """Score every baseline on the run's held-out origins; kept as ``baselines.json`` in the run."""
    from edgernn.train import forecast_baselines as b
    from edgernn.train.forecast import DEFAULT_SEASON, load_series, origins, scale, score, split

    series = load_series(cfg)
    y, n, h = series.target, len(series), cfg.horizon
    train_end = split(n, cfg)
    m = cfg.season or DEFAULT_SEASON.get(series.step, 1)
    at, denom = origins(n, train_end, h), scale(y, train_end, m)
    preds = {
        "naive": b.naive(y, at, h),
        "seasonal naive": b.seasonal_naive(y, at, h, m),
        "ets": b.ets(y, train_end, at, h, m),
        "arima": b.arima(y, train_end, at, h, m),
    }
    result = {"rows": n, "train_rows": train_end, "filled": series.filled, "step": series.step, "season": m,
              **{k: score(p, y, at, denom) for k, p in preds.items()}}  # fmt: skip
    (out / "baselines.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def _cell(s: dict[str, Any]) -> str:
    cov = f" / {s['coverage']:.2f}" if "coverage" in s else " / -"
    return f"{s['mase']:.3f}{cov}"


def section(load: Callable[[str], Any], runs_dir: Path) -> list[str]:
    rows = []
    for name, _ in RUNS:
        got = load(name)
        path = runs_dir / name / "baselines.json"
        if got is None or not path.exists():
            continue
        m, c, _env = got
        base = json.loads(path.read_text())
        best = min(base[k]["mase"] for k in ("ets", "arima"))
        verdict = "beats all" if m["mase"] < min(base[k]["mase"] for k in BASELINES) else (
            "beats seasonal naive" if m["mase"] < base["seasonal naive"]["mase"] else "behind seasonal naive")
        t = c["train"]
        rows.append(f"| {name.split('-', 1)[1]} | {base['rows']} ({base['filled']} filled) | {t['horizon']} | "
                    f"{base['season']} | **{_cell(m)}** | " + " | ".join(_cell(base[k]) for k in BASELINES)
                    + f" | {verdict} (best statsmodels {best:.3f}) |")  # fmt: skip
    if not rows:
        return []
    return [
        "## Forecasting any series (`edgernn train forecast`)",
        "",
        "A GRU 32 over normalised changes with quantile outputs (10/50/90 %), 300 updates, trained on all but",
        "the last 20 % of each series; scored from every origin whose whole horizon lies in that tail.",
        "MASE: mean absolute error of the median over all horizons / the in-sample MAE of the value one",
        "season back (lower is better; < 1 beats the in-sample seasonal naive). Coverage of the 10-90 %",
        "interval (nominal 0.80). Baselines (statsmodels, fitted on the same training rows, parameters",
        "fixed over the tail): `train/forecast_baselines.py`.",
        "",
        "| series | rows | horizon | season | GRU MASE / coverage | naive | seasonal naive | ETS | ARIMA | |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
