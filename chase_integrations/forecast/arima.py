"""ARIMA forecaster of hourly carbon intensity, fitted in a background thread.

Model (chosen by measurement on tuning windows that precede every evaluation window, see
``bench/forecast.py``): regression on a daily profile with ARIMA errors, fitted in two stages on the
last ``window_h`` hours (14 days). Stage 1 fits the daily profile (a constant and ``fourier_k=3``
sine/cosine pairs of the 24 h cycle) by least squares; stage 2 fits ARIMA(p, 1, q) (statsmodels,
state space) to the standardized residuals, choosing p in 0..2 and q in 0..1 by AIC at every
refit. Why this shape:

* Seasonal ARIMA with s=24 took ~1 s per candidate fit here, too slow for an order search within
  the 2 s refit budget; putting the Fourier terms into the ARIMA as exog made the likelihood
  search slow to converge (2-5 s per fit on real traces) -- hence the two stages.
* d=1 vs d=0 on the tuning windows (14 grids, 14 days): both cut 1 h MAPE to 0.6-0.8 x
  persistence; at 24 h, d=0 (deviations decay to the 14-day profile) won big on wind-driven grids
  (DE-LU, GB: 0.8 x same-hour-yesterday) but lost badly on solar/hydro grids (CISO 1.4x, NO 2.5x),
  while d=1 (today's deviation from the profile persists) stayed within 0.96-1.17x everywhere.
  We take the safer d=1. A recency-weighted profile (half-life 72 h) did not change that picture.

Refits run on a single worker thread: :meth:`fit` and :meth:`update` return at once and
:meth:`predict` uses the last finished model, or a seasonal-naive / persistence baseline before
the first fit finishes (``fallback_reason`` says why). :meth:`wait` blocks until pending fits are
done, for tests, simulations and backtests. Between refits (every ``refit_every_h`` new hours)
new hours are added with ``results.append(..., refit=False)`` (a few ms).

Warnings: statsmodels changes the global warning filters when imported and warns freely while
fitting. It is imported and fitted only inside ``warnings.catch_warnings()`` on the worker thread
(serialized by a lock), so the filters are restored afterwards. ``catch_warnings`` is
process-wide before Python 3.14: a filter change made by another thread *during* a fit is undone
when the fit ends. Appends and forecasts run on the caller's thread and emit no warnings.

Example:
    >>> import math
    >>> from datetime import datetime, timedelta, timezone
    >>> from chase_integrations.carbon.reading import IntensityReading
    >>> t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    >>> history = [IntensityReading(t0 + timedelta(hours=h), 200 + 50 * math.sin(2 * math.pi * h / 24))
    ...            for h in range(7 * 24)]
    >>> f = ArimaForecaster()
    >>> f.fit(history, wait=True)
    >>> f.fallback_reason is None, len(f.predict(24))
    (True, 24)
    >>> iv = f.predict_interval(1, alpha=0.2)[0]
    >>> iv.lower_g_per_kwh <= iv.g_per_kwh <= iv.upper_g_per_kwh
    True
    >>> f.close()
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from chase_integrations.carbon.reading import IntensityReading
from chase_integrations.errors import ConfigurationError
from chase_integrations.forecast.base import Forecaster
from chase_integrations.forecast.baselines import HourlyBuffer, baseline_forecast, fourier_terms, robust_bounds

logger = logging.getLogger(__name__)

_STATSMODELS_LOCK = threading.Lock()
_Z_BY_ALPHA: dict[float, float] = {}


@dataclass(frozen=True)
class ForecastInterval:
    """A point forecast with its central ``1 - alpha`` prediction interval (gCO2eq/kWh).

    Example:
        >>> from datetime import datetime, timezone
        >>> ForecastInterval(datetime(2024, 1, 1, tzinfo=timezone.utc), 100.0, 90.0, 110.0, 0.2).upper_g_per_kwh
        110.0
    """

    time: datetime
    g_per_kwh: float
    lower_g_per_kwh: float
    upper_g_per_kwh: float
    alpha: float


@dataclass(frozen=True)
class _Fitted:
    results: object  # statsmodels ARIMAResults on the standardized profile residuals
    beta: np.ndarray  # constant + Fourier coefficients of the daily profile
    scale: float  # residual standard deviation (gCO2eq/kWh)
    end_h: int  # absolute hour (epoch_s // 3600) after the last observation in ``results``
    order: tuple[int, int, int]
    bounds: tuple[float, float]


class ArimaForecaster(Forecaster):
    """Fourier-regression ARIMA with background refits, appends, intervals and provider blending.

    Args:
        window_h: Hours of history kept and fitted on (history is capped at this window).
        refit_every_h: Refit after this many new hours; in between, new hours are appended.
        min_history_h: Below this many hours the forecaster falls back to a baseline.
        max_p: Largest AR order tried (0..max_p when d > 0, else 1..max_p).
        max_q: Largest MA order tried (0..max_q).
        fourier_k: Number of daily sine/cosine pairs in the daily profile.
        d: Differencing order of the ARMA part (1: today's deviation from the profile persists;
            0: it decays back to the 14-day profile).
        half_life_h: Recency weighting of the daily-profile fit (hours); ``None`` weighs all equally.
        criterion: ``"aic"`` or ``"bic"``, used to choose the order.
        max_gap_h: Gaps up to this many hours are interpolated; longer ones restart the history.
        external_weight: Weight of a provider's own forecast in the blend
            ``w * external + (1 - w) * ours`` (see :meth:`set_external_forecast`).

    Attributes:
        fallback_reason: ``None`` when forecasts come from a fitted model, else why a baseline is used.
        order: The (p, d, q) of the model in use, or ``None``.
        last_fit_s: Wall time of the last refit in seconds (including the order search).
    """

    name = "arima"

    def __init__(
        self,
        window_h: int = 14 * 24,
        refit_every_h: int = 24,
        min_history_h: int = 48,
        max_p: int = 2,
        max_q: int = 1,
        fourier_k: int = 3,
        d: int = 1,
        half_life_h: float | None = None,
        criterion: str = "aic",
        max_gap_h: int = 6,
        external_weight: float = 0.5,
    ) -> None:
        for arg, value, low in (("window_h", window_h, 48), ("refit_every_h", refit_every_h, 1),
                                ("min_history_h", min_history_h, 24), ("max_p", max_p, 0),
                                ("max_q", max_q, 0), ("fourier_k", fourier_k, 0), ("max_gap_h", max_gap_h, 0),
                                ("d", d, 0)):
            if not isinstance(value, int) or value < low:
                raise ConfigurationError.invalid(arg, value, f"an integer >= {low}")
        if min_history_h > window_h:
            raise ConfigurationError.invalid("min_history_h", min_history_h, f"<= window_h ({window_h})")
        if half_life_h is not None and not half_life_h > 0:
            raise ConfigurationError.invalid("half_life_h", half_life_h, "a positive number of hours or None")
        if criterion not in ("aic", "bic"):
            raise ConfigurationError.invalid("criterion", criterion, "'aic' or 'bic'")
        if not 0.0 <= external_weight <= 1.0:
            raise ConfigurationError.invalid("external_weight", external_weight, "a number in [0, 1]")
        self.window_h, self.refit_every_h, self.min_history_h = window_h, refit_every_h, min_history_h
        self.max_p, self.max_q, self.fourier_k, self.criterion = max_p, max_q, fourier_k, criterion
        self.d, self.half_life_h = d, half_life_h
        self.external_weight = float(external_weight)
        self._buffer = HourlyBuffer(window_h, max_gap_h)
        self._lock = threading.RLock()
        self._model: _Fitted | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future | None = None
        self._generation = 0
        self._hours_since_fit = 0
        self._rerun = False  # a fit was asked for while one was running
        self._closed = False
        self._external: dict[int, float] = {}
        self._logged: set[str] = set()
        self.fallback_reason: str | None = "not fitted yet"
        self.order: tuple[int, int, int] | None = None
        self.last_fit_s: float | None = None

    # --- Forecaster API -----------------------------------------------------------------------
    def fit(self, history: Iterable[IntensityReading], wait: bool = False) -> None:
        """Replace the history with ``history`` and refit in the background.

        Args:
            history: Past readings in any order; resampled to hourly means.
            wait: Block until the fit has finished (deterministic tests and backtests).
        """
        with self._lock:
            self._generation += 1
            self._buffer.clear()
            self._model = None
            for reading in sorted(history, key=lambda r: r.time):
                self._buffer.add(reading.time, reading.g_per_kwh)
            self._schedule_locked()
        if wait:
            self.wait()

    def update(self, reading: IntensityReading) -> None:
        """Add one reading; appends it to the current model and starts a refit when one is due."""
        with self._lock:
            before = self._buffer.last_h
            outcome = self._buffer.add(reading.time, reading.g_per_kwh)
            if outcome == "restarted":
                self._generation += 1
                self._model = None
                self._log_once("gap", "ArimaForecaster: a gap longer than max_gap_h; history restarted.")
            if self._buffer.last_h is not None and before is not None:
                self._hours_since_fit += max(0, self._buffer.last_h - before)
            self._catch_up_locked()
            if self._model is None or self._hours_since_fit >= self.refit_every_h:
                self._schedule_locked()

    def predict(self, hours: int) -> list[IntensityReading]:
        """Forecast the next ``hours`` hours after the newest reading (never negative)."""
        return [IntensityReading(iv.time, iv.g_per_kwh, True) for iv in self.predict_interval(hours)]

    def predict_interval(self, hours: int, alpha: float = 0.2) -> list[ForecastInterval]:
        """Forecast with central ``1 - alpha`` prediction intervals (gCO2eq/kWh, clipped at 0).

        With an external forecast blended in, the interval is shifted with the point forecast.
        Before the first fit the baseline's interval is the empirical spread of ``h``-hour changes.
        """
        if not 0.0 < alpha < 1.0:
            raise ConfigurationError.invalid("alpha", alpha, "a number in (0, 1)")
        hours = int(hours)
        with self._lock:
            model, last_h = self._model, self._buffer.last_h
            values = self._buffer.values()
            external = dict(self._external)
        if last_h is None or hours <= 0:
            return []
        if model is None:
            mean, lower, upper = baseline_forecast(values, hours, _z(alpha))
        else:
            mean, lower, upper = self._model_forecast(model, hours, alpha)
        weight = self.external_weight
        out = []
        for step in range(hours):
            hour = last_h + step + 1
            point = float(mean[step])
            shift = 0.0
            if hour in external:
                shift = weight * (external[hour] - point)
            out.append(ForecastInterval(
                datetime.fromtimestamp(hour * 3600, tz=timezone.utc), max(0.0, point + shift),
                max(0.0, float(lower[step]) + shift), max(0.0, float(upper[step]) + shift), alpha,
            ))
        return out

    def set_external_forecast(self, readings: Iterable[IntensityReading], weight: float | None = None) -> None:
        """Blend a provider's own forecast into :meth:`predict` for the hours it covers.

        Args:
            readings: The provider's forecast (hourly; sub-hourly values are averaged per hour).
            weight: Overrides ``external_weight`` when given.
        """
        if weight is not None:
            if not 0.0 <= weight <= 1.0:
                raise ConfigurationError.invalid("weight", weight, "a number in [0, 1]")
            self.external_weight = float(weight)
        sums: dict[int, list[float]] = {}
        for r in readings:
            sums.setdefault(int(r.time.timestamp() // 3600), []).append(r.g_per_kwh)
        with self._lock:
            self._external = {h: float(np.mean(v)) for h, v in sums.items()}

    def wait(self, timeout_s: float | None = None) -> None:
        """Block until every scheduled fit has finished (or ``timeout_s`` has passed)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            with self._lock:
                pending = self._pending
            if pending is None or (pending.done() and pending is self._pending):
                return
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                pending.result(timeout=remaining)
            except TimeoutError:
                return
            except Exception:  # logged by the worker
                pass

    def close(self) -> None:
        """Stop the worker thread (pending fits are cancelled)."""
        with self._lock:
            executor, self._executor, self._closed = self._executor, None, True
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    # --- internals ----------------------------------------------------------------------------
    def _schedule_locked(self) -> None:
        n = len(self._buffer)
        if n < self.min_history_h:
            self._set_fallback(f"history too short: {n} h < min_history_h={self.min_history_h} h")
            return
        if self._closed:
            return
        if self._pending is not None and not self._pending.done():
            self._rerun = True
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chase-arima")
        if self._model is None:
            self._set_fallback("first fit still running")
        self._hours_since_fit = 0
        snapshot = (self._buffer.first_h, self._buffer.values(), self._generation)
        self._pending = self._executor.submit(self._refit, *snapshot)

    def _refit(self, first_h: int, values: np.ndarray, generation: int) -> None:
        try:
            self._refit_once(first_h, values, generation)
        finally:
            with self._lock:  # a fit asked for meanwhile (new history, hours due) runs next
                if self._rerun:
                    self._rerun = False
                    self._pending = None
                    self._schedule_locked()

    def _refit_once(self, first_h: int, values: np.ndarray, generation: int) -> None:
        started = time.perf_counter()
        try:
            fitted = _fit_best(values, first_h, self.d, self.max_p, self.max_q, self.fourier_k,
                               self.half_life_h, self.criterion)
        except Exception as e:  # a failed fit must never reach the training loop
            with self._lock:
                if self._model is None:
                    self._set_fallback(f"fit failed: {type(e).__name__}: {e}")
            logger.warning("ArimaForecaster: fit failed (%s); keeping the previous model or a baseline.", e)
            return
        with self._lock:
            self.last_fit_s = time.perf_counter() - started
            if generation != self._generation:
                return
            self._model = fitted
            self.order = fitted.order
            self._catch_up_locked()
            if self.fallback_reason is not None:
                logger.info("ArimaForecaster: model ARIMA%s ready after %.2f s.", fitted.order, self.last_fit_s)
            self.fallback_reason = None

    def _catch_up_locked(self) -> None:
        """Append the hours the buffer has and the model lacks (no refit)."""
        model, last_h = self._model, self._buffer.last_h
        if model is None or last_h is None or last_h < model.end_h:
            return
        new = self._buffer.values_from(model.end_h)
        if new is None:  # the model ends before the buffer's window: it is stale
            self._model = None
            return
        hours = np.arange(model.end_h, model.end_h + len(new))
        z = (np.clip(new, *model.bounds) - _design(hours, self.fourier_k) @ model.beta) / model.scale
        results = model.results.append(z, refit=False)
        self._model = _Fitted(results, model.beta, model.scale, model.end_h + len(new), model.order, model.bounds)

    def _model_forecast(self, model: _Fitted, hours: int, alpha: float):
        profile = _design(np.arange(model.end_h, model.end_h + hours), self.fourier_k) @ model.beta
        forecast = model.results.get_forecast(hours)
        mean = np.asarray(forecast.predicted_mean, dtype=float)
        interval = np.asarray(forecast.conf_int(alpha=alpha), dtype=float)
        lower, upper = interval[:, 0], interval[:, 1]
        return profile + model.scale * mean, profile + model.scale * lower, profile + model.scale * upper

    def _set_fallback(self, reason: str) -> None:
        self.fallback_reason = reason
        self._log_once(reason.split(":")[0], f"ArimaForecaster: using a baseline forecast ({reason}).")

    def _log_once(self, key: str, message: str) -> None:
        if key not in self._logged:
            self._logged.add(key)
            logger.info(message)


