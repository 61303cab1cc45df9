"""PyTorch Lightning adapter: :class:`ChaseCallback`. Importing this module imports Lightning."""

from chase_integrations.lightning.callback import ChaseCallback

__all__ = ["ChaseCallback"]
