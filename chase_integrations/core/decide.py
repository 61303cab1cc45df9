"""Rank 0's decision: read the grid, forecast, and let the policy pick a limit.

The result is a small picklable dict that the adapter broadcasts to every rank.
"""

from __future__ import annotations

import contextlib
import logging
import math
from datetime import datetime, timedelta

from chase_integrations.carbon.reading import IntensityReading, checked_g_per_kwh
from chase_integrations.core.budget import plan_budget, weighted_limit_fn
from chase_integrations.core.config import ChaseConfig
from chase_integrations.core.footprint import predict_footprint
from chase_integrations.core.intensity import IntensitySource, step_mean
from chase_integrations.core.ledger import Ledger
from chase_integrations.core.policies import chase_limit
from chase_integrations.core.profile import PowerProfile
from chase_integrations.errors import ConfigurationError
from chase_integrations.forecast import make_forecaster

logger = logging.getLogger(__name__)

_ROLLING_HORIZON_H = 24
#: History asked of the provider for the first fit (providers return what they have: 24 h on the
#: Electricity Maps free tier, up to 14 days from a trace). ARIMA needs 48 h; until then it falls back.
_FIT_HISTORY_H = 24 * 14
_MAX_FORECAST_H = 48


class Decider:
    """Turns provider readings and a forecast into a power limit, per the configured policy."""

    def __init__(self, config: ChaseConfig, intensity: IntensitySource, clock) -> None:
        self.config = config
        self.intensity = intensity
        self.clock = clock
        self.forecaster = make_forecaster(config.forecaster)
        self._fitted = False
        self._last_update: datetime | None = None
        self._said_rolling = False
        self.last_plan = None
        self.last_bands: tuple[list[float], list[float]] = ([], [])
        self._restricted: tuple[PowerProfile, tuple[int, ...], PowerProfile] | None = None

    # ------------------------------------------------------------------ forecast
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
            logger.warning(
                "Forecaster %s failed (%s: %s); using the last known value.",
                type(self.forecaster).__name__,
                type(e).__name__,
                e,
            )

    def hourly_outlook(self, hours: int) -> list[float]:
        """Intensity for the current hour and the next ``hours - 1`` hours (gCO2eq/kWh).

        Also sets :attr:`last_bands` to the (lower, upper) edges of the forecast's 80 % prediction
        interval for the same hours: the forecaster's own interval when it has one
        (``predict_interval``), else the range of the last 24 h of readings.
        """
        latest = self.intensity.latest()
        self._feed_forecaster(latest)
        current = latest.g_per_kwh if latest is not None else self.intensity.last_known
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
            logger.warning("Forecast failed (%s); repeating the last known value.", e)
        if own:
            now_hour = self.clock.now().replace(minute=0, second=0, microsecond=0)
            by_hour = {r.time.replace(minute=0, second=0, microsecond=0): r.g_per_kwh for r in own}
            predicted = [by_hour.get(now_hour + timedelta(hours=h + 1), p) for h, p in enumerate(predicted)]
        if current is None:
            current = predicted[0] if predicted else None
        if current is None:
            self.last_bands = ([], [])
            return []
        values = _pad([current, *predicted], hours)
        if len(lower) == len(predicted) and predicted:
            self.last_bands = (_pad([current, *lower], hours), _pad([current, *upper], hours))
        else:
            seen = self.intensity.known_values(24) or [current]
            seen_min, seen_max = min(seen), max(seen)
            self.last_bands = ([min(seen_min, v) for v in values], [max(seen_max, v) for v in values])
        return values

    # ------------------------------------------------------------------ decision
    def decide(
        self,
        profile: PowerProfile | None,
        candidates_w: list[int],
        current_limit_w: int | None,
        default_limit_w: int | None,
        ledger: Ledger,
        steps_done: int,
        total_steps: int | None,
        est_step_s: float | None,
    ) -> dict:
        """Pick the limit for the interval starting now. Returns the payload to broadcast."""
        cfg = self.config
        now = self.clock.now()
        interval_s = cfg.decision_interval_s or self._epoch_estimate_s(ledger) or 3600.0
        remaining_steps = None if total_steps is None else max(0, total_steps - steps_done)
        horizon_h = min(_MAX_FORECAST_H, max(2, math.ceil(interval_s / 3600.0) + 1))
        if cfg.policy == "budget" and profile is not None:
            if remaining_steps is not None:
                need_s = remaining_steps * profile.time_per_step_s(profile.default_limit_w)
                horizon_h = min(_MAX_FORECAST_H, max(horizon_h, math.ceil(need_s / 3600.0) + 1))
            else:
                horizon_h = max(horizon_h, _ROLLING_HORIZON_H)
        outlook = self.hourly_outlook(horizon_h)
        forecast = self._interval_mean(outlook, now, interval_s) if outlook else None

        limit = current_limit_w
        candidates_w = [w for w in candidates_w if profile is not None and w in profile]
        usable = bool(candidates_w)
        prof = self._restrict(profile, candidates_w) if usable else None
        if cfg.policy == "static":
            limit = cfg.static_power_limit_w
        elif cfg.policy == "monitor" or not usable or forecast is None:
            limit = None if cfg.policy == "monitor" else current_limit_w
        elif cfg.policy == "chase":
            seen = [*self.intensity.known_values(24), forecast]
            ci_max = cfg.max_intensity_g_per_kwh or max(seen)
            limit = chase_limit(prof, forecast, cfg.eta, ci_max)
        elif cfg.policy == "budget":
            limit = self._budget(prof, outlook, now, ledger, remaining_steps)

        prediction = None
        if usable and remaining_steps is not None and outlook:
            prediction = self._predict(prof, outlook, now, ledger, remaining_steps, limit, current_limit_w)

        steps_until_next = None
        if cfg.decision_interval_s:
            step_s = est_step_s
            if profile is not None and limit is not None:
                with contextlib.suppress(ConfigurationError):
                    step_s = profile.time_per_step_s(limit)
            steps_until_next = _steps_to_next_boundary(now, cfg.decision_interval_s, step_s)
        return {
            "limit_w": limit,
            "forecast_g_per_kwh": forecast,
            "steps_until_next": steps_until_next,
            "prediction": prediction,
        }

    def _predict(
        self,
        profile: PowerProfile,
        outlook: list[float],
        now: datetime,
        ledger: Ledger,
        remaining_steps: int,
        limit: int | None,
        current_limit_w: int | None,
    ) -> dict | None:
        """Footprint prediction for the whole job (see :mod:`chase_integrations.core.footprint`)."""
        cfg = self.config
        if cfg.policy == "budget" and self.last_plan is not None:
            mu = self.last_plan.mu
            limit_for = weighted_limit_fn(profile, mu) if math.isfinite(mu) else (lambda ci: profile.default_limit_w)
        elif cfg.policy == "chase":
            seen = self.intensity.known_values(24) + list(outlook[:1])
            ci_max = cfg.max_intensity_g_per_kwh or max(seen)
            limit_for = lambda ci: chase_limit(profile, ci, cfg.eta, ci_max)  # noqa: E731
        else:
            fixed = limit if limit is not None else (current_limit_w or profile.default_limit_w)
            fixed = min(max(fixed, profile.limits_w[0]), profile.limits_w[-1])
            limit_for = lambda ci: fixed  # noqa: E731
        lower, upper = self.last_bands
        first_hour_s = 3600.0 - (now.minute * 60 + now.second + now.microsecond / 1e6)
        try:
            return predict_footprint(
                profile,
                outlook,
                lower,
                upper,
                limit_for,
                remaining_steps,
                ledger.carbon_g,
                ledger.baseline_carbon_g,
                first_hour_s,
                cfg.pue,
            ).to_dict()
        except Exception as e:  # a prediction must never stop training
            logger.debug("Footprint prediction failed: %s", e)
            return None

    def _restrict(self, profile: PowerProfile, candidates_w: list[int]) -> PowerProfile:
        """``profile.restricted(candidates_w)``, rebuilt only when the profile or the candidates change."""
        key = tuple(candidates_w)
        cached = self._restricted
        if cached is None or cached[0] is not profile or cached[1] != key:
            cached = self._restricted = (profile, key, profile.restricted(candidates_w))
        return cached[2]

    def _budget(
        self, profile: PowerProfile, outlook: list[float], now: datetime, ledger: Ledger, remaining_steps: int | None
    ) -> int:
        s = self.config.max_slowdown
        t_default = profile.time_per_step_s(profile.default_limit_w)
        if remaining_steps is None:
            remaining_steps = int(_ROLLING_HORIZON_H * 3600 / t_default)
            if not self._said_rolling:
                logger.info(
                    "chase: the job's length is unknown (no max_epochs/max_steps); the budget policy plans "
                    "over a rolling %d-hour horizon.",
                    _ROLLING_HORIZON_H,
                )
                self._said_rolling = True
        allowed_s = (1.0 + s) * (ledger.baseline_time_s + remaining_steps * t_default)
        remaining_time_s = allowed_s - ledger.time_s
        first_hour_s = 3600.0 - (now.minute * 60 + now.second + now.microsecond / 1e6)
        plan = plan_budget(profile, outlook, remaining_steps, remaining_time_s, first_hour_s=max(1.0, first_hour_s))
        self.last_plan = plan
        return plan.limit_w

    @staticmethod
    def _interval_mean(outlook: list[float], now: datetime, interval_s: float) -> float:
        """Time-weighted mean of the outlook (hour ``h`` starts ``h`` hours after this hour) over the interval."""
        values = [checked_g_per_kwh(v) for v in outlook]  # an invalid forecast value raises, as a reading would
        hour0 = now.replace(minute=0, second=0, microsecond=0)
        end = now + timedelta(seconds=interval_s)
        starts = [hour0]  # the hours that start before the interval ends (the later ones weigh nothing)
        while len(starts) < len(values) and hour0 + timedelta(hours=len(starts)) < end:
            starts.append(hour0 + timedelta(hours=len(starts)))
        return float(step_mean(starts, values[: len(starts)], now, end))

    @staticmethod
    def _epoch_estimate_s(ledger: Ledger) -> float | None:
        train = [i for i in ledger.intervals if i.phase == "train" and i.duration_s > 0]
        return train[-1].duration_s if train else None


def _pad(values: list[float], n: int) -> list[float]:
    values = list(values[:n])
    while values and len(values) < n:
        values.append(values[-1])
    return values


def _steps_to_next_boundary(now: datetime, interval_s: float, step_s: float | None) -> int:
    """Steps until the next multiple of ``interval_s`` on the UTC clock.

    Hourly decisions land on the hour, where hourly carbon data changes; a boundary closer than a tenth
    of an interval is skipped.
    """
    if not step_s or step_s <= 0:
        return 5
    now_s = now.timestamp()
    boundary = (math.floor(now_s / interval_s) + 1) * interval_s
    if boundary - now_s < 0.1 * interval_s:
        boundary += interval_s
    return max(1, round((boundary - now_s) / step_s))
