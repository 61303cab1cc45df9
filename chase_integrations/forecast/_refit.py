"""The ARIMA forecaster's background work: refits and statsmodels appends on one worker thread.

A mixin of :class:`~chase_integrations.forecast.arima.ArimaForecaster` (it uses the forecaster's lock,
buffer and settings); kept apart so each file reads in one sitting. Logs under the forecaster's logger.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from chase_integrations.forecast._combine import COMPONENTS, Parts, fit_parts, model_sd, replay, standardized, weights

logger = logging.getLogger("chase_integrations.forecast.arima")

_SCORE_H = 48  # horizons scored (and weighted separately) at each refit
_SM_HORIZON = 168  # hours of the cached statsmodels forecast; longer predictions use the NumPy recursion


@dataclass(frozen=True)
class _Fitted:
    parts: Parts
    weights: np.ndarray  # (score horizon, component) combination weights
    sd: np.ndarray  # (score horizon,) forecast-error standard deviation of the combination
    results: object | None = None  # statsmodels ARIMAResults of the refit (None: NumPy estimator)
    end_h: int | None = None  # absolute hour of the last value in ``results``


@dataclass(frozen=True)
class _Path:
    """The statsmodels forecast of the ARIMA component's ``z`` from ``origin_h`` (after an append)."""

    model: _Fitted
    origin_h: int
    z: np.ndarray


class BackgroundRefits:
    """Refits (:meth:`_refit`) and statsmodels appends (:meth:`_append_job`) run on the forecaster's worker."""

    def _refit(self, first_h: int, values: np.ndarray, generation: int) -> None:
        try:
            self._refit_once(first_h, values, generation)
        finally:
            with self._lock:  # a fit asked for meanwhile (new history, hours due) runs next
                if self._rerun:
                    self._rerun = False
                    self._pending = None
                    self._schedule_locked()

    def _fit_parts(self, values: np.ndarray, first_h: int):
        """The model parts by the chosen estimator: ``(parts, statsmodels results or None, path, estimator)``."""
        args = (values, first_h, self.d, self.max_p, self.max_q, self.fourier_k, self.half_life_h,
                self.criterion, self.log)
        if self.estimator == "numpy":
            return fit_parts(*args), None, None, "numpy"
        from chase_integrations.forecast import _statsmodels

        fitted: dict[str, object] = {}

        def arma(z: np.ndarray, d: int, min_p: int):
            res, phi, theta, sigma2, pq = _statsmodels.fit_arima(
                z, d, min_p, self.max_p, self.max_q, self.criterion, self.fit_time_cap_s)
            fitted["results"] = res
            return phi, theta, sigma2, pq

        try:
            parts = fit_parts(*args, arma=arma)
            _, path = _statsmodels.append_forecast(fitted["results"], np.zeros(0), _SM_HORIZON)
            if not np.all(np.isfinite(path)):
                raise RuntimeError("non-finite statsmodels forecast")
            return parts, fitted["results"], path, "statsmodels"
        except Exception as e:  # this refit uses the NumPy estimator
            reason = f"{type(e).__name__}: {e}"
            self._log_once("statsmodels " + type(e).__name__,
                           f"ArimaForecaster: statsmodels fit failed ({reason}); using the NumPy estimator "
                           "for this refit.", logging.WARNING)
            return fit_parts(*args), None, None, f"numpy (statsmodels failed: {reason})"

    def _refit_once(self, first_h: int, values: np.ndarray, generation: int) -> None:
        started, started_cpu = time.perf_counter(), time.thread_time()
        try:
            parts, results, path, estimator = self._fit_parts(values, first_h)
            arima_z = None
            if results is not None:
                from chase_integrations.forecast._statsmodels import kalman_paths

                arima_z = lambda origins, horizon: kalman_paths(results, origins, horizon)  # noqa: E731
            fc, actual = replay(parts, values, first_h, _SCORE_H, self.score_days, arima_z)
            use = tuple(range(len(COMPONENTS))) if self.combine else (0,)
            w, rms = weights(fc, actual, self.combine_power, use)
            sd = np.where(np.isfinite(rms), rms, model_sd(parts, _SCORE_H, float(values[-1])))
            end_h = first_h + len(values) - 1
            fitted = _Fitted(parts, w, np.maximum.accumulate(np.maximum(sd, 1e-6)), results, end_h)
        except Exception as e:  # a failed fit must never reach the training loop
            with self._lock:
                if self._model is None:
                    self._set_fallback(f"fit failed: {type(e).__name__}: {e}")
            logger.warning("ArimaForecaster: fit failed (%s); keeping the previous model or a baseline.", e)
            return
        with self._lock:
            self.last_fit_s = time.perf_counter() - started
            self.last_fit_cpu_s = time.thread_time() - started_cpu
            if generation != self._generation:
                return
            self._model = fitted
            self.order = parts.order
            self.last_estimator = estimator
            key = "numpy fallback" if estimator.startswith("numpy (") else estimator
            self.fits_by_estimator[key] = self.fits_by_estimator.get(key, 0) + 1
            if path is not None:
                self._path = _Path(fitted, end_h, path)
                if self._buffer.last_h is not None and self._buffer.last_h != end_h:
                    self._schedule_append_locked()  # hours that came in during the refit
            if self.fallback_reason is not None:
                logger.info("ArimaForecaster: model ARIMA%s ready after %.2f s.", parts.order, self.last_fit_s)
            self.fallback_reason = None

    def _schedule_append_locked(self) -> None:
        """Have the worker append the hours since the refit to the statsmodels results (coalesced)."""
        self._append_due = True
        if self._append_future is None and not self._closed and self._executor is not None:
            self._append_future = self._executor.submit(self._append_job)

    def _append_job(self) -> None:
        while True:
            with self._lock:
                if not self._append_due or self._closed:
                    self._append_future = None
                    return
                self._append_due = False
                model, first_h, values = self._model, self._buffer.first_h, self._buffer.values()
            if model is None or model.results is None or first_h is None:
                continue
            start = model.end_h + 1 - first_h  # index of the first hour the results lack
            if start < 0 or start > len(values):  # window moved past the refit, or history replaced
                continue
            started = time.perf_counter()
            try:
                from chase_integrations.forecast import _statsmodels

                z_new = standardized(model.parts, values[start:], first_h + start)
                _, path = _statsmodels.append_forecast(model.results, z_new, _SM_HORIZON)
            except Exception as e:  # predict falls back to the NumPy recursion
                self._log_once("append", f"ArimaForecaster: statsmodels append failed ({e}); "
                               "forecasting with the NumPy recursion until the next refit.", logging.WARNING)
                continue
            with self._lock:
                self.last_append_s = time.perf_counter() - started
                if self._model is model and np.all(np.isfinite(path)):
                    self._path = _Path(model, first_h + len(values) - 1, path)
