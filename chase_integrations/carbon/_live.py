"""What the live (HTTP) providers share: options, caching policy, staleness, parsing of values.

Bad data policy, the same for every live provider:

* a single value (``latest()``) that is null, missing, not a number, NaN, infinite or negative raises
  :class:`~chase_integrations.errors.ProviderResponseError`;
* in a list (``history()``, ``forecast()``), bad points are skipped (logged once per provider and
  endpoint); :class:`~chase_integrations.errors.ProviderResponseError` is raised only when the list
  is not empty and none of its points is usable. An empty list is returned as is.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from chase_integrations.carbon._http import HttpClient
from chase_integrations.carbon.base import CarbonIntensityProvider
from chase_integrations.carbon.reading import IntensityReading
from chase_integrations.core.clock import Clock, SystemClock
from chase_integrations.errors import ConfigurationError, ProviderResponseError, StaleDataError

logger = logging.getLogger(__name__)

DEFAULT_MAX_AGE_S = 3 * 3600.0
_FRACTION = re.compile(r"\.(\d+)")
_TIMESTAMP_IN_PATH = re.compile(r"/\d{4}-[^/]+")


def parse_time(value: Any, where: str) -> datetime:
    """Parse an ISO-8601 timestamp (``Z``, any fraction digits; naive = UTC) into aware UTC.

    Raises:
        ProviderResponseError: ``value`` is missing or not a timestamp.
    """
    if not isinstance(value, str) or not value:
        raise ProviderResponseError(f"{where}: expected an ISO-8601 timestamp, got {value!r}.")
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ProviderResponseError(f"{where}: expected an ISO-8601 timestamp, got {value!r}.") from None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def parse_intensity(value: Any, where: str, scale: float = 1.0) -> float:
    """Return ``value * scale`` as gCO2eq/kWh, refusing null, non-numbers, NaN, inf and negatives.

    Raises:
        ProviderResponseError: The value is not a finite number >= 0.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProviderResponseError(f"{where}: expected a number of gCO2eq/kWh, got {value!r}.")
    number = float(value) * scale
    if not math.isfinite(number) or number < 0:
        raise ProviderResponseError(f"{where}: expected a finite intensity >= 0, got {value!r}.")
    return number


def field(obj: Any, key: str, where: str) -> Any:
    """Return ``obj[key]``, raising ProviderResponseError when ``obj`` is not a dict or lacks ``key``."""
    if not isinstance(obj, dict):
        raise ProviderResponseError(f"{where}: expected a JSON object, got {type(obj).__name__}.")
    if key not in obj:
        raise ProviderResponseError(f"{where}: missing field {key!r} (fields: {sorted(obj)[:10]}).")
    return obj[key]


