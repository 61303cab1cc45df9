"""Baseline forecasters: persistence and same-hour-yesterday."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import timedelta

from chase_integrations.carbon.reading import IntensityReading
from chase_integrations.forecast.base import Forecaster


def _next_hours(last: IntensityReading, values: list[float]) -> list[IntensityReading]:
    base = last.time.replace(minute=0, second=0, microsecond=0)
    return [
        IntensityReading(base + timedelta(hours=h + 1), max(0.0, v), True, last.signal)
        for h, v in enumerate(values)
    ]


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
