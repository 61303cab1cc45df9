"""Keeping credentials out of sight, and plain http away from remote hosts."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from chase_integrations.errors import ConfigurationError

REDACTED = "***"


class Secret:
    """A credential that never shows itself in ``str``, ``repr``, logs or JSON.

    It can be pickled (so a provider can travel to a spawned training process); ``json.dumps``
    refuses it.

    Example:
        >>> s = Secret("hunter2")
        >>> repr(s), str(s), s.reveal()
        ("Secret('***')", '***', 'hunter2')
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret itself: only for building a request."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __getstate__(self) -> str:
        return self._value

    def __setstate__(self, state: str) -> None:
        self._value = state


def is_loopback_host(host: str) -> bool:
    """Return ``True`` for ``localhost``, 127.0.0.0/8 and ``::1``."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_base_url(base_url: str) -> str:
    """Check ``base_url`` and return it without a trailing slash.

    Raises:
        ConfigurationError: Not a string, not http(s), no host, credentials in the URL, or plain http
            to a host that is not loopback.
    """
    if not isinstance(base_url, str) or not base_url:
        raise ConfigurationError.invalid("base_url", base_url, "a non-empty https:// URL")
    parts = urlsplit(base_url)
    if parts.username or parts.password:
        raise ConfigurationError(
            "`base_url` must not contain credentials (user:password@). HINT: pass them as arguments "
            "or environment variables; they are sent in headers and never logged."
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError.invalid("base_url", base_url, "an https:// URL with a host")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigurationError.invalid(
            "base_url",
            base_url,
            "an https:// URL (plain http:// is allowed only for loopback hosts: 127.0.0.0/8, "
            "localhost, ::1)",
            hint="tokens would travel in clear text; use https:// or a local proxy on 127.0.0.1.",
        )
    return base_url.rstrip("/")


#: Secrets shorter than this are redacted only where they stand alone: a one-letter token (a careless
#: ``token="x"``) must not turn every "x" of an error message into ``***``.
SHORT_SECRET = 6


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each non-empty secret in ``text`` with ``***``.

    Example:
        >>> redact("token abc123456 failed", ["abc123456"]), redact("latest for t failed", ["t"])
        ('token *** failed', 'latest for *** failed')
    """
    for value in secrets:
        if not value:
            continue
        if len(value) >= SHORT_SECRET:
            text = text.replace(value, REDACTED)
        else:
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", REDACTED, text)
    return text
