"""References for offline simulation: the clairvoyant schedule and the limit Zeus would pick.

Neither is a product feature. :class:`OracleDecider` knows the true future of the replayed trace, so
it bounds what any forecast-driven controller can reach within the same slowdown budget;
:func:`zeus_power_limit` is the static limit Zeus's own ``GlobalPowerLimitOptimizer`` settles on with
its default cost, so benchmarks can compare with it without running Zeus's profiler.

Both go through the real engine (:class:`~chase_integrations.core.session.ChaseSession`): the oracle
replaces only rank 0's decision, so its energy, time and carbon are accounted exactly like the live
callback's.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np

from chase_integrations.core.budget import HOUR_S, plan_budget
from chase_integrations.core.ledger import Ledger
from chase_integrations.core.profile import PowerProfile

#: Zeus ``GlobalPowerLimitOptimizer`` defaults: ``ZeusCost(eta_knob=0.5)`` over limits from the
#: maximum down to the minimum in steps of ``pl_step=25`` W.
ZEUS_ETA_KNOB = 0.5
ZEUS_PL_STEP_W = 25


def zeus_power_limit(profile: PowerProfile, eta_knob: float = ZEUS_ETA_KNOB, pl_step_w: int = ZEUS_PL_STEP_W,
                     world_size: int = 1) -> int:
    """The limit Zeus's ``GlobalPowerLimitOptimizer`` picks by default, from a per-step profile.

    Zeus profiles ``range(max, min - 1, -pl_step)`` and picks the minimum of
    ``eta·energy + (1 - eta)·max_power·world_size·time`` (``zeus.optimizer.power_limit.ZeusCost``,
    its default selector); the cost is linear, so per-step values pick the same limit as Zeus's windows.

    Example:
        >>> prof = PowerProfile({300: (1.0, 235.0), 250: (1.005, 216.0), 225: (1.016, 200.0), 200: (1.07, 190.0)})
        >>> zeus_power_limit(prof)
        225
    """
    hi, lo = profile.limits_w[-1], profile.limits_w[0]
    limits = list(range(hi, lo - 1, -int(pl_step_w)))
    max_power = hi * world_size

    def cost(p: int) -> float:
        return eta_knob * profile.energy_per_step_j(p) + (1 - eta_knob) * max_power * profile.time_per_step_s(p)

    return min(limits, key=cost)  # first minimum in Zeus's order (highest limit first), like Zeus's min()


class OracleDecider:
    """Rank 0's decision with the true future: the budget policy's Lagrangian over the real trace.

    A drop-in for :class:`~chase_integrations.core.decide.Decider` (same ``decide`` signature and
    payload). At each hour boundary it re-solves the least-carbon plan for the rest of the job with
    the true hourly intensities (time-weighted means of the trace), with time-sharing between limits
    at the critical multiplier (interpolated limits), and decides again at the next hour boundary.

    Args:
        hourly_g_per_kwh: Callable ``(start, hours) -> list[float]``: the true mean intensity of the
            slot from ``start`` to the next full hour, then of each following hour.
        clock: The simulated clock.
        max_slowdown: The slowdown budget (fraction).
    """

    def __init__(self, hourly_g_per_kwh, clock, max_slowdown: float) -> None:
        self.hourly = hourly_g_per_kwh
        self.clock = clock
        self.max_slowdown = float(max_slowdown)
        self.last_plan = None

    def decide(self, profile: PowerProfile | None, candidates_w: list[int], current_limit_w: int | None,
               default_limit_w: int | None, ledger: Ledger, steps_done: int, total_steps: int | None,
               est_step_s: float | None) -> dict:
        """The limit for the slot starting now; the next decision comes just after the next full hour."""
        if profile is None or total_steps is None:
            raise ValueError("The oracle needs a profile and the job's length.")
        now = self.clock.now()
        prof = profile.restricted([w for w in candidates_w if w in profile] or profile.limits_w)
        remaining = max(0, total_steps - steps_done)
        t_default = prof.time_per_step_s(prof.default_limit_w)
        allowed_s = (1.0 + self.max_slowdown) * (ledger.baseline_time_s + remaining * t_default)
        first_s = max(1.0, HOUR_S - (now.minute * 60 + now.second + now.microsecond / 1e6))
        hours = math.ceil(remaining * prof.time_per_step_s(prof.limits_w[0]) / HOUR_S) + 2
        truth = self.hourly(now, hours)
        plan = plan_budget(prof, truth, remaining, allowed_s - ledger.time_s, first_hour_s=first_s,
                           interpolate=True)
        self.last_plan = plan
        step_s = profile.time_per_step_s(plan.limit_w)
        return {"limit_w": plan.limit_w, "forecast_g_per_kwh": truth[0],
                "steps_until_next": max(1, math.ceil(first_s / step_s - 1e-9))}


def true_hourly_means(provider, start: datetime, hours: int) -> np.ndarray:
    """Mean intensity of ``[start, next full hour)`` and of each of the following ``hours - 1`` hours.

    Uses the provider's ``times_s``/``values_g_per_kwh`` (a :class:`~chase_integrations.carbon.trace.TraceProvider`),
    i.e. the future: for references only.
    """
    times = np.asarray(provider.times_s, dtype=float)
    values = np.asarray(provider.values_g_per_kwh, dtype=float)
    hour0 = start.replace(minute=0, second=0, microsecond=0)
    edges = np.array([start.timestamp()] + [(hour0 + timedelta(hours=h)).timestamp() for h in range(1, hours + 1)])
    # integral of the step function at each edge, then differences
    idx = np.clip(np.searchsorted(times, edges, side="right") - 1, 0, len(times) - 1)
    widths = np.diff(times)
    cumulative = np.concatenate([[0.0], np.cumsum(widths * values[:-1])])
    integral = cumulative[idx] + (edges - times[idx]) * values[idx]
    before = edges < times[0]
    integral[before] = (edges[before] - times[0]) * values[0]
    return np.diff(integral) / np.diff(edges)


