"""The ledger: one row per interval, JSON-safe, checkpointable, and the accounting over it.

Example:
    >>> led = Ledger()
    >>> led.add(Interval.account("2024-01-01T00:00:00+00:00", "2024-01-01T01:00:00+00:00", 300, 400.0, None,
    ...                          energy_j=3.6e6, steps=100, duration_s=3600.0))
    >>> led.carbon_g
    400.0
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from operator import attrgetter

J_PER_KWH = 3.6e6


def carbon_g(energy_j: float, intensity_g_per_kwh: float, pue: float = 1.0) -> float:
    """Operational emissions of ``energy_j`` at ``intensity_g_per_kwh``, times the data centre's PUE.

    Example:
        >>> carbon_g(3.6e6, 250.0, pue=1.2)
        300.0
    """
    return energy_j / J_PER_KWH * intensity_g_per_kwh * pue


@dataclass
class Interval:
    """One accounting interval: a stretch of training under one power limit.

    Attributes:
        start / end: ISO-8601 UTC times.
        power_limit_w: The limit in force (the limit that would have been set, in advisory mode).
        intensity_g_per_kwh: Measured grid intensity over the interval (time-weighted).
        forecast_g_per_kwh: The forecast the decision that opened the interval used (``None`` if none).
        energy_j: Energy of the run's scope (:mod:`chase_integrations.core.cost`): the GPUs of all ranks,
            plus the CPU and DRAM energy measured (RAPL), plus ``host_energy_j``.
        carbon_g: ``energy_j / 3.6e6 * intensity_g_per_kwh * pue``.
        steps: Optimizer steps in the interval.
        duration_s: Monotonic duration.
        baseline_energy_j / baseline_time_s: The same work at the default limit (from the profile;
            equal to the measured values when no profile is known yet), same scope: the GPU energy scaled
            by the profile, the rest of the server at the same power over the baseline's own duration.
        baseline_carbon_g: Emissions of that baseline at the same intensity.
        phase: ``"profile"`` or ``"train"``.
        intensity_source: ``"provider"``, ``"forecast"``, ``"last_known"`` or ``"static"``.
        gpu_energy_j / gpu_carbon_g / baseline_gpu_carbon_g: The GPUs alone.
        host_energy_j: The unmeasured rest of the server: ``host_power_w`` × GPUs × ``duration_s``, J.
        embodied_carbon_g / baseline_embodied_carbon_g: Embodied emissions over ``duration_s`` and over
            ``baseline_time_s`` (not in ``carbon_g``).
    """

    start: str
    end: str
    power_limit_w: int
    intensity_g_per_kwh: float
    forecast_g_per_kwh: float | None
    energy_j: float
    carbon_g: float
    steps: int = 0
    duration_s: float = 0.0
    baseline_energy_j: float = 0.0
    baseline_time_s: float = 0.0
    baseline_carbon_g: float = 0.0
    phase: str = "train"
    intensity_source: str = "provider"
    pue: float = 1.0
    cpu_energy_j: float | None = None
    dram_energy_j: float | None = None
    cpu_dram_carbon_g: float = 0.0
    gpu_energy_j: float = 0.0
    gpu_carbon_g: float = 0.0
    baseline_gpu_carbon_g: float = 0.0
    host_energy_j: float = 0.0
    embodied_carbon_g: float = 0.0
    baseline_embodied_carbon_g: float = 0.0

    @classmethod
    def account(
        cls,
        start: str,
        end: str,
        power_limit_w: int,
        intensity_g_per_kwh: float,
        forecast_g_per_kwh: float | None,
        *,
        energy_j: float,
        steps: int,
        duration_s: float,
        pue: float = 1.0,
        energy_ratio_to_default: float = 1.0,
        time_ratio_to_default: float = 1.0,
        phase: str = "train",
        intensity_source: str = "provider",
        cpu_energy_j: float | None = None,
        dram_energy_j: float | None = None,
        host_power_w: float = 0.0,
        embodied_g_per_s: float = 0.0,
    ) -> Interval:
        """Build an interval and do its arithmetic (the only place carbon is computed for the ledger).

        ``energy_j`` is the GPUs' energy. ``energy_ratio_to_default`` is ``e(limit) / e(default)`` from the
        GPU profile (1 when unknown), so the GPUs' baseline is their measured energy scaled to the default
        limit; the rest of the server (measured CPU and DRAM, and ``host_power_w``, the job's unmeasured
        host power in W) draws the same power over the baseline's own, shorter, duration.
        ``embodied_g_per_s`` is the job's embodied emissions per second.
        """
        gpu_energy = energy_j
        baseline_gpu = energy_j / energy_ratio_to_default if energy_ratio_to_default > 0 else energy_j
        baseline_time = duration_s / time_ratio_to_default if time_ratio_to_default > 0 else duration_s
        measured_host = (cpu_energy_j or 0.0) + (dram_energy_j or 0.0)
        host = host_power_w * duration_s
        energy_j = gpu_energy + measured_host + host
        baseline_energy = baseline_gpu + measured_host * (baseline_time / duration_s if duration_s > 0 else 1.0) \
            + host_power_w * baseline_time
        return cls(
            start=start,
            end=end,
            power_limit_w=int(power_limit_w),
            intensity_g_per_kwh=float(intensity_g_per_kwh),
            forecast_g_per_kwh=None if forecast_g_per_kwh is None else float(forecast_g_per_kwh),
            energy_j=float(energy_j),
            carbon_g=carbon_g(energy_j, intensity_g_per_kwh, pue),
            steps=int(steps),
            duration_s=float(duration_s),
            baseline_energy_j=float(baseline_energy),
            baseline_time_s=float(baseline_time),
            baseline_carbon_g=carbon_g(baseline_energy, intensity_g_per_kwh, pue),
            phase=phase,
            intensity_source=intensity_source,
            pue=float(pue),
            cpu_energy_j=None if cpu_energy_j is None else float(cpu_energy_j),
            dram_energy_j=None if dram_energy_j is None else float(dram_energy_j),
            cpu_dram_carbon_g=carbon_g(measured_host, intensity_g_per_kwh, pue),
            gpu_energy_j=float(gpu_energy),
            gpu_carbon_g=carbon_g(gpu_energy, intensity_g_per_kwh, pue),
            baseline_gpu_carbon_g=carbon_g(baseline_gpu, intensity_g_per_kwh, pue),
            host_energy_j=float(host),
            embodied_carbon_g=embodied_g_per_s * duration_s,
            baseline_embodied_carbon_g=embodied_g_per_s * baseline_time,
        )

    def to_dict(self) -> dict:
        """JSON-safe dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Interval:
        """Inverse of :meth:`to_dict`; unknown keys are ignored, missing optional keys get defaults.

        A row written before whole-node accounting has GPU-only ``energy_j``/``carbon_g``: they are its
        GPU values too.
        """
        known = {f.name for f in fields(cls)}
        row = {k: v for k, v in data.items() if k in known}
        if "gpu_energy_j" not in row and "energy_j" in row:
            row.update(gpu_energy_j=row["energy_j"], gpu_carbon_g=row.get("carbon_g", 0.0),
                       baseline_gpu_carbon_g=row.get("baseline_carbon_g", 0.0))
        return cls(**row)


