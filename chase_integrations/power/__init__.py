"""Zeus-backed power control and energy measurement (the only layer that sees mW and mJ)."""

from chase_integrations.power.limits import PowerLimitController
from chase_integrations.power.meter import EnergyMeter, EnergyReading

__all__ = ["EnergyMeter", "EnergyReading", "PowerLimitController"]
