"""A Zeus ``GPUs`` implementation driven by a measured profile.

Each simulated GPU has a power limit (mW, like NVML), allowed constraints, and a cumulative energy
counter (mJ) that :meth:`SimulatedGPU.run` advances by ``average_power(limit) × seconds``. The real
``ZeusMonitor`` reads it through the Zeus interface, exactly as it reads NVML.

Faults can be injected for tests: ``allow_set=False`` makes setters raise Zeus's
``ZeusGPUNoPermissionError``; ``fail_next_set`` raises a given Zeus error once.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from zeus.device.gpu.common import GPU, GPUs, ZeusGPUInvalidArgError, ZeusGPUNoPermissionError


class SimulatedGPU(GPU):
    """One simulated GPU.

    Args:
        gpu_index: Its index.
        name: Model name (e.g. ``"NVIDIA A40 (simulated)"``).
        min_limit_w / max_limit_w: Allowed range in W.
        initial_limit_w: Limit at creation (default: ``max_limit_w``).
        power_w_at: Callable giving average power (W) under a limit (W).
        allow_set: Whether setters are permitted (``False`` mimics a process without CAP_SYS_ADMIN).
    """

    def __init__(
        self,
        gpu_index: int,
        name: str,
        min_limit_w: int,
        max_limit_w: int,
        power_w_at,
        initial_limit_w: int | None = None,
        allow_set: bool = True,
    ) -> None:
        super().__init__(gpu_index)
        self._name = name
        self._min_mw = int(min_limit_w) * 1000
        self._max_mw = int(max_limit_w) * 1000
        self._limit_mw = int(initial_limit_w if initial_limit_w is not None else max_limit_w) * 1000
        self._energy_mj = 0.0
        self._power_w_at = power_w_at
        self.allow_set = allow_set
        self.fail_next_set: Exception | None = None
        self.limit_history_w: list[int] = []
        self._lock = threading.Lock()
        self._disable_sys_admin_warning = True

    # --- simulation ---------------------------------------------------------------------------
    def run(self, seconds: float) -> None:
        """Advance the energy counter by ``seconds`` of work at the current limit."""
        with self._lock:
            self._energy_mj += self._power_w_at(self._limit_mw / 1000.0) * seconds * 1000.0

    @property
    def power_limit_w(self) -> int:
        """The current limit in W."""
        return self._limit_mw // 1000

    def corrupt_energy_counter(self, delta_mj: float) -> None:
        """Shift the counter (negative: a counter going backwards), for fault tests."""
        with self._lock:
            self._energy_mj += delta_mj

    # --- zeus GPU interface ---------------------------------------------------------------------
    @property
    def supports_nonblocking_setters(self) -> bool:
        """No."""
        return False

    def get_name(self) -> str:
        """Model name."""
        return self._name

    def get_power_management_limit_constraints(self) -> tuple[int, int]:
        """``(min, max)`` in mW."""
        return self._min_mw, self._max_mw

    def get_power_management_limit(self) -> int:
        """Current limit, mW."""
        return self._limit_mw

    def set_power_management_limit(self, power_limit_mw: int, block: bool = True) -> None:
        """Set the limit (mW); raises Zeus errors like NVML would."""
        if self.fail_next_set is not None:
            err, self.fail_next_set = self.fail_next_set, None
            raise err
        if not self.allow_set:
            raise ZeusGPUNoPermissionError("Insufficient Permissions (simulated)")
        if not self._min_mw <= int(power_limit_mw) <= self._max_mw:
            raise ZeusGPUInvalidArgError(
                f"Invalid Argument: {power_limit_mw} mW outside [{self._min_mw}, {self._max_mw}] (simulated)"
            )
        with self._lock:
            self._limit_mw = int(power_limit_mw)
        self.limit_history_w.append(self._limit_mw // 1000)

    def reset_power_management_limit(self, block: bool = True) -> None:
        """Reset to the maximum (what NVML's default usually is)."""
        self.set_power_management_limit(self._max_mw, block)

    def set_persistence_mode(self, enabled: bool, block: bool = True) -> None:  # noqa: D102
        pass

    def get_persistence_mode(self) -> bool:  # noqa: D102
        return True

    def get_supported_memory_clocks(self) -> list[int]:  # noqa: D102
        return []

    def set_memory_locked_clocks(self, min_clock_mhz: int, max_clock_mhz: int, block: bool = True) -> None:  # noqa: D102
        pass

    def reset_memory_locked_clocks(self, block: bool = True) -> None:  # noqa: D102
        pass

    def get_supported_graphics_clocks(self, memory_clock_mhz: int | None = None) -> list[int]:  # noqa: D102
        return []

    def set_gpu_locked_clocks(self, min_clock_mhz: int, max_clock_mhz: int, block: bool = True) -> None:  # noqa: D102
        pass

    def reset_gpu_locked_clocks(self, block: bool = True) -> None:  # noqa: D102
        pass

    def get_average_power_usage(self) -> int:
        """Average power at the current limit, mW."""
        return int(self._power_w_at(self._limit_mw / 1000.0) * 1000)

    def get_instant_power_usage(self) -> int:
        """Same as the average, mW."""
        return self.get_average_power_usage()

    def get_average_memory_power_usage(self) -> int:  # noqa: D102
        return 0

    def supports_get_total_energy_consumption(self) -> bool:
        """Yes (Volta and newer behave like this)."""
        return True

    def get_total_energy_consumption(self) -> int:
        """Cumulative energy, mJ (integer, like NVML)."""
        return int(self._energy_mj)

    def get_gpu_temperature(self) -> int:  # noqa: D102
        return 60


class SimulatedGPUs(GPUs):
    """A Zeus ``GPUs`` collection of :class:`SimulatedGPU`."""

    def __init__(self, gpus: Sequence[SimulatedGPU], ensure_homogeneous: bool = False) -> None:
        self._gpus = list(gpus)
        self._disable_sys_admin_warning = True

    def __del__(self) -> None:
        """Nothing to shut down."""

    @property
    def gpus(self) -> Sequence[SimulatedGPU]:
        """The simulated GPUs."""
        return self._gpus
