"""WattTime (API v3): the MARGINAL operating emissions rate (MOER) of a grid region, every 5 minutes."""

from __future__ import annotations

import base64
import logging
import math
import os
from datetime import timedelta
from typing import Any

import httpx

from chase_integrations.carbon._http import Secret
from chase_integrations.carbon._live import HttpProvider, field, parse_intensity, parse_time
from chase_integrations.carbon.reading import IntensityReading
from chase_integrations.errors import ConfigurationError, ProviderAuthError, ProviderResponseError

logger = logging.getLogger(__name__)

USERNAME_ENV = "WATTTIME_USERNAME"
PASSWORD_ENV = "WATTTIME_PASSWORD"
DEFAULT_BASE_URL = "https://api.watttime.org"
G_PER_KWH_PER_LB_PER_MWH = 0.45359237
"""1 lb CO2/MWh = 453.59237 g / 1000 kWh = 0.45359237 gCO2/kWh."""
TOKEN_LIFETIME_S = 30 * 60.0
TOKEN_RENEW_MARGIN_S = 5 * 60.0
_SIGNAL_TYPE = "co2_moer"
_UNITS = {"lbs_co2_per_mwh": G_PER_KWH_PER_LB_PER_MWH}
_FREE_PLAN_HINT = (
    "check that your plan covers this region and endpoint; free WattTime accounts get /v3/forecast "
    "and /v3/historical only for region 'CAISO_NORTH'; elsewhere only signal_index() (a 0-100 "
    "percentile, not gCO2/kWh)."
)


