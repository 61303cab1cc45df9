"""Baseline forecasters: persistence and same-hour-yesterday."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta

import numpy as np

from chase_integrations.carbon.reading import IntensityReading
from chase_integrations.forecast.base import Forecaster

_HOUR = timedelta(hours=1)


def _next_hours(last: IntensityReading, values: list[float]) -> list[IntensityReading]:
    """Readings for the hours after ``last``'s hour, one per value (negative values become 0)."""
    when = last.time.replace(minute=0, second=0, microsecond=0)
    readings = []
    for value in values:
        when += _HOUR
        readings.append(IntensityReading(when, max(0.0, value), True, last.signal))
    return readings


class PersistenceForecaster(Forecaster):
    """Tomorrow looks like now: every future hour gets the last value seen.

    Example:
        >>> from datetime import datetime, timezone
        >>> f = PersistenceForecaster()
        >>> f.fit([IntensityReading(datetime(2024, 1, 1, tzinfo=timezone.utc), 120.0)])
        >>> [r.g_per_kwh for r in f.predict(2)]
        [120.0, 120.0]
    """

    name = "persistence"

    def __init__(self) -> None:
        self._last: IntensityReading | None = None

    def fit(self, history: Iterable[IntensityReading]) -> None:
        """Remember the newest reading of ``history``."""
        for reading in history:
            self.update(reading)

    def update(self, reading: IntensityReading) -> None:
        """Remember ``reading`` if it is the newest."""
        if self._last is None or reading.time >= self._last.time:
            self._last = reading

    def predict(self, hours: int) -> list[IntensityReading]:
        """Repeat the last value ``hours`` times (empty before any reading)."""
        if self._last is None:
            return []
        return _next_hours(self._last, [self._last.g_per_kwh] * int(hours))


