"""chase-integrations: carbon-aware GPU power limits for deep-learning training.

Importing the package is cheap: it pulls in none of torch, lightning, transformers or statsmodels.
The callbacks live in :mod:`chase_integrations.lightning` and :mod:`chase_integrations.huggingface`.

Example:
    >>> import chase_integrations
    >>> chase_integrations.__version__
    '0.1.0'
"""

from chase_integrations.errors import (
    ChaseError,
    ChaseWarning,
    ConfigurationError,
    PowerControlError,
    PowerPermissionError,
    ProviderError,
)

__version__ = "0.1.0"

__all__ = [
    "ChaseError",
    "ChaseWarning",
    "ConfigurationError",
    "PowerControlError",
    "PowerPermissionError",
    "ProviderError",
    "__version__",
]