def _design(hours: np.ndarray, fourier_k: int) -> np.ndarray:
    """Constant plus daily Fourier terms at absolute ``hours``."""
    terms = fourier_terms(hours, fourier_k)
    ones = np.ones((len(hours), 1))
    return ones if terms is None else np.concatenate([ones, terms], axis=1)


def _fit_best(values, first_h, d, max_p, max_q, fourier_k, half_life_h, criterion) -> _Fitted:
    """Two-stage regression with ARMA errors; (p, q) chosen by ``criterion`` on a small grid.

    Stage 1: the daily profile by (recency-weighted) least squares on Fourier terms.
    Stage 2: ARIMA(p, d, q) on the standardized residuals, p up to max_p, q in 0..max_q.
    """
    bounds = robust_bounds(values)
    y = np.clip(values, *bounds)
    design = _design(np.arange(first_h, first_h + len(y)), fourier_k)
    age_h = np.arange(len(y))[::-1]
    weight = np.sqrt(0.5 ** (age_h / half_life_h)) if half_life_h else np.ones(len(y))
    beta = np.linalg.lstsq(design * weight[:, None], y * weight, rcond=None)[0]
    residual = y - design @ beta
    scale = float(np.std(residual)) or 1.0
    z = residual / scale
    best, best_score = None, np.inf
    with _STATSMODELS_LOCK, warnings.catch_warnings():
        from statsmodels.tsa.arima.model import ARIMA  # its import adds "always" filters: reset them

        warnings.simplefilter("ignore")

        for p in range(0 if d else 1, max_p + 1):
            for q in range(max_q + 1):
                try:
                    res = ARIMA(z, order=(p, d, q), trend="n").fit()
                except Exception as e:
                    logger.debug("ARIMA(%d,%d,%d) failed: %s", p, d, q, e)
                    continue
                score = res.aic if criterion == "aic" else res.bic
                if np.isfinite(score) and score < best_score:
                    best, best_score = (res, (p, d, q)), score
    if best is None:
        raise RuntimeError("no ARIMA order could be fitted")
    return _Fitted(best[0], beta, scale, first_h + len(y), best[1], bounds)


def _z(alpha: float) -> float:
    """Two-sided normal quantile ``z_{1 - alpha/2}``."""
    if alpha not in _Z_BY_ALPHA:
        from statistics import NormalDist

        _Z_BY_ALPHA[alpha] = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    return _Z_BY_ALPHA[alpha]