class SeasonalNaiveForecaster(Forecaster):
    """Same hour yesterday; falls back to persistence for hours it has not seen.

    Example:
        >>> from datetime import datetime, timedelta, timezone
        >>> t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
        >>> f = SeasonalNaiveForecaster()
        >>> f.fit([IntensityReading(t0 + timedelta(hours=h), float(h)) for h in range(24)])
        >>> [r.g_per_kwh for r in f.predict(2)]
        [0.0, 1.0]
    """

    name = "seasonal_naive"

    def __init__(self, season_hours: int = 24) -> None:
        self.season_hours = int(season_hours)
        self._by_hour: dict = {}
        self._order: deque = deque(maxlen=self.season_hours * 2)
        self._last: IntensityReading | None = None

    def fit(self, history: Iterable[IntensityReading]) -> None:
        """Index ``history`` by hour."""
        for reading in history:
            self.update(reading)

    def update(self, reading: IntensityReading) -> None:
        """Add one reading."""
        key = reading.time.replace(minute=0, second=0, microsecond=0)
        self._by_hour[key] = reading.g_per_kwh
        self._order.append(key)
        if len(self._by_hour) > self.season_hours * 2:
            keep = set(self._order)
            self._by_hour = {k: v for k, v in self._by_hour.items() if k in keep}
        if self._last is None or reading.time >= self._last.time:
            self._last = reading

    def predict(self, hours: int) -> list[IntensityReading]:
        """Value of the same hour one season earlier, repeating the last season beyond it."""
        if self._last is None:
            return []
        base = self._last.time.replace(minute=0, second=0, microsecond=0)
        values = []
        for h in range(1, int(hours) + 1):
            back = base + timedelta(hours=h) - timedelta(hours=self.season_hours * ((h - 1) // self.season_hours + 1))
            values.append(self._by_hour.get(back, self._last.g_per_kwh))
        return _next_hours(self._last, values)


# --- shared hourly helpers (used by the ARIMA forecaster and the backtest) ----------------------
class HourlyBuffer:
    """A contiguous, capped window of hourly means keyed by absolute hour (``epoch_s // 3600``).

    Readings in the same hour are averaged (duplicates, sub-hourly data); gaps up to ``max_gap_h``
    hours are filled by linear interpolation; a longer gap restarts the window; readings older
    than the window are ignored.

    Example:
        >>> from datetime import datetime, timezone
        >>> b = HourlyBuffer(window_h=48, max_gap_h=3)
        >>> t = lambda h: datetime(2024, 1, 1, h, tzinfo=timezone.utc)
        >>> [b.add(t(0), 10.0), b.add(t(0), 20.0), b.add(t(3), 45.0)]
        ['appended', 'merged', 'appended']
        >>> b.values().tolist()
        [15.0, 25.0, 35.0, 45.0]
    """

    def __init__(self, window_h: int, max_gap_h: int) -> None:
        self.window_h, self.max_gap_h = int(window_h), int(max_gap_h)
        self.clear()

    def clear(self) -> None:
        """Forget everything."""
        self.first_h: int | None = None
        self._values: list[float] = []
        self._counts: list[int] = []

    def __len__(self) -> int:
        return len(self._values)

    @property
    def last_h(self) -> int | None:
        """Absolute hour of the newest value, or ``None`` when empty."""
        return None if self.first_h is None else self.first_h + len(self._values) - 1

    def add(self, when: datetime, g_per_kwh: float) -> str:
        """Add one reading; return ``"appended"``, ``"merged"``, ``"ignored"`` or ``"restarted"``."""
        hour = int(when.timestamp() // 3600)
        value = float(g_per_kwh)
        last = self.last_h
        if last is None:
            self.first_h, self._values, self._counts = hour, [value], [1]
            return "appended"
        if hour <= last:
            i = hour - self.first_h
            if i < 0:
                return "ignored"
            self._counts[i] += 1
            self._values[i] += (value - self._values[i]) / self._counts[i]
            return "merged"
        gap = hour - last - 1
        if gap > self.max_gap_h:
            self.first_h, self._values, self._counts = hour, [value], [1]
            return "restarted"
        start = self._values[-1]
        for k in range(1, gap + 1):
            self._values.append(start + (value - start) * k / (gap + 1))
            self._counts.append(0)
        self._values.append(value)
        self._counts.append(1)
        excess = len(self._values) - self.window_h
        if excess > 0:
            del self._values[:excess], self._counts[:excess]
            self.first_h += excess
        return "appended"

    def values(self) -> np.ndarray:
        """The window's hourly values, oldest first (a copy)."""
        return np.asarray(self._values, dtype=float)

    def values_from(self, hour: int) -> np.ndarray | None:
        """Values from absolute ``hour`` to the newest, or ``None`` when ``hour`` left the window."""
        if self.first_h is None or hour < self.first_h:
            return None
        return np.asarray(self._values[hour - self.first_h :], dtype=float)


def fourier_terms(hours: np.ndarray, k: int, period_h: float = 24.0) -> np.ndarray | None:
    """Sine/cosine pairs of the daily cycle at absolute ``hours``; ``None`` when ``k == 0``."""
    if k <= 0:
        return None
    angle = 2.0 * np.pi * np.asarray(hours, dtype=float)[:, None] * np.arange(1, k + 1)[None, :] / period_h
    return np.concatenate([np.sin(angle), np.cos(angle)], axis=1)


def robust_bounds(values: np.ndarray, width: float = 8.0) -> tuple[float, float]:
    """Clip range for outliers: median ± ``width`` scaled MADs, never below 0 gCO2eq/kWh."""
    median = float(np.median(values))
    spread = 1.4826 * float(np.median(np.abs(values - median)))
    spread = max(spread, 0.05 * abs(median), 1e-6)
    return max(0.0, median - width * spread), median + width * spread


def baseline_forecast(values: np.ndarray, hours: int, z: float) -> tuple[np.ndarray, ...]:
    """Seasonal-naive (≥ 24 h of history) or persistence forecast with an empirical interval.

    The interval half-width at step ``h`` is ``z`` times the standard deviation of the history's
    ``h``-hour changes (the last value's spread when there are too few).
    """
    n = len(values)
    steps = np.arange(1, hours + 1)
    mean = np.array([values[n - 24 + (h - 1) % 24] for h in steps]) if n >= 24 else np.full(hours, values[-1])
    spread = np.array([np.std(values[h:] - values[:-h]) if n > h + 1 else np.std(values) for h in steps])
    return mean, np.maximum(0.0, mean - z * spread), mean + z * spread
