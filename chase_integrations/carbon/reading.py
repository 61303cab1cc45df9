"""One carbon-intensity value at one time: defined in :mod:`chase_integrations.core.reading`, re-exported here."""

from chase_integrations.core.reading import IntensityReading, Signal, checked_g_per_kwh, utc

__all__ = ["IntensityReading", "Signal", "checked_g_per_kwh", "utc"]
