"""Clocks, injected everywhere so that simulation and tests control time.

A clock gives two things: ``now()`` (aware UTC wall time, for timestamps and carbon lookups) and
``monotonic()`` (seconds, for durations; immune to wall-clock jumps).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """What the engine needs from a clock."""

    def now(self) -> datetime:
        """Aware UTC wall time."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, never going backwards."""
        ...


class SystemClock:
    """The real clock: ``datetime.now(timezone.utc)`` and ``time.monotonic()``.

    Example:
        >>> c = SystemClock()
        >>> c.now().tzinfo is not None
        True
    """

    def now(self) -> datetime:
        """Aware UTC wall time."""
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        """``time.monotonic()`` in seconds."""
        return time.monotonic()
