"""The one place that turns the user's arguments into objects: provider view, forecaster, policy, power.

The rest of the core speaks to the interfaces of :mod:`chase_integrations.core.interfaces`; this module
alone knows the concrete classes of ``forecast/``, ``power/`` and ``simulation/`` (imported where they
are first needed, so that importing the core stays cheap). A test checks that no other core module
imports an outer layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chase_integrations._warnings import OnceWarner
from chase_integrations.core.accounting import Accountant
from chase_integrations.core.clock import SystemClock
from chase_integrations.core.config import ChaseConfig
from chase_integrations.core.cost import CostModel
from chase_integrations.core.decide import Decider
from chase_integrations.core.intensity import IntensitySource
from chase_integrations.core.policies.base import Policy, make_policy
from chase_integrations.errors import PowerControlError


@dataclass
class Parts:
    """The objects one run is made of (no hardware touched yet).

    Attributes:
        config: The validated configuration.
        policy: The policy object.
        clock: The simulation's clock, else the system clock.
        step_hook: Called with the rank's GPU indices after every optimizer step (the simulation advances
            its GPUs and clock), else ``None``.
    """

    config: ChaseConfig
    policy: Policy
    clock: object
    step_hook: Callable[[list[int]], object] | None = None

    def decider(self, warner: OnceWarner) -> tuple[IntensitySource, Decider]:
        """Rank 0's intensity source and decider."""
        from chase_integrations.forecast import make_forecaster

        cfg = self.config
        intensity = IntensitySource(cfg.provider, self.clock, cfg.max_reading_age_s, cfg.fallback_intensity_g_per_kwh,
                                    cfg.strict, warner)
        decider = Decider(self.policy, intensity, make_forecaster(cfg.forecaster), self.clock,
                          cfg.decision_interval_s, cfg.pue, cfg.max_slowdown)
        return intensity, decider

    def accountant(self, collective, meter, intensity, warner: OnceWarner, setup) -> Accountant:
        """This rank's :class:`Accountant`, with the whole-node cost model of the arguments.

        A simulated run states its scope in its report and result instead of warning that it is the GPUs
        alone (the simulated server has no CPUs to measure).
        """
        cfg = self.config
        cost = CostModel(cfg.pue, cfg.host_power_w, cfg.embodied_g_per_gpu_hour)
        controller = setup.controller  # a startup.GpuSetup
        local_gpus = len(controller.gpu_indices) if controller is not None else 0
        return Accountant(self.clock, collective, meter, intensity, cost, local_gpus,
                          warner if cfg.simulation is None else None)

    def gpus(self, warner: OnceWarner):
        """The Zeus ``GPUs`` to manage: simulated, given, or found through Zeus (``None``: none)."""
        cfg = self.config
        if cfg.simulation is not None:
            return cfg.simulation.gpus
        if cfg.gpus is not None:
            return cfg.gpus
        try:
            from zeus.device import get_gpus

            gpus = get_gpus()
            if len(gpus) == 0:
                raise RuntimeError("no GPUs found")
            return gpus
        except Exception as e:
            if cfg.strict:
                raise PowerControlError(f"No GPU could be managed through Zeus: {e}") from e
            warner.warn(
                "no-gpu",
                f"No GPU could be managed through Zeus ({type(e).__name__}: {e}); chase-integrations records carbon "
                "intensity only. Pass strict=True to make this an error, or simulation=... to simulate a GPU.",
            )
            return None

    def power(self, local_rank: int) -> Callable:
        """``(gpus, gpu_indices) -> (controller, meter)`` for this rank."""
        from chase_integrations.power.limits import PowerLimitController
        from chase_integrations.power.meter import EnergyMeter

        cfg = self.config
        sim = cfg.simulation

        def build(gpus, gpu_indices: list[int]):
            controller = PowerLimitController(gpus, gpu_indices, watchdog=cfg.watchdog, strict=cfg.strict)
            if sim is not None:
                cpus = getattr(sim, "cpus", None)  # simulated runs never read the real machine's RAPL
            else:
                cpus = "auto" if local_rank == 0 else None  # one process per node reads RAPL
            meter = EnergyMeter(gpus, gpu_indices, sync_execution=sim is None and cfg.gpus is None, cpus=cpus)
            return controller, meter

        return build


def compose(config: ChaseConfig) -> Parts:
    """The objects for ``config`` (cheap: no hardware, no network)."""
    sim = config.simulation
    clock = sim.clock if sim is not None else SystemClock()
    step_hook = (lambda gpu_indices: sim.step(gpu_indices)) if sim is not None else None  # looked up each step
    return Parts(config, make_policy(config.policy, config), clock, step_hook)
