"""The four policies users choose by name: ``budget``, ``chase``, ``static`` and ``monitor``.

Example:
    >>> from datetime import datetime, timezone
    >>> from chase_integrations.core.decision import DecisionInputs, Outlook
    >>> from chase_integrations.core.ledger import Ledger
    >>> from chase_integrations.core.profile import PowerProfile
    >>> prof = PowerProfile({300: (1.00, 235.0), 250: (1.005, 216.0), 200: (1.07, 190.0)})
    >>> now = datetime(2024, 1, 1, tzinfo=timezone.utc)
    >>> inputs = DecisionInputs(now, prof, prof, 300, Ledger(), None, 3600.0, 1.0, 300)
    >>> ChasePolicy(eta=0.5).choose(inputs, Outlook([500.0], interval_mean_g_per_kwh=500.0)).limit_w
    200
    >>> StaticPolicy(250).choose(inputs, Outlook()).limit_w
    250
"""

from __future__ import annotations

import logging
import math

from chase_integrations.core.budget import (
    BudgetPlan,
    plan_budget,
    remaining_time_budget_s,
    seconds_to_next_hour,
    weighted_limit_fn,
)
from chase_integrations.core.decision import Choice, DecisionInputs, Outlook
from chase_integrations.core.policies.base import PolicyBase, register_policy
from chase_integrations.core.policies.rules import chase_limit
from chase_integrations.errors import ConfigurationError

logger = logging.getLogger(__name__)

#: Hours the budget policy plans over when the job's length is unknown.
ROLLING_HORIZON_H = 24
#: The longest outlook any decision asks for, h.
MAX_OUTLOOK_H = 48


class BudgetPolicy(PolicyBase):
    """Least carbon within a slowdown budget: the Lagrangian plan of :mod:`chase_integrations.core.budget`.

    Args:
        max_slowdown: Allowed increase of the job's total time over the default limit (0.05 = 5 %).
        interpolate: Whether the plan may run limits between the candidates (``False`` when the user gave the
            exact set of limits, ``power_limits_w``); ``None``: :data:`~chase_integrations.core.budget.INTERPOLATE`.
    """

    name = "budget"

    def __init__(self, max_slowdown: float, interpolate: bool | None = None) -> None:
        self.max_slowdown = float(max_slowdown)
        self.interpolate = interpolate
        self.last_plan: BudgetPlan | None = None
        self._said_rolling = False

    def outlook_hours(self, inputs: DecisionInputs, base_hours: int) -> int:
        """The rest of the job (at the default limit), at most :data:`MAX_OUTLOOK_H`; 24 h when unknown."""
        if inputs.profile is None:
            return base_hours
        if inputs.remaining_steps is None:
            return max(base_hours, ROLLING_HORIZON_H)
        need_s = inputs.remaining_steps * inputs.profile.time_per_step_s(inputs.profile.default_limit_w)
        return min(MAX_OUTLOOK_H, max(base_hours, math.ceil(need_s / 3600.0) + 1))

    def choose(self, inputs: DecisionInputs, outlook: Outlook) -> Choice:
        """Re-solve the plan for the rest of the job over the outlook; run its first hour's limit."""
        profile = inputs.usable_profile
        assert profile is not None  # needs_profile
        t_default = profile.time_per_step_s(profile.default_limit_w)
        remaining_steps = inputs.remaining_steps
        if remaining_steps is None:
            remaining_steps = int(ROLLING_HORIZON_H * 3600 / t_default)
            if not self._said_rolling:
                logger.info(
                    "chase: the job's length is unknown (no max_epochs/max_steps); the budget policy plans "
                    "over a rolling %d-hour horizon.",
                    ROLLING_HORIZON_H,
                )
                self._said_rolling = True
        remaining_time_s = remaining_time_budget_s(
            self.max_slowdown, inputs.ledger.baseline_time_s, inputs.ledger.time_s, remaining_steps, t_default
        )
        first_hour_s = max(1.0, seconds_to_next_hour(inputs.now))
        plan = plan_budget(profile, outlook.hourly_g_per_kwh, remaining_steps, remaining_time_s,
                           first_hour_s=first_hour_s, interpolate=self.interpolate, min_mu=inputs.min_mu,
                           faster_if_cleaner=inputs.counts_host)
        self.last_plan = plan
        mu = plan.mu
        default = profile.default_limit_w
        limit_for = weighted_limit_fn(profile, mu) if math.isfinite(mu) else (lambda ci: default)
        return Choice(plan.limit_w, limit_for=limit_for)

    def __repr__(self) -> str:
        return f"BudgetPolicy(max_slowdown={self.max_slowdown:g})"


