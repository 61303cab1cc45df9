"""Model fit and per-horizon forecast combination for :class:`~.arima.ArimaForecaster`.

Components, each a forecast of every horizon from every origin, computed with fixed parameters
from the hourly values alone (so that past origins can be replayed exactly):

0. ``arima``: daily Fourier profile + ARIMA(p, 1, q) on the standardized residuals (order by AIC;
   parameters from statsmodels or the NumPy Hannan-Rissanen fit, see ``fit_parts``); today's
   deviation from the profile persists.
1. ``ar_profile``: the same profile + AR(p) on the residuals (least squares); deviations decay
   back to the profile.
2. ``same_hour_yesterday``: the value 24 h before the target (48 h for hours 25..48, ...).
3. ``persistence``: the last value.

At each refit the components are replayed over the last ``score_days`` days (rolling origin, the
fresh parameters) and, per horizon, weighted by their inverse recent MAE to the power ``power``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from chase_integrations.forecast._arma import fit_ar_ols, fit_arma, innovations, paths, psi_sd
from chase_integrations.forecast.baselines import fourier_terms, robust_bounds

COMPONENTS = ("arima", "ar_profile", "same_hour_yesterday", "persistence")


@dataclass(frozen=True)
class Parts:
    """Fitted parameters of the model components (gCO2eq/kWh scale via ``beta`` and ``scale``)."""

    beta: np.ndarray  # constant + Fourier coefficients of the daily profile
    scale: float  # residual standard deviation
    bounds: tuple[float, float]  # outlier clip range
    fourier_k: int
    order: tuple[int, int, int]  # of the ARIMA component
    phi: np.ndarray
    theta: np.ndarray
    sigma2: float  # innovation variance of the standardized ARIMA component
    phi0: np.ndarray  # AR of the profile-reverting component
    sigma2_0: float
    offset: float | None = None  # models fitted to log(value + offset); None: to the values


def _to_model(parts_or_offset, values: np.ndarray) -> np.ndarray:
    offset = parts_or_offset.offset if isinstance(parts_or_offset, Parts) else parts_or_offset
    return np.log(np.maximum(values, 0.0) + offset) if offset is not None else np.asarray(values, float)


def design(hours: np.ndarray, fourier_k: int) -> np.ndarray:
    """Constant plus daily Fourier terms at absolute ``hours``."""
    terms = fourier_terms(hours, fourier_k)
    ones = np.ones((len(hours), 1))
    return ones if terms is None else np.concatenate([ones, terms], axis=1)


# (z, d, min_p) -> (phi, theta, sigma2, (p, q)): fits ARIMA(p, d, q) to the standardized residuals z
ArmaFit = Callable[[np.ndarray, int, int], tuple[np.ndarray, np.ndarray, float, tuple[int, int]]]


def fit_parts(values: np.ndarray, first_h: int, d: int, max_p: int, max_q: int, fourier_k: int,
              half_life_h: float | None, criterion: str, log: bool = True, arma: ArmaFit | None = None) -> Parts:
    """Stage 1: the daily profile by (recency-weighted) least squares; stage 2: the residual models.

    With ``log``, both are fitted to ``log(value + c)``, ``c = max(1, 0.2 * median)``: the
    additive offset keeps zeros finite and damps the relative swings of near-zero grids.
    ``arma`` fits the ARIMA component to the standardized residuals (``z, d, min_p``); ``None``
    uses the NumPy Hannan-Rissanen regressions on ``diff(z, d)`` (``_arma.fit_arma``).
    """
    offset = max(1.0, 0.2 * float(np.median(values))) if log else None
    values = _to_model(offset, values)
    bounds = robust_bounds(values)
    y = np.clip(values, *bounds)
    x = design(np.arange(first_h, first_h + len(y)), fourier_k)
    age_h = np.arange(len(y))[::-1]
    weight = np.sqrt(0.5 ** (age_h / half_life_h)) if half_life_h else np.ones(len(y))
    beta = np.linalg.lstsq(x * weight[:, None], y * weight, rcond=None)[0]
    residual = y - x @ beta
    scale = float(np.std(residual)) or 1.0
    z = residual / scale
    if arma is None:
        series = np.diff(z, n=d) if d else z
        phi, theta, sigma2, (p, q) = fit_arma(series, 0 if d else 1, max_p, max_q, criterion)
    else:
        phi, theta, sigma2, (p, q) = arma(z, d, 0 if d else 1)
    phi0, sigma2_0, _ = fit_ar_ols(z, 3)
    return Parts(beta, scale, bounds, fourier_k, (p, d, q), phi, theta, sigma2, phi0, sigma2_0, offset)


def standardized(parts: Parts, values: np.ndarray, first_h: int) -> np.ndarray:
    """The standardized profile residuals ``z`` of ``values`` (hours ``first_h ...``) that the ARIMA models."""
    profile = design(np.arange(first_h, first_h + len(values)), parts.fourier_k) @ parts.beta
    return (np.clip(_to_model(parts, values), *parts.bounds) - profile) / parts.scale


def components(parts: Parts, values: np.ndarray, first_h: int, origins: np.ndarray, horizon: int,
               arima_z: np.ndarray | None = None) -> np.ndarray:
    """Forecasts of every component, shape ``(len(origins), horizon, len(COMPONENTS))``.

    ``origins`` index ``values`` (the last value known); target of step ``k`` is ``origin + k``.
    ``arima_z`` (``(len(origins), horizon)``), when given, replaces the ARIMA component's own
    recursion for ``z`` (a statsmodels forecast from the same origins).
    """
    origins = np.asarray(origins, dtype=np.int64)
    n = len(values)
    hours = np.arange(first_h, first_h + n + horizon)
    profile = design(hours, parts.fourier_k) @ parts.beta
    z = (np.clip(_to_model(parts, values), *parts.bounds) - profile[:n]) / parts.scale
    steps = np.arange(1, horizon + 1)
    target = origins[:, None] + steps[None, :]
    out = np.empty((len(origins), horizon, len(COMPONENTS)))
    if arima_z is not None:
        zhat = np.asarray(arima_z, dtype=float)
    elif parts.order[1] >= 1:
        dz = np.diff(z)
        e = innovations(dz, parts.phi, parts.theta)
        zhat = z[origins][:, None] + np.cumsum(paths(dz, e, parts.phi, parts.theta, origins - 1, horizon), axis=1)
    else:
        e = innovations(z, parts.phi, parts.theta)
        zhat = paths(z, e, parts.phi, parts.theta, origins, horizon)
    out[:, :, 0] = profile[target] + parts.scale * zhat
    e0 = innovations(z, parts.phi0, np.zeros(0))
    out[:, :, 1] = profile[target] + parts.scale * paths(z, e0, parts.phi0, np.zeros(0), origins, horizon)
    if parts.offset is not None:
        out[:, :, :2] = np.exp(np.minimum(out[:, :, :2], 50.0)) - parts.offset
    back = target - 24 * ((steps[None, :] - 1) // 24 + 1)
    out[:, :, 2] = np.where(back >= 0, values[np.maximum(back, 0)], values[origins][:, None])
    out[:, :, 3] = values[origins][:, None]
    return np.maximum(out, 0.0)


def replay(parts: Parts, values: np.ndarray, first_h: int, horizon: int, days: float,
           arima_z: Callable[[np.ndarray, int], np.ndarray] | None = None):
    """Component forecasts and actuals for targets in the last ``days`` days (rolling origin).

    Returns ``(forecasts (n, horizon, C), actual (n, horizon))`` with ``nan`` actuals where the
    target is outside the scored span or not yet seen. ``arima_z(origins, horizon)``, when given,
    supplies the ARIMA component's ``z`` paths (see :func:`components`).
    """
    n = len(values)
    span = int(days * 24)
    first = max(25, n - 1 - span - horizon + 1)
    origins = np.arange(first, n - 1)
    if len(origins) == 0:
        return np.zeros((0, horizon, len(COMPONENTS))), np.zeros((0, horizon))
    fc = components(parts, values, first_h, origins, horizon, None if arima_z is None else arima_z(origins, horizon))
    target = origins[:, None] + np.arange(1, horizon + 1)[None, :]
    ok = (target <= n - 1) & (target >= n - span)
    actual = np.where(ok, values[np.minimum(target, n - 1)], np.nan)
    return fc, actual


def weights(fc: np.ndarray, actual: np.ndarray, power: float, use: tuple[int, ...],
            min_count: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Per-horizon inverse-MAE weights ``(horizon, C)`` and the combined RMS error per horizon.

    Horizons with fewer than ``min_count`` scored targets take the ARIMA component alone and a
    ``nan`` error (the caller then uses the model's own spread).
    """
    horizon, c = actual.shape[1], fc.shape[2]
    w = np.zeros((horizon, c))
    w[:, 0] = 1.0
    rms = np.full(horizon, np.nan)
    for h in range(horizon):
        ok = ~np.isnan(actual[:, h])
        if ok.sum() < min_count:
            continue
        err = np.abs(fc[ok, h, :] - actual[ok, h, None])
        mae = np.maximum(err.mean(axis=0), 1e-9)
        wh = np.zeros(c)
        wh[list(use)] = mae[list(use)] ** -power
        w[h] = wh / wh.sum()
        rms[h] = float(np.sqrt(np.mean((fc[ok, h, :] @ w[h] - actual[ok, h]) ** 2)))
    return w, rms


def model_sd(parts: Parts, horizon: int, level: float) -> np.ndarray:
    """Forecast-error standard deviation of the ARIMA component (gCO2eq/kWh) around ``level``."""
    sd = parts.scale * psi_sd(parts.phi, parts.theta, parts.order[1], parts.sigma2, horizon)
    return sd * (max(level, 0.0) + parts.offset) if parts.offset is not None else sd
