"""The exact baseline of a simulated job: the same job replayed at the default limit from the same start.

The engine's ledger estimates its baseline in-run (measured energy scaled by the profile, at each
interval's intensity); the simulator knows the whole trace, so it also replays the job at the default
limit exactly. Both cover the run's scope (:mod:`chase_integrations.core.cost`): the GPUs, and the rest of
the server (``host_power_w``) over the baseline's own, shorter, duration. The run's report carries both,
labelled, so one run shows one saving per baseline, never two unlabelled figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from chase_integrations.core.cost import CostModel
from chase_integrations.core.ledger import Ledger, carbon_g
from chase_integrations.core.profile import PowerProfile


@dataclass(frozen=True)
class ExactBaseline:
    """The job at the default limit: scope energy (J), time (s), operational and embodied carbon (gCO2eq)."""

    energy_j: float
    gpu_energy_j: float
    time_s: float
    carbon_g: float
    gpu_carbon_g: float
    embodied_carbon_g: float

    def reduction(self, ledger: Ledger) -> float:
        """``1 - run / baseline``, operational (scope) plus embodied emissions."""
        base = self.carbon_g + self.embodied_carbon_g
        return 1.0 - (ledger.carbon_g + ledger.embodied_carbon_g) / base if base > 0 else 0.0

    def gpu_reduction(self, ledger: Ledger) -> float:
        """``1 - run / baseline`` for the GPUs alone."""
        return 1.0 - ledger.gpu_carbon_g / self.gpu_carbon_g if self.gpu_carbon_g > 0 else 0.0


def exact_baseline(profile: PowerProfile, total_steps: int, cost: CostModel, provider, start: datetime
                   ) -> ExactBaseline:
    """``total_steps`` at ``profile``'s default limit from ``start``, at the trace's mean intensity over them."""
    hi = profile.default_limit_w
    time_s = total_steps * profile.time_per_step_s(hi)
    gpu = total_steps * profile.energy_per_step_j(hi)
    energy = gpu + cost.unmeasured_host_w * time_s
    ci = provider.mean_between(start, start + timedelta(seconds=time_s))
    return ExactBaseline(energy, gpu, time_s, carbon_g(energy, ci, cost.pue), carbon_g(gpu, ci, cost.pue),
                         cost.embodied_g_per_s * time_s)


def with_exact_baseline(report: dict, base: ExactBaseline, ledger: Ledger) -> dict:
    """The run report plus ``exact_baseline`` beside the engine's ``estimated_carbon_reduction``, both labelled."""
    estimate = report["baseline_carbon_g"] + report.get("baseline_embodied_carbon_g", 0.0)
    return report | {
        "exact_baseline": {"carbon_g": base.carbon_g, "energy_j": base.energy_j, "time_s": base.time_s,
                           "embodied_carbon_g": base.embodied_carbon_g, "carbon_reduction": base.reduction(ledger),
                           "what": "the same job replayed at the default limit from the same start"},
        "estimated_carbon_reduction": 1.0 - report["total_carbon_g"] / estimate if estimate > 0 else 0.0,
    }
