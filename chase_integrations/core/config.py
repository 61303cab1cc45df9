"""The callbacks' arguments, validated once at construction (both adapters share this)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chase_integrations.core.interfaces import CarbonIntensityProvider, Forecaster, SimulatedEnvironment
from chase_integrations.core.policies import Policy, policy_names
from chase_integrations.errors import ConfigurationError

FORECASTERS = ("arima", "persistence", "seasonal_naive")


def _number(
    name: str,
    value: Any,
    allowed: str,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    allow_none: bool = False,
    hint: str | None = None,
) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigurationError.invalid(name, value, allowed, hint=hint)
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise ConfigurationError.invalid(name, value, allowed, hint=hint)
    if hi is not None and value > hi:
        raise ConfigurationError.invalid(name, value, allowed, hint=hint)
    return float(value)


def check_max_slowdown(value: Any) -> float:
    """``max_slowdown`` as a fraction in [0, 1], else a :class:`ConfigurationError` with the hint "0.05 = 5 %"."""
    return _number("max_slowdown", value, "a fraction in [0, 1]", 0, 1,
                   hint="0.05 = 5 % slower (a fraction, not a percentage)")


def _int(name: str, value: Any, allowed: str, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ConfigurationError.invalid(name, value, allowed)
    return int(value)


@dataclass
class ChaseConfig:
    """Validated arguments of every adapter (documented once, in ``core.arguments.ARGUMENTS``)."""

    provider: Any
    policy: str = "budget"
    max_slowdown: float = 0.05
    eta: float = 0.5
    max_intensity_g_per_kwh: float | None = None
    static_power_limit_w: int | None = None
    forecaster: Any = "arima"
    decision_interval_s: float | None = None
    power_limits_w: list[int] | None = None
    profile_path: str | None = None
    gpus: Any = None
    simulation: Any = None
    pue: float = 1.0
    host_power_w: float | None = None
    embodied_g_per_gpu_hour: float = 0.0
    report_path: str | None = None
    strict: bool = False
    profile_warmup_steps: int = 3
    profile_measure_steps: int = 1
    profile_min_window_s: float = 2.0
    fallback_intensity_g_per_kwh: float | None = None
    max_reading_age_s: float = 3 * 3600.0
    watchdog: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.provider, CarbonIntensityProvider):
            raise ConfigurationError.invalid(
                "provider",
                self.provider,
                "a carbon-intensity provider (ElectricityMapsProvider, UKCarbonIntensityProvider, WattTimeProvider, "
                "TraceProvider, StaticProvider or a CarbonIntensityProvider subclass)",
                hint="for a fixed value use StaticProvider(g_per_kwh).",
            )
        if not (self.policy in policy_names() if isinstance(self.policy, str) else isinstance(self.policy, Policy)):
            raise ConfigurationError.invalid("policy", self.policy, f"one of {list(policy_names())} or a Policy object")
        self.max_slowdown = check_max_slowdown(self.max_slowdown)
        self.eta = _number("eta", self.eta, "a number in [0, 1]", 0, 1)
        self.max_intensity_g_per_kwh = _number(
            "max_intensity_g_per_kwh",
            self.max_intensity_g_per_kwh,
            "None or a number of gCO2eq/kWh > 0",
            0,
            lo_open=True,
            allow_none=True,
        )
        if self.static_power_limit_w is not None:
            self.static_power_limit_w = int(
                _number(
                    "static_power_limit_w", self.static_power_limit_w, "None or a power limit in W > 0", 0, lo_open=True
                )
            )
        if self.policy == "static" and self.static_power_limit_w is None:
            raise ConfigurationError.invalid(
                "static_power_limit_w",
                None,
                "a power limit in W when policy='static'",
                hint="e.g. ChaseCallback(provider, policy='static', static_power_limit_w=225)",
            )
        if not isinstance(self.forecaster, Forecaster) and self.forecaster not in FORECASTERS:
            raise ConfigurationError.invalid(
                "forecaster", self.forecaster, f"one of {list(FORECASTERS)} or a Forecaster object"
            )
        self.decision_interval_s = _number(
            "decision_interval_s", self.decision_interval_s, "None or a number of seconds >= 1", 1, allow_none=True
        )
        if self.power_limits_w is not None:
            if isinstance(self.power_limits_w, (str, bytes)) or not hasattr(self.power_limits_w, "__iter__"):
                raise ConfigurationError.invalid("power_limits_w", self.power_limits_w, "None or a list of limits in W")
            limits = list(self.power_limits_w)
            if not limits:
                raise ConfigurationError.invalid(
                    "power_limits_w", self.power_limits_w, "None or a non-empty list of limits in W"
                )
            for w in limits:
                _number("power_limits_w", w, "a list of positive limits in W", 0, lo_open=True)
            self.power_limits_w = sorted({int(w) for w in limits})
        for name in ("profile_path", "report_path"):
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, (str, Path)):
                    raise ConfigurationError.invalid(name, value, "None or a file path")
                setattr(self, name, str(value))
        if self.simulation is not None and not isinstance(self.simulation, SimulatedEnvironment):
            raise ConfigurationError.invalid(
                    "simulation", self.simulation, "None or a chase_integrations.simulation.Simulation"
                )
        if self.gpus is not None:
            from zeus.device.gpu.common import GPUs

            if not isinstance(self.gpus, GPUs):
                raise ConfigurationError.invalid("gpus", self.gpus, "None or a zeus.device.gpu.GPUs object")
        self.pue = _number("pue", self.pue, "a power usage effectiveness >= 1.0", 1.0)
        self.host_power_w = _number(
            "host_power_w", self.host_power_w, "None or W per GPU >= 0 for the rest of the server", 0,
            allow_none=True,
        )
        self.embodied_g_per_gpu_hour = _number(
            "embodied_g_per_gpu_hour", self.embodied_g_per_gpu_hour, "gCO2eq per GPU-hour >= 0", 0
        )
        if not isinstance(self.strict, bool):
            raise ConfigurationError.invalid("strict", self.strict, "True or False")
        if not isinstance(self.watchdog, bool):
            raise ConfigurationError.invalid("watchdog", self.watchdog, "True or False")
        self.profile_warmup_steps = _int("profile_warmup_steps", self.profile_warmup_steps, "an integer >= 0", 0)
        self.profile_measure_steps = _int("profile_measure_steps", self.profile_measure_steps, "an integer >= 1", 1)
        self.profile_min_window_s = _number(
            "profile_min_window_s", self.profile_min_window_s, "a number of seconds >= 0", 0
        )
        self.fallback_intensity_g_per_kwh = _number(
            "fallback_intensity_g_per_kwh",
            self.fallback_intensity_g_per_kwh,
            "None or a number of gCO2eq/kWh >= 0",
            0,
            allow_none=True,
        )
        self.max_reading_age_s = _number(
            "max_reading_age_s", self.max_reading_age_s, "a number of seconds > 0", 0, lo_open=True
        )

    def to_json(self) -> dict:
        """The JSON-safe, secret-free part of the configuration (for reports and resume checks)."""
        return {
            "policy": self.policy if isinstance(self.policy, str) else getattr(self.policy, "name", "custom"),
            "max_slowdown": self.max_slowdown,
            "eta": self.eta,
            "max_intensity_g_per_kwh": self.max_intensity_g_per_kwh,
            "static_power_limit_w": self.static_power_limit_w,
            "forecaster": self.forecaster if isinstance(self.forecaster, str) else type(self.forecaster).__name__,
            "decision_interval_s": self.decision_interval_s,
            "power_limits_w": self.power_limits_w,
            "profile_path": self.profile_path,
            "pue": self.pue,
            "host_power_w": self.host_power_w,
            "embodied_g_per_gpu_hour": self.embodied_g_per_gpu_hour,
            "report_path": self.report_path,
            "strict": self.strict,
            "watchdog": self.watchdog,
        }
