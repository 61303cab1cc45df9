"""Carbon-intensity providers.

Example:
    >>> from chase_integrations.carbon import StaticProvider
    >>> StaticProvider(250).latest().g_per_kwh
    250.0
"""

from __future__ import annotations

from chase_integrations.carbon.base import CarbonIntensityProvider
from chase_integrations.carbon.reading import IntensityReading
from chase_integrations.carbon.static import StaticProvider
from chase_integrations.carbon.trace import TraceProvider

__all__ = [
    "CarbonIntensityProvider",
    "ElectricityMapsProvider",
    "IntensityReading",
    "StaticProvider",
    "TraceProvider",
    "UKCarbonIntensityProvider",
    "WattTimeProvider",
]

_LAZY = {
    "ElectricityMapsProvider": "chase_integrations.carbon.electricitymaps",
    "UKCarbonIntensityProvider": "chase_integrations.carbon.ukci",
    "WattTimeProvider": "chase_integrations.carbon.watttime",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
