"""Which GPUs a process controls: one rule, shared by every adapter.

Each process sets the power limit of the GPUs it trains on and of no other. The adapters know different
things about the process (a Lightning strategy's root device, ``TrainingArguments.device``, an
``Accelerator``, ``LOCAL_RANK``); they pass what they know to :func:`resolve_gpu_indices`, a pure
function, and hand its answer to :class:`~chase_integrations.core.session.RunContext`.
"""

from __future__ import annotations

from collections.abc import Sequence


def resolve_gpu_indices(
    *,
    simulation_num_gpus: int | None,
    world_size: int,
    local_rank: int,
    cuda_index: int | None = None,
    gpus_given: bool = False,
    devices: Sequence[int] | None = None,
) -> list[int]:
    """The indices (in the ``GPUs`` object) of the GPUs this process controls.

    The rule, first match wins:

    1. ``devices`` given: exactly those (a process that drives several GPUs, e.g. ``DataParallel``).
    2. A simulation with ``simulation_num_gpus`` GPUs: with several processes, GPU
       ``local_rank % simulation_num_gpus`` (each process its own); with one process, all of them.
    3. The process trains on CUDA device ``cuda_index``: that GPU.
    4. A ``GPUs`` object was given (``gpus=...``, e.g. a fake or a zeusd-backed one): GPU ``local_rank``.
    5. Otherwise none: the process trains on the CPU and changes no limit.

    Args:
        simulation_num_gpus: GPUs of the simulated node, or ``None`` without a simulation.
        world_size: Processes in the job.
        local_rank: This process's rank on its node.
        cuda_index: The CUDA device this process trains on, or ``None`` when it trains on none.
        gpus_given: Whether the user passed a ``GPUs`` object.
        devices: The user's explicit choice of GPU indices, or ``None``.

    Returns:
        The GPU indices, in order, without duplicates; empty when the process controls no GPU.

    Examples:
        >>> resolve_gpu_indices(simulation_num_gpus=2, world_size=1, local_rank=0)
        [0, 1]
        >>> resolve_gpu_indices(simulation_num_gpus=2, world_size=2, local_rank=1)
        [1]
        >>> resolve_gpu_indices(simulation_num_gpus=None, world_size=4, local_rank=3, cuda_index=3)
        [3]
        >>> resolve_gpu_indices(simulation_num_gpus=None, world_size=2, local_rank=1, gpus_given=True)
        [1]
        >>> resolve_gpu_indices(simulation_num_gpus=None, world_size=1, local_rank=0)
        []
        >>> resolve_gpu_indices(simulation_num_gpus=None, world_size=1, local_rank=0, devices=[2, 0, 2])
        [2, 0]
    """
    if devices is not None:
        return list(dict.fromkeys(int(i) for i in devices))
    if simulation_num_gpus is not None:
        n = int(simulation_num_gpus)
        return [int(local_rank) % n] if world_size > 1 else list(range(n))
    if cuda_index is not None:
        return [int(cuda_index)]
    if gpus_given:
        return [int(local_rank)]
    return []
