"""The engine's collectives on a Lightning strategy (``broadcast``, ``all_gather``)."""

from __future__ import annotations

from typing import Any

import torch


class LightningCollective:
    """Broadcast and sum/max over the ranks of a Lightning ``Trainer`` job (used when ``world_size > 1``).

    Every rank calls the same collectives in the same hooks in the same order (the engine guarantees it);
    none is ever called from rank-zero-only code.
    """

    def __init__(self, strategy) -> None:
        self.strategy = strategy
        self.rank = int(strategy.global_rank)
        self.world_size = int(strategy.world_size)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        return self.strategy.broadcast(obj, src=0)

    def sum_max(self, to_sum: float, to_max: float) -> tuple[float, float]:
        """Sum and max over ranks, with one ``all_gather``."""
        local = torch.tensor([float(to_sum), float(to_max)], dtype=torch.float64, device=self.strategy.root_device)
        gathered = self.strategy.all_gather(local).reshape(-1, 2).cpu()
        return float(gathered[:, 0].sum()), float(gathered[:, 1].max())
