"""References for offline simulation: the clairvoyant schedule, the limit Zeus would pick, the default.

None is a product feature. :class:`OraclePolicy` knows the true future of the replayed trace, so
it bounds what any forecast-driven controller can reach within the same slowdown budget;
:class:`ZeusPolicy` runs the static limit Zeus's own ``GlobalPowerLimitOptimizer`` settles on with
its default cost (:func:`zeus_power_limit`), so benchmarks can compare with it without running Zeus's
profiler; :class:`DefaultPolicy` never changes the limit.

All are :class:`~chase_integrations.core.policies.Policy` objects run by the real engine
(:class:`~chase_integrations.core.session.ChaseSession`), so their energy, time and carbon are accounted
exactly like the live callback's.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np

from chase_integrations.core.budget import HOUR_S, plan_budget, remaining_time_budget_s, seconds_to_next_hour
from chase_integrations.core.decision import Choice, DecisionInputs, Outlook
from chase_integrations.core.policies import PolicyBase
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


class OraclePolicy(PolicyBase):
    """The budget policy's Lagrangian over the true future: the clairvoyant reference.

    At each hour boundary it re-solves the least-carbon plan for the rest of the job with the true
    hourly intensities (time-weighted means of the trace), with time-sharing between limits at the
    critical multiplier (interpolated limits), and decides again at the next hour boundary. It reads no
    forecast; the intensity it reports for a decision is the true mean of the slot. With the whole server
    counted it weighs the faster plans as the budget policy does, with the same margin
    (``budget.FASTER_MARGIN``), a hedge against forecast error it has no need of; re-planned hour by hour,
    it is close to the clairvoyant optimum but not exactly it (``bench/oracle_margin.py`` measures it
    without the margin too).

    Args:
        hourly_g_per_kwh: Callable ``(start, hours) -> list[float]``: the true mean intensity of the
            slot from ``start`` to the next full hour, then of each following hour.
        max_slowdown: The slowdown budget (fraction).
    """

    name = "oracle"
    needs_forecast = False

    def __init__(self, hourly_g_per_kwh, max_slowdown: float) -> None:
        self.hourly = hourly_g_per_kwh
        self.max_slowdown = float(max_slowdown)
        self.last_plan = None

    def outlook_hours(self, inputs: DecisionInputs, base_hours: int) -> int:
        """None: the oracle reads the truth."""
        return 0

    def choose(self, inputs: DecisionInputs, outlook: Outlook) -> Choice:
        """The limit for the slot starting now; the next decision comes just after the next full hour."""
        prof = inputs.usable_profile
        if prof is None or inputs.remaining_steps is None:
            raise ValueError("The oracle needs a profile and the job's length.")
        now = inputs.now
        remaining = inputs.remaining_steps
        t_default = prof.time_per_step_s(prof.default_limit_w)
        first_s = max(1.0, seconds_to_next_hour(now))
        hours = math.ceil(remaining * prof.time_per_step_s(prof.limits_w[0]) / HOUR_S) + 2
        truth = self.hourly(now, hours)
        budget_s = remaining_time_budget_s(self.max_slowdown, inputs.ledger.baseline_time_s, inputs.ledger.time_s,
                                           remaining, t_default)
        plan = plan_budget(prof, truth, remaining, budget_s, first_hour_s=first_s, interpolate=True,
                           min_mu=inputs.min_mu, faster_if_cleaner=inputs.counts_host)
        self.last_plan = plan
        step_s = inputs.profile.time_per_step_s(plan.limit_w)
        return Choice(plan.limit_w, forecast_g_per_kwh=float(truth[0]),
                      steps_until_next=max(1, math.ceil(first_s / step_s - 1e-9)))


class ZeusPolicy(PolicyBase):
    """The static limit Zeus's ``GlobalPowerLimitOptimizer`` settles on by default (see :func:`zeus_power_limit`)."""

    name = "zeus"
    needs_forecast = False

    def choose(self, inputs: DecisionInputs, outlook: Outlook) -> Choice:
        """Zeus's choice on the measured profile."""
        return Choice(zeus_power_limit(inputs.profile))


class DefaultPolicy(PolicyBase):
    """Never change the limit from the default (highest) one: what running without chase-integrations does."""

    name = "default"
    needs_profile = False
    needs_forecast = False

    def choose(self, inputs: DecisionInputs, outlook: Outlook) -> Choice:
        """The default limit."""
        return Choice(inputs.default_limit_w)

    def profile_limits_w(self, candidates_w: list[int], default_limit_w: int) -> list[int]:
        """Only the default limit."""
        return [default_limit_w]


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


