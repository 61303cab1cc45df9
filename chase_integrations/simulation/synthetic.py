"""Data the package builds in code, for tests and ``chase demo --synthetic``.

Neither is real data, and both say so wherever they are used. The real data that comes with the package
(measured GPU profiles, hourly grid traces) is :mod:`chase_integrations.datasets`.

* :func:`write_synthetic_gpu_profile`: an A40-like ResNet-50 profile built from the relative figures
  published in the project's design notes (250 W: +0.5 % time, −8 % energy; 225 W: +1.6 %, −15 %;
  200 W: +7 %, −19 %; 175 W: +22 %, −17 % relative to 300 W), in the Zeus trace format.
* :func:`write_synthetic_trace`: a smooth hourly intensity with a daily cycle (clean midday, dirty
  evening) and a slow weather swing, in gCO2eq/kWh.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

#: limit W -> (time relative to 300 W, energy relative to 300 W)
_RELATIVE = {
    300: (1.0, 1.0),
    275: (1.002, 0.96),
    250: (1.005, 0.92),
    225: (1.016, 0.85),
    200: (1.07, 0.81),
    175: (1.22, 0.83),
    150: (1.6, 0.95),
    125: (2.3, 1.2),
    100: (2.7, 1.35),
}
_EPOCH_300_S = 3847.0
_POWER_300_W = 235.0

SYNTHETIC_TRACE_DESCRIPTION = (
    "a synthetic hourly trace built in code (daily cycle 180-420 gCO2eq/kWh, clean around midday, dirty in the "
    "evening, plus a 3-day weather swing); not real grid data"
)
SYNTHETIC_PROFILE_DESCRIPTION = (
    "a synthetic A40-like ResNet-50 profile built in code from the relative time/energy figures in DESIGN.md; "
    "not a measurement"
)


def write_synthetic_gpu_profile(path: str | Path, workload: str = "imagenet/resnet50", batch_size: int = 256) -> Path:
    """Write an A40-like profile CSV in the Zeus trace format; return its path."""
    dataset, network = workload.split("/", 1)
    lines = ["dataset,network,batch_size,optimizer,power_limit,time_per_epoch,average_power"]
    for limit, (t_rel, e_rel) in sorted(_RELATIVE.items()):
        t = _EPOCH_300_S * t_rel
        power = _POWER_300_W * e_rel / t_rel
        lines.append(f"{dataset},{network},{batch_size},adadelta,{limit},{t:.2f},{power:.4f}")
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


def synthetic_intensity(hour_index: int) -> float:
    """The synthetic trace's value at ``hour_index`` hours after its start (gCO2eq/kWh)."""
    hour_of_day = hour_index % 24
    daily = 120.0 * math.cos(2 * math.pi * (hour_of_day - 19) / 24)  # dirtiest around 19:00 UTC
    weather = 60.0 * math.sin(2 * math.pi * hour_index / 72)
    return round(300.0 + daily + weather, 2)


def write_synthetic_trace(path: str | Path, start: str = "2023-03-01T00:00:00Z", days: int = 14) -> Path:
    """Write the synthetic hourly trace as CSV (``datetime_utc, ci_gco2_per_kwh``); return its path."""
    t0 = datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(timezone.utc) - timedelta(days=2)
    lines = ["datetime_utc,ci_gco2_per_kwh"]
    for h in range(24 * (days + 2)):
        when = t0 + timedelta(hours=h)
        lines.append(f"{when:%Y-%m-%d %H:%M:%S},{synthetic_intensity(h)}")
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path
