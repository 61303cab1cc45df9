"""What the core needs from the outer layers, declared here so that dependencies point inward.

``carbon/`` implements :class:`CarbonIntensityProvider`, ``forecast/`` implements :class:`Forecaster`,
``power/`` implements :class:`PowerControl` and :class:`EnergyMeter`, ``simulation/`` implements
:class:`SimulatedEnvironment`; clocks and collectives are declared in :mod:`~chase_integrations.core.clock`
and :mod:`~chase_integrations.core.collective`. The core imports none of those packages at module level;
:mod:`chase_integrations.core.compose` alone builds the concrete objects from the user's arguments.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from chase_integrations.core.reading import IntensityReading, Signal


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


class Forecaster(abc.ABC):
    """Forecasts hourly carbon intensity from past readings.

    ``fit`` takes the history (oldest first), ``update`` appends one new reading cheaply, and
    ``predict(hours)`` returns one reading per hour after the last one seen, each with
    ``is_forecast=True``. Optional: ``predict_interval(hours, alpha)`` (a prediction interval per hour),
    ``set_external_forecast(readings)`` (blend the provider's own forecast), ``wait()`` (finish background
    refits).
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


class EnergyReadingLike(Protocol):
    """One metering window (J): GPU energy, and CPU / DRAM energy where RAPL was read (else ``None``)."""

    energy_j: float
    cpu_energy_j: float | None
    dram_energy_j: float | None


class PowerControl(Protocol):
    """Reads, sets and restores the power limit of the GPUs one process owns (``power.limits``)."""

    gpu_indices: list[int]

    def constraints_w(self) -> tuple[int, int]:
        """The (min, max) limit every owned GPU accepts, W."""
        ...

    def remember_originals(self) -> dict[int, int]:
        """Read and keep each owned GPU's current limit (restored at the end), W."""
        ...

    def check_permission(self) -> None:
        """Raise ``PowerPermissionError`` / ``PowerControlError`` when limits cannot be set."""
        ...

    def set_all_w(self, power_limit_w: int) -> None:
        """Set every owned GPU to ``power_limit_w``."""
        ...

    def restore(self) -> list[str]:
        """Restore the original limits (idempotent, never raises); returns the problems met."""
        ...


class EnergyMeter(Protocol):
    """Named energy windows over the owned GPUs (``power.meter``, on Zeus's ``ZeusMonitor``)."""

    anomalies: list[str]

    def begin(self, name: str) -> None:
        """Open window ``name``."""
        ...

    def end(self, name: str) -> EnergyReadingLike:
        """Close window ``name`` and return what it measured."""
        ...


@runtime_checkable
class SimulatedEnvironment(Protocol):
    """A simulated machine (``simulation.Simulation``): GPUs, a clock and a per-step hook."""

    gpus: Any
    clock: Any
    num_gpus: int

    def step(self, gpu_indices: Sequence[int] | None = None) -> float:
        """Advance one training step on ``gpu_indices``; return its seconds."""
        ...
