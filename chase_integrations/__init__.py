"""chase-integrations: carbon-aware GPU power limits for deep-learning training.

Importing the package is cheap: it pulls in none of torch, lightning, transformers or statsmodels.
The callbacks live in :mod:`chase_integrations.lightning` and :mod:`chase_integrations.huggingface`;
:class:`Chase` (plain PyTorch loops, 🤗 Accelerate, Lightning Fabric) is imported on first use.

Example:
    >>> import chase_integrations
    >>> chase_integrations.__version__
    '0.1.0'
"""

from typing import TYPE_CHECKING

from chase_integrations.errors import (
    ChaseError,
    ChaseWarning,
    ConfigurationError,
    PowerControlError,
    PowerPermissionError,
    ProviderError,
)

if TYPE_CHECKING:
    from chase_integrations.plain import Chase

__version__ = "0.1.0"

__all__ = [
    "Chase",
    "ChaseError",
    "ChaseWarning",
    "ConfigurationError",
    "PowerControlError",
    "PowerPermissionError",
    "ProviderError",
    "__version__",
]


def __getattr__(name: str):
    """Import :class:`Chase` on first use, so ``import chase_integrations`` stays light."""
    if name == "Chase":
        from chase_integrations.plain import Chase

        return Chase
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
