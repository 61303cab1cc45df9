"""What profiling cost a run: the baseline of its profiling intervals, and the report's ``profiling`` field.

While limits are being profiled their slowdown is not known yet, so the intervals closed then carry the
measured time and energy as their own baseline (no slowdown, no saving). Once the profile is known,
:func:`rebaseline` gives them their real baseline, the same work at the default limit, so the time that
profiling lost counts against the slowdown budget from the first decision on, and the savings include
what profiling saved or cost.

Example:
    >>> from chase_integrations.core.ledger import Interval, Ledger
    >>> from chase_integrations.core.profile import PowerProfile
    >>> led = Ledger([Interval.account("a", "b", 300, 400.0, None, energy_j=300.0, steps=1, duration_s=1.0,
    ...                                phase="profile"),
    ...               Interval.account("b", "c", 200, 400.0, None, energy_j=220.0, steps=1, duration_s=1.1,
    ...                                phase="profile"),
    ...               Interval.account("c", "d", 200, 400.0, None, energy_j=2200.0, steps=10, duration_s=11.0,
    ...                                time_ratio_to_default=1.1, energy_ratio_to_default=220 / 300)])
    >>> rebaseline(led, PowerProfile({300: (1.0, 300.0), 200: (1.1, 220.0)}))
    >>> cost = profiling_cost(led, max_slowdown=0.05)
    >>> round(cost["time_s"], 3), round(cost["energy_j"], 3), round(cost["share_of_budget"], 3)
    (0.1, -80.0, 0.167)
"""

from __future__ import annotations

import contextlib

from chase_integrations.core.ledger import Interval, Ledger
from chase_integrations.core.profile import PowerProfile
from chase_integrations.errors import ConfigurationError

PROFILE_PHASE = "profile"


def rebaseline(ledger: Ledger, profile: PowerProfile) -> None:
    """Give every profiling interval the baseline ``profile`` implies (the same work at its default limit).

    The interval is accounted again with the same measured values (GPU energy, CPU/DRAM, host power,
    embodied rate, intensity) and the profile's time and energy ratios, so every derived field follows
    :meth:`Interval.account`, the one place that does the arithmetic.
    """
    for i, iv in enumerate(ledger.intervals):
        if iv.phase != PROFILE_PHASE or not iv.power_limit_w:
            continue
        t_ratio = e_ratio = 1.0
        with contextlib.suppress(ConfigurationError):
            t_ratio, e_ratio = profile.relative(iv.power_limit_w)
        ledger.intervals[i] = _reaccount(iv, t_ratio, e_ratio)


def _reaccount(iv: Interval, time_ratio: float, energy_ratio: float) -> Interval:
    d = iv.duration_s
    extra = {}
    if hasattr(iv, "gpu_energy_j"):  # whole-node accounting: the GPUs' energy is scaled, the rest re-derived
        extra = {"host_power_w": iv.host_energy_j / d if d > 0 else 0.0,
                 "embodied_g_per_s": iv.embodied_carbon_g / d if d > 0 else 0.0}
    energy = getattr(iv, "gpu_energy_j", iv.energy_j)
    return Interval.account(
        iv.start, iv.end, iv.power_limit_w, iv.intensity_g_per_kwh, iv.forecast_g_per_kwh, energy_j=energy,
        steps=iv.steps, duration_s=d, pue=iv.pue, energy_ratio_to_default=energy_ratio,
        time_ratio_to_default=time_ratio, phase=iv.phase, intensity_source=iv.intensity_source,
        cpu_energy_j=iv.cpu_energy_j, dram_energy_j=iv.dram_energy_j, **extra,
    )


def profiling_cost(ledger: Ledger, max_slowdown: float | None) -> dict:
    """The report's ``profiling`` field: what the profiling phase cost over running it at the default limit.

    Returns:
        ``time_s``: extra time, s (the profiled limits' slowdown); ``energy_j`` and ``carbon_g``: extra
        energy (J) and emissions (gCO2eq) of the report's scope, negative when the profiled limits saved;
        ``share_of_job``: the profiling phase's share of the run's time; ``share_of_budget``: ``time_s`` as a
        share of the slowdown budget (``max_slowdown`` × the run's baseline time; ``None`` without a budget);
        ``duration_s`` and ``steps``: how long profiling ran.
    """
    rows = [iv for iv in ledger.intervals if iv.phase == PROFILE_PHASE]
    duration = sum(iv.duration_s for iv in rows)
    extra_s = duration - sum(iv.baseline_time_s for iv in rows)
    budget_s = (max_slowdown or 0.0) * ledger.baseline_time_s
    total_s = ledger.time_s
    return {
        "time_s": extra_s,
        "energy_j": sum(iv.energy_j - iv.baseline_energy_j for iv in rows),
        "carbon_g": sum(iv.carbon_g - iv.baseline_carbon_g for iv in rows),
        "share_of_job": duration / total_s if total_s > 0 else 0.0,
        "share_of_budget": extra_s / budget_s if budget_s > 0 else None,
        "duration_s": duration,
        "steps": sum(iv.steps for iv in rows),
    }
