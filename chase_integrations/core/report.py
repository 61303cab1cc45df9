"""The run report (API.md): totals, baseline, savings, fallbacks and every interval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chase_integrations.core.session import ChaseSession

REPORT_VERSION = 1
_INTERVAL_KEYS = ("start", "end", "power_limit_w", "intensity_g_per_kwh", "forecast_g_per_kwh", "energy_j", "carbon_g")


def build_report(session: ChaseSession) -> dict:
    """Build the JSON-safe report of a session."""
    from chase_integrations import __version__

    ledger = session.ledger
    cfg = session.config
    fallbacks = dict(session.intensity.fallbacks) if session.intensity is not None else {}
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
        )
        intervals.append(row)
    used = sorted({iv.power_limit_w for iv in ledger.intervals})
    return {
        "policy": cfg.policy,
        "provider": cfg.provider.describe(),
        "signal": getattr(cfg.provider, "signal", "average"),
        "carbon_g": ledger.carbon_g,
        "energy_j": ledger.energy_j,
        "time_s": ledger.time_s,
        "baseline_carbon_g": ledger.baseline_carbon_g,
        "baseline_energy_j": ledger.baseline_energy_j,
        "baseline_time_s": ledger.baseline_time_s,
        "carbon_saved_g": ledger.carbon_saved_g,
        "fallbacks": int(sum(fallbacks.values())),
        "fallbacks_by_kind": fallbacks,
        "original_power_limits_w": [int(w) for w in session.original_limits_w.values()],
        "power_limits_used_w": used,
        "default_power_limit_w": session.default_limit_w,
        "mode": session.mode,
        "status": session.status,
        "steps": ledger.steps,
        "pue": cfg.pue,
        "profile": session.profile.to_dict() if session.profile is not None else None,
        "config": cfg.to_json(),
        "notes": list(session.notes),
        "internal_errors": int(getattr(session, "internal_errors", 0)),
        "warnings": sorted(session.warner.keys),
        "package_version": __version__,
        "report_version": REPORT_VERSION,
        "gpu_energy_j": ledger.energy_j,
        "cpu_energy_j": ledger.cpu_energy_j if ledger.cpu_energy_j is not None else "not measured",
        "dram_energy_j": ledger.dram_energy_j if ledger.dram_energy_j is not None else "not measured",
        "total_energy_j": ledger.energy_j + (ledger.cpu_energy_j or 0.0) + (ledger.dram_energy_j or 0.0),
        "total_carbon_g": ledger.carbon_g + ledger.cpu_dram_carbon_g,
        "predicted_total_carbon_g": session.prediction["total_carbon_g"] if session.prediction else None,
        "prediction": session.prediction,
        "intervals": intervals,
    }


def write_report(report: dict, path: str | Path) -> None:
    """Write ``report`` as JSON atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, allow_nan=False))
    tmp.replace(path)
