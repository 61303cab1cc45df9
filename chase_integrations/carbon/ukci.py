"""National Grid ESO / NESO Carbon Intensity API for Great Britain: half-hourly, no account needed."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from chase_integrations.carbon._live import HttpProvider, field, parse_intensity, parse_time
from chase_integrations.carbon.reading import IntensityReading
from chase_integrations.errors import ConfigurationError, ProviderResponseError

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.carbonintensity.org.uk"
_OUTWARD_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?$")
_REGION_IDS = range(1, 18)


class UKCarbonIntensityProvider(HttpProvider):
    """Average carbon intensity of Great Britain, or of one of its regions, in gCO2eq/kWh.

    Data come in half-hour periods (``resolution_s = 1800``). Each period becomes one
    :class:`~chase_integrations.carbon.reading.IntensityReading` stamped with the period's start: the
    ``actual`` value when the API has one (``is_forecast=False``), else the ``forecast`` value
    (``is_forecast=True``). Regional data only ever have forecasts, so regional readings, even past
    ones and ``latest()``, are marked ``is_forecast=True``.

    Endpoints (national / ``region_id`` / ``postcode``):

    * ``latest()``: ``/intensity``, ``/regional/regionid/{id}``, ``/regional/postcode/{pc}``;
    * ``history(hours)`` (at most 24 h): ``/intensity/{from}/pt24h`` and the regional
      ``/regional/intensity/{from}/pt24h/regionid/{id}`` or ``.../postcode/{pc}``;
    * ``forecast(hours)`` (at most 48 h): ``/intensity/{from}/fw24h`` (``fw48h`` beyond 24 h) and the
      regional ``/regional/intensity/{from}/fw24h/regionid/{id}`` or ``.../postcode/{pc}``.

    Args:
        region_id: A GB region id, 1-17 (13 = London, 15 = England, 16 = Scotland, 17 = Wales).
        postcode: An outward postcode such as ``"RG10"`` (a full postcode's inward part is dropped).
            At most one of ``region_id`` and ``postcode``; neither means national data.
        base_url: API root. Plain ``http://`` is refused unless the host is loopback.
        **options: ``timeout_s``, ``cache_ttl_s``, ``max_age_s``, ``retries``, ``backoff_s``,
            ``max_retry_wait_s``, ``clock``, ``sleep``, ``transport``; see
            :class:`~chase_integrations.carbon._live.HttpProvider`.

    Raises:
        ConfigurationError: Both ``region_id`` and ``postcode``, or a bad value of either.

    Example:
        >>> p = UKCarbonIntensityProvider(region_id=13)
        >>> p.describe()
        'ukci(region_id=13, average intensity, https://api.carbonintensity.org.uk)'
        >>> p.close()
    """

    name = "ukci"
    signal = "average"
    resolution_s = 1800.0

    def __init__(
        self,
        region_id: int | None = None,
        postcode: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        **options: Any,
    ) -> None:
        if region_id is not None and postcode is not None:
            raise ConfigurationError(
                f"Give at most one of `region_id` and `postcode`, got region_id={region_id!r} and "
                f"postcode={postcode!r}. HINT: neither gives national (GB) data."
            )
        if region_id is not None and (
            isinstance(region_id, bool) or not isinstance(region_id, int) or region_id not in _REGION_IDS
        ):
            raise ConfigurationError.invalid("region_id", region_id, "an integer region id from 1 to 17")
        if postcode is not None:
            text = postcode.strip().upper() if isinstance(postcode, str) else ""
            outward = text.split()[0] if text else ""
            if not _OUTWARD_POSTCODE.match(outward):
                raise ConfigurationError.invalid(
                    "postcode", postcode, "a GB outward postcode such as 'RG10' or 'SW1A'"
                )
            postcode = outward
        self.region_id = region_id
        self.postcode = postcode
        self._init_http(base_url, **options)

    @property
    def _scope(self) -> str:
        if self.region_id is not None:
            return f"region_id={self.region_id}"
        if self.postcode is not None:
            return f"postcode={self.postcode}"
        return "national"

    def _suffix(self) -> str:
        if self.region_id is not None:
            return f"/regionid/{self.region_id}"
        if self.postcode is not None:
            return f"/postcode/{self.postcode}"
        return ""

    def _from(self) -> str:
        now = self._utcnow()
        start = now.replace(minute=30 if now.minute >= 30 else 0, second=0, microsecond=0)
        return start.strftime("%Y-%m-%dT%H:%MZ")

    def _window_path(self, window: str) -> str:
        if self._scope == "national":
            return f"/intensity/{self._from()}/{window}"
        return f"/regional/intensity/{self._from()}/{window}{self._suffix()}"

    def _periods(self, path: str, cache_key: Any) -> tuple[list[IntensityReading], str]:
        where = f"{self.name} {path}"
        payload = self._client.get_json(path, ttl_s=self.cache_ttl_s, cache_key=cache_key)
        data = field(payload, "data", where)
        items = data if isinstance(data, list) else [data]
        periods: list[Any] = []
        for item in items:  # regional answers nest the periods in a region object
            if isinstance(item, dict) and "data" in item and "intensity" not in item:
                inner = item["data"]
                periods.extend(inner if isinstance(inner, list) else [inner])
            else:
                periods.append(item)
        return self._collect(periods, where, self._reading), where

    @staticmethod
    def _reading(period: Any, where: str) -> IntensityReading:
        start: datetime = parse_time(field(period, "from", where), f"{where}.from")
        intensity = field(period, "intensity", where)
        actual = intensity.get("actual") if isinstance(intensity, dict) else None
        if actual is not None:
            return IntensityReading(start, parse_intensity(actual, f"{where}.intensity.actual"), False)
        forecast = field(intensity, "forecast", f"{where}.intensity")
        value = parse_intensity(forecast, f"{where}.intensity.forecast")
        return IntensityReading(start, value, True)

    def latest(self) -> IntensityReading:
        """Return the current half hour's intensity (``actual`` if published, else ``forecast``).

        Raises:
            ProviderError: A subclass for every failure; ``StaleDataError`` when the newest period
                starts more than ``max_age_s`` (3 h) ago.
        """
        path = "/intensity" if self._scope == "national" else f"/regional{self._suffix()}"
        readings, where = self._periods(path, cache_key=("latest", path))
        now = self._utcnow()
        current = [r for r in readings if r.time <= now] or readings
        if not current:
            raise ProviderResponseError(f"{where}: the answer holds no period.")
        return self._check_fresh(current[-1])

    def history(self, hours: float = 24) -> list[IntensityReading]:
        """Return the half-hourly readings of the last ``hours`` hours (at most 24), oldest first."""
        if hours > 24:
            self._log_once("history-clamp", logging.INFO, "%s: history covers at most 24 h; asked %g h",
                           self.name, hours)
        readings, _ = self._periods(self._window_path("pt24h"), cache_key="pt24h")
        return self._window(readings, hours_back=hours)

    def forecast(self, hours: float) -> list[IntensityReading]:
        """Return the API's forecast for the next ``hours`` hours (at most 48), oldest first.

        Periods that already have an ``actual`` value keep it and ``is_forecast=False``.
        """
        if hours <= 0:
            return []
        window = "fw24h" if hours <= 24 else "fw48h"
        readings, _ = self._periods(self._window_path(window), cache_key=window)
        return self._window(readings, hours_ahead=min(hours, 48))

    def describe(self) -> str:
        """One line: scope (national, region or postcode), signal and base URL."""
        return f"{self.name}({self._scope}, average intensity, {self.base_url})"

