"""Electricity Maps (API v3): average grid carbon intensity for a zone, hourly."""

from __future__ import annotations

import logging
import os
from typing import Any

from chase_integrations.carbon._http import Secret
from chase_integrations.carbon._live import HttpProvider, field, parse_intensity, parse_time
from chase_integrations.carbon.reading import IntensityReading
from chase_integrations.errors import ConfigurationError, ProviderNotInPlanError, ProviderResponseError

logger = logging.getLogger(__name__)

TOKEN_ENV = "ELECTRICITYMAPS_API_TOKEN"
DEFAULT_BASE_URL = "https://api.electricitymap.org/v3"
_EMISSION_FACTORS = ("lifecycle", "direct")
_HISTORY_HOURS = 24
# Statuses the forecast endpoint answers on plans without forecasts (the free tier).
_NOT_IN_PLAN = (401, 402, 403)


class ElectricityMapsProvider(HttpProvider):
    """Average carbon intensity of one Electricity Maps zone, in gCO2eq/kWh, hourly.

    Endpoints: ``/carbon-intensity/latest``, ``/carbon-intensity/history`` (the last 24 h) and
    ``/carbon-intensity/forecast`` (paid plans only). Every request sends ``zone`` and
    ``shouldUseFallbackCallerLookup=false``, so the location is never guessed from the caller's IP.

    On a plan without forecasts (the free tier), :meth:`forecast` logs one warning and returns
    ``[]``, and never asks again: the callbacks then forecast from :meth:`history` themselves. Pass
    ``raise_not_in_plan=True`` to get :class:`~chase_integrations.errors.ProviderNotInPlanError`.

    Args:
        zone: Electricity Maps zone key, for example ``"DE"``, ``"FR"``, ``"US-CAL-CISO"``. Required.
        token: API token; ``None`` reads env ``ELECTRICITYMAPS_API_TOKEN``. Sent in the
            ``auth-token`` header only; never logged, printed or shown in ``repr``/``describe()``.
        base_url: API root; some accounts use ``https://api.electricitymap.org/v4`` or a proxy.
            Plain ``http://`` is refused unless the host is loopback.
        timeout_s: Timeout of each request phase, in seconds.
        emission_factor: ``"lifecycle"`` (default, includes upstream emissions) or ``"direct"``
            (combustion only).
        disable_estimations: Ask for measured data only (``disableEstimations=true``).
        raise_not_in_plan: Raise instead of returning ``[]`` when forecasts are not in the plan.
        **options: ``cache_ttl_s``, ``max_age_s``, ``retries``, ``backoff_s``, ``max_retry_wait_s``,
            ``clock``, ``sleep``, ``transport``; see :class:`~chase_integrations.carbon._live.HttpProvider`.

    Raises:
        ConfigurationError: No zone, no token, a bad option, or plain http to a remote host.

    Example:
        >>> p = ElectricityMapsProvider(zone="DE", token="my-token")
        >>> p.describe()
        'electricitymaps(zone=DE, lifecycle, average intensity, https://api.electricitymap.org/v3)'
        >>> p.close()
    """

    name = "electricitymaps"
    signal = "average"
    resolution_s = 3600.0

    def __init__(
        self,
        zone: str = "DE",
        token: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = 10,
        emission_factor: str = "lifecycle",
        disable_estimations: bool = False,
        raise_not_in_plan: bool = False,
        **options: Any,
    ) -> None:
        if not isinstance(zone, str) or not zone.strip():
            raise ConfigurationError.invalid(
                "zone", zone, "an Electricity Maps zone key such as 'DE' or 'US-CAL-CISO'",
                hint="the zone is required; it is never guessed from your IP address.",
            )
        if emission_factor not in _EMISSION_FACTORS:
            raise ConfigurationError.invalid("emission_factor", emission_factor, "'lifecycle' or 'direct'")
        if not isinstance(disable_estimations, bool):
            raise ConfigurationError.invalid("disable_estimations", disable_estimations, "True or False")
        token = token if token is not None else os.environ.get(TOKEN_ENV)
        if not isinstance(token, str) or not token.strip():
            raise ConfigurationError(
                f"`token` is required for Electricity Maps and was not given, nor set in env {TOKEN_ENV}. "
                "HINT: create a free token at https://portal.electricitymaps.com and export "
                f"{TOKEN_ENV}=..."
            )
        self.zone = zone.strip()
        self.emission_factor = emission_factor
        self.disable_estimations = disable_estimations
        self.raise_not_in_plan = raise_not_in_plan
        self._token = Secret(token.strip())
        self._forecast_in_plan = True
        self._init_http(
            base_url,
            headers={"auth-token": self._token.reveal()},
            secrets=self._secrets,
            timeout_s=timeout_s,
            **options,
        )

    def _secrets(self) -> tuple[str, ...]:
        return (self._token.reveal(),)

    def _params(self) -> dict[str, str]:
        return {
            "zone": self.zone,
            "emissionFactorType": self.emission_factor,
            "disableEstimations": "true" if self.disable_estimations else "false",
            "shouldUseFallbackCallerLookup": "false",
        }

    def _get(self, path: str, **kwargs: Any) -> Any:
        hint = f"check `token` (or env {TOKEN_ENV}) and that it covers zone {self.zone!r}."
        data = self._client.get_json(path, self._params(), ttl_s=self.cache_ttl_s, hint=hint, **kwargs)
        zone = data.get("zone") if isinstance(data, dict) else None
        if zone is not None and zone != self.zone:
            raise ProviderResponseError(
                f"{self.name}: {path} answered for zone {zone!r}, asked for {self.zone!r}."
            )
        return data

    @staticmethod
    def _reading(point: Any, where: str, is_forecast: bool = False) -> IntensityReading:
        value = parse_intensity(field(point, "carbonIntensity", where), f"{where}.carbonIntensity")
        time = parse_time(field(point, "datetime", where), f"{where}.datetime")
        return IntensityReading(time, value, is_forecast, "average")

    def latest(self) -> IntensityReading:
        """Return the zone's latest hourly intensity, in gCO2eq/kWh.

        Raises:
            ProviderError: A subclass for every failure; ``StaleDataError`` when the value starts
                more than ``max_age_s`` (3 h) ago.
        """
        path = "/carbon-intensity/latest"
        return self._check_fresh(self._reading(self._get(path), f"{self.name} {path}"))

    def history(self, hours: float = 24) -> list[IntensityReading]:
        """Return the hourly readings of the last ``hours`` hours (at most 24), oldest first.

        A reading is included when its hour overlaps the window (so the hour in force ``hours`` ago
        is included). The v3 history endpoint covers the last 24 h; larger ``hours`` give those 24 h.
        """
        path = "/carbon-intensity/history"
        if hours > _HISTORY_HOURS:
            self._log_once("history-clamp", logging.INFO, "%s: history covers at most %d h; asked %g h",
                           self.name, _HISTORY_HOURS, hours)
        data = self._get(path)
        readings = self._collect(field(data, "history", f"{self.name} {path}"), f"{self.name} {path}",
                                 self._reading)
        return self._window(readings, hours_back=hours)

    def forecast(self, hours: float) -> list[IntensityReading]:
        """Return Electricity Maps' own forecast for the next ``hours`` hours, oldest first.

        Returns ``[]`` (with one logged warning) when forecasts are not in the account's plan,
        unless ``raise_not_in_plan=True``.
        """
        path = "/carbon-intensity/forecast"
        if not self._forecast_in_plan and not self.raise_not_in_plan:
            return []
        try:
            data = self._get(path, not_in_plan=_NOT_IN_PLAN)
        except ProviderNotInPlanError as e:
            if self.raise_not_in_plan:
                raise
            self._forecast_in_plan = False
            logger.warning(
                "%s: forecasts are not in this account's plan (%s); forecast() returns [] from now on "
                "and the package forecasts from history instead.", self.name, e,
            )
            return []
        where = f"{self.name} {path}"
        readings = self._collect(field(data, "forecast", where), where,
                                 lambda p, w: self._reading(p, w, is_forecast=True))
        return self._window(readings, hours_ahead=hours)

    def describe(self) -> str:
        """One secret-free line: zone, emission factor, signal and base URL."""
        estimations = ", no estimations" if self.disable_estimations else ""
        return (f"{self.name}(zone={self.zone}, {self.emission_factor}, average intensity{estimations}, "
                f"{self.base_url})")
