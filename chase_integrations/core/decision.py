"""The data one decision carries: what rank 0 knows, what a policy chooses, what every rank applies.

:class:`DecisionInputs` is built by the session on rank 0, :class:`Outlook` by the decider from the
provider and the forecaster, :class:`Choice` by the policy; :class:`Decision` is the one value that is
broadcast to every rank (and that the simulator records). All are plain dataclasses: picklable, typed,
no hidden state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from chase_integrations.core.cost import CostModel, measured_host_power_w
from chase_integrations.core.footprint import FootprintPrediction
from chase_integrations.core.ledger import Ledger
from chase_integrations.core.profile import PowerProfile
from chase_integrations.errors import ConfigurationError


@dataclass(frozen=True)
class DecisionInputs:
    """What rank 0 knows when it decides.

    Attributes:
        now: Wall time of the decision (UTC).
        profile: The measured per-step profile (``None`` before profiling ends).
        usable_profile: ``profile`` restricted to the limits the job may use (``None``: none usable).
        current_limit_w: The limit in force, W.
        ledger: Everything accounted so far.
        remaining_steps: Optimizer steps left in the job (``None``: the job's length is unknown).
        interval_s: Seconds until the next decision is expected.
        est_step_s: Estimated seconds per step at the current limit (``None``: unknown).
        default_limit_w: The job's default (highest) limit, W.
        original_limit_w: The limit the GPUs had before the run, W.
        gpu_usable_profile: ``usable_profile`` for the GPUs alone (``None``: the same as ``usable_profile``).
            ``usable_profile`` is the whole node's cost per step (:mod:`chase_integrations.core.cost`):
            what every policy decides with, except the chase policy's GPU-only rule.
        min_mu: Floor under the budget's price of time (the embodied emissions, see
            :attr:`~chase_integrations.core.cost.CostModel.min_mu`), gCO2eq/kWh·J per s.
    """

    now: datetime
    profile: PowerProfile | None
    usable_profile: PowerProfile | None
    current_limit_w: int | None
    ledger: Ledger
    remaining_steps: int | None
    interval_s: float
    est_step_s: float | None
    default_limit_w: int | None = None
    original_limit_w: int | None = None
    gpu_usable_profile: PowerProfile | None = None
    min_mu: float = 0.0

    @property
    def counts_host(self) -> bool:
        """Whether ``usable_profile`` counts more than the GPUs (or time has an embodied price)."""
        gpu = self.gpu_usable_profile
        return self.min_mu > 0 or (gpu is not None and self.usable_profile is not gpu)


@dataclass(frozen=True)
class Outlook:
    """The grid's intensity from now on, hour by hour (gCO2eq/kWh).

    Attributes:
        hourly_g_per_kwh: The current hour, then each following hour (empty: nothing known).
        lower_g_per_kwh / upper_g_per_kwh: Edges of the 80 % prediction interval for the same hours.
        interval_mean_g_per_kwh: Time-weighted mean over the coming decision interval (``None``: unknown).
        recent_g_per_kwh: Values seen in the last 24 h, oldest first.
    """

    hourly_g_per_kwh: list[float] = field(default_factory=list)
    lower_g_per_kwh: list[float] = field(default_factory=list)
    upper_g_per_kwh: list[float] = field(default_factory=list)
    interval_mean_g_per_kwh: float | None = None
    recent_g_per_kwh: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Choice:
    """What a policy picks.

    Attributes:
        limit_w: The limit for the interval starting now (``None``: change nothing).
        limit_for: Intensity → limit the policy would pick at that intensity, for the footprint
            prediction (``None``: ``limit_w`` throughout).
        forecast_g_per_kwh: The intensity the choice assumed, when the policy has its own view of the
            future (the oracle's truth); ``None``: the outlook's interval mean.
        steps_until_next: Steps until the next decision, when the policy keeps its own schedule.
    """

    limit_w: int | None
    limit_for: Callable[[float], int] | None = None
    forecast_g_per_kwh: float | None = None
    steps_until_next: int | None = None


@dataclass(frozen=True)
class Decision:
    """Rank 0's decision, broadcast to every rank.

    Attributes:
        limit_w: The limit every GPU of the job runs from now on (``None``: keep the current one).
        forecast_g_per_kwh: The intensity the decision assumed for the coming interval.
        steps_until_next: Steps until the next decision (``None``: at the next epoch end).
        prediction: The whole job's predicted footprint, when the job's length is known.
        degraded: Why the decision is a fallback (see :mod:`~chase_integrations.core.degraded`), else ``None``.
    """

    limit_w: int | None
    forecast_g_per_kwh: float | None = None
    steps_until_next: int | None = None
    prediction: FootprintPrediction | None = None
    degraded: str | None = None


class UsableProfiles:
    """``profile.restricted(candidates)``, rebuilt only when the profile or the candidates change."""

    def __init__(self) -> None:
        self._key: tuple[PowerProfile, tuple[int, ...]] | None = None
        self._value: PowerProfile | None = None

    def get(self, profile: PowerProfile, candidates_w: tuple[int, ...]) -> PowerProfile:
        """The restricted profile."""
        if self._key is None or self._key[0] is not profile or self._key[1] != candidates_w:
            self._key, self._value = (profile, candidates_w), profile.restricted(list(candidates_w))
        assert self._value is not None
        return self._value


def decision_inputs(now: datetime, profile: PowerProfile | None, candidates_w: list[int], current_limit_w: int | None,
                    default_limit_w: int | None, ledger: Ledger, total_steps: int | None, steps_done: int,
                    decision_interval_s: float | None, usable: UsableProfiles,
                    original_limit_w: int | None = None, cost: CostModel | None = None) -> DecisionInputs:
    """What rank 0 knows now, from the session's state.

    With a ``cost`` model, ``usable_profile`` is the whole node's per-step energy (the GPUs', the CPU and
    DRAM power measured at each limit while profiling, and ``host_power_w``), ``gpu_usable_profile`` the
    GPUs' alone.

    The interval until the next decision is ``decision_interval_s``, else the last training interval's
    length (an epoch), else an hour. The step time is the profile's at the current limit, else the mean
    of the last intervals.
    """
    candidates = tuple(w for w in candidates_w if profile is not None and w in profile)
    restricted = usable.get(profile, candidates) if candidates and profile is not None else None
    remaining = None if total_steps is None else max(0, total_steps - steps_done)
    train = [i for i in ledger.intervals if i.phase == "train" and i.duration_s > 0]
    interval_s = decision_interval_s or (train[-1].duration_s if train else None) or 3600.0
    step_s = None
    if profile is not None and current_limit_w is not None:
        with contextlib.suppress(ConfigurationError):
            step_s = profile.time_per_step_s(current_limit_w)
    if step_s is None:
        recent = [i for i in ledger.intervals[-3:] if i.steps > 0]
        if recent:
            step_s = sum(i.duration_s for i in recent) / sum(i.steps for i in recent)
    node, min_mu = restricted, 0.0
    if cost is not None:
        min_mu = cost.min_mu
        if restricted is not None:
            node = cost.node_profile(restricted, measured_host_power_w(ledger, profile.host_measured_w))
    return DecisionInputs(now, profile, node, current_limit_w, ledger, remaining, interval_s, step_s,
                          default_limit_w, original_limit_w, restricted, min_mu)
