"""Rank 0's decision: the grid's outlook (provider + forecaster), the policy's choice, the prediction.

One decision reads the provider once: the session closes the interval first (which reads the latest
value) and hands that reading to :meth:`Decider.decide`. The result is a
:class:`~chase_integrations.core.decision.Decision`, which the session broadcasts to every rank.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from datetime import datetime, timedelta

from chase_integrations.core.budget import remaining_time_budget_s, seconds_to_next_hour
from chase_integrations.core.decision import Choice, Decision, DecisionInputs, Outlook
from chase_integrations.core.degraded import NO_INTENSITY, NO_INTENSITY_NO_PROFILE
from chase_integrations.core.footprint import EARLY_FRACTION, FootprintPrediction, predict_footprint
from chase_integrations.core.intensity import IntensitySource, step_mean
from chase_integrations.core.interfaces import Forecaster
from chase_integrations.core.policies.base import Policy
from chase_integrations.core.policies.rules import least_energy_limit
from chase_integrations.core.policies.standard import MAX_OUTLOOK_H, ROLLING_HORIZON_H
from chase_integrations.core.reading import IntensityReading, checked_g_per_kwh
from chase_integrations.errors import ConfigurationError

logger = logging.getLogger(__name__)

#: History asked of the provider for the first fit (providers return what they have: 24 h on the
#: Electricity Maps free tier, up to 14 days from a trace). ARIMA needs 48 h; until then it falls back.
_FIT_HISTORY_H = 24 * 14
#: Hours of recent readings a policy sees (the chase policy's MaxCI).
_RECENT_H = 24


class Decider:
    """Turns provider readings and a forecast into a :class:`Decision`, through the policy.

    Args:
        policy: Picks the limit.
        intensity: Rank 0's view of the provider (with its fallbacks).
        forecaster: Forecasts the hours ahead.
        clock: The session's clock.
        decision_interval_s: Decide every N seconds (``None``: at epoch ends only).
        pue: Data-centre PUE (for the footprint prediction).
        max_slowdown: The run's slowdown budget, which bounds the fallback when intensity is unknown.
    """

    def __init__(self, policy: Policy, intensity: IntensitySource, forecaster: Forecaster, clock,
                 decision_interval_s: float | None, pue: float, max_slowdown: float = 0.05) -> None:
        self.policy = policy
        self.max_slowdown = max_slowdown
        self.intensity = intensity
        self.forecaster = forecaster
        self.clock = clock
        self.decision_interval_s = decision_interval_s
        self.pue = pue
        self._fitted = False
        self._last_update: datetime | None = None
        self._early: dict | None = None  # the prediction made at EARLY_FRACTION of the job

    # ------------------------------------------------------------------ decision
    def decide(self, inputs: DecisionInputs, latest: IntensityReading | None) -> Decision:
        """Pick the limit for the interval starting now (``latest``: the reading the close just took)."""
        policy = self.policy
        base_hours = min(MAX_OUTLOOK_H, max(2, math.ceil(inputs.interval_s / 3600.0) + 1))
        hours = policy.outlook_hours(inputs, base_hours)
        outlook = self.outlook(hours, latest, inputs.now, inputs.interval_s) if hours > 0 else Outlook()
        usable = inputs.usable_profile is not None
        blind = policy.needs_forecast and outlook.interval_mean_g_per_kwh is None
        degraded = None
        if blind and policy.changes_limits:  # never keep a limit chosen for a reason that no longer holds
            choice, degraded = self._without_intensity(inputs)
        elif policy.needs_profile and not usable:
            choice = Choice(inputs.current_limit_w if policy.changes_limits else None)
        else:
            choice = policy.choose(inputs, outlook)
        prediction = None
        if usable and inputs.remaining_steps is not None and outlook.hourly_g_per_kwh:
            prediction = self._with_early(self._predict(inputs, outlook, choice), inputs)
        steps_until_next = choice.steps_until_next
        if steps_until_next is None and self.decision_interval_s:
            step_s = inputs.est_step_s
            if inputs.profile is not None and choice.limit_w is not None:
                with contextlib.suppress(ConfigurationError):
                    step_s = inputs.profile.time_per_step_s(choice.limit_w)
            steps_until_next = steps_to_next_boundary(inputs.now, self.decision_interval_s, step_s)
        forecast = choice.forecast_g_per_kwh
        return Decision(
            limit_w=choice.limit_w,
            forecast_g_per_kwh=forecast if forecast is not None else outlook.interval_mean_g_per_kwh,
            steps_until_next=steps_until_next,
            prediction=prediction,
            degraded=degraded,
        )

    def _without_intensity(self, inputs: DecisionInputs) -> tuple[Choice, str]:
        """No usable intensity: the least-energy limit within the remaining budget, else the original limit.

        Less energy is less carbon at any intensity; the time allowance per remaining step keeps the run
        within ``max_slowdown`` (over a rolling 24 h when the job's length is unknown).
        """
        profile = inputs.usable_profile
        if profile is None:
            original = inputs.original_limit_w if inputs.original_limit_w is not None else inputs.current_limit_w
            return Choice(original), NO_INTENSITY_NO_PROFILE
        t_default = profile.time_per_step_s(profile.default_limit_w)
        remaining = inputs.remaining_steps
        if not remaining:
            remaining = max(1, int(ROLLING_HORIZON_H * 3600 / t_default))
        ledger = inputs.ledger
        budget_s = remaining_time_budget_s(self.max_slowdown, ledger.baseline_time_s, ledger.time_s, remaining,
                                           t_default)
        return Choice(least_energy_limit(profile, budget_s / remaining)), NO_INTENSITY

    def _with_early(self, prediction: FootprintPrediction | None, inputs: DecisionInputs
                    ) -> FootprintPrediction | None:
        """``prediction`` carrying the first one made once :data:`EARLY_FRACTION` of the job was done."""
        if prediction is None:
            return None
        done = inputs.ledger.steps / max(1, inputs.ledger.steps + (inputs.remaining_steps or 0))
        if self._early is None and done >= EARLY_FRACTION:
            self._early = prediction.to_dict() | {"done_fraction": done, "time": inputs.now.isoformat()}
        return dataclasses.replace(prediction, early=self._early)

    def _predict(self, inputs: DecisionInputs, outlook: Outlook, choice: Choice) -> FootprintPrediction | None:
        """Footprint prediction for the whole job (see :mod:`chase_integrations.core.footprint`)."""
        profile = inputs.usable_profile
        assert profile is not None and inputs.remaining_steps is not None
        limit_for = choice.limit_for
        if limit_for is None:
            fixed = choice.limit_w
            if fixed is None:
                fixed = inputs.current_limit_w or profile.default_limit_w
            fixed = min(max(fixed, profile.limits_w[0]), profile.limits_w[-1])
            limit_for = lambda ci: fixed  # noqa: E731
        try:
            return predict_footprint(
                profile,
                outlook.hourly_g_per_kwh,
                outlook.lower_g_per_kwh,
                outlook.upper_g_per_kwh,
                limit_for,
                inputs.remaining_steps,
                inputs.ledger.carbon_g,
                inputs.ledger.baseline_carbon_g,
                seconds_to_next_hour(inputs.now),
                self.pue,
            )
        except Exception as e:  # a prediction must never stop training
            logger.debug("Footprint prediction failed: %s", e)
            return None

    # ------------------------------------------------------------------ outlook
    def outlook(self, hours: int, latest: IntensityReading | None, now: datetime, interval_s: float) -> Outlook:
        """Intensity for the current hour and the next ``hours - 1`` hours, with its 80 % band.

        The band is the forecaster's own prediction interval when it has one (``predict_interval``),
        else the range of the last 24 h of readings.
        """
        self._feed_forecaster(latest)
        current = latest.g_per_kwh if latest is not None else self.intensity.recent_value(now)
        own = self.intensity.provider_forecast(hours)
        if own and hasattr(self.forecaster, "set_external_forecast"):
            self.forecaster.set_external_forecast(own)  # blended by the forecaster itself
            own = []
        predicted: list[float] = []
        lower: list[float] = []
        upper: list[float] = []
        try:
            if hasattr(self.forecaster, "predict_interval"):
                intervals = self.forecaster.predict_interval(max(1, hours - 1), alpha=0.2)
                predicted = [iv.g_per_kwh for iv in intervals]
                lower = [iv.lower_g_per_kwh for iv in intervals]
                upper = [iv.upper_g_per_kwh for iv in intervals]
            else:
                predicted = [r.g_per_kwh for r in self.forecaster.predict(max(1, hours - 1))]
        except Exception as e:
            self.intensity.fallbacks["forecast_failed"] += 1  # counted: the run is not what its forecaster says
            logger.warning("Forecast failed (%s); repeating the last known value.", e)
        if own:
            now_hour = self.clock.now().replace(minute=0, second=0, microsecond=0)
            by_hour = {r.time.replace(minute=0, second=0, microsecond=0): r.g_per_kwh for r in own}
            predicted = [by_hour.get(now_hour + timedelta(hours=h + 1), p) for h, p in enumerate(predicted)]
        recent = self.intensity.known_values(_RECENT_H)
        if current is None:  # no reading for max_reading_age_s: the forecast is as stale as its inputs
            return Outlook(recent_g_per_kwh=recent)
        values = _pad([current, *predicted], hours)
        if len(lower) == len(predicted) and predicted:
            lower, upper = _pad([current, *lower], hours), _pad([current, *upper], hours)
        else:
            seen = self.intensity.known_values(24) or [current]
            seen_min, seen_max = min(seen), max(seen)
            lower, upper = [min(seen_min, v) for v in values], [max(seen_max, v) for v in values]
        return Outlook(values, lower, upper, interval_mean(values, now, interval_s), recent)

    def _feed_forecaster(self, latest: IntensityReading | None) -> None:
        try:
            if not self._fitted:
                history = self.intensity.history(_FIT_HISTORY_H)
                if latest is not None and all(r.time != latest.time for r in history):
                    history.append(latest)
                if history:
                    self.forecaster.fit(sorted(history, key=lambda r: r.time))
                    self._fitted = True
                    self._last_update = max(r.time for r in history)
            elif latest is not None and (self._last_update is None or latest.time > self._last_update):
                self.forecaster.update(latest)
                self._last_update = latest.time
        except Exception as e:  # forecasting must never stop training
            self.intensity.fallbacks["forecaster_failed"] += 1  # counted in the report's fallbacks
            logger.warning(
                "Forecaster %s failed (%s: %s); using the last known value.",
                type(self.forecaster).__name__,
                type(e).__name__,
                e,
            )


def interval_mean(outlook: list[float], now: datetime, interval_s: float) -> float:
    """Time-weighted mean of the outlook (hour ``h`` starts ``h`` hours after this hour) over the interval.

    Example:
        >>> from datetime import datetime, timezone
        >>> interval_mean([100.0, 200.0], datetime(2024, 1, 1, 0, 30, tzinfo=timezone.utc), 3600.0)
        150.0
    """
    values = [checked_g_per_kwh(v) for v in outlook]  # an invalid forecast value raises, as a reading would
    hour0 = now.replace(minute=0, second=0, microsecond=0)
    end = now + timedelta(seconds=interval_s)
    starts = [hour0]  # the hours that start before the interval ends (the later ones weigh nothing)
    while len(starts) < len(values) and hour0 + timedelta(hours=len(starts)) < end:
        starts.append(hour0 + timedelta(hours=len(starts)))
    return float(step_mean(starts, values[: len(starts)], now, end))


def steps_to_next_boundary(now: datetime, interval_s: float, step_s: float | None) -> int:
    """Steps until the next multiple of ``interval_s`` on the UTC clock.

    Hourly decisions land on the hour, where hourly carbon data changes; a boundary closer than a tenth
    of an interval is skipped.

    Example:
        >>> from datetime import datetime, timezone
        >>> steps_to_next_boundary(datetime(2024, 1, 1, 0, 30, tzinfo=timezone.utc), 3600.0, 60.0)
        30
    """
    if not step_s or step_s <= 0:
        return 5
    now_s = now.timestamp()
    boundary = (math.floor(now_s / interval_s) + 1) * interval_s
    if boundary - now_s < 0.1 * interval_s:
        boundary += interval_s
    return max(1, round((boundary - now_s) / step_s))


def _pad(values: list[float], n: int) -> list[float]:
    values = list(values[:n])
    while values and len(values) < n:
        values.append(values[-1])
    return values
