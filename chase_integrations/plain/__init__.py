"""Plain PyTorch loops, 🤗 Accelerate and Lightning Fabric: :class:`Chase`.

Importing this package imports no framework (torch, accelerate, lightning are imported inside the
methods that need them), so ``from chase_integrations import Chase`` stays light.
"""

from chase_integrations.plain.chase import Chase
from chase_integrations.plain.collectives import AccelerateCollective, FabricCollective, TorchDistributedCollective

__all__ = ["AccelerateCollective", "Chase", "FabricCollective", "TorchDistributedCollective"]
