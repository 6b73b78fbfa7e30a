"""``edgernn run forecast``: stream a CSV row by row and print each row's next-H forecast."""

from __future__ import annotations

import argparse

from edgernn.cli.options import text
from edgernn.runtime.apps.forecast import SeriesForecaster
from edgernn.runtime.engine import Engine
from edgernn.runtime.errors import InputError
from edgernn.runtime.series import read_csv


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("forecast (needs --input CSV)")
    g.add_argument("--time", dest="time_col", default="time", type=text(200), help="the CSV's time column")
    g.add_argument(
        "--target", dest="target_col", type=text(200), help="the column to forecast (default: the model's target name)"
    )


def run_forecast(engine: Engine, args: argparse.Namespace) -> int:
    fc = SeriesForecaster(engine)
    if not args.input:
        raise InputError("run forecast: --input FILE.csv is required (rows with a time column and the target)")
    target = args.target_col or fc.facts["target"]
    series = read_csv(args.input, args.time_col, target, fc.covariates)
    h = fc.horizon
    print(f"# {target}: each row, then the forecast {h} step(s) ahead: median [10%, 90%]")
    when = "%Y-%m-%d" if fc.step < 0 or fc.step % 86400 == 0 else "%Y-%m-%d %H:%M"
    for i, t in enumerate(series.times):
        covs = [float(series.covariates[c][i]) for c in fc.covariates]
        f = fc.update(t, float(series.target[i]), covs)
        print(f"{t:{when}}  {series.target[i]:.6g}  ->  {f.times[-1]:{when}}  "
              f"{f.median[-1]:.6g} [{f.low[-1]:.6g}, {f.high[-1]:.6g}]")  # fmt: skip
    return 0
