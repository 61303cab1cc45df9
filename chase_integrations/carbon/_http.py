"""The HTTP client every live carbon-intensity provider shares.

What it guarantees, in one place:

* explicit timeouts (``timeout_s`` for connect, read, write and pool);
* retries with exponential backoff on HTTP 429 and 5xx, honouring ``Retry-After`` (seconds or an
  HTTP date), each wait capped at ``max_retry_wait_s``; the sleep function is injectable;
* a per-endpoint TTL cache, so a job asks each endpoint at most once per ``ttl_s`` (the providers
  never pass less than the data's resolution);
* every failure mapped to a :class:`~chase_integrations.errors.ProviderError` subclass whose message
  names the provider, the HTTP status, the endpoint path and a truncated body;
* secrets (tokens, passwords) kept in :class:`Secret` and scrubbed from every message it builds;
  requests never log headers;
* plain ``http://`` refused unless the host is loopback (127.0.0.0/8, ``localhost``, ``::1``).

Failure mapping:

=====================================  ==============================================
cause                                  raised
=====================================  ==============================================
``httpx.TimeoutException``             :class:`ProviderTimeoutError`
other ``httpx.TransportError``         :class:`ProviderConnectionError`
401, 403                               :class:`ProviderAuthError`
status in ``not_in_plan`` (per call)   :class:`ProviderNotInPlanError`
429 after the retries                  :class:`ProviderRateLimitError`
5xx after the retries                  :class:`ProviderServerError`
other non-2xx, not JSON, HTML          :class:`ProviderResponseError`
=====================================  ==============================================
"""

from __future__ import annotations

import email.utils
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx

from chase_integrations.carbon._secure import Secret, redact, validate_base_url
from chase_integrations.core.clock import Clock, SystemClock
from chase_integrations.errors import (
    ConfigurationError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderNotInPlanError,
    ProviderRateLimitError,
    ProviderResponseError,
    ProviderServerError,
    ProviderTimeoutError,
)

logger = logging.getLogger(__name__)

__all__ = ["HttpClient", "Secret", "redact", "retry_after_s", "validate_base_url"]

BODY_EXCERPT_CHARS = 200


