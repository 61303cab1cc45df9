"""The provider interface every carbon-intensity source implements."""

from __future__ import annotations

import abc
from datetime import datetime, timedelta

from chase_integrations.carbon.reading import IntensityReading, Signal


class CarbonIntensityProvider(abc.ABC):
    """Where carbon intensity comes from.

    Subclasses implement :meth:`latest`, and :meth:`history` / :meth:`forecast` where the source has
    them. Failures raise :class:`~chase_integrations.errors.ProviderError` subclasses; the callbacks
    catch them and fall back (forecast, then last known value, then a static value).

    Attributes:
        name: Short name used in reports and logs (never contains credentials).
        signal: ``"average"`` or ``"marginal"``.
        resolution_s: The data's native resolution in seconds (caches never ask more often).
    """

    name: str = "provider"
    signal: Signal = "average"
    resolution_s: float = 3600.0

    @abc.abstractmethod
    def latest(self) -> IntensityReading:
        """Return the most recent reading."""

    def history(self, hours: float = 24) -> list[IntensityReading]:
        """Return the readings of the last ``hours`` hours, oldest first (empty if unsupported)."""
        return []

    def forecast(self, hours: float) -> list[IntensityReading]:
        """Return the source's own forecast for the next ``hours`` hours (empty if it has none)."""
        return []

    def now(self) -> datetime | None:
        """Return the provider's notion of "now" (a simulated clock's time), or ``None`` for wall time."""
        return None

    def describe(self) -> str:
        """Return a one-line, secret-free description for reports."""
        return self.name

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release network resources, if any."""


def readings_between(readings: list[IntensityReading], start: datetime, end: datetime) -> list[IntensityReading]:
    """Return the readings whose period overlaps ``[start, end)``, assuming each lasts until the next."""
    ordered = sorted(readings, key=lambda r: r.time)
    out = []
    for i, r in enumerate(ordered):
        nxt = ordered[i + 1].time if i + 1 < len(ordered) else r.time + timedelta(hours=1)
        if nxt > start and r.time < end:
            out.append(r)
    return out
