"""Carbon-intensity forecasters: ARIMA (statsmodels or NumPy fit, combined per horizon with baselines) and baselines.

Example:
    >>> from chase_integrations.forecast import PersistenceForecaster
    >>> PersistenceForecaster().predict(3)
    []
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chase_integrations.forecast.base import Forecaster
from chase_integrations.forecast.baselines import PersistenceForecaster, SeasonalNaiveForecaster

if TYPE_CHECKING:
    from chase_integrations.forecast.arima import ArimaForecaster

__all__ = ["ArimaForecaster", "Forecaster", "PersistenceForecaster", "SeasonalNaiveForecaster", "make_forecaster"]


def __getattr__(name: str):
    if name == "ArimaForecaster":
        from chase_integrations.forecast.arima import ArimaForecaster

        return ArimaForecaster
    raise AttributeError(name)


FORECASTER_NAMES = ("arima", "persistence", "seasonal_naive")


def make_forecaster(spec: str | Forecaster) -> Forecaster:
    """Build a forecaster from its name (``"arima"``, ``"persistence"``, ``"seasonal_naive"``) or pass one through."""
    from chase_integrations.errors import ConfigurationError

    if isinstance(spec, Forecaster):
        return spec
    if spec == "persistence":
        return PersistenceForecaster()
    if spec == "seasonal_naive":
        return SeasonalNaiveForecaster()
    if spec == "arima":
        from chase_integrations.forecast.arima import ArimaForecaster

        return ArimaForecaster()
    raise ConfigurationError.invalid(
        "forecaster", spec, f"one of {list(FORECASTER_NAMES)} or a Forecaster object"
    )
