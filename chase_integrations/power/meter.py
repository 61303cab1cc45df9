"""GPU energy from Zeus ``ZeusMonitor`` windows, in joules.

Zeus sharp edges handled here:

* ``ZeusMonitor`` takes its GPUs from the module singleton ``zeus.device.gpu.get_gpus()``; we swap
  our ``GPUs`` object in only while constructing the monitor and put the previous one back.
* ``begin_window``/``end_window`` call ``torch.cuda.synchronize`` unless told not to; we synchronise
  only on real GPUs and only at interval boundaries, never per step.
* Very short windows read zero energy (the NVML counter updates every ~100 ms) and Zeus warns each
  time; we silence that warning and report the window as zero with ``suspicious=True``.
* A counter that goes backwards (driver reload, wrap) gives a negative delta; we clamp it to zero
  and say so once.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)

_ids = itertools.count()


@dataclass(frozen=True)
class EnergyReading:
    """Energy of one window, in J.

    Attributes:
        energy_j: Total over the owned GPUs.
        suspicious: A GPU read zero or its counter went backwards.
        cpu_energy_j / dram_energy_j: CPU package and DRAM energy from RAPL, or ``None`` when not
            measured (no RAPL, no permission, or not this process's job to measure it).
    """

    energy_j: float
    suspicious: bool = False
    cpu_energy_j: float | None = None
    dram_energy_j: float | None = None


class EnergyMeter:
    """Measures GPU energy over named windows with a real ``ZeusMonitor``.

    Args:
        gpus: A Zeus ``GPUs`` object.
        gpu_indices: Indices this process owns.
        sync_execution: Whether to synchronise CUDA at window boundaries (real GPUs only).
    """

    def __init__(self, gpus, gpu_indices: Sequence[int], sync_execution: bool = False, cpus=None) -> None:
        self.gpus = gpus
        self.gpu_indices = list(gpu_indices)
        self.sync_execution = sync_execution
        #: ``None``: no CPU/DRAM measurement; ``"auto"``: RAPL through Zeus when readable; or a Zeus ``CPUs``.
        self.cpus = cpus
        self._monitor = None
        self._prefix = f"chase{next(_ids)}"
        self.anomalies: list[str] = []

    def _get_monitor(self):
        if self._monitor is None:
            import zeus.device.cpu as zeus_cpu
            import zeus.device.gpu as zeus_gpu
            from zeus.monitor import ZeusMonitor

            previous, previous_cpus = zeus_gpu._gpus, zeus_cpu._cpus
            zeus_gpu._gpus = self.gpus
            if self.cpus not in (None, "auto"):
                zeus_cpu._cpus = self.cpus
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    cpu_indices = [] if self.cpus is None else None
                    try:
                        self._monitor = ZeusMonitor(gpu_indices=self.gpu_indices, cpu_indices=cpu_indices)
                    except Exception as e:  # RAPL present but unreadable, or similar: GPUs only
                        logger.info("CPU/DRAM energy not measured (%s: %s).", type(e).__name__, e)
                        self._monitor = ZeusMonitor(gpu_indices=self.gpu_indices, cpu_indices=[])
            finally:
                zeus_gpu._gpus, zeus_cpu._cpus = previous, previous_cpus
            self._monitor.gpus = self.gpus
        return self._monitor

    def begin(self, name: str) -> None:
        """Open window ``name`` (restarting it if it exists)."""
        self._get_monitor().begin_window(f"{self._prefix}:{name}", sync_execution=self.sync_execution, restart=True)

    def end(self, name: str) -> EnergyReading:
        """Close window ``name`` and return its energy."""
        monitor = self._get_monitor()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*energy consumption of one or more GPUs was measured as zero.*")
            m = monitor.end_window(f"{self._prefix}:{name}", sync_execution=self.sync_execution)
        values = [m.gpu_energy.get(i, 0.0) for i in self.gpu_indices]
        suspicious = False
        if any(v < 0 for v in values):
            self.anomalies.append(f"energy counter went backwards in window {name!r}: {values} J")
            logger.warning("GPU energy counter went backwards (%s J); counting the window as 0 J.", values)
            values = [max(0.0, v) for v in values]
            suspicious = True
        if any(v == 0.0 for v in values):
            suspicious = True
        cpu = float(sum(m.cpu_energy.values())) if m.cpu_energy else None
        dram = float(sum(m.dram_energy.values())) if m.dram_energy else None
        return EnergyReading(float(sum(values)), suspicious, cpu, dram)

    @property
    def measures_cpu(self) -> bool:
        """Whether CPU package energy is being measured (RAPL readable)."""
        monitor = self._get_monitor()
        return bool(getattr(monitor, "cpu_indices", []))

    def cancel(self, name: str) -> None:
        """Discard window ``name`` if open."""
        monitor = self._get_monitor()
        key = f"{self._prefix}:{name}"
        if key in getattr(monitor, "measurement_states", {}):
            monitor.end_window(key, sync_execution=False, cancel=True)

    def is_open(self, name: str) -> bool:
        """Whether window ``name`` is open."""
        return f"{self._prefix}:{name}" in getattr(self._get_monitor(), "measurement_states", {})
