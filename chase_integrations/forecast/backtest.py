"""Rolling-origin backtest of forecasters on an hourly trace (pure: no printing, no files).

At each origin hour ``o`` a forecaster has seen every reading before ``o`` and nothing after; it
predicts hours ``o, o+1, ...``, so horizon ``h`` targets hour ``o + h - 1``. Origins start early
enough that every hour of the evaluation window ``[start, start + days)`` is forecast at every
horizon. Forecasters are driven exactly as in a live job: ``fit`` on the history before the first
origin, then one ``update`` per reading. ARIMA therefore refits every ``refit_every_h`` hours
(24 by default) and appends new hours in between; the backtest calls ``wait()`` after each update
so that background fits finish where they would have finished live (deterministic results).

MAPE is a fraction and skips targets whose actual value is 0 (``n_mape`` counts the others; it
is ``None`` when none are left). Near-zero grids (CA-ON, NO) should be judged on MAE.

Example:
    >>> import numpy as np
    >>> from datetime import datetime, timezone
    >>> hours = np.arange(24 * 5)
    >>> times_s = 1704067200 + 3600 * hours
    >>> values = 100 + 20 * np.sin(2 * np.pi * hours / 24)
    >>> start = datetime(2024, 1, 4, tzinfo=timezone.utc)
    >>> rows = backtest(times_s, values, start, days=1, horizons=(1, 24), forecasters=["seasonal_naive"])
    >>> [(r.horizon_h, round(r.mae, 6), r.n) for r in rows]
    [(1, 0.0, 24), (24, 0.0, 24)]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import numpy as np

from chase_integrations.carbon.reading import IntensityReading
from chase_integrations.errors import ConfigurationError
from chase_integrations.forecast.base import Forecaster

ForecasterSpec = Sequence[str] | Mapping[str, Callable[[], Forecaster]]


@dataclass(frozen=True)
class BacktestResult:
    """Accuracy of one forecaster at one horizon.

    Attributes:
        forecaster: Forecaster name.
        horizon_h: Hours ahead (1 = the next hour).
        mape: Mean absolute percentage error as a fraction over non-zero actuals, or ``None``.
        mae: Mean absolute error in gCO2eq/kWh over all targets.
        n: Number of targets scored.
        n_mape: Number of targets with a non-zero actual (those in the MAPE).
    """

    forecaster: str
    horizon_h: int
    mape: float | None
    mae: float
    n: int
    n_mape: int

    def to_dict(self) -> dict:
        """JSON-safe dict (the ``chase backtest --json`` row)."""
        return asdict(self)


@dataclass
class ForecastTrace:
    """Raw forecasts of one forecaster: per horizon, the target hours, predictions and actuals.

    Hours are absolute (``epoch_s // 3600``). Timings are wall seconds of each call.
    """

    name: str
    target_h: dict[int, np.ndarray] = field(default_factory=dict)
    predicted: dict[int, np.ndarray] = field(default_factory=dict)
    actual: dict[int, np.ndarray] = field(default_factory=dict)
    update_s: list[float] = field(default_factory=list)
    predict_s: list[float] = field(default_factory=list)
    fit_s: list[float] = field(default_factory=list)


def _factories(forecasters: ForecasterSpec) -> dict[str, Callable[[], Forecaster]]:
    if isinstance(forecasters, Mapping):
        return dict(forecasters)
    from chase_integrations.forecast import FORECASTER_NAMES, make_forecaster

    out = {}
    for name in forecasters:
        if name not in FORECASTER_NAMES:
            raise ConfigurationError.invalid("forecasters", name, f"names from {list(FORECASTER_NAMES)}")
        out[name] = lambda name=name: make_forecaster(name)
    return out


def _wait(forecaster: Forecaster) -> None:
    wait = getattr(forecaster, "wait", None)
    if callable(wait):
        wait()


def run_backtest(
    times_s: np.ndarray,
    values_g_per_kwh: np.ndarray,
    start: datetime,
    days: float,
    horizons: Sequence[int] = (1, 6, 24),
    forecasters: ForecasterSpec = ("arima", "persistence", "seasonal_naive"),
    history_h: int = 14 * 24,
    progress: bool | None = None,
) -> list[ForecastTrace]:
    """Drive each forecaster through the rolling origins; return the raw forecasts.

    Args:
        times_s: Reading times, seconds since the epoch, sorted.
        values_g_per_kwh: Reading values (gCO2eq/kWh).
        start: First hour of the evaluation window (aware; naive is taken as UTC).
        days: Length of the evaluation window in days.
        horizons: Hours ahead to score, each >= 1.
        forecasters: Names (``"arima"``, ``"persistence"``, ``"seasonal_naive"``) or a mapping
            from name to a zero-argument factory.
        history_h: Hours of history given to ``fit`` before the first origin.
        progress: Progress bar on stderr, one tick per origin and forecaster (``None``: only when stderr
            is a terminal; see :mod:`chase_integrations.reporting.progress`).
    """
    horizons = sorted({int(h) for h in horizons})
    if not horizons or horizons[0] < 1:
        raise ConfigurationError.invalid("horizons", horizons, "integers >= 1")
    if days <= 0:
        raise ConfigurationError.invalid("days", days, "a positive number")
    times_s = np.asarray(times_s, dtype=np.int64)
    values = np.asarray(values_g_per_kwh, dtype=float)
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    start_h = int(start.timestamp() // 3600)
    end_h = start_h + round(days * 24)
    max_h = horizons[-1]
    first_origin = start_h - max_h + 1
    hour_of = times_s // 3600
    if end_h <= hour_of[0] or start_h > hour_of[-1]:
        raise ConfigurationError(
            f"the window {start.isoformat()} + {days} days is outside the trace "
            f"({_iso(hour_of[0])} .. {_iso(hour_of[-1])})."
        )
    actual = _hourly_means(hour_of, values, start_h, end_h)
    lo = int(np.searchsorted(hour_of, first_origin - history_h))
    hi = int(np.searchsorted(hour_of, first_origin))
    history = [_reading(times_s[i], values[i]) for i in range(lo, hi)]
    traces = []
    factories = _factories(forecasters)
    # progress hook (issue 8): ticks only, no effect on results
    from chase_integrations.reporting.progress import progress_bar

    with progress_bar(len(factories) * max(0, end_h - first_origin), "backtest", progress) as bar:
        for name, factory in factories.items():
            forecaster = factory()
            trace = ForecastTrace(name)
            rows: dict[int, list[tuple[int, float, float]]] = {h: [] for h in horizons}
            try:
                fit_start = time.perf_counter()
                forecaster.fit(history)
                _wait(forecaster)
                trace.fit_s.append(time.perf_counter() - fit_start)
                last_seen_h = int(hour_of[hi - 1]) if hi > 0 else first_origin - 1
                cursor = hi
                for origin in range(first_origin, end_h):
                    lag = max(0, origin - 1 - last_seen_h)
                    t0 = time.perf_counter()
                    predicted = {int(r.time.timestamp() // 3600): r.g_per_kwh for r in forecaster.predict(max_h + lag)}
                    trace.predict_s.append(time.perf_counter() - t0)
                    for h in horizons:
                        target = origin + h - 1
                        if start_h <= target < end_h and target in actual and target in predicted:
                            rows[h].append((target, predicted[target], actual[target]))
                    while cursor < len(hour_of) and hour_of[cursor] == origin:
                        t0 = time.perf_counter()
                        forecaster.update(_reading(times_s[cursor], values[cursor]))
                        trace.update_s.append(time.perf_counter() - t0)
                        last_seen_h = origin
                        cursor += 1
                    last_fit = getattr(forecaster, "last_fit_s", None)
                    _wait(forecaster)
                    if last_fit != getattr(forecaster, "last_fit_s", None):
                        trace.fit_s.append(forecaster.last_fit_s)
                    bar.advance()
            finally:
                forecaster.close()
            for h in horizons:
                arr = np.array(rows[h], dtype=float).reshape(-1, 3)
                trace.target_h[h] = arr[:, 0].astype(np.int64)
                trace.predicted[h], trace.actual[h] = arr[:, 1], arr[:, 2]
            traces.append(trace)
    return traces


def score(trace: ForecastTrace) -> list[BacktestResult]:
    """MAPE (fraction, zero actuals skipped) and MAE per horizon of one :class:`ForecastTrace`."""
    out = []
    for h in sorted(trace.predicted):
        out.append(errors(trace.name, h, trace.predicted[h], trace.actual[h]))
    return out


def errors(name: str, horizon_h: int, predicted: np.ndarray, actual: np.ndarray) -> BacktestResult:
    """Score predictions against actuals (gCO2eq/kWh) as a :class:`BacktestResult`."""
    predicted, actual = np.asarray(predicted, dtype=float), np.asarray(actual, dtype=float)
    abs_err = np.abs(predicted - actual)
    nonzero = actual > 0
    mape = float(np.mean(abs_err[nonzero] / actual[nonzero])) if nonzero.any() else None
    mae = float(np.mean(abs_err)) if len(abs_err) else float("nan")
    return BacktestResult(name, int(horizon_h), mape, mae, len(abs_err), int(nonzero.sum()))


def backtest(
    times_s: np.ndarray,
    values_g_per_kwh: np.ndarray,
    start: datetime,
    days: float,
    horizons: Sequence[int] = (1, 6, 24),
    forecasters: ForecasterSpec = ("arima", "persistence", "seasonal_naive"),
    history_h: int = 14 * 24,
    progress: bool | None = None,
) -> list[BacktestResult]:
    """Rolling-origin backtest; one :class:`BacktestResult` per forecaster and horizon.

    Arguments as in :func:`run_backtest`.
    """
    traces = run_backtest(times_s, values_g_per_kwh, start, days, horizons, forecasters, history_h, progress)
    return [row for trace in traces for row in score(trace)]


def _hourly_means(hour_of: np.ndarray, values: np.ndarray, start_h: int, end_h: int) -> dict[int, float]:
    lo, hi = int(np.searchsorted(hour_of, start_h)), int(np.searchsorted(hour_of, end_h))
    out: dict[int, list[float]] = {}
    for i in range(lo, hi):
        out.setdefault(int(hour_of[i]), []).append(float(values[i]))
    return {h: float(np.mean(v)) for h, v in out.items()}


def _reading(t_s: int, value: float) -> IntensityReading:
    return IntensityReading(datetime.fromtimestamp(int(t_s), tz=timezone.utc), float(value), False)


def _iso(hour: int) -> str:
    return datetime.fromtimestamp(int(hour) * 3600, tz=timezone.utc).isoformat()
