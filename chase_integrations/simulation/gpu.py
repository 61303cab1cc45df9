"""A Zeus ``GPUs`` implementation driven by a measured profile.

Each simulated GPU has a power limit (mW, like NVML), allowed constraints, and a cumulative energy
counter (mJ) that :meth:`SimulatedGPU.run` advances by ``average_power(limit) × seconds``. The real
``ZeusMonitor`` reads it through the Zeus interface, exactly as it reads NVML.

Faults can be injected for tests: ``allow_set=False`` makes setters raise Zeus's
``ZeusGPUNoPermissionError``; ``fail_next_set`` raises a given Zeus error once.

With ``SimulatedGPUs(..., state_path=...)`` the limits live in a file (:mod:`.limit_file`) that other
processes open with :meth:`SimulatedGPUs.from_state_file`, as every process on a node sees a real GPU's
limit: the limit watchdog (:mod:`chase_integrations.power.watchdog`) restores them after the trainer dies.
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

    #: Where the limit lives when shared with other processes (set by ``SimulatedGPUs(state_path=...)``).
    _limit_file = None

    @property
    def _limit_mw(self) -> int:
        return self._limit_file.read_mw(self.gpu_index) if self._limit_file is not None else self._own_limit_mw

    @_limit_mw.setter
    def _limit_mw(self, power_limit_mw: int) -> None:
        if self._limit_file is not None:
            self._limit_file.write_mw(self.gpu_index, power_limit_mw)
        else:
            self._own_limit_mw = power_limit_mw

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
    """A Zeus ``GPUs`` collection of :class:`SimulatedGPU`.

    Args:
        gpus: The simulated GPUs.
        ensure_homogeneous: Ignored (Zeus's signature).
        state_path: Keep the limits in this JSON file (written now, then on every set) so other processes
            reach the same GPUs through :meth:`from_state_file`; ``None``: in memory only.
    """

    def __init__(
        self, gpus: Sequence[SimulatedGPU], ensure_homogeneous: bool = False, state_path: str | None = None
    ) -> None:
        self._gpus = list(gpus)
        self._disable_sys_admin_warning = True
        self.state_path = None if state_path is None else str(state_path)
        if self.state_path is not None:
            from chase_integrations.simulation.limit_file import LimitFile

            shared = LimitFile(self.state_path)
            shared.create(
                {
                    g.gpu_index: {
                        "name": g.get_name(),
                        "min_limit_w": g._min_mw // 1000,
                        "max_limit_w": g._max_mw // 1000,
                        "power_limit_mw": g._limit_mw,
                    }
                    for g in self._gpus
                }
            )
            for g in self._gpus:
                g._limit_file = shared

    @classmethod
    def from_state_file(cls, state_path: str) -> SimulatedGPUs:
        """The GPUs described by another process's ``state_path`` (limits shared; energy is not)."""
        from chase_integrations.simulation.limit_file import LimitFile

        shared = LimitFile(state_path)
        gpus = []
        for index, g in sorted(shared.read()["gpus"].items(), key=lambda kv: int(kv[0])):
            gpu = SimulatedGPU(int(index), g["name"], g["min_limit_w"], g["max_limit_w"], power_w_at=lambda w: w)
            gpu._limit_file = shared
            gpus.append(gpu)
        out = cls(gpus)
        out.state_path = str(state_path)
        return out

    def watchdog_spec(self) -> dict | None:
        """How the limit watchdog's process opens these GPUs: only when their limits live in a file."""
        if self.state_path is None:
            return None
        return {"factory": f"{__name__}:SimulatedGPUs.from_state_file", "args": [self.state_path]}

    def __del__(self) -> None:
        """Nothing to shut down."""

    @property
    def gpus(self) -> Sequence[SimulatedGPU]:
        """The simulated GPUs."""
        return self._gpus
