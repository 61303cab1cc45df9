"""The framework-free core: configuration, session lifecycle, ledger, report, profile and policies."""

from chase_integrations.core.clock import Clock, SystemClock
from chase_integrations.core.collective import Collective, LocalCollective
from chase_integrations.core.ledger import Interval, Ledger, carbon_g
from chase_integrations.core.profile import LimitMeasurement, PowerProfile

__all__ = [
    "Clock",
    "Collective",
    "Interval",
    "Ledger",
    "LimitMeasurement",
    "LocalCollective",
    "PowerProfile",
    "SystemClock",
    "carbon_g",
]
