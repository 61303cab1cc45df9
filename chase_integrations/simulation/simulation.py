"""A simulated GPU node: Zeus GPUs driven by a measured profile, a simulated clock, and a trace provider."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from chase_integrations.carbon.formats import SIMULATION_ARGUMENTS
from chase_integrations.carbon.trace import TraceProvider
from chase_integrations.core.profile import PowerProfile
from chase_integrations.errors import ConfigurationError
from chase_integrations.simulation.clock import SimulatedClock, parse_utc
from chase_integrations.simulation.gpu import SimulatedGPU, SimulatedGPUs
from chase_integrations.simulation.gpu_profile import EpochProfile, default_steps_per_epoch, load_gpu_profile


class Simulation:
    """Everything a callback needs to run "on a GPU" on a CPU-only machine.

    Each training step (the callback calls :meth:`step`) advances the clock by the profile's time per
    step at the GPUs' current limit and each GPU's energy counter by the profile's power × that time.
    The real ``ZeusMonitor`` reads the counters; the callback knows nothing else about simulation.

    Args:
        gpu_profile: Zeus trace CSV (``summary_power_<gpu>.csv``), the short name of an embedded profile
            (``"a40"``, ``"h200"``, ...; :mod:`chase_integrations.datasets`) or a loaded :class:`EpochProfile`.
        workload: ``"dataset/network"`` in that file.
        batch_size: Batch size in that file.
        trace: Carbon-intensity CSV, or the short name of an embedded trace (``"US-CISO-2022"``), replayed
            by :attr:`provider` on the simulated clock.
        start: Simulated start time (ISO-8601, UTC).
        num_gpus: GPUs on the simulated node.
        steps_per_epoch: Training steps that make one profiled epoch (``None``: dataset size / batch
            size), so a tiny CPU model can stand in for hours of GPU training.
        initial_power_limit_w: Limit the GPUs start at (``None``: the highest profiled limit).
        allow_set_power_limit: ``False`` simulates a process without permission to set limits.
        trace_value_column / trace_time_column: Passed to :class:`TraceProvider`.
        optimizer: Only when the profile has several optimizers for the workload.
        cpus: A Zeus ``CPUs`` object whose RAPL-like counters are read alongside the GPUs (tests);
            ``None`` (default) measures no CPU/DRAM energy, never the real machine's.
        power_state_path: Keep the GPUs' power limits in this JSON file, so another process (the limit
            watchdog, a test) reaches the same GPUs (see :meth:`SimulatedGPUs.from_state_file`);
            ``None`` (default): in memory only, and no watchdog runs.

    Example:
        >>> sim = Simulation(gpu_profile="a40", workload="imagenet/resnet50", batch_size=256,
        ...                  trace="US-CISO-2022", start="2022-03-01T00:00:00Z", steps_per_epoch=20)
        >>> round(sim.provider.latest().g_per_kwh, 1), sim.power_limits_w, round(sim.step(), 1)
        (178.4, [300], 192.4)
        >>> ChaseCallback(provider=sim.provider, simulation=sim)  # doctest: +SKIP
    """

    def __init__(
        self,
        gpu_profile: str | Path | EpochProfile,
        workload: str = "imagenet/resnet50",
        batch_size: int = 256,
        trace: str | Path | None = None,
        start: str = "2023-03-01T00:00:00Z",
        num_gpus: int = 1,
        steps_per_epoch: int | None = None,
        initial_power_limit_w: int | None = None,
        allow_set_power_limit: bool = True,
        trace_value_column: str | None = None,
        trace_time_column: str | None = None,
        optimizer: str | None = None,
        cpus=None,
        power_state_path: str | Path | None = None,
    ) -> None:
        if isinstance(gpu_profile, EpochProfile):
            self.epoch_profile = gpu_profile
        else:
            self.epoch_profile = load_gpu_profile(gpu_profile, workload, batch_size, optimizer)
        if isinstance(num_gpus, bool) or not isinstance(num_gpus, int) or num_gpus < 1:
            raise ConfigurationError.invalid("num_gpus", num_gpus, "an integer >= 1")
        if steps_per_epoch is None:
            steps_per_epoch = default_steps_per_epoch(self.epoch_profile.workload, self.epoch_profile.batch_size)
        if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
            raise ConfigurationError.invalid("steps_per_epoch", steps_per_epoch, "an integer >= 1 or None")
        self.steps_per_epoch = steps_per_epoch
        self.num_gpus = num_gpus
        self.clock = SimulatedClock(parse_utc(start))
        #: Per-step profile of ONE simulated GPU (what each GPU's counter follows).
        self.step_profile = self.epoch_profile.step_profile(steps_per_epoch, num_gpus=1)
        limits = self.step_profile.limits_w
        if initial_power_limit_w is not None and not limits[0] <= initial_power_limit_w <= limits[-1]:
            raise ConfigurationError.invalid(
                "initial_power_limit_w", initial_power_limit_w, f"within [{limits[0]}, {limits[-1]}] W"
            )
        name = f"{Path(str(gpu_profile)).stem if not isinstance(gpu_profile, EpochProfile) else 'profile'} (simulated)"
        power_w_at = _power_fn(self.step_profile)
        self.gpus = SimulatedGPUs(
            [
                SimulatedGPU(
                    i,
                    name,
                    limits[0],
                    limits[-1],
                    power_w_at=power_w_at,
                    initial_limit_w=initial_power_limit_w,
                    allow_set=allow_set_power_limit,
                )
                for i in range(num_gpus)
            ],
            state_path=None if power_state_path is None else str(power_state_path),
        )
        self.provider = (
            TraceProvider(trace, time_column=trace_time_column, value_column=trace_value_column, clock=self.clock,
                          arguments=SIMULATION_ARGUMENTS)
            if trace is not None
            else None
        )
        start_dt = self.clock.now()
        if self.provider is not None and not self.provider.start <= start_dt <= self.provider.end:
            raise ConfigurationError.invalid(
                "start", start,
                f"a time within the trace ({self.provider.start.isoformat()} to {self.provider.end.isoformat()})",
            )
        self.steps = 0
        #: A Zeus ``CPUs`` (e.g. fake RAPL in tests) measured alongside the GPUs; ``None``: not measured.
        self.cpus = cpus

    def step(self, gpu_indices: list[int] | None = None) -> float:
        """Simulate one training step on ``gpu_indices`` (default: all); return its seconds.

        The GPUs work in lockstep: the clock advances by the slowest GPU's step time.
        """
        indices = range(self.num_gpus) if gpu_indices is None else gpu_indices
        gpus, time_per_step_s = self.gpus.gpus, self.step_profile.time_per_step_s
        longest = 0.0
        for i in indices:
            gpu = gpus[i]
            seconds = time_per_step_s(gpu.power_limit_w)
            gpu.run(seconds)
            if seconds > longest:
                longest = seconds
        self.clock.advance(longest)
        self.steps += 1
        return longest

    @property
    def power_limits_w(self) -> list[int]:
        """Current limit of each simulated GPU, W."""
        return [g.power_limit_w for g in self.gpus.gpus]


def _power_fn(profile: PowerProfile) -> Callable[[float], float]:
    """``limit_w -> average power (W)`` of one step under ``profile``, memoised (a profile never changes).

    The simulated GPUs ask for it on every step.
    """
    power_w: dict[float, float] = {}

    def power_w_at(limit_w: float) -> float:
        value = power_w.get(limit_w)
        if value is None:
            value = power_w[limit_w] = profile.energy_per_step_j(limit_w) / profile.time_per_step_s(limit_w)
        return value

    return power_w_at
