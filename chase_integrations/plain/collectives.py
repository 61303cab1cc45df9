"""The engine's collectives on ``torch.distributed``, 🤗 Accelerate and Lightning Fabric.

Each class implements :class:`~chase_integrations.core.collective.Collective` (``rank``, ``world_size``,
``broadcast``, ``sum_max``) with its framework's own primitives; the frameworks are imported inside the
methods, so importing this module imports none of them. They are used only when ``world_size > 1``
(one process uses :class:`~chase_integrations.core.collective.LocalCollective`).

Every rank calls the same collectives in the same hooks in the same order (the engine guarantees it);
none is ever called from rank-zero-only code. ``sum_max`` gathers both values with one ``all_gather``
and reduces the gathered ``(ranks, 2)`` tensor as the Lightning adapter does, so all adapters agree.
"""

from __future__ import annotations

from typing import Any


def _reduce(gathered: Any) -> tuple[float, float]:
    """(sum of column 0, max of column 1) of a gathered ``(ranks, 2)`` tensor, in rank order."""
    rows = gathered.reshape(-1, 2).cpu()
    return float(rows[:, 0].sum()), float(rows[:, 1].max())


class TorchDistributedCollective:
    """Broadcast and sum/max over an initialised ``torch.distributed`` process group.

    Args:
        group: The process group; ``None`` = the default group.
        device: Where the reduction tensor lives; ``None`` = the current CUDA device under NCCL, else the CPU.
    """

    def __init__(self, group: Any = None, device: Any = None) -> None:
        import torch
        import torch.distributed as dist

        self.group = group
        self.rank = int(dist.get_rank(group))
        self.world_size = int(dist.get_world_size(group))
        if device is None:
            nccl = "nccl" in str(dist.get_backend(group)).lower()
            device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
        self.device = device

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (any picklable value)."""
        import torch.distributed as dist

        box = [obj]
        src = dist.get_global_rank(self.group, 0) if self.group is not None else 0
        dist.broadcast_object_list(box, src=src, group=self.group, device=self.device)
        return box[0]

    def sum_max(self, to_sum: float, to_max: float) -> tuple[float, float]:
        """Sum and max over ranks, with one ``all_gather``."""
        import torch
        import torch.distributed as dist

        local = torch.tensor([float(to_sum), float(to_max)], dtype=torch.float64, device=self.device)
        gathered = [torch.empty_like(local) for _ in range(self.world_size)]
        dist.all_gather(gathered, local, group=self.group)
        return _reduce(torch.stack(gathered))


class AccelerateCollective:
    """Broadcast and sum/max over the processes of a 🤗 Accelerate job (``Accelerator`` or ``Trainer``).

    Needs accelerate and torch only (not transformers).

    Args:
        rank: This process's global rank (``Accelerator.process_index``, ``TrainingArguments.process_index``).
        world_size: Processes in the job (``Accelerator.num_processes``, ``TrainingArguments.world_size``).
        device: The device collectives run on (``Accelerator.device``; NCCL needs a CUDA tensor).
    """

    def __init__(self, rank: int, world_size: int, device: Any) -> None:
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.device = device

    @classmethod
    def from_accelerator(cls, accelerator: Any) -> AccelerateCollective:
        """The collective of an ``accelerate.Accelerator``'s job."""
        return cls(accelerator.process_index, accelerator.num_processes, accelerator.device)

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
        return _reduce(gather(local))


class FabricCollective:
    """Broadcast and sum/max over the processes of a launched ``lightning.fabric.Fabric``.

    Args:
        fabric: The ``Fabric`` (after ``fabric.launch()``).
    """

    def __init__(self, fabric: Any) -> None:
        self.fabric = fabric
        self.rank = int(fabric.global_rank)
        self.world_size = int(fabric.world_size)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (any picklable value)."""
        return self.fabric.broadcast(obj, src=0)

    def sum_max(self, to_sum: float, to_max: float) -> tuple[float, float]:
        """Sum and max over ranks, with one ``all_gather``."""
        import torch

        local = torch.tensor([float(to_sum), float(to_max)], dtype=torch.float64, device=self.fabric.device)
        return _reduce(self.fabric.all_gather(local))