class WattTimeProvider(HttpProvider):
    """Marginal carbon intensity (WattTime MOER, ``co2_moer``) of one region, in gCO2eq/kWh.

    This is a *marginal* signal: the emissions of the plant that would answer one more kWh of
    demand, not the grid's average mix. ``signal == "marginal"``, every reading has
    ``signal="marginal"`` and :meth:`describe` says so; never compare it with average intensity.
    MOER arrives in lbs CO2/MWh and is converted once, here (1 lb/MWh = 0.45359237 g/kWh).

    ``latest()`` is the value in force now from ``/v3/forecast`` (its first point is WattTime's
    real-time MOER, ``is_forecast=False``); ``/v3/signal-index`` is a 0-100 percentile, not
    gCO2/kWh, and is only offered as :meth:`signal_index`. ``history()`` uses ``/v3/historical``
    and ``forecast()`` ``/v3/forecast`` (up to 72 h).

    Authentication: ``/login`` with HTTP basic auth gives a bearer token that lives 30 minutes; it
    is renewed 5 minutes before it expires (on the injected clock) and once more after a 401.
    Neither the password nor the token ever appears in messages, logs, ``repr`` or ``describe()``.

    Args:
        region: WattTime region abbreviation, for example ``"CAISO_NORTH"``, ``"PJM_DC"``.
        username: WattTime user; ``None`` reads env ``WATTTIME_USERNAME``.
        password: WattTime password; ``None`` reads env ``WATTTIME_PASSWORD``.
        base_url: API root (without ``/v3``). Plain ``http://`` is refused unless loopback.
        **options: ``timeout_s``, ``cache_ttl_s``, ``max_age_s``, ``retries``, ``backoff_s``,
            ``max_retry_wait_s``, ``clock``, ``sleep``, ``transport``; see
            :class:`~chase_integrations.carbon._live.HttpProvider`.

    Raises:
        ConfigurationError: No region, no username or password, or plain http to a remote host.

    Example:
        >>> p = WattTimeProvider(region="CAISO_NORTH", username="me", password="secret")
        >>> p.signal, p.describe()
        ('marginal', 'watttime(region=CAISO_NORTH, MARGINAL emissions rate co2_moer, https://api.watttime.org)')
        >>> p.close()
    """

    name = "watttime"
    signal = "marginal"
    resolution_s = 300.0

    def __init__(
        self,
        region: str = "CAISO_NORTH",
        username: str | None = None,
        password: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        **options: Any,
    ) -> None:
        if not isinstance(region, str) or not region.strip():
            raise ConfigurationError.invalid("region", region, "a WattTime region such as 'CAISO_NORTH'")
        username = username if username is not None else os.environ.get(USERNAME_ENV)
        password = password if password is not None else os.environ.get(PASSWORD_ENV)
        required = (("username", username, USERNAME_ENV), ("password", password, PASSWORD_ENV))
        for argument, value, env in required:
            if not isinstance(value, str) or not value:
                raise ConfigurationError(
                    f"`{argument}` is required for WattTime and was not given, nor set in env {env}. "
                    "HINT: register at https://watttime.org (free) and export "
                    f"{USERNAME_ENV} and {PASSWORD_ENV}."
                )
        self.region = region.strip()
        self._username = username
        self._password = Secret(password)
        basic = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._basic = Secret(basic)
        self._token: Secret | None = None
        self._token_expires_s = -math.inf
        self._init_http(base_url, secrets=self._secrets, **options)

    def _secrets(self) -> tuple[str, ...]:
        token = self._token.reveal() if self._token is not None else ""
        return (self._password.reveal(), self._basic.reveal(), token)

    def _login(self) -> str:
        payload = self._client.get_json(
            "/login",
            auth=httpx.BasicAuth(self._username, self._password.reveal()),
            hint=f"check `username` / `password` (or env {USERNAME_ENV} / {PASSWORD_ENV}).",
        )
        token = field(payload, "token", f"{self.name} /login")
        if not isinstance(token, str) or not token:
            raise ProviderResponseError(f"{self.name} /login: the answer holds no usable token.")
        self._token = Secret(token)
        self._token_expires_s = self._clock.monotonic() + TOKEN_LIFETIME_S
        logger.debug("%s: logged in; token renewed", self.name)
        return token

    def _bearer(self) -> str:
        if self._token is None or self._clock.monotonic() >= self._token_expires_s - TOKEN_RENEW_MARGIN_S:
            return self._login()
        return self._token.reveal()

    def _get(self, path: str, params: dict[str, Any], cache_key: Any = None) -> Any:
        params = {"region": self.region, "signal_type": _SIGNAL_TYPE, **params}
        hint = f"check `username` / `password` (or env {USERNAME_ENV} / {PASSWORD_ENV})."
        for attempt in range(2):
            headers = {"Authorization": f"Bearer {self._bearer()}"}
            try:
                return self._client.get_json(
                    path, params, ttl_s=self.cache_ttl_s, cache_key=cache_key, headers=headers,
                    not_in_plan=(403,), hint=hint, plan_hint=_FREE_PLAN_HINT,
                )
            except ProviderAuthError:
                if attempt:
                    raise
                logger.info("%s: %s answered 401; logging in again", self.name, path)
                self._token = None
        raise AssertionError("unreachable")  # pragma: no cover

    def _moer(self, payload: Any, where: str, is_forecast: bool) -> list[IntensityReading]:
        meta = payload.get("meta") if isinstance(payload, dict) else None
        units = meta.get("units", "lbs_co2_per_mwh") if isinstance(meta, dict) else "lbs_co2_per_mwh"
        if units not in _UNITS:
            raise ProviderResponseError(f"{where}: unexpected units {units!r}; expected {sorted(_UNITS)}.")
        scale = _UNITS[units]

        def convert(point: Any, at: str) -> IntensityReading:
            value = parse_intensity(field(point, "value", at), f"{at}.value", scale)
            time = parse_time(field(point, "point_time", at), f"{at}.point_time")
            return IntensityReading(time, value, is_forecast, "marginal")

        return self._collect(field(payload, "data", where), where, convert)

    def _forecast_readings(self, horizon_hours: int) -> list[IntensityReading]:
        path = "/v3/forecast"
        payload = self._get(path, {"horizon_hours": horizon_hours})
        return self._moer(payload, f"{self.name} {path}", is_forecast=True)

    def latest(self) -> IntensityReading:
        """Return the MOER in force now, in gCO2eq/kWh (``signal="marginal"``).

        Raises:
            ProviderError: A subclass for every failure; ``ProviderNotInPlanError`` when the plan
                lacks forecasts for this region; ``StaleDataError`` when older than ``max_age_s``.
        """
        readings = self._forecast_readings(24)
        if not readings:
            raise ProviderResponseError(f"{self.name} /v3/forecast: the answer holds no point.")
        now = self._utcnow()
        current = [r for r in readings if r.time <= now]
        reading = current[-1] if current else readings[0]
        if reading is readings[0]:  # the forecast's first point is the real-time value
            reading = IntensityReading(reading.time, reading.g_per_kwh, False, "marginal")
        return self._check_fresh(reading)

    def history(self, hours: float = 24) -> list[IntensityReading]:
        """Return the 5-minute MOER readings of the last ``hours`` hours, oldest first."""
        path = "/v3/historical"
        if hours <= 0:
            return []
        now = self._utcnow().replace(microsecond=0)
        params = {"start": (now - timedelta(hours=hours)).isoformat(), "end": now.isoformat()}
        payload = self._get(path, params, cache_key=(path, hours))
        return self._window(self._moer(payload, f"{self.name} {path}", is_forecast=False), hours_back=hours)

    def forecast(self, hours: float) -> list[IntensityReading]:
        """Return WattTime's MOER forecast for the next ``hours`` hours (at most 72), oldest first."""
        if hours <= 0:
            return []
        horizon = 24 if hours <= 24 else min(72, math.ceil(hours))
        return self._window(self._forecast_readings(horizon), hours_ahead=min(hours, 72))

    def signal_index(self) -> float:
        """Return ``/v3/signal-index``: where the current MOER ranks, as a percentile in [0, 100].

        Free plans get this for every region. It is not gCO2/kWh and never becomes a reading.
        """
        path = "/v3/signal-index"
        where = f"{self.name} {path}"
        points = field(self._get(path, {}), "data", where)
        if not isinstance(points, list) or not points:
            raise ProviderResponseError(f"{where}: expected a non-empty list of points.")
        value = parse_intensity(field(points[-1], "value", f"{where}[-1]"), f"{where}[-1].value")
        if value > 100:
            raise ProviderResponseError(f"{where}: a percentile must be in [0, 100], got {value!r}.")
        return value

    def describe(self) -> str:
        """One secret-free line that says the signal is marginal."""
        return f"{self.name}(region={self.region}, MARGINAL emissions rate {_SIGNAL_TYPE}, {self.base_url})"
