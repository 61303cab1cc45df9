"""Reading the grid's intensity for an interval, with the fallback chain.

Order: the provider (time-weighted over the interval) → the forecast the decision used → the last
known value → a static value (``fallback_intensity_g_per_kwh``, else the world average). A reading
older than ``max_reading_age_s`` counts as a failure. Each fallback is counted and warned about once.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from chase_integrations._warnings import OnceWarner
from chase_integrations.core.interfaces import CarbonIntensityProvider
from chase_integrations.core.reading import IntensityReading
from chase_integrations.errors import ProviderError, StaleDataError

logger = logging.getLogger(__name__)

#: After a provider failure, no call for this long (clock seconds): at most one attempt per decision.
PROVIDER_BACKOFF_S = 300.0
#: Used when the provider, the forecast and the last known value all fail and the user set no
#: ``fallback_intensity_g_per_kwh``: the world-average grid intensity (IEA, 2023), gCO2eq/kWh.
WORLD_AVERAGE_G_PER_KWH = 475.0


@dataclass(frozen=True)
class IntervalIntensity:
    """The grid's intensity over one closed interval.

    Attributes:
        g_per_kwh: Time-weighted mean over the interval, gCO2eq/kWh.
        source: ``"provider"``, or the fallback used (``"forecast"``, ``"last_known"``, ``"static"``).
        latest: The provider's latest reading at the close (``None``: the provider failed); the decision
            that follows the close uses it instead of reading the provider again.
    """

    g_per_kwh: float
    source: str
    latest: IntensityReading | None


def time_weighted_mean(readings: list[IntensityReading], start: datetime, end: datetime) -> float | None:
    """Mean of the step function the readings define (each holds until the next) over ``[start, end)``.

    Example:
        >>> from datetime import datetime, timezone
        >>> t = lambda h, m=0: datetime(2024, 1, 1, h, m, tzinfo=timezone.utc)
        >>> rs = [IntensityReading(t(0), 100.0), IntensityReading(t(1), 200.0)]
        >>> time_weighted_mean(rs, t(0, 30), t(1, 30))
        150.0
    """
    ordered = sorted(readings, key=lambda r: r.time)
    if not ordered:
        return None
    return step_mean([r.time for r in ordered], [r.g_per_kwh for r in ordered], start, end)


def step_mean(times: Sequence[datetime], values: Sequence[float], start: datetime, end: datetime) -> float:
    """Mean over ``[start, end)`` of ``values[i]`` holding from ``times[i]`` until ``times[i + 1]``.

    ``times`` is ascending and not empty; the first value also covers the time before ``times[0]`` and
    the last one holds until ``end``. Values that start at or after ``end`` may be left out: the
    result is the same.

    Example:
        >>> from datetime import datetime, timezone
        >>> t = lambda h, m=0: datetime(2024, 1, 1, h, m, tzinfo=timezone.utc)
        >>> step_mean([t(0), t(1)], [100.0, 200.0], t(0, 30), t(1, 30))
        150.0
    """
    if end <= start:
        return values[max(0, bisect.bisect_right(times, start) - 1)]
    total = weight = 0.0
    last = len(times) - 1
    for i, value in enumerate(values):
        seg_start = max(times[i], start) if i > 0 else start
        seg_end = min(times[i + 1], end) if i < last else end
        width = (seg_end - seg_start).total_seconds()
        if width > 0:
            total += width * value
            weight += width
    return total / weight if weight > 0 else values[-1]


class IntensitySource:
    """Rank 0's view of the grid: reads the provider, remembers readings, falls back when it must."""

    def __init__(
        self,
        provider: CarbonIntensityProvider,
        clock,
        max_reading_age_s: float,
        fallback_g_per_kwh: float | None,
        strict: bool,
        warner: OnceWarner,
    ) -> None:
        self.provider = provider
        self.clock = clock
        self.max_reading_age_s = max_reading_age_s
        self.fallback_g_per_kwh = fallback_g_per_kwh
        self.strict = strict
        self.warner = warner
        #: Readings by time (written only by :meth:`_remember`, which keeps :attr:`_times` in step).
        self.readings: dict[datetime, IntensityReading] = {}
        self._times: list[datetime] = []  # the keys of ``readings``, oldest first
        self.last_known: float | None = None
        self.fallbacks: Counter[str] = Counter()
        self.provider_failures = 0
        self.skipped_calls = 0
        self._down_until: float | None = None

    def _provider_down(self) -> bool:
        """Within the back-off after a failure: don't call the provider (no request storms)."""
        if self._down_until is not None and self.clock.monotonic() < self._down_until:
            self.skipped_calls += 1
            return True
        return False

    # --- provider calls ---------------------------------------------------------------------
    def latest(self) -> IntensityReading | None:
        """The provider's latest reading, or ``None`` (failure counted, not raised unless strict)."""
        if self._provider_down():
            return None
        try:
            reading = self.provider.latest()
            age = (self._now() - reading.time).total_seconds()
            if age > self.max_reading_age_s:
                raise StaleDataError(
                    f"{self.provider.describe()}: newest reading is {age / 3600:.1f} h old "
                    f"(limit {self.max_reading_age_s / 3600:.1f} h)."
                )
        except Exception as e:  # a provider bug must not stop training either
            self._failure(e)
            return None
        self._remember(reading)
        return reading

    def history(self, hours: float) -> list[IntensityReading]:
        """The provider's history (empty on failure, counted)."""
        if self._provider_down():
            return []
        try:
            readings = list(self.provider.history(hours=hours))
        except Exception as e:
            self._failure(e)
            return []
        for r in readings:
            self._remember(r)
        return readings

    def provider_forecast(self, hours: int) -> list[IntensityReading]:
        """The provider's own forecast, if any (failures are logged, not counted as fallbacks)."""
        if self._provider_down():
            return []
        try:
            return list(self.provider.forecast(hours))
        except Exception as e:
            logger.debug("Provider forecast unavailable: %s", e)
            return []

    # --- interval intensity -------------------------------------------------------------------
    def interval_mean(self, start: datetime, end: datetime, forecast_g_per_kwh: float | None) -> IntervalIntensity:
        """Measured intensity over ``[start, end)``, where it came from, and the latest reading."""
        latest = self.latest()
        if latest is not None:
            mean_between = getattr(self.provider, "mean_between", None)
            if callable(mean_between):
                try:
                    value = float(mean_between(start, end))
                    if math.isfinite(value) and value >= 0:
                        self.last_known = value
                        return IntervalIntensity(value, "provider", latest)
                except Exception as e:
                    logger.debug("mean_between failed (%s); using readings.", e)
            span_h = max(1.0, (end - start).total_seconds() / 3600.0)
            if span_h > 1.0 or latest.time > start:
                self.history(min(24.0, math.ceil(span_h) + 1))
            window = [r for r in self.readings.values() if r.time < end and r.time >= start - timedelta(hours=6)]
            value = time_weighted_mean(window, start, end)
            if value is not None:
                self.last_known = value
                return IntervalIntensity(value, "provider", latest)
        value, kind = self._fallback(forecast_g_per_kwh)
        return IntervalIntensity(value, kind, latest)

    def _fallback(self, forecast_g_per_kwh: float | None) -> tuple[float, str]:
        if forecast_g_per_kwh is not None:
            kind, value = "forecast", forecast_g_per_kwh
        elif self.last_known is not None:
            kind, value = "last_known", self.last_known
        elif self.fallback_g_per_kwh is not None:
            kind, value = "static", self.fallback_g_per_kwh
        else:
            kind, value = "static", WORLD_AVERAGE_G_PER_KWH
        self.fallbacks[kind] += 1
        self.warner.warn(
            f"fallback:{kind}",
            f"Carbon intensity unavailable from {self.provider.describe()}; using the {kind.replace('_', ' ')} "
            f"value {value:.1f} gCO2eq/kWh for accounting. Counted in the report's `fallbacks`; warned once.",
        )
        return float(value), kind

    # --- helpers ----------------------------------------------------------------------------------
    def _now(self) -> datetime:
        provider_now = self.provider.now()
        return provider_now if provider_now is not None else self.clock.now()

    def _remember(self, reading: IntensityReading) -> None:
        times = self._sorted_times()
        if reading.time not in self.readings:
            bisect.insort(times, reading.time)
        self.readings[reading.time] = reading
        if len(times) > 24 * 16:
            oldest = times[: len(times) - 24 * 14]
            del times[: len(oldest)]
            for key in oldest:
                del self.readings[key]

    def _sorted_times(self) -> list[datetime]:
        """The times of :attr:`readings`, oldest first (re-sorted if ``readings`` was changed directly)."""
        if len(self._times) != len(self.readings):
            self._times = sorted(self.readings)
        return self._times

    def _failure(self, err: Exception) -> None:
        self.provider_failures += 1
        self._down_until = self.clock.monotonic() + PROVIDER_BACKOFF_S
        if self.strict:
            if isinstance(err, ProviderError):
                raise err
            raise ProviderError(f"{self.provider.describe()} failed: {type(err).__name__}: {err}") from err
        self.warner.warn(
            "provider-failure",
            f"Carbon-intensity provider {self.provider.describe()} failed ({type(err).__name__}: {err}); "
            "falling back (forecast, last known value, static value). Training continues; warned once.",
        )
        logger.info("Provider failure: %s: %s", type(err).__name__, err)

    def known_values(self, hours: float = 24) -> list[float]:
        """Values seen within the last ``hours`` hours, oldest first."""
        times = self._sorted_times()
        first = bisect.bisect_left(times, self._now() - timedelta(hours=hours))
        return [self.readings[t].g_per_kwh for t in times[first:]]

    def recent_value(self, now: datetime) -> float | None:
        """The last known intensity while the newest reading is at most ``max_reading_age_s`` old, else ``None``.

        After that the value says nothing about the grid now: decisions fall back to saving energy.
        """
        times = self._sorted_times()
        if self.last_known is None or not times:
            return None
        if (now - times[-1]).total_seconds() > self.max_reading_age_s:
            return None
        return self.last_known

    def sorted_readings(self) -> list[IntensityReading]:
        """All remembered readings, oldest first."""
        return [self.readings[t] for t in self._sorted_times()]
