"""The exception and warning tree of chase-integrations.

Every error the package raises derives from :class:`ChaseError`::

    ChaseError
    ├── ConfigurationError (also a ValueError)   bad argument, trace or profile
    ├── SimulationInvalidError                   a simulated run fell back (simulate_many)
    ├── ProviderError                            a carbon-intensity source failed
    │   ├── ProviderTimeoutError
    │   ├── ProviderConnectionError
    │   ├── ProviderAuthError                     401 / 403
    │   ├── ProviderRateLimitError                429 after retries
    │   ├── ProviderServerError                   5xx after retries
    │   ├── ProviderResponseError                 not JSON, missing fields, NaN or negative values
    │   ├── ProviderNotInPlanError                endpoint not included in the account's plan
    │   └── StaleDataError                        newest reading older than allowed
    └── PowerControlError                        a GPU power limit could not be read or set
        └── PowerPermissionError (also a PermissionError)

Warnings use :class:`ChaseWarning` so users can filter them in one line.
"""

from __future__ import annotations


class ChaseError(Exception):
    """Base class of every error raised by chase-integrations."""


class ConfigurationError(ChaseError, ValueError):
    """An argument, trace or profile is not usable.

    The message names the argument, the value given and what is allowed.
    """

    @classmethod
    def invalid(cls, argument: str, value: object, allowed: str, hint: str | None = None) -> ConfigurationError:
        """Build the package's standard message: argument, value, what is allowed, optional HINT.

        Example:
            >>> str(ConfigurationError.invalid("eta", 2.0, "a number in [0, 1]"))
            '`eta` must be a number in [0, 1], got 2.0.'
        """
        message = f"`{argument}` must be {allowed}, got {value!r}."
        if hint:
            message += f" HINT: {hint}"
        return cls(message)


class SimulationInvalidError(ChaseError):
    """A simulated run fell back (intensity or forecaster, an internal error, a degradation).

    Its numbers are not those of the policy it names (raised by ``simulate_many(strict=True)``).
    """


class ProviderError(ChaseError):
    """A carbon-intensity provider failed. Callbacks catch it and fall back."""


class ProviderTimeoutError(ProviderError):
    """The provider did not answer within the timeout."""


class ProviderConnectionError(ProviderError):
    """The provider could not be reached (DNS, refused connection, TLS)."""


class ProviderAuthError(ProviderError):
    """The provider refused the credentials (HTTP 401 or 403)."""


class ProviderRateLimitError(ProviderError):
    """The provider kept answering HTTP 429 after the retries."""


class ProviderServerError(ProviderError):
    """The provider kept answering HTTP 5xx after the retries."""


class ProviderResponseError(ProviderError):
    """The provider answered something unusable: not JSON, missing fields, NaN or negative values."""


class ProviderNotInPlanError(ProviderError):
    """The endpoint is not part of the account's plan (for example Electricity Maps forecasts)."""


class StaleDataError(ProviderError):
    """The newest reading is older than the allowed age."""


class PowerControlError(ChaseError):
    """A GPU power limit could not be read or set."""


class PowerPermissionError(PowerControlError, PermissionError):
    """The process may not set GPU power limits (needs root, CAP_SYS_ADMIN or Zeus's zeusd)."""


class ChaseWarning(UserWarning):
    """Warnings from chase-integrations: degraded modes, fallbacks, skipped work."""


__all__ = [
    "ChaseError",
    "ChaseWarning",
    "ConfigurationError",
    "PowerControlError",
    "PowerPermissionError",
    "ProviderAuthError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderNotInPlanError",
    "ProviderRateLimitError",
    "ProviderResponseError",
    "ProviderServerError",
    "ProviderTimeoutError",
    "StaleDataError",
]
