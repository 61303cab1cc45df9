"""The provider interface every carbon-intensity source implements (declared in ``core.interfaces``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from chase_integrations.core.interfaces import CarbonIntensityProvider
from chase_integrations.core.reading import IntensityReading

__all__ = ["CarbonIntensityProvider", "readings_between"]


def readings_between(readings: list[IntensityReading], start: datetime, end: datetime) -> list[IntensityReading]:
    """Return the readings whose period overlaps ``[start, end)``, assuming each lasts until the next."""
    ordered = sorted(readings, key=lambda r: r.time)
    out = []
    for i, r in enumerate(ordered):
        nxt = ordered[i + 1].time if i + 1 < len(ordered) else r.time + timedelta(hours=1)
        if nxt > start and r.time < end:
            out.append(r)
    return out
