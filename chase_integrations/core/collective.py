"""Collectives the engine needs, implemented by each adapter with the framework's own primitives.

Every rank calls the same collectives in the same order; none is ever called from rank-zero-only code.
"""

from __future__ import annotations

from typing import Any, Protocol


class Collective(Protocol):
    """Cross-rank operations of one job."""

    rank: int
    world_size: int

    def broadcast(self, obj: Any) -> Any:
        """Return rank 0's ``obj`` on every rank (picklable values)."""
        ...

    def sum_max(self, to_sum: float, to_max: float) -> tuple[float, float]:
        """Return (sum over ranks of ``to_sum``, max over ranks of ``to_max``)."""
        ...


class LocalCollective:
    """A single process: every collective is the identity.

    Example:
        >>> LocalCollective().sum_max(2.0, 3.0)
        (2.0, 3.0)
    """

    rank = 0
    world_size = 1

    def broadcast(self, obj: Any) -> Any:
        """Identity."""
        return obj

    def sum_max(self, to_sum: float, to_max: float) -> tuple[float, float]:
        """Identity."""
        return float(to_sum), float(to_max)
