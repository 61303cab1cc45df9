"""Footprint prediction: what will the whole job emit, at the planned limits and at the default limit?

The prediction made at a decision is the carbon measured so far plus the remaining work run hour by
hour over the forecast: each hour's limit is the one the policy would pick for that hour's forecast
intensity, each step costs the profile's energy at that limit, and emissions are energy × forecast
intensity × PUE. The range comes from running the same schedule over the lower and upper edges of the
forecast's prediction interval. Beyond the forecast, its last day repeats.

Example:
    >>> from chase_integrations.core.profile import PowerProfile
    >>> prof = PowerProfile({300: (1.0, 250.0), 200: (1.1, 200.0)})
    >>> f = project_carbon(prof, [100.0], lambda ci: 300, remaining_steps=3600 * 2, first_hour_s=3600.0)
    >>> round(f.carbon_g, 3), f.time_s
    (50.0, 7200.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chase_integrations.core.ledger import J_PER_KWH
from chase_integrations.core.profile import PowerProfile

HOUR_S = 3600.0
#: Share of the job done when the prediction shown beside the outcome is taken (``FootprintPrediction.early``).
EARLY_FRACTION = 0.1


@dataclass(frozen=True)
class Projection:
    """Projected emissions and time of the remaining work."""

    carbon_g: float
    energy_j: float
    time_s: float


def _hour_value(values: Sequence[float], h: int) -> float:
    n = len(values)
    if h < n:
        return values[h]
    if n >= 24:
        return values[n - 24 + (h - n) % 24]
    return values[-1]


def project_carbon(
    profile: PowerProfile,
    hourly_g_per_kwh: Sequence[float],
    limit_for: Callable[[float], float],
    remaining_steps: float,
    first_hour_s: float = HOUR_S,
    pue: float = 1.0,
) -> Projection:
    """Run ``remaining_steps`` hour by hour at ``limit_for(intensity)``; return carbon, energy and time.

    ``limit_for`` must depend on the intensity alone (it is asked once per distinct intensity).
    """
    if remaining_steps <= 0 or not hourly_g_per_kwh:
        return Projection(0.0, 0.0, 0.0)
    steps_left = float(remaining_steps)
    carbon = energy = time_s = 0.0
    per_step: dict[float, tuple[float, float]] = {}  # intensity -> (time, energy) of one step at its limit
    n = len(hourly_g_per_kwh)
    span = max(first_hour_s, 1.0)  # the first slot: the rest of the current hour
    h = 0
    while steps_left > 1e-9 and h < 200_000:
        ci = hourly_g_per_kwh[h] if h < n else _hour_value(hourly_g_per_kwh, h)
        cost = per_step.get(ci)
        if cost is None:
            limit = limit_for(ci)
            cost = per_step[ci] = (profile.time_per_step_s(limit), profile.energy_per_step_j(limit))
        t, e_step = cost
        steps = min(steps_left, span / t)
        e = steps * e_step
        energy += e
        carbon += e / J_PER_KWH * ci * pue
        time_s += steps * t
        steps_left -= steps
        span = HOUR_S
        h += 1
    return Projection(carbon, energy, time_s)


@dataclass(frozen=True)
class FootprintPrediction:
    """The whole job's predicted emissions (gCO2eq), measured part included."""

    total_carbon_g: float
    lower_carbon_g: float
    upper_carbon_g: float
    default_total_carbon_g: float
    measured_carbon_g: float
    remaining_time_s: float
    #: The first prediction made once :data:`EARLY_FRACTION` of the job was done (its ``to_dict()`` plus
    #: ``"done_fraction"``), shown beside the outcome: the last prediction is nearly the measurement itself.
    early: dict | None = None

    @property
    def expected_saving_g(self) -> float:
        """Predicted total at the default limit minus the predicted total at the planned limits."""
        return self.default_total_carbon_g - self.total_carbon_g

    def to_dict(self) -> dict:
        """JSON-safe form."""
        return {
            "total_carbon_g": self.total_carbon_g,
            "lower_carbon_g": self.lower_carbon_g,
            "upper_carbon_g": self.upper_carbon_g,
            "default_total_carbon_g": self.default_total_carbon_g,
            "measured_carbon_g": self.measured_carbon_g,
            "remaining_time_s": self.remaining_time_s,
            "expected_saving_g": self.expected_saving_g,
            "early": self.early,
        }


def predict_footprint(
    profile: PowerProfile,
    hourly: Sequence[float],
    lower: Sequence[float],
    upper: Sequence[float],
    limit_for: Callable[[float], float],
    remaining_steps: float,
    measured_carbon_g: float,
    measured_baseline_carbon_g: float,
    first_hour_s: float,
    pue: float,
) -> FootprintPrediction:
    """Predicted totals: planned limits over the forecast (with its range) and the default limit."""
    default = profile.default_limit_w
    mid = project_carbon(profile, hourly, limit_for, remaining_steps, first_hour_s, pue)
    lo = project_carbon(profile, lower or hourly, limit_for, remaining_steps, first_hour_s, pue)
    hi = project_carbon(profile, upper or hourly, limit_for, remaining_steps, first_hour_s, pue)
    base = project_carbon(profile, hourly, lambda ci: default, remaining_steps, first_hour_s, pue)
    values = sorted((lo.carbon_g, mid.carbon_g, hi.carbon_g))
    return FootprintPrediction(
        total_carbon_g=measured_carbon_g + mid.carbon_g,
        lower_carbon_g=measured_carbon_g + values[0],
        upper_carbon_g=measured_carbon_g + values[2],
        default_total_carbon_g=measured_baseline_carbon_g + base.carbon_g,
        measured_carbon_g=measured_carbon_g,
        remaining_time_s=mid.time_s,
    )


def describe_prediction(prediction: dict) -> str:
    """One log line for a :meth:`FootprintPrediction.to_dict`.

    Example:
        >>> p = FootprintPrediction(90.0, 80.0, 100.0, 110.0, 10.0, 3600.0)
        >>> describe_prediction(p.to_dict())
        'predicted total 90.0 gCO2eq (80 % range 80.0-100.0) vs 110.0 at the default limit (expected saving 20.0 g); 10.0 g emitted so far.'
    """  # noqa: E501
    p = prediction
    return (
        f"predicted total {p['total_carbon_g']:.1f} gCO2eq (80 % range {p['lower_carbon_g']:.1f}-"
        f"{p['upper_carbon_g']:.1f}) vs {p['default_total_carbon_g']:.1f} at the default limit (expected saving "
        f"{p['expected_saving_g']:.1f} g); {p['measured_carbon_g']:.1f} g emitted so far."
    )


def format_value(value: float | None, digits: int = 1) -> str:
    """A number for a log line, ``"n/a"`` when missing or not a number.

    Example:
        >>> format_value(412.345), format_value(None)
        ('412.3', 'n/a')
    """
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def finite_or_none(value: float | None) -> float | None:
    """``value`` if it is a finite number, else ``None``."""
    return value if value is not None and math.isfinite(value) else None
