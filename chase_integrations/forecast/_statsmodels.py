"""statsmodels ARIMA for the ARIMA component of :class:`~.arima.ArimaForecaster` (worker thread only).

statsmodels is imported lazily, the first time a fit runs, and every statsmodels call (import,
fits, ``extend``, ``forecast``) runs inside ``warnings.catch_warnings()`` with warnings ignored:
its import adds global "always" filters and its fits warn freely (convergence, invertibility).
``catch_warnings`` saves and restores the process-wide filter list (Python < 3.14), so the calls
are serialized by a module lock -- two forecasters' worker threads never interleave their
save/restore. A filter change made by another thread *during* one of these calls is undone when
the call ends; the forecaster therefore makes them only on its worker thread, never on the
caller's (``update`` schedules the append there).

Estimation: ``ARIMA(z, order=(p, d, q), trend="n").fit(method="innovations_mle", cov_type="none")``
on the standardized profile residuals ``z``, p in ``min_p..max_p`` and q in ``0..max_q`` chosen
by AIC/BIC (the state-space likelihood, comparable across orders). Measured on 14-day DE-LU and
NO windows (2 loaded cores): the six-order grid took 0.3-0.7 CPU s with ``innovations_mle`` and
0.5-6.5 CPU s with the default ``statespace`` L-BFGS (same orders and parameters), whose
``maxiter`` did not bound it; no standard errors are needed (``cov_type="none"``).
"""

from __future__ import annotations

import threading
import time
import warnings

import numpy as np

_LOCK = threading.Lock()  # serializes catch_warnings() blocks across worker threads
METHOD = "innovations_mle"


class FitTimeout(RuntimeError):
    """The order search passed its CPU-time cap before finishing the grid."""


def _arima():
    with _LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from statsmodels.tsa.arima.model import ARIMA

    return ARIMA


def fit_arima(z: np.ndarray, d: int, min_p: int, max_p: int, max_q: int, criterion: str, cap_s: float):
    """Fit ARIMA(p, d, q) to ``z`` for every order of the grid; keep the best by ``criterion``.

    ``cap_s`` bounds the CPU time of the calling thread spent on the grid (checked before each
    order, so one order may overrun it; the one-off import is not counted). Returns
    ``(results, phi, theta, sigma2, (p, q))``.

    Raises:
        FitTimeout: The cap passed before the grid was done.
        RuntimeError: No order could be fitted.
    """
    arima = _arima()
    started = time.thread_time()
    z = np.asarray(z, dtype=float)
    best, best_score, errors = None, np.inf, []
    orders = [(p, q) for p in range(min_p, max_p + 1) for q in range(max_q + 1)]
    for i, (p, q) in enumerate(orders):
        spent = time.thread_time() - started
        if spent > cap_s:
            raise FitTimeout(f"order search over the {cap_s:g} CPU s cap after {i} of {len(orders)} orders "
                             f"({spent:.2f} s)")
        with _LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                res = arima(z, order=(p, d, q), trend="n").fit(method=METHOD, cov_type="none")
                score = float(res.aic if criterion == "aic" else res.bic)
            except Exception as e:  # an order that cannot be fitted is skipped
                errors.append(f"({p},{d},{q}): {type(e).__name__}: {e}")
                continue
        if np.isfinite(score) and score < best_score:
            best, best_score = (res, (p, q)), score
    if best is None:
        raise RuntimeError("no order could be fitted: " + "; ".join(errors)[:300])
    res, (p, q) = best
    params = np.asarray(res.params, dtype=float)
    phi, theta = params[:p], params[p : p + q]
    sigma2 = float(params[-1])
    if not (np.all(np.isfinite(params)) and sigma2 > 0):
        raise RuntimeError(f"non-finite parameters for ARIMA({p},{d},{q}): {params}")
    return res, phi, theta, sigma2, (p, q)


def kalman_paths(results, origins: np.ndarray, horizon: int) -> np.ndarray:
    """Forecasts of ``z`` at ``origin + 1 .. origin + horizon`` from every index in ``origins``.

    From the filter's one-step predicted states ``a[o + 1]`` (data up to ``o``):
    ``z_hat(o + k) = Z T^(k-1) a[o + 1]``, exactly what ``results.forecast`` gives at the last
    origin, so the combination is scored with the forecasts it will use. (The NumPy recursion,
    which starts innovations from zeros, is far off when the MA root is near -1, as statsmodels'
    exact likelihood often finds on over-differenced residuals.) Shape ``(len(origins), horizon)``.
    """
    with _LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _state_paths(results, origins, horizon)


def _state_paths(results, origins: np.ndarray, horizon: int) -> np.ndarray:
    """:func:`kalman_paths` without the lock (callers hold it)."""
    fr = results.filter_results
    design, transition = np.asarray(fr.design)[:, :, 0], np.asarray(fr.transition)[:, :, 0]
    states = np.asarray(fr.predicted_state)[:, np.asarray(origins, dtype=np.int64) + 1].T
    rows = np.empty((horizon, transition.shape[0]))
    row = design[0]
    for k in range(horizon):
        rows[k] = row
        row = row @ transition
    return states @ rows.T


def append_forecast(results, z_new: np.ndarray, horizon: int):
    """Add ``z_new`` to ``results`` without refitting and forecast ``horizon`` steps of ``z``.

    Uses ``results.extend(z_new)``: statsmodels' append-without-refit that filters only the new
    values, starting from the state ``results`` ended in. Its forecasts equal those of
    ``results.append(z_new, refit=False)`` (to ~1e-9, tested) but it took 10-14 ms instead of
    80-90 ms here: ``append`` re-filters and re-smooths the whole series, re-initializing the
    state six times. The forecast is read off the filter's last predicted state
    (:func:`kalman_paths`), equal to ``res.forecast(horizon)`` to ~1e-15 (tested) in a fraction of
    a millisecond instead of 2-12 ms (``forecast`` builds and filters another model). Returns
    ``(new results, forecast array)``; with no new values, forecasts from ``results``.
    """
    with _LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = results.extend(np.asarray(z_new, dtype=float)) if len(z_new) else results
        last = int(res.nobs) - 1
        path = np.asarray(_state_paths(res, np.array([last]), horizon)[0], dtype=float)
    return res, path