def retry_after_s(value: str | None, now_epoch_s: float) -> float | None:
    """Parse a ``Retry-After`` header (delta seconds or HTTP date) into seconds, or ``None``."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - now_epoch_s
    return max(0.0, seconds) if math.isfinite(seconds) else None


class HttpClient:
    """A small, careful JSON-over-HTTPS client for one provider.

    Args:
        provider: Provider name used in messages (``"electricitymaps"``...).
        base_url: Validated with :func:`validate_base_url`.
        timeout_s: Timeout of each phase of a request, in seconds.
        retries: Extra attempts after a 429 or 5xx (0 disables retries).
        backoff_s: First backoff wait in seconds; doubles at each retry.
        max_retry_wait_s: Upper bound of any single wait, ``Retry-After`` included, in seconds.
        headers: Headers sent with every request (for example an auth token).
        secrets: Callable returning the secret strings to scrub from messages.
        clock: Clock whose ``monotonic()`` times the cache (injected in tests).
        sleep: Function that waits a number of seconds (injected in tests).
        transport: Optional ``httpx`` transport (``httpx.MockTransport`` in tests).
    """

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        retries: int = 2,
        backoff_s: float = 1.0,
        max_retry_wait_s: float = 30.0,
        headers: Mapping[str, str] | None = None,
        secrets: Callable[[], Iterable[str]] = tuple,
        clock: Clock | None = None,
        sleep: Callable[[float], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
            raise ConfigurationError.invalid("timeout_s", timeout_s, "a number of seconds > 0")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigurationError.invalid("retries", retries, "an integer >= 0")
        self.provider = provider
        self.base_url = validate_base_url(base_url)
        self.timeout_s = float(timeout_s)
        self.retries = retries
        self.backoff_s = float(backoff_s)
        self.max_retry_wait_s = float(max_retry_wait_s)
        self._headers = dict(headers or {})
        self._secrets = secrets
        self._clock = clock or SystemClock()
        self._sleep = sleep or time.sleep
        self._transport = transport
        self._client: httpx.Client | None = None
        self._cache: dict[tuple, tuple[float, Any]] = {}
        self._lock = threading.RLock()
        self.requests_sent = 0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_client"] = None  # connection pools and locks do not travel
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"HttpClient(provider={self.provider!r}, base_url={self.base_url!r})"

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                timeout=httpx.Timeout(self.timeout_s),
                transport=self._transport,
                headers={"Accept": "application/json", **self._headers},
                follow_redirects=False,
            )
        return self._client

    def close(self) -> None:
        """Close the connection pool (idempotent); the cache is kept."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def clear_cache(self) -> None:
        """Forget every cached answer."""
        with self._lock:
            self._cache.clear()

    def get_json(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        ttl_s: float = 0.0,
        cache_key: Any = None,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        not_in_plan: tuple[int, ...] = (),
        hint: str = "",
        plan_hint: str = "",
    ) -> Any:
        """GET ``base_url + path`` and return the decoded JSON, from the cache when fresh.

        Args:
            path: Endpoint path starting with ``/``; it appears in error messages.
            params: Query parameters (never secrets).
            ttl_s: How long the answer stays fresh, in seconds (0 = no caching).
            cache_key: Key of the cache entry; default ``(path, params)``. Pass a logical name when
                the path holds a moving timestamp.
            headers: Extra headers for this request.
            auth: ``httpx`` auth for this request (for example basic auth for a login).
            not_in_plan: Statuses that mean "not part of your plan" for this endpoint.
            hint: Text appended to auth error messages.
            plan_hint: Text appended to "not in your plan" messages.

        Raises:
            ProviderError: A subclass per the table in the module docstring.
        """
        key = cache_key if cache_key is not None else (path, tuple(sorted((params or {}).items())))
        with self._lock:
            hit = self._cache.get(key)
            now_s = self._clock.monotonic()
            if hit is not None and now_s < hit[0]:
                return hit[1]
            data = self._request(path, params, headers, auth, not_in_plan, (hint, plan_hint))
            if ttl_s > 0:
                self._cache[key] = (self._clock.monotonic() + ttl_s, data)
            return data

    def invalidate(self, cache_key: Any) -> None:
        """Drop one cache entry."""
        with self._lock:
            self._cache.pop(cache_key, None)

    def _request(self, path, params, headers, auth, not_in_plan, hints) -> Any:
        for attempt in range(self.retries + 1):
            response = self._send(path, params, headers, auth)
            status = response.status_code
            if (status == 429 or status >= 500) and attempt < self.retries:
                wait_s = self._wait_s(response, attempt)
                logger.info(
                    "%s: HTTP %d from %s; retry %d/%d in %.1f s",
                    self.provider, status, path, attempt + 1, self.retries, wait_s,
                )
                self._sleep(wait_s)
                continue
            return self._decode(response, path, not_in_plan, hints)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, path, params, headers, auth) -> httpx.Response:
        url = self.base_url + path
        try:
            self.requests_sent += 1
            kwargs: dict[str, Any] = {"params": params, "headers": headers}
            if auth is not None:
                kwargs["auth"] = auth
            return self._http().get(url, **kwargs)
        except httpx.TimeoutException as e:
            raise ProviderTimeoutError(
                self._scrub(f"{self.provider}: no answer from {path} within {self.timeout_s:g} s "
                            f"({type(e).__name__}). HINT: raise `timeout_s` or check the network.")
            ) from e
        except httpx.TransportError as e:
            raise ProviderConnectionError(
                self._scrub(f"{self.provider}: could not reach {self.base_url}{path} "
                            f"({type(e).__name__}: {e}). HINT: check `base_url` and the network.")
            ) from e
        except httpx.HTTPError as e:  # InvalidURL, decoding problems, ...
            raise ProviderConnectionError(
                self._scrub(f"{self.provider}: request to {path} failed ({type(e).__name__}: {e}).")
            ) from e

    def _wait_s(self, response: httpx.Response, attempt: int) -> float:
        header = retry_after_s(response.headers.get("Retry-After"), self._clock.now().timestamp())
        wait_s = header if header is not None else self.backoff_s * (2**attempt)
        return min(wait_s, self.max_retry_wait_s)

    def _excerpt(self, response: httpx.Response) -> str:
        text = response.text.strip().replace("\n", " ")
        if len(text) > BODY_EXCERPT_CHARS:
            text = text[:BODY_EXCERPT_CHARS] + "..."
        return text or "<empty body>"

    def _scrub(self, text: str) -> str:
        return redact(text, self._secrets())

    def _decode(self, response: httpx.Response, path: str, not_in_plan, hints: tuple[str, str]) -> Any:
        status = response.status_code
        where = f"{self.provider}: HTTP {status} from {path}"
        hint, plan_hint = hints
        suffix = f" HINT: {hint}" if hint else ""
        if status in not_in_plan:
            suffix = f" HINT: {plan_hint}" if plan_hint else ""
            raise ProviderNotInPlanError(
                self._scrub(f"{where}: this endpoint is not in your plan: {self._excerpt(response)}.{suffix}")
            )
        error: type[ProviderError] | None = None
        if status in (401, 403):
            error = ProviderAuthError
            suffix = suffix or " HINT: check the credentials."
        elif status == 429:
            error = ProviderRateLimitError
            suffix = " HINT: ask less often (the answers are cached per endpoint) or upgrade the plan."
        elif status >= 500:
            error = ProviderServerError
        elif not 200 <= status < 300:
            error = ProviderResponseError
        if error is not None:
            raise error(self._scrub(f"{where}: {self._excerpt(response)}.{suffix}"))
        content_type = response.headers.get("Content-Type", "")
        body = response.text
        if "html" in content_type.lower() or body.lstrip()[:1] == "<":
            raise ProviderResponseError(
                self._scrub(f"{where}: expected JSON, got HTML ({content_type or 'no Content-Type'}): "
                            f"{self._excerpt(response)}. HINT: check `base_url` (a proxy or login page?).")
            )
        try:
            return response.json()
        except ValueError as e:
            raise ProviderResponseError(
                self._scrub(f"{where}: the body is not JSON: {self._excerpt(response)}.")
            ) from e
