"""Interval accounting: the open interval, its closing into the ledger, and the metrics it yields.

Every stretch of training under one limit is an interval. :class:`Accountant` opens it (a Zeus window on
every rank), counts its steps, and closes it: energy summed over ranks, time maxed over ranks, the
grid's intensity measured on rank 0 and broadcast, one :class:`~chase_integrations.core.ledger.Interval`
added to the ledger. Closing returns the metrics to log (keys defined once, below): the session's only
channel for metrics.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from datetime import datetime

from chase_integrations.core.collective import Collective
from chase_integrations.core.cost import GPU_SCOPE_WARNING, CostModel
from chase_integrations.core.intensity import IntensitySource, IntervalIntensity
from chase_integrations.core.interfaces import EnergyMeter
from chase_integrations.core.ledger import Interval, Ledger
from chase_integrations.core.profile import PowerProfile
from chase_integrations.errors import ConfigurationError

#: Logged metric keys (part of the log format: renaming one is a breaking change).
POWER_LIMIT_W = "chase/power_limit_w"
INTENSITY_G_PER_KWH = "chase/intensity_g_per_kwh"
FORECAST_G_PER_KWH = "chase/forecast_g_per_kwh"
ENERGY_J = "chase/energy_j"
CARBON_G = "chase/carbon_g"
CARBON_SAVED_G = "chase/carbon_saved_g"
GPU_CARBON_G = "chase/gpu_carbon_g"
PREDICTED_TOTAL_CARBON_G = "chase/predicted_total_carbon_g"
#: Shown on a progress bar where the framework has one.
PROGRESS_BAR_KEYS = (POWER_LIMIT_W, CARBON_G)
#: Every logged key: (unit, meaning). The adapters' docstrings and docs/metrics.md show this table.
METRICS: dict[str, tuple[str, str]] = {
    POWER_LIMIT_W: ("W", "limit in force for the interval just ended"),
    INTENSITY_G_PER_KWH: ("gCO2eq/kWh", "measured grid intensity over that interval"),
    FORECAST_G_PER_KWH: ("gCO2eq/kWh", "the forecast the decision used"),
    ENERGY_J: ("J", "cumulative energy of the report's scope (GPUs of all ranks, measured CPU/DRAM, host_power_w)"),
    CARBON_G: ("gCO2eq", "cumulative operational emissions of the report's scope"),
    GPU_CARBON_G: ("gCO2eq", "cumulative operational emissions of the GPUs alone"),
    CARBON_SAVED_G: ("gCO2eq", "cumulative estimate avoided vs. the default limit (same scope)"),
    PREDICTED_TOTAL_CARBON_G: ("gCO2eq", "the whole job's predicted emissions (when its length is known)"),
}


def metrics_table(indent: int = 4) -> str:
    """:data:`METRICS` as a reStructuredText table (for docstrings)."""
    rule = "=" * 34 + "  " + "=" * 12 + "  " + "=" * 62
    rows = [rule, f"{'key':34}  {'unit':12}  meaning", rule]
    rows += [f"{'``' + key + '``':34}  {unit:12}  {meaning}" for key, (unit, meaning) in METRICS.items()]
    rows.append(rule)
    return ("\n" + " " * indent).join(rows)


@dataclass
class OpenInterval:
    """The interval in progress.

    Attributes:
        start: Wall time it opened (UTC).
        t0_s: The clock's monotonic seconds when it opened.
        limit_w: The limit in force (``None``: not known, the default limit is assumed).
        forecast_g_per_kwh: The forecast of the decision that opened it.
        phase: ``"train"`` or ``"profile"``.
        steps: Optimizer steps so far.
    """

    start: datetime
    t0_s: float
    limit_w: int | None
    forecast_g_per_kwh: float | None
    phase: str = "train"
    steps: int = 0


def interval_metrics(ledger: Ledger, interval: Interval) -> dict[str, float]:
    """The metrics logged after ``interval`` closed (cumulative totals of ``ledger``).

    Example:
        >>> ledger = Ledger()
        >>> iv = Interval.account("a", "b", 250, 400.0, None, energy_j=3.6e6, steps=1, duration_s=1.0)
        >>> ledger.add(iv)
        >>> interval_metrics(ledger, iv)["chase/carbon_g"]
        400.0
    """
    carbon = ledger.carbon_g
    metrics = {
        POWER_LIMIT_W: float(interval.power_limit_w),
        INTENSITY_G_PER_KWH: interval.intensity_g_per_kwh,
        ENERGY_J: ledger.energy_j,
        CARBON_G: carbon,
        GPU_CARBON_G: ledger.gpu_carbon_g,
        CARBON_SAVED_G: ledger.baseline_carbon_g - carbon,  # Ledger.carbon_saved_g
    }
    if interval.forecast_g_per_kwh is not None:
        metrics[FORECAST_G_PER_KWH] = interval.forecast_g_per_kwh
    return metrics


class Accountant:
    """Opens and closes intervals; every rank calls :meth:`close` at the same step (it runs collectives).

    Args:
        clock: The session's clock.
        collective: Cross-rank operations.
        meter: This rank's energy meter (``None``: it owns no GPU).
        intensity: Rank 0's intensity source (``None`` on the other ranks).
        pue: Data-centre PUE, or the whole :class:`~chase_integrations.core.cost.CostModel` (its ``num_gpus``
            is replaced by the job's GPU count, summed over ranks at the first close).
        local_gpus: GPUs this rank meters.
        warner: Warns once when the run's scope is the GPUs alone (``None``: no warning).
    """

    def __init__(self, clock, collective: Collective, meter: EnergyMeter | None, intensity: IntensitySource | None,
                 pue: float | CostModel, local_gpus: int = 1, warner=None) -> None:
        self.clock = clock
        self.collective = collective
        self.meter = meter
        self.intensity = intensity
        self._cost = pue if isinstance(pue, CostModel) else CostModel(pue=float(pue))
        self.pue = self._cost.pue
        self.local_gpus = local_gpus if meter is not None else 0
        self.warner = warner
        self._job_gpus: int | None = None
        self.open: OpenInterval | None = None

    @property
    def cost(self) -> CostModel:
        """The cost model, with the job's GPU count once the first interval closed."""
        return self._cost

    def _count_gpus(self) -> None:
        """The job's GPU count (every rank, at its first close: one collective, the same on all ranks)."""
        if self._job_gpus is None:
            c = self.collective
            total = float(self.local_gpus) if c.world_size == 1 else c.sum_max(float(self.local_gpus), 0.0)[0]
            self._job_gpus = int(round(total))
            self._cost = dataclasses.replace(self._cost, num_gpus=self._job_gpus)

    def open_interval(self, now: datetime, limit_w: int | None, forecast: float | None, phase: str = "train") -> None:
        """Open a new interval (and its Zeus window)."""
        self.open = OpenInterval(now, self.clock.monotonic(), limit_w, forecast, phase)
        if self.meter is not None:
            self.meter.begin("interval")

    def count_step(self) -> None:
        """One optimizer step in the open interval."""
        if self.open is not None:
            self.open.steps += 1

    def close(self, now: datetime, ledger: Ledger, profile: PowerProfile | None,
              default_limit_w: int | None) -> tuple[dict[str, float], IntervalIntensity | None]:
        """Close the open interval on every rank; returns its metrics and (rank 0) the intensity read."""
        self._count_gpus()
        iv, self.open = self.open, None
        if iv is None:
            return {}, None
        reading = self.meter.end("interval") if self.meter is not None else None
        energy = reading.energy_j if reading is not None else 0.0
        duration = self.clock.monotonic() - iv.t0_s
        c = self.collective
        energy_sum, duration_max = c.sum_max(energy, duration)
        cpu = reading.cpu_energy_j if reading is not None else None
        dram = reading.dram_energy_j if reading is not None else None
        # CPU/DRAM (RAPL) is measured by one process per node; every rank joins the same reductions.
        cpu_sum, cpu_measured = c.sum_max(cpu or 0.0, 1.0 if cpu is not None else 0.0)
        dram_sum, dram_measured = c.sum_max(dram or 0.0, 1.0 if dram is not None else 0.0)
        measured = None
        if self.intensity is not None:
            measured = self.intensity.interval_mean(iv.start, now, iv.forecast_g_per_kwh)
        shared = c.broadcast((measured.g_per_kwh, measured.source) if measured is not None else None)
        metrics = self._record(ledger, iv, now, energy_sum, duration_max, shared[0], shared[1], profile,
                               default_limit_w, cpu_sum if cpu_measured else None, dram_sum if dram_measured else None)
        return metrics, measured

    def close_last(self, now: datetime, ledger: Ledger, profile: PowerProfile | None, default_limit_w: int | None,
                   collective: bool) -> dict[str, float]:
        """Close the last interval at the run's end: with collectives when it finished, else locally."""
        if self.open is None:
            return {}
        if collective:
            return self.close(now, ledger, profile, default_limit_w)[0]
        return self.close_local(now, ledger, profile, default_limit_w)

    def close_local(self, now: datetime, ledger: Ledger, profile: PowerProfile | None,
                    default_limit_w: int | None) -> dict[str, float]:
        """Close without collectives: on an abort, other ranks may be gone, so never block."""
        iv, self.open = self.open, None
        if iv is None:
            return {}
        try:
            energy = self.meter.end("interval").energy_j if self.meter is not None else 0.0
        except Exception:  # aborting: never let accounting hide the real error
            energy = 0.0
        duration = self.clock.monotonic() - iv.t0_s
        if self.intensity is not None:
            measured = self.intensity.interval_mean(iv.start, now, iv.forecast_g_per_kwh)
            value, source = measured.g_per_kwh, measured.source
        else:
            value, source = (iv.forecast_g_per_kwh or 0.0), "unknown"
        if self._job_gpus is None:  # never closed before: no collective now, assume equal ranks
            self._job_gpus = self.local_gpus * self.collective.world_size
            self._cost = dataclasses.replace(self._cost, num_gpus=self._job_gpus)
        return self._record(ledger, iv, now, energy * self.collective.world_size, duration, value, source, profile,
                            default_limit_w, None, None)

    def _record(self, ledger: Ledger, iv: OpenInterval, now: datetime, energy_j: float, duration_s: float,
                intensity: float, source: str, profile: PowerProfile | None, default_limit_w: int | None,
                cpu_energy_j: float | None, dram_energy_j: float | None) -> dict[str, float]:
        if iv.steps == 0 and (duration_s <= 0 or energy_j == 0.0):
            return {}
        limit = iv.limit_w if iv.limit_w is not None else (default_limit_w or 0)
        e_ratio = t_ratio = 1.0
        if profile is not None and default_limit_w in profile and limit:
            with contextlib.suppress(ConfigurationError):
                t_ratio, e_ratio = profile.relative(limit)
        interval = Interval.account(
            iv.start.isoformat(),
            now.isoformat(),
            limit,
            intensity,
            iv.forecast_g_per_kwh,
            energy_j=energy_j,
            steps=iv.steps,
            duration_s=duration_s,
            pue=self.pue,
            energy_ratio_to_default=e_ratio,
            time_ratio_to_default=t_ratio,
            phase=iv.phase,
            intensity_source=source,
            cpu_energy_j=cpu_energy_j,
            dram_energy_j=dram_energy_j,
            host_power_w=self._cost.unmeasured_host_w,
            embodied_g_per_s=self._cost.embodied_g_per_s,
        )
        if (self.warner is not None and self.intensity is not None and self._cost.host_power_w is None
                and cpu_energy_j is None and dram_energy_j is None and energy_j > 0):
            self.warner.warn("gpu-scope", GPU_SCOPE_WARNING)
        ledger.add(interval)
        return interval_metrics(ledger, interval)


def counter_notes(meter: EnergyMeter | None) -> list[str]:
    """Report notes about the energy counter (windows where it went backwards and was counted as 0 J)."""
    anomalies = meter.anomalies if meter is not None else []
    if not anomalies:
        return []
    return [f"GPU energy counter went backwards in {len(anomalies)} window(s), counted as 0 J "
            f"(first: {anomalies[0]})."]
