"""A simulated clock that training steps advance."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone


def parse_utc(value: str | datetime) -> datetime:
    """Parse an ISO-8601 string (``Z`` allowed) or datetime into an aware UTC datetime."""
    if isinstance(value, datetime):
        dt = value
    else:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


class SimulatedClock:
    """Time that moves only when told to.

    Example:
        >>> c = SimulatedClock("2024-01-01T00:00:00Z")
        >>> c.advance(90.0)
        >>> c.now().isoformat(), c.monotonic()
        ('2024-01-01T00:01:30+00:00', 90.0)
    """

    def __init__(self, start: str | datetime) -> None:
        self._start = parse_utc(start)
        self._elapsed_s = 0.0
        self._lock = threading.Lock()

    @property
    def start(self) -> datetime:
        """The simulated start time."""
        return self._start

    def now(self) -> datetime:
        """Simulated aware UTC time."""
        return self._start + timedelta(seconds=self._elapsed_s)

    def monotonic(self) -> float:
        """Simulated seconds since the start."""
        return self._elapsed_s

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (>= 0)."""
        if seconds < 0:
            raise ValueError(f"SimulatedClock.advance needs seconds >= 0, got {seconds}.")
        with self._lock:
            self._elapsed_s += float(seconds)