@dataclass
class Ledger:
    """All intervals of a run, with running totals."""

    intervals: list[Interval] = field(default_factory=list)

    def _total(self, name: str) -> float:
        """Sum of one field over the intervals, in order (the decisions read several totals each time)."""
        return sum(map(attrgetter(name), self.intervals))

    def add(self, interval: Interval) -> None:
        """Append an interval."""
        self.intervals.append(interval)

    def __len__(self) -> int:
        return len(self.intervals)

    @property
    def energy_j(self) -> float:
        """Total energy of the run's scope (GPUs, measured CPU/DRAM, ``host_power_w``), J."""
        return self._total("energy_j")

    @property
    def gpu_energy_j(self) -> float:
        """Total GPU energy, J."""
        return self._total("gpu_energy_j")

    @property
    def gpu_carbon_g(self) -> float:
        """Emissions of the GPUs alone, gCO2eq."""
        return self._total("gpu_carbon_g")

    @property
    def gpu_carbon_saved_g(self) -> float:
        """Estimated GPU-only emissions avoided vs. the default limit, gCO2eq."""
        return self._total("baseline_gpu_carbon_g") - self.gpu_carbon_g

    @property
    def host_energy_j(self) -> float:
        """Energy of the unmeasured rest of the server (``host_power_w``), J."""
        return self._total("host_energy_j")

    @property
    def embodied_carbon_g(self) -> float:
        """Embodied emissions of the run's duration, gCO2eq (not in :attr:`carbon_g`)."""
        return self._total("embodied_carbon_g")

    @property
    def baseline_embodied_carbon_g(self) -> float:
        """Embodied emissions of the baseline's duration, gCO2eq."""
        return self._total("baseline_embodied_carbon_g")

    @property
    def carbon_g(self) -> float:
        """Total emissions, gCO2eq (the sum of the intervals')."""
        return self._total("carbon_g")

    @property
    def time_s(self) -> float:
        """Total training time covered, s."""
        return self._total("duration_s")

    @property
    def steps(self) -> int:
        """Total steps covered."""
        return self._total("steps")

    @property
    def baseline_carbon_g(self) -> float:
        """Emissions of the same work at the default limit, gCO2eq."""
        return self._total("baseline_carbon_g")

    @property
    def baseline_energy_j(self) -> float:
        """Energy of the same work at the default limit, J."""
        return self._total("baseline_energy_j")

    @property
    def baseline_time_s(self) -> float:
        """Time of the same work at the default limit, s."""
        return self._total("baseline_time_s")

    @property
    def cpu_energy_j(self) -> float | None:
        """CPU package energy (RAPL), J, or ``None`` when never measured."""
        values = [i.cpu_energy_j for i in self.intervals if i.cpu_energy_j is not None]
        return sum(values) if values else None

    @property
    def dram_energy_j(self) -> float | None:
        """DRAM energy (RAPL), J, or ``None`` when never measured."""
        values = [i.dram_energy_j for i in self.intervals if i.dram_energy_j is not None]
        return sum(values) if values else None

    @property
    def cpu_dram_carbon_g(self) -> float:
        """Emissions of the measured CPU and DRAM energy, gCO2eq (0 when not measured)."""
        return self._total("cpu_dram_carbon_g")

    @property
    def carbon_saved_g(self) -> float:
        """Estimated emissions avoided vs. the default limit, gCO2eq."""
        return self.baseline_carbon_g - self.carbon_g

    def to_list(self) -> list[dict]:
        """JSON-safe list of intervals."""
        return [i.to_dict() for i in self.intervals]

    @classmethod
    def from_list(cls, rows: list[dict]) -> Ledger:
        """Inverse of :meth:`to_list`."""
        return cls([Interval.from_dict(r) for r in rows])
