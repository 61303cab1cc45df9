"""The engine's collectives on accelerate / ``torch.distributed`` (used when ``world_size > 1``).

Every rank calls the same collectives in the same hooks in the same order (the engine guarantees it);
none is ever called from rank-zero-only code.
"""

from __future__ import annotations

from typing import Any


class AccelerateCollective:
    """Broadcast and sum/max over the ranks of a Hugging Face ``Trainer`` job.

    Args:
        rank: This process's global rank (``TrainingArguments.process_index``).
        world_size: Processes in the job (``TrainingArguments.world_size``).
        device: The device collectives run on (``TrainingArguments.device``; NCCL needs a CUDA tensor).
    """

    def __init__(self, rank: int, world_size: int, device: Any) -> None:
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.device = device

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (any picklable value)."""
        from accelerate.utils import broadcast_object_list

        box = [obj]
        broadcast_object_list(box, from_process=0)
        return box[0]

    def sum_max(self, to_sum: float, to_max: float) -> tuple[float, float]:
        """Sum and max over ranks, with one ``gather``."""
        import torch
        from accelerate.utils import gather

        local = torch.tensor([[float(to_sum), float(to_max)]], dtype=torch.float64, device=self.device)
        gathered = gather(local).reshape(-1, 2).cpu()
        return float(gathered[:, 0].sum()), float(gathered[:, 1].max())
