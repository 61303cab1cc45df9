"""The one cost model: what a training step costs the whole server, not just its GPUs.

A step at limit ``p`` takes ``t(p)`` seconds and its GPUs draw ``e_gpu(p)`` joules. For as long as the
step runs, the rest of the server draws power too: the CPUs and DRAM (measured through Zeus's RAPL
support when readable, ``e_host_measured(p)``) and everything that is not measured (fans, NICs,
storage, PSU losses: ``host_power_w`` per GPU, an assumption the user states). A lower limit makes the
step longer, so the rest of the server costs more per step. The carbon of one step is::

    CI × PUE × (e_gpu(p) + e_host_measured(p) + host_power_w × n_gpus × t(p)) + embodied × n_gpus × t(p)

where ``embodied`` is the server's embodied emissions per GPU-hour (manufacture, amortised over its
life), independent of the grid's intensity. Every decision and every reference uses this model:

* The energy part is still a per-step energy per limit, linear between measured limits, so
  :meth:`CostModel.node_profile` turns the GPU :class:`~chase_integrations.core.profile.PowerProfile`
  into a node profile and every policy, the budget solver and the oracle work on it unchanged.
* The embodied part is gCO2eq per second whatever the intensity: a floor under the budget's price of
  time, :attr:`CostModel.min_mu` (in the solver's units, gCO2eq/kWh·J per s).

The ``chase`` policy keeps the paper's GPU-only rule (:class:`~chase_integrations.core.policies.ChasePolicy`).

Example:
    >>> from chase_integrations.core.profile import PowerProfile
    >>> gpu = PowerProfile({300: (1.0, 300.0), 225: (1.1, 225.0)})
    >>> node = CostModel(host_power_w=150.0, num_gpus=2).node_profile(gpu)
    >>> node.energy_per_step_j(300), round(node.energy_per_step_j(225), 6)
    (600.0, 555.0)
    >>> CostModel(embodied_g_per_gpu_hour=10.0, num_gpus=2, pue=1.25).min_mu
    16000.0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chase_integrations.core.ledger import J_PER_KWH, Ledger
from chase_integrations.core.profile import PowerProfile

#: The report's ``scope``: what ``carbon_g`` and ``carbon_saved_g`` cover.
SCOPE_GPU = "gpu"
SCOPE_GPU_CPU_DRAM = "gpu+cpu+dram"
SCOPE_NODE = "node"

_NODE_PROFILES: dict[tuple, PowerProfile] = {}
_NODE_PROFILES_MAX = 64


@dataclass(frozen=True)
class CostModel:
    """The cost of one training step for the whole job (all its GPUs and their share of the servers).

    Attributes:
        pue: Data-centre power usage effectiveness (>= 1).
        host_power_w: Unmeasured power of the rest of the server, W per GPU (``None``: not counted).
        embodied_g_per_gpu_hour: Embodied emissions charged per GPU-hour, gCO2eq.
        num_gpus: GPUs of the job (all ranks).
    """

    pue: float = 1.0
    host_power_w: float | None = None
    embodied_g_per_gpu_hour: float = 0.0
    num_gpus: int = 1

    @property
    def unmeasured_host_w(self) -> float:
        """Unmeasured power of the job's share of its servers, W (``host_power_w × num_gpus``)."""
        return (self.host_power_w or 0.0) * self.num_gpus

    @property
    def embodied_g_per_s(self) -> float:
        """Embodied emissions of the job per second of running, gCO2eq/s."""
        return self.embodied_g_per_gpu_hour * self.num_gpus / 3600.0

    @property
    def min_mu(self) -> float:
        """The embodied cost as a price of time in the budget solver's units (``CI·e`` is gCO2eq/kWh·J).

        The solver minimises ``CI·e(p) + μ·t(p)``; the model's cost divided by ``PUE / 3.6e6`` is
        ``CI·e(p) + (embodied·3.6e6 / PUE + μ')·t(p)`` with the budget's own price ``μ' >= 0``.
        """
        return self.embodied_g_per_s * J_PER_KWH / self.pue

    def node_profile(self, gpu: PowerProfile, host_measured_w: Mapping[int, float] | float | None = None
                     ) -> PowerProfile:
        """The per-step node energy at each of ``gpu``'s limits (``gpu`` itself when nothing is added).

        Args:
            gpu: GPU time and energy per step (all GPUs of the job).
            host_measured_w: Measured CPU + DRAM power, W: one value for every limit, or per limit (a
                limit missing from the mapping gets the mapping's mean); ``None``: not measured.
        """
        extra = self.unmeasured_host_w
        if isinstance(host_measured_w, Mapping):
            mean = sum(host_measured_w.values()) / len(host_measured_w) if host_measured_w else 0.0
            per_limit = {p: extra + host_measured_w.get(p, mean) for p in gpu.limits_w}
        else:
            per_limit = {p: extra + (host_measured_w or 0.0) for p in gpu.limits_w}
        if not any(per_limit.values()):
            return gpu  # host power 0 and nothing measured: the GPU profile, bit for bit
        key = (gpu.points, tuple(sorted(per_limit.items())))
        node = _NODE_PROFILES.get(key)
        if node is None:
            if len(_NODE_PROFILES) >= _NODE_PROFILES_MAX:
                _NODE_PROFILES.clear()
            node = _NODE_PROFILES[key] = PowerProfile(
                {p: (t, e + per_limit[p] * t) for p, t, e in gpu.points}
            )
        return node

    def step_carbon_g(self, node: PowerProfile, limit_w: float, intensity_g_per_kwh: float) -> float:
        """Carbon of one step at ``limit_w`` on a :meth:`node_profile`: operational plus embodied, gCO2eq."""
        t = node.time_per_step_s(limit_w)
        return node.energy_per_step_j(limit_w) / J_PER_KWH * intensity_g_per_kwh * self.pue \
            + self.embodied_g_per_s * t


