"""Forecast any regular time series row by row: the next H values with an interval.

The model (``edgernn train forecast``) carries what it read in its state; every row gives
the forecasts of the next ``horizon`` steps as the quantiles ``spec.task['quantiles']``
(10 %, 50 %, 90 %: the median and an 80 % interval). Frame and output formulas live in
``edgernn.runtime.series``, which training imports too.

Example:
    >>> from edgernn.runtime.apps import load_app
    >>> from edgernn.runtime.apps.forecast import SeriesForecaster
    >>> fc = SeriesForecaster(load_app("forecast"))
    >>> import datetime as dt
    >>> f = fc.update(dt.datetime(1990, 1, 1), 354.0)
    >>> len(f.median) == fc.horizon
    True
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgernn.runtime.apps import task_field
from edgernn.runtime.engine import Engine
from edgernn.runtime.errors import InputError, SpecError
from edgernn.runtime.series import advance, calendar_names, decode, describe_step, frame, step_between

NUMBER_FACTS = ("y_mean", "y_std", "diff_std")


@dataclass(frozen=True)
class SeriesForecast:
    """Forecasts of the ``len(times)`` steps after the row just fed."""

    times: list[dt.datetime]
    low: list[float]  # the lowest quantile (10 %)
    median: list[float]
    high: list[float]  # the highest quantile (90 %)


def check_facts(engine: Engine) -> dict:
    """The forecast task facts of ``engine``'s spec, checked; SpecError naming the bad field."""
    facts = dict(engine.spec.task)
    horizon = task_field(engine, "horizon", int)
    quantiles = task_field(engine, "quantiles", list)
    step = task_field(engine, "step", int)
    names = [str(n) for n in task_field(engine, "frame_names", list)]
    covs = facts.get("covariates", [])
    bad = [k for k in NUMBER_FACTS if not isinstance(facts.get(k), (int, float)) or not math.isfinite(facts[k])]
    if bad or step == 0 or horizon < 1 or not isinstance(covs, list):
        raise SpecError(f"{engine.source}: spec.task is not a forecast task's ({bad or 'step/horizon/covariates'})")
    if facts.get("calendar") != calendar_names(step):
        raise SpecError(f"{engine.source}: spec.task['calendar'] must be {calendar_names(step)} for step {step}")
    for key, n in (("delta_std", horizon), ("cov_mean", len(covs)), ("cov_std", len(covs))):
        arr = np.asarray(facts.get(key), dtype=np.float64)
        if arr.shape != (n,) or not np.isfinite(arr).all():
            raise SpecError(f"{engine.source}: spec.task[{key!r}] must hold {n} finite numbers")
    if engine.frame_shape != (len(names),):
        raise SpecError(f"{engine.source}: frames have shape {engine.frame_shape}, frame_names has {len(names)}")
    if engine.spec.outputs[0].shape[-1] != horizon * len(quantiles):
        need = horizon * len(quantiles)
        raise SpecError(f"{engine.source}: the output must hold horizon x quantiles = {need} values")
    return facts


class SeriesForecaster:
    """Rows in (time, value, covariates), the next ``horizon`` forecasts out; state carried."""

    def __init__(self, engine: Engine) -> None:
        self.facts = check_facts(engine)
        self.horizon: int = self.facts["horizon"]
        self.step: int = self.facts["step"]
        self.covariates: list[str] = list(self.facts["covariates"])
        self.stream = engine.stream()
        self.last: tuple[dt.datetime, float] | None = None

    def update(self, t: dt.datetime, y: float, covariates: Sequence[float] = ()) -> SeriesForecast:
        """Feed the row at ``t``; a row out of order, off the grid or non-finite is refused, state kept."""
        if not math.isfinite(y):
            raise InputError(f"forecast: {self.facts['target']} at {t} is {y}, not a finite number")
        if len(covariates) != len(self.covariates) or not all(math.isfinite(c) for c in covariates):
            raise InputError(f"forecast: row at {t} needs finite covariates {self.covariates}, got {list(covariates)}")
        if self.last is not None:
            n = step_between(self.last[0], t, self.step) if t > self.last[0] else 0
            if n != 1:
                raise InputError(
                    f"forecast: the row at {t} is not the next step ({describe_step(self.step)}) after {self.last[0]}"
                    + ("; rows must be in time order" if t <= self.last[0] else "; fill missing steps first")
                )
        x = frame(self.facts, y, None if self.last is None else self.last[1], t, covariates)
        out = self.stream.step(x)
        self.last = (t, y)
        q = decode(self.facts, out, y)
        times = [advance(t, self.step, h) for h in range(1, self.horizon + 1)]
        return SeriesForecast(times, q[:, 0].tolist(), q[:, q.shape[1] // 2].tolist(), q[:, -1].tolist())

    def reset(self) -> None:
        self.stream.reset()
        self.last = None