class HttpProvider(CarbonIntensityProvider):
    """Base of the live providers: one :class:`HttpClient`, caching, staleness, context manager.

    Keyword options every live provider accepts (``**options``):

    Args:
        timeout_s: Timeout of each request phase, in seconds (default 10).
        cache_ttl_s: How long an endpoint's answer is reused, in seconds. ``None`` (default) and any
            value below the data's resolution mean ``resolution_s``: a provider never asks an
            endpoint more often than its data changes. Set it to the callback's decision interval to
            send at most one request per endpoint per decision.
        max_age_s: ``latest()`` raises :class:`~chase_integrations.errors.StaleDataError` when the
            newest reading starts more than this many seconds before now (default 3 h).
        retries: Extra attempts after HTTP 429 or 5xx (default 2).
        backoff_s: First backoff wait in seconds, doubling each retry (default 1).
        max_retry_wait_s: Cap of any single retry wait, ``Retry-After`` included (default 30 s).
        clock: Clock for "now", cache timing and token expiry (default: the system clock).
        sleep: Function that waits a number of seconds (default ``time.sleep``; tests inject one).
        transport: An ``httpx`` transport (``httpx.MockTransport`` in tests).
    """

    def _init_http(
        self,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        secrets: Callable[[], Iterable[str]] = tuple,
        timeout_s: float = 10.0,
        cache_ttl_s: float | None = None,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        retries: int = 2,
        backoff_s: float = 1.0,
        max_retry_wait_s: float = 30.0,
        clock: Clock | None = None,
        sleep: Callable[[float], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        for argument, value in (("cache_ttl_s", cache_ttl_s), ("max_age_s", max_age_s)):
            if value is None and argument == "cache_ttl_s":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ConfigurationError.invalid(argument, value, "a number of seconds >= 0")
        self._injected_clock = clock
        self._clock = clock or SystemClock()
        self.cache_ttl_s = max(float(cache_ttl_s or 0.0), float(self.resolution_s))
        self.max_age_s = float(max_age_s)
        self._logged: set[str] = set()
        self._client = HttpClient(
            self.name,
            base_url,
            timeout_s=timeout_s,
            retries=retries,
            backoff_s=backoff_s,
            max_retry_wait_s=max_retry_wait_s,
            headers=headers,
            secrets=secrets,
            clock=self._clock,
            sleep=sleep,
            transport=transport,
        )

    @property
    def base_url(self) -> str:
        """The API's base URL (validated, no trailing slash, never holds credentials)."""
        return self._client.base_url

    @property
    def requests_sent(self) -> int:
        """How many HTTP requests this provider has sent (cache hits excluded)."""
        return self._client.requests_sent

    def now(self) -> datetime | None:
        """The injected clock's time, or ``None`` (wall time) when no clock was given."""
        return self._injected_clock.now() if self._injected_clock is not None else None

    def _utcnow(self) -> datetime:
        return self._clock.now()

    def _check_fresh(self, reading: IntensityReading) -> IntensityReading:
        age_s = (self._utcnow() - reading.time).total_seconds()
        if age_s > self.max_age_s:
            raise StaleDataError(
                f"{self.name}: the newest reading ({reading.time.isoformat()}) is {age_s / 3600:.1f} h old, "
                f"more than `max_age_s`={self.max_age_s:g} s. HINT: the source may be lagging; the "
                "callbacks fall back to the forecast."
            )
        return reading

    def _log_once(self, key: str, level: int, message: str, *args: Any) -> None:
        if key not in self._logged:
            self._logged.add(key)
            logger.log(level, message, *args)

    def _collect(
        self, points: Any, where: str, convert: Callable[[Any, str], IntensityReading]
    ) -> list[IntensityReading]:
        """Convert a JSON list of points, skipping unusable ones (see the module docstring)."""
        if not isinstance(points, list):
            raise ProviderResponseError(f"{where}: expected a JSON list, got {type(points).__name__}.")
        readings: list[IntensityReading] = []
        first_error = None
        for i, point in enumerate(points):
            try:
                readings.append(convert(point, f"{where}[{i}]"))
            except ProviderResponseError as e:
                first_error = first_error or e
        if points and not readings:
            raise ProviderResponseError(
                f"{where}: none of the {len(points)} points is usable; first: {first_error}"
            )
        if first_error is not None:
            self._log_once(
                "skip:" + _TIMESTAMP_IN_PATH.sub("/{from}", where), logging.WARNING,
                "%s: skipped %d unusable point(s) of %d; first: %s",
                self.name, len(points) - len(readings), len(points), first_error,
            )
        return sorted(readings, key=lambda r: r.time)

    def _window(self, readings: list[IntensityReading], hours_back: float = 0.0,
                hours_ahead: float = 0.0) -> list[IntensityReading]:
        """Keep readings whose period ``[time, time + resolution_s)`` overlaps now - back .. now + ahead."""
        now = self._utcnow()
        start = now - timedelta(hours=hours_back)
        end = now + timedelta(hours=hours_ahead)
        res = timedelta(seconds=self.resolution_s)
        if hours_ahead <= 0:  # history: nothing that starts in the future
            return [r for r in readings if r.time + res > start and r.time <= now]
        return [r for r in readings if r.time + res > start and r.time < end]

    def close(self) -> None:
        """Close the HTTP connection pool (idempotent)."""
        self._client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"