def measured_host_power_w(ledger: Ledger, saved: Mapping[int, float] | None = None) -> dict[int, float] | None:
    """Measured CPU + DRAM power per limit, W, from the ledger (``None``: RAPL was never read).

    The profiling intervals measure each limit; where a limit was never profiled (a saved profile, a
    resumed run), every measured interval at that limit counts. ``saved``: what the run that saved the
    profile measured (:attr:`PowerProfile.host_measured_w`), for the limits this run has not measured
    yet, once this run has read RAPL at all.
    """
    sums: dict[int, list[float]] = {}
    profiled: set[int] = set()
    for iv in ledger.intervals:
        if iv.duration_s <= 0 or (iv.cpu_energy_j is None and iv.dram_energy_j is None):
            continue
        if iv.phase == "profile":
            if iv.power_limit_w not in profiled:
                sums.pop(iv.power_limit_w, None)  # the profiling intervals replace training ones
                profiled.add(iv.power_limit_w)
        elif iv.power_limit_w in profiled:
            continue
        row = sums.setdefault(iv.power_limit_w, [0.0, 0.0])
        row[0] += (iv.cpu_energy_j or 0.0) + (iv.dram_energy_j or 0.0)
        row[1] += iv.duration_s
    if not sums:  # this run reads no RAPL (yet): its scope is the GPU's, whatever an earlier run measured
        return None
    return {**(saved or {}), **{p: e / t for p, (e, t) in sums.items()}}


def scope_of(host_power_w: float | None, cpu_dram_measured: bool) -> str:
    """What a run's ``carbon_g`` covers: ``"node"``, ``"gpu+cpu+dram"`` or ``"gpu"``.

    Example:
        >>> scope_of(None, False), scope_of(None, True), scope_of(150.0, True)
        ('gpu', 'gpu+cpu+dram', 'node')
    """
    if host_power_w is not None:
        return SCOPE_NODE
    return SCOPE_GPU_CPU_DRAM if cpu_dram_measured else SCOPE_GPU


#: The warning a run whose scope is ``"gpu"`` gives once.
GPU_SCOPE_WARNING = (
    "chase-integrations counts GPU energy only: no CPU/DRAM energy was readable (RAPL) and host_power_w is "
    "not set, so carbon_g and carbon_saved_g exclude the rest of the server (CPUs, DRAM, fans, NICs, PSU "
    "losses), which draws power for longer when the GPUs run at a lower limit; the savings are overstated. "
    "Pass host_power_w=<W per GPU> (the server's meter minus the GPUs' draw, per GPU; published "
    "figures: about 240 W on BLOOM's A100 cluster, a rated 575 W at most on a DGX H100; docs/configuration.md, "
    "'Choosing host_power_w') to count it in the objective, "
    "the ledger and the baseline."
)
