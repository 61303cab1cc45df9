"""Power-limit policies as pure functions of a profile and carbon intensities.

All costs are per training step: ``e(p)`` is energy per step (J), ``t(p)`` time per step (s).

* Chase (Yang et al., 2023): minimise ``[η·P(p)·CI + (1−η)·Pmax·CImax] / throughput(p)``, which per
  step is ``η·CI·e(p) + (1−η)·Pmax·CImax·t(p)``.
* Weighted (the form the budget policy solves): minimise ``CI·e(p) + μ·t(p)`` for a given μ.

Ties go to the higher limit (faster, never worse on time).

Example:
    >>> from chase_integrations.core.profile import PowerProfile
    >>> prof = PowerProfile({300: (1.00, 235.0), 250: (1.005, 216.0), 200: (1.07, 190.0)})
    >>> chase_limit(prof, intensity_g_per_kwh=500.0, eta=0.5, max_intensity_g_per_kwh=500.0)  # dirtiest hour
    200
    >>> chase_limit(prof, intensity_g_per_kwh=100.0, eta=0.5, max_intensity_g_per_kwh=500.0)  # a clean hour
    250
    >>> weighted_limit(prof, intensity_g_per_kwh=0.0, mu=1.0)
    300
"""

from __future__ import annotations

import math

from chase_integrations.core.profile import PowerProfile


def _argmin(profile: PowerProfile, cost) -> int:
    best_limit, best_cost = None, math.inf
    for limit in sorted(profile.limits_w, reverse=True):  # ties keep the higher limit
        c = cost(limit)
        if c < best_cost - 1e-12 * max(1.0, abs(best_cost) if math.isfinite(best_cost) else 1.0):
            best_limit, best_cost = limit, c
    assert best_limit is not None  # a profile always has at least one limit
    return best_limit


def chase_cost(
    profile: PowerProfile, limit_w: int, intensity_g_per_kwh: float, eta: float, max_intensity_g_per_kwh: float
) -> float:
    """The Chase paper's cost of one step at ``limit_w`` (units: W·gCO2/kWh·s, only comparisons matter)."""
    e = profile.energy_per_step_j(limit_w)
    t = profile.time_per_step_s(limit_w)
    p_max = float(profile.default_limit_w)
    return eta * intensity_g_per_kwh * e + (1.0 - eta) * p_max * max_intensity_g_per_kwh * t


def chase_limit(profile: PowerProfile, intensity_g_per_kwh: float, eta: float, max_intensity_g_per_kwh: float) -> int:
    """The limit the Chase rule picks for the given intensity."""
    return _argmin(profile, lambda p: chase_cost(profile, p, intensity_g_per_kwh, eta, max_intensity_g_per_kwh))


def weighted_cost(profile: PowerProfile, limit_w: float, intensity_g_per_kwh: float, mu: float) -> float:
    """``CI·e(p) + μ·t(p)`` for one step (CI in g/kWh, e in J, μ in g/kWh·J/s)."""
    return intensity_g_per_kwh * profile.energy_per_step_j(limit_w) + mu * profile.time_per_step_s(limit_w)


def weighted_limit(profile: PowerProfile, intensity_g_per_kwh: float, mu: float) -> int:
    """The limit minimising ``CI·e(p) + μ·t(p)``; never rises as the intensity rises (for fixed μ)."""
    return _argmin(profile, lambda p: weighted_cost(profile, p, intensity_g_per_kwh, mu))


def least_energy_limit(profile: PowerProfile, max_time_per_step_s: float) -> int:
    """The limit with the least energy per step among those no slower than ``max_time_per_step_s``.

    What to run when the grid's intensity is unknown: less energy is less carbon at any intensity, and
    the time limit keeps the run within its slowdown budget. When no limit is fast enough, the fastest.

    Example:
        >>> prof = PowerProfile({300: (1.00, 235.0), 250: (1.005, 216.0), 200: (1.07, 190.0)})
        >>> least_energy_limit(prof, 1.05), least_energy_limit(prof, 2.0), least_energy_limit(prof, 0.5)
        (250, 200, 300)
    """
    fits = [p for p in profile.limits_w if profile.time_per_step_s(p) <= max_time_per_step_s]
    if not fits:
        return min(profile.limits_w, key=lambda p: (profile.time_per_step_s(p), -p))
    return _argmin(profile.restricted(fits), profile.energy_per_step_j)
