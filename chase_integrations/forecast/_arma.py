"""NumPy ARMA recursions for the ARIMA forecaster: innovations, multi-step paths, psi weights, AR by OLS.

The parameters come from regressions (Hannan-Rissanen for ARMA(p, q), least squares for AR(p));
forecasts are plain recursions, so that an ``update`` needs no model state and forecasts from
many past origins can be replayed at once to score the components of the combination (see
``_combine.py``). This is ``ArimaForecaster(estimator="numpy")`` (milliseconds per refit, the
option for constrained machines) and the fallback when a statsmodels fit fails or runs past its
cap; the default estimator is statsmodels (``_statsmodels.py``).

Conventions (as statsmodels): ``x_t = sum_i phi_i x_{t-i} + e_t + sum_j theta_j e_{t-j}``;
pre-sample values and innovations are 0.

Example:
    >>> import numpy as np
    >>> x = np.array([1.0, 0.5, 0.25, 0.125])
    >>> innovations(x, np.array([0.5]), np.array([])).tolist()
    [1.0, 0.0, 0.0, 0.0]
    >>> paths(x, innovations(x, np.array([0.5]), np.array([])), np.array([0.5]), np.array([]), np.array([3]), 2)
    array([[0.0625 , 0.03125]])
"""

from __future__ import annotations

import numpy as np