class ChasePolicy(PolicyBase):
    """The Chase paper's rule (GPU energy only, as published): ``argmin η·CI·e(p) + (1−η)·Pmax·MaxCI·t(p)``.

    It decides on the GPUs' energy alone (``DecisionInputs.gpu_usable_profile``), whatever ``host_power_w``
    says: the paper's rule, reproduced. The ledger and the savings still cover the run's scope.

    Args:
        eta: The paper's η in [0, 1].
        max_intensity_g_per_kwh: The paper's MaxCI; ``None``: the highest value of the last 24 h and the
            forecast.
    """

    name = "chase"

    def __init__(self, eta: float, max_intensity_g_per_kwh: float | None = None) -> None:
        self.eta = float(eta)
        self.max_intensity_g_per_kwh = max_intensity_g_per_kwh

    def choose(self, inputs: DecisionInputs, outlook: Outlook) -> Choice:
        """The rule at the interval's forecast, MaxCI fixed for this decision."""
        profile = inputs.gpu_usable_profile or inputs.usable_profile
        forecast = outlook.interval_mean_g_per_kwh
        assert profile is not None and forecast is not None  # needs_profile, needs_forecast
        ci_max = self.max_intensity_g_per_kwh or max([*outlook.recent_g_per_kwh, forecast])
        eta = self.eta
        return Choice(chase_limit(profile, forecast, eta, ci_max),
                      limit_for=lambda ci: chase_limit(profile, ci, eta, ci_max))

    def __repr__(self) -> str:
        return f"ChasePolicy(eta={self.eta:g})"


class StaticPolicy(PolicyBase):
    """One fixed limit for the whole job (profiles only it and the default limit, for the savings estimate).

    Args:
        power_limit_w: The limit, W.
        name: Shown in reports (the simulator's references reuse this class).
    """

    needs_profile = False
    needs_forecast = False

    def __init__(self, power_limit_w: int, name: str = "static") -> None:
        self.power_limit_w = int(power_limit_w)
        self.name = name

    def choose(self, inputs: DecisionInputs, outlook: Outlook) -> Choice:
        """Always :attr:`power_limit_w`."""
        return Choice(self.power_limit_w)

    def profile_limits_w(self, candidates_w: list[int], default_limit_w: int) -> list[int]:
        """The default limit and this one."""
        return sorted({default_limit_w, self.power_limit_w})

    def accepts_profile(self, profile_limits_w: list[int], candidates_w: list[int], default_limit_w: int,
                        exact_limits: bool) -> bool:
        """A profile that has both limits."""
        return all(w in profile_limits_w for w in self.profile_limits_w(candidates_w, default_limit_w))

    def check_range(self, lo_w: int, hi_w: int) -> None:
        """The limit must be within the GPU's range."""
        if not lo_w <= self.power_limit_w <= hi_w:
            raise ConfigurationError.invalid(
                "static_power_limit_w", self.power_limit_w, f"within the GPU's range [{lo_w}, {hi_w}] W"
            )

    def __repr__(self) -> str:
        return f"StaticPolicy({self.power_limit_w} W)"


class MonitorPolicy(PolicyBase):
    """Measure and log; never change a limit."""

    name = "monitor"
    changes_limits = False
    needs_profile = False
    needs_forecast = False

    def choose(self, inputs: DecisionInputs, outlook: Outlook) -> Choice:
        """No limit."""
        return Choice(None)


register_policy("budget", lambda cfg: BudgetPolicy(cfg.max_slowdown, False if cfg.power_limits_w else None))
register_policy("chase", lambda cfg: ChasePolicy(cfg.eta, cfg.max_intensity_g_per_kwh))
register_policy("static", lambda cfg: StaticPolicy(cfg.static_power_limit_w))
register_policy("monitor", lambda cfg: MonitorPolicy())
