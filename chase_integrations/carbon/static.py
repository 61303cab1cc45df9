"""A constant carbon intensity."""

from __future__ import annotations

import math
from datetime import timedelta

from chase_integrations.carbon.base import CarbonIntensityProvider
from chase_integrations.carbon.reading import IntensityReading
from chase_integrations.core.clock import Clock, SystemClock
from chase_integrations.errors import ConfigurationError


class StaticProvider(CarbonIntensityProvider):
    """Always the same intensity, in gCO2eq/kWh. Useful for tests, fallbacks and known contracts.

    Args:
        g_per_kwh: The intensity, finite and >= 0.
        clock: Where "now" comes from (default: the system clock).

    Example:
        >>> p = StaticProvider(300.0)
        >>> p.latest().g_per_kwh
        300.0
        >>> len(p.history(hours=3))
        3
    """

    name = "static"

    def __init__(self, g_per_kwh: float, clock: Clock | None = None) -> None:
        if isinstance(g_per_kwh, bool) or not isinstance(g_per_kwh, (int, float)):
            raise ConfigurationError.invalid("g_per_kwh", g_per_kwh, "a number of gCO2eq/kWh >= 0")
        if not math.isfinite(g_per_kwh) or g_per_kwh < 0:
            raise ConfigurationError.invalid("g_per_kwh", g_per_kwh, "a finite number of gCO2eq/kWh >= 0")
        self.g_per_kwh = float(g_per_kwh)
        self._clock = clock or SystemClock()

    def latest(self) -> IntensityReading:
        """Return the constant value, stamped with the current hour."""
        now = self._clock.now().replace(minute=0, second=0, microsecond=0)
        return IntensityReading(now, self.g_per_kwh, False)

    def history(self, hours: float = 24) -> list[IntensityReading]:
        """Return one reading per hour for the last ``hours`` hours."""
        now = self._clock.now().replace(minute=0, second=0, microsecond=0)
        n = max(1, math.ceil(hours))
        return [IntensityReading(now - timedelta(hours=n - 1 - i), self.g_per_kwh, False) for i in range(n)]

    def now(self):
        """The provider's clock time."""
        return self._clock.now()

    def describe(self) -> str:
        """One-line description."""
        return f"static({self.g_per_kwh:g} gCO2eq/kWh)"
