"""One carbon-intensity value at one time (core data: every layer speaks it)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

Signal = Literal["average", "marginal"]
_LARGEST_FLOAT = sys.float_info.max


@dataclass(frozen=True)
class IntensityReading:
    """Grid carbon intensity at ``time``.

    Attributes:
        time: Start of the period the value describes, timezone-aware UTC.
        g_per_kwh: Carbon intensity in gCO2eq/kWh, finite and non-negative.
        is_forecast: ``True`` when the value is a forecast rather than a measurement.
        signal: ``"average"`` (the grid's average mix, most providers) or ``"marginal"``
            (WattTime's MOER). The two are never mixed silently.

    Example:
        >>> from datetime import datetime, timezone
        >>> r = IntensityReading(datetime(2024, 1, 1, tzinfo=timezone.utc), 250.0, False)
        >>> r.g_per_kwh
        250.0
    """

    time: datetime
    g_per_kwh: float
    is_forecast: bool = False
    signal: Signal = "average"

    def __post_init__(self) -> None:
        # forecasters build thousands of readings per simulated job: the common case (UTC time, float
        # value) takes the fewest steps
        if self.time.tzinfo is not timezone.utc:
            if self.time.tzinfo is None:
                raise ValueError(f"IntensityReading.time must be timezone-aware UTC, got naive {self.time!r}.")
            if self.time.utcoffset() != timezone.utc.utcoffset(None):
                object.__setattr__(self, "time", self.time.astimezone(timezone.utc))
        value = self.g_per_kwh
        if type(value) is not float or not 0.0 <= value <= _LARGEST_FLOAT:
            object.__setattr__(self, "g_per_kwh", checked_g_per_kwh(value))

    def to_dict(self) -> dict:
        """Return a JSON-safe dict."""
        return {
            "time": self.time.isoformat(),
            "g_per_kwh": self.g_per_kwh,
            "is_forecast": self.is_forecast,
            "signal": self.signal,
        }

    @classmethod
    def from_dict(cls, data: dict) -> IntensityReading:
        """Inverse of :meth:`to_dict`."""
        return cls(
            time=datetime.fromisoformat(data["time"]),
            g_per_kwh=float(data["g_per_kwh"]),
            is_forecast=bool(data.get("is_forecast", False)),
            signal=data.get("signal", "average"),
        )


def checked_g_per_kwh(value: float) -> float:
    """``value`` as a float if it is a valid intensity (finite and >= 0), else :class:`ValueError`.

    Example:
        >>> checked_g_per_kwh(250)
        250.0
    """
    number = value if type(value) is float else float(value)
    if not 0.0 <= number <= _LARGEST_FLOAT:  # NaN fails every comparison
        raise ValueError(f"IntensityReading.g_per_kwh must be finite and >= 0, got {value!r}.")
    return number


def utc(dt: datetime) -> datetime:
    """Return ``dt`` as an aware UTC datetime (naive values are taken to be UTC)."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)
