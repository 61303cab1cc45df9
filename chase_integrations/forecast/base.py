"""The forecaster interface."""

from __future__ import annotations

import abc
from collections.abc import Iterable

from chase_integrations.carbon.reading import IntensityReading


class Forecaster(abc.ABC):
    """Forecasts hourly carbon intensity from past readings.

    ``fit`` takes the history (oldest first), ``update`` appends one new reading cheaply, and
    ``predict(hours)`` returns one reading per hour after the last one seen, each with
    ``is_forecast=True``.
    """

    name: str = "forecaster"

    @abc.abstractmethod
    def fit(self, history: Iterable[IntensityReading]) -> None:
        """(Re)build the model from ``history``."""

    @abc.abstractmethod
    def update(self, reading: IntensityReading) -> None:
        """Add one reading without a full refit."""

    @abc.abstractmethod
    def predict(self, hours: int) -> list[IntensityReading]:
        """Forecast the next ``hours`` hours (one reading per hour)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release background resources, if any."""
