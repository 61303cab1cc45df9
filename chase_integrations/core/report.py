"""The run report (docs/metrics.md): totals, baseline, savings, fallbacks and every interval, from plain data."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from chase_integrations.core.cost import SCOPE_GPU, scope_of
from chase_integrations.core.ledger import Ledger
from chase_integrations.core.profile import PowerProfile
from chase_integrations.core.profiling_cost import profiling_cost

REPORT_VERSION = 1
_INTERVAL_KEYS = ("start", "end", "power_limit_w", "intensity_g_per_kwh", "forecast_g_per_kwh", "energy_j", "carbon_g")


@dataclass
class RunFacts:
    """What a report says about a run, besides its ledger.

    Attributes:
        policy: The policy's name.
        provider: The provider's secret-free description.
        signal: ``"average"`` or ``"marginal"``.
        config: The JSON-safe configuration.
        pue: Data-centre PUE.
        fallbacks: Intensity fallbacks by kind.
        original_limits_w: Each owned GPU's limit before the run.
        default_limit_w: The job's default (highest) limit.
        mode: This rank's mode.
        status: ``"running"``, ``"finished"``, ``"failed"`` or ``"interrupted"``.
        profile: The measured profile.
        notes: Everything worth knowing that went differently.
        internal_errors: Internal errors absorbed.
        warnings: The keys of the warnings given.
        prediction: The last footprint prediction (``FootprintPrediction.to_dict()``).
        extra: Fields added by other parts (e.g. the watchdog), merged into the report as they are.
        degraded: Every fallback that changed what the run did: ``{"what", "since", "until", "intervals"}``.
    """

    policy: str
    provider: str
    signal: str = "average"
    config: dict = field(default_factory=dict)
    pue: float = 1.0
    fallbacks: dict[str, int] = field(default_factory=dict)
    original_limits_w: list[int] = field(default_factory=list)
    default_limit_w: int | None = None
    mode: str = "idle"
    status: str = "created"
    profile: PowerProfile | None = None
    notes: list[str] = field(default_factory=list)
    internal_errors: int = 0
    warnings: list[str] = field(default_factory=list)
    prediction: dict | None = None
    extra: dict = field(default_factory=dict)
    degraded: list[dict] = field(default_factory=list)


def build_report(facts: RunFacts, ledger: Ledger) -> dict:
    """Build the JSON-safe report of a run."""
    from chase_integrations import __version__

    intervals = []
    for iv in ledger.intervals:
        row = {k: getattr(iv, k) for k in _INTERVAL_KEYS}
        row.update(
            steps=iv.steps,
            duration_s=iv.duration_s,
            phase=iv.phase,
            intensity_source=iv.intensity_source,
            baseline_carbon_g=iv.baseline_carbon_g,
            baseline_energy_j=iv.baseline_energy_j,
            cpu_energy_j=iv.cpu_energy_j,
            dram_energy_j=iv.dram_energy_j,
            gpu_energy_j=iv.gpu_energy_j,
            gpu_carbon_g=iv.gpu_carbon_g,
            host_energy_j=iv.host_energy_j,
        )
        intervals.append(row)
    used = sorted({iv.power_limit_w for iv in ledger.intervals})
    report = {
        "policy": facts.policy,
        "provider": facts.provider,
        "signal": facts.signal,
        "carbon_g": ledger.carbon_g,
        "energy_j": ledger.energy_j,
        "time_s": ledger.time_s,
        "baseline_carbon_g": ledger.baseline_carbon_g,
        "baseline_energy_j": ledger.baseline_energy_j,
        "baseline_time_s": ledger.baseline_time_s,
        "carbon_saved_g": ledger.carbon_saved_g,
        "fallbacks": int(sum(facts.fallbacks.values())),
        "fallbacks_by_kind": dict(facts.fallbacks),
        "original_power_limits_w": [int(w) for w in facts.original_limits_w],
        "power_limits_used_w": used,
        "default_power_limit_w": facts.default_limit_w,
        "mode": facts.mode,
        "status": facts.status,
        "steps": ledger.steps,
        "pue": facts.pue,
        "profile": facts.profile.to_dict() if facts.profile is not None else None,
        "config": facts.config,
        "notes": list(facts.notes),
        "internal_errors": int(facts.internal_errors),
        "warnings": sorted(facts.warnings),
        "package_version": __version__,
        "report_version": REPORT_VERSION,
        **node_fields(facts.config.get("host_power_w"), ledger, facts.policy),
        "predicted_total_carbon_g": facts.prediction["total_carbon_g"] if facts.prediction else None,
        "prediction": facts.prediction,
        "degraded": list(facts.degraded),
        "profiling": profiling_cost(ledger, facts.config.get("max_slowdown") if facts.policy == "budget" else None),
    }
    report.update(facts.extra)
    report["intervals"] = intervals
    return report


def node_fields(host_power_w: float | None, ledger: Ledger, policy: str = "") -> dict:
    """The report's scope and its GPU-only, host and embodied parts (see :mod:`chase_integrations.core.cost`).

    ``carbon_g``/``carbon_saved_g``/``energy_j`` cover ``scope``; ``gpu_*`` the GPUs alone;
    ``total_carbon_g`` adds the embodied emissions; ``total_carbon_saved_g`` the embodied difference;
    ``objective_scope`` is what the decisions minimised (the ``chase`` policy: the GPUs, the paper's rule).
    """
    cpu, dram = ledger.cpu_energy_j, ledger.dram_energy_j
    embodied, baseline_embodied = ledger.embodied_carbon_g, ledger.baseline_embodied_carbon_g
    scope = scope_of(host_power_w, cpu is not None or dram is not None)
    return {
        "scope": scope,
        "objective_scope": SCOPE_GPU if policy == "chase" else scope,
        "host_power_w": host_power_w,
        "gpu_energy_j": ledger.gpu_energy_j,
        "gpu_carbon_g": ledger.gpu_carbon_g,
        "gpu_carbon_saved_g": ledger.gpu_carbon_saved_g,
        "cpu_energy_j": cpu if cpu is not None else "not measured",
        "dram_energy_j": dram if dram is not None else "not measured",
        "host_energy_j": ledger.host_energy_j,
        "embodied_carbon_g": embodied,
        "baseline_embodied_carbon_g": baseline_embodied,
        "total_energy_j": ledger.energy_j,
        "total_carbon_g": ledger.carbon_g + embodied,
        "total_carbon_saved_g": ledger.carbon_saved_g + baseline_embodied - embodied,
    }


def write_report(report: dict, path: str | Path) -> None:
    """Write ``report`` as JSON atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, allow_nan=False))
    tmp.replace(path)