def innovations(x: np.ndarray, phi: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """One-step innovations ``e_t`` of ``x`` under ARMA(phi, theta), pre-sample taken as 0."""
    x = np.asarray(x, dtype=float)
    ar = x.copy()
    for i, c in enumerate(phi, start=1):
        ar[i:] -= c * x[:-i]
    if len(theta) == 0:
        return ar
    if len(theta) == 1:  # e_t = sum_k (-theta)^k ar_{t-k}, exact with a zero pre-sample (no Python loop)
        return np.convolve(ar, (-float(theta[0])) ** np.arange(len(ar)))[: len(ar)]
    e = np.zeros(len(x))
    q = len(theta)
    for t in range(len(x)):
        s = ar[t]
        for j in range(1, min(q, t) + 1):
            s -= theta[j - 1] * e[t - j]
        e[t] = s
    return e


def paths(x: np.ndarray, e: np.ndarray, phi: np.ndarray, theta: np.ndarray, origins: np.ndarray,
          horizon: int) -> np.ndarray:
    """Forecasts of ``x`` at ``origin + 1 .. origin + horizon`` for each index in ``origins``.

    Returns an array of shape ``(len(origins), horizon)``; ``origins`` are indices into ``x`` (the
    last value known at each origin). Values before index 0 count as 0.
    """
    origins = np.asarray(origins, dtype=np.int64)
    out = np.zeros((len(origins), horizon))

    def past(offset: int) -> np.ndarray:  # x at origin + offset (offset <= 0), 0 before the start
        idx = origins + offset
        return np.where(idx >= 0, x[np.maximum(idx, 0)], 0.0)

    def past_e(offset: int) -> np.ndarray:
        idx = origins + offset
        return np.where(idx >= 0, e[np.maximum(idx, 0)], 0.0)

    for k in range(1, horizon + 1):
        f = np.zeros(len(origins))
        for i, c in enumerate(phi, start=1):
            f += c * (out[:, k - i - 1] if k - i >= 1 else past(k - i))
        for j in range(k, len(theta) + 1):
            f += theta[j - 1] * past_e(k - j)
        out[:, k - 1] = f
    return out


def psi_sd(phi: np.ndarray, theta: np.ndarray, d: int, sigma2: float, horizon: int) -> np.ndarray:
    """Standard deviation of the 1..horizon-step forecast errors of ARIMA(phi, d, theta)."""
    psi = np.zeros(horizon)
    psi[0] = 1.0
    for k in range(1, horizon):
        v = theta[k - 1] if k <= len(theta) else 0.0
        for i in range(1, min(k, len(phi)) + 1):
            v += phi[i - 1] * psi[k - i]
        psi[k] = v
    for _ in range(d):
        psi = np.cumsum(psi)
    return np.sqrt(max(sigma2, 0.0) * np.cumsum(psi**2))


def fit_ar_ols(x: np.ndarray, max_p: int) -> tuple[np.ndarray, float, int]:
    """AR(p) by least squares without a constant, p in 1..max_p chosen by AIC on a common sample.

    Returns ``(phi, sigma2, p)``; an AR(p) outside the stationary region is shrunk until inside.
    """
    x = np.asarray(x, dtype=float)
    n = len(x) - max_p
    y = x[max_p:]
    best = (np.zeros(1), float(np.var(x)) or 1.0, 1, np.inf)
    for p in range(1, max_p + 1):
        lags = np.column_stack([x[max_p - i : len(x) - i] for i in range(1, p + 1)])
        phi = np.linalg.lstsq(lags, y, rcond=None)[0]
        sse = float(np.sum((y - lags @ phi) ** 2))
        aic = n * np.log(max(sse / n, 1e-12)) + 2 * p
        if aic < best[3]:
            best = (phi, sse / n, p, aic)
    phi = best[0]
    for _ in range(20):  # keep the mean-reverting component mean-reverting
        roots = np.roots(np.r_[1.0, -phi][::-1]) if len(phi) else np.array([2.0])
        if np.all(np.abs(roots) > 1.001):
            break
        phi = phi * 0.95
    return phi, best[1], best[2]


def _lags(x: np.ndarray, k: int, start: int) -> np.ndarray:
    return np.column_stack([x[start - i : len(x) - i] for i in range(1, k + 1)]) if k else np.zeros((len(x) - start, 0))


def _stabilize(coef: np.ndarray, sign: float) -> np.ndarray:
    """Shrink AR (``sign=-1``) or MA (``sign=+1``) coefficients until their roots lie outside the unit circle."""
    for _ in range(40):
        if len(coef) == 0 or np.all(np.abs(np.roots(np.r_[1.0, sign * coef][::-1])) > 1.01):
            break
        coef = coef * 0.95
    return coef


def fit_arma(x: np.ndarray, min_p: int, max_p: int, max_q: int, criterion: str = "aic"):
    """ARMA(p, q) without a constant by Hannan-Rissanen regression; (p, q) chosen by AIC/BIC.

    Stage 1 estimates innovations with a long AR(8); stage 2 regresses ``x_t`` on ``p`` lags of
    ``x`` and ``q`` lags of those innovations. The criterion uses the exact conditional
    innovations of each candidate on a common sample. Returns ``(phi, theta, sigma2, (p, q))``.
    """
    x = np.asarray(x, dtype=float)
    m = 8
    long_phi = np.linalg.lstsq(_lags(x, m, m), x[m:], rcond=None)[0]
    ehat = np.r_[np.zeros(m), x[m:] - _lags(x, m, m) @ long_phi]
    start = m + max(max_p, max_q)
    n = len(x) - start
    best = None
    for p in range(min_p, max_p + 1):
        for q in range(max_q + 1):
            regressors = np.concatenate([_lags(x, p, start), _lags(ehat, q, start)], axis=1)
            coef = np.linalg.lstsq(regressors, x[start:], rcond=None)[0] if p + q else np.zeros(0)
            phi, theta = _stabilize(coef[:p], -1.0), _stabilize(coef[p:], 1.0)
            sigma2 = float(np.mean(innovations(x, phi, theta)[start:] ** 2)) or 1e-12
            penalty = 2 * (p + q) if criterion == "aic" else np.log(n) * (p + q)
            score = n * np.log(sigma2) + penalty
            if best is None or score < best[0]:
                best = (score, phi, theta, sigma2, (p, q))
    return best[1], best[2], best[3], best[4]
