"""The forecasters' usual baselines, scored on exactly the origins the model is scored on.

    naive            y_t for every horizon (persistence)
    seasonal naive   y_{t+h-m*ceil(h/m)}: the value one season back (m = the series' season)
    ets              statsmodels' Holt-Winters: additive damped trend, additive season when the
                     training rows hold two seasons (m <= 400), fitted on the training rows; at
                     each origin the same parameters and initial states filter the rows so far
    arima            statsmodels' SARIMAX, fitted on the training rows: (1,1,1)x(0,1,1,m) for
                     m <= 24 (the airline model), else (2,1,1) with 3 Fourier pairs of period m;
                     at each origin the fitted model is applied to the rows so far; its 80 %
                     interval is scored as the model's is

Every fit sees only the training rows; nothing is refitted on the held-out tail.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from edgernn.train.trainer import MissingDataError

FOURIER_PAIRS = 3


def naive(y: np.ndarray, at: np.ndarray, horizon: int) -> np.ndarray:
    return np.repeat(y[at][:, None, None], horizon, axis=1)


def seasonal_naive(y: np.ndarray, at: np.ndarray, horizon: int, m: int) -> np.ndarray:
    h = np.arange(1, horizon + 1)
    back = h - m * np.ceil(h / m).astype(int)  # <= 0
    return y[at[:, None] + back[None, :]][..., None]


def _statsmodels() -> Any:
    try:
        import statsmodels.api as sm
    except ImportError:
        raise MissingDataError("the forecast baselines use statsmodels: pip install statsmodels") from None
    return sm


def ets(y: np.ndarray, train_end: int, at: np.ndarray, horizon: int, m: int) -> np.ndarray:
    _statsmodels()
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    seasonal = "add" if 1 < m <= 400 and train_end >= 2 * m else None
    kw: dict[str, Any] = {"trend": "add", "damped_trend": True, "seasonal": seasonal}
    if seasonal:
        kw["seasonal_periods"] = m
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ExponentialSmoothing(y[:train_end], **kw).fit()
        p = fit.params
        known = {"initialization_method": "known", "initial_level": p["initial_level"],
                 "initial_trend": p["initial_trend"]}  # fmt: skip
        if seasonal:
            known["initial_seasonal"] = p["initial_seasons"]
        fixed = {k: p[k] for k in ("smoothing_level", "smoothing_trend", "smoothing_seasonal", "damping_trend")
                 if k in p and p[k] is not None and not (k == "smoothing_seasonal" and not seasonal)}  # fmt: skip
        out = []
        for t in at:
            res = ExponentialSmoothing(y[: t + 1], **kw, **known).fit(optimized=False, **fixed)
            out.append(res.forecast(horizon))
    return np.array(out)[..., None]


def _fourier(n: int, m: int) -> np.ndarray:
    t = np.arange(n)[:, None] * np.arange(1, FOURIER_PAIRS + 1)[None, :] * 2 * np.pi / m
    return np.concatenate([np.sin(t), np.cos(t)], axis=1)


def arima(y: np.ndarray, train_end: int, at: np.ndarray, horizon: int, m: int) -> np.ndarray:
    """(origins, H, 3): the 10 % bound, the mean and the 90 % bound."""
    sm = _statsmodels()
    if 1 < m <= 24:
        kw: dict[str, Any] = {"order": (1, 1, 1), "seasonal_order": (0, 1, 1, m)}
        exog = None
    else:
        kw = {"order": (2, 1, 1)}
        exog = _fourier(len(y) + horizon, m) if m > 1 else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sm.tsa.SARIMAX(y[:train_end], exog=None if exog is None else exog[:train_end], **kw)
        fit = model.fit(disp=False)
        full = fit.apply(y, exog=None if exog is None else exog[: len(y)])
        out = np.empty((len(at), horizon, 3))
        for i, t in enumerate(at):
            pred = full.get_prediction(start=t + 1, end=t + horizon, dynamic=True)
            ci = np.asarray(pred.conf_int(alpha=0.2))
            out[i] = np.stack([ci[:, 0], np.asarray(pred.predicted_mean), ci[:, 1]], axis=1)
    return out
