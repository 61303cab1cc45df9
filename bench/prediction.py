r"""Backtest of the footprint prediction: how far is the prediction made after 10 % of a job from the final figure?

For each grid and start time, a 30-hour job (A40 ResNet-50 batch 256, budget policy, 5 %) runs through the
real engine on the simulated GPU. We record the prediction of the first decision at or after 10 % of the
job's steps and compare it with the job's final measured carbon. Reports the median and 90th percentile
of the absolute relative error and how often the final total fell inside the predicted 80 % range.

    python bench/prediction.py --starts 50 --forecasters seasonal_naive \
        --out bench/results/prediction_seasonal_naive.json
    python bench/prediction.py --starts 10 --forecasters arima --out bench/results/prediction_arima.json

Needs the shared data folder (CHASE_DATA_DIR, default ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chase_integrations._data import data_dir
from chase_integrations.core.collective import LocalCollective
from chase_integrations.core.config import ChaseConfig
from chase_integrations.core.session import ChaseSession, RunContext
from chase_integrations.simulation import Simulation
from chase_integrations.simulation.simulate import _synchronous

GRIDS = ["DE-LU", "GB", "US-CAL-CISO", "US-TEX-ERCO", "ES"]
STEP_S = 120.0


def trace_path(root: Path, grid: str) -> Path:
    if grid == "ES":
        return root / "carbon" / "electricitymaps_decarbonization_potential" / "ES_2021-2023_hourly.csv"
    return root / "carbon" / "electricitymaps_sustain_cluster" / f"{grid}_2021-2024_hourly.csv"


def one_job(root: Path, grid: str, start: datetime, forecaster: str, job_hours: float = 30.0) -> dict:
    profile_csv = root / "gpu" / "nsdi23_trace" / "summary_power_a40.csv"
    probe = Simulation(gpu_profile=profile_csv, steps_per_epoch=1)
    epoch_s = probe.epoch_profile.time_per_epoch_s[probe.epoch_profile.limits_w[-1]]
    steps_per_epoch = max(1, round(epoch_s / STEP_S))
    sim = Simulation(
        gpu_profile=profile_csv,
        trace=trace_path(root, grid),
        trace_value_column="ci_direct_gco2eq_per_kwh",
        start=start.isoformat(),
        steps_per_epoch=steps_per_epoch,
    )
    profile = sim.step_profile
    total = round(job_hours * 3600 / profile.time_per_step_s(profile.default_limit_w))
    fc = _synchronous(forecaster)
    session = ChaseSession(
        ChaseConfig(
            provider=sim.provider,
            simulation=sim,
            policy="budget",
            max_slowdown=0.05,
            forecaster=fc,
            decision_interval_s=3600,
        )
    )
    session.profile = profile
    session.start(RunContext([0], LocalCollective(), total_steps=total))
    early = None
    for step in range(1, total + 1):
        session.step_end()
        if step % steps_per_epoch == 0:
            session.epoch_end()
        if early is None and step >= 0.1 * total and session.prediction is not None:
            early = dict(session.prediction, step=step)
    report = session.end()
    fc.close()
    final = report["carbon_g"]
    return {
        "grid": grid,
        "start": start.isoformat(),
        "final_g": final,
        "predicted_g": early["total_carbon_g"],
        "lower_g": early["lower_carbon_g"],
        "upper_g": early["upper_carbon_g"],
        "error": (early["total_carbon_g"] - final) / final,
        "covered": early["lower_carbon_g"] <= final <= early["upper_carbon_g"],
        "predicted_saving_g": early["expected_saving_g"],
        "final_saving_g": report["carbon_saved_g"],
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=50)
    parser.add_argument("--forecasters", default="seasonal_naive,arima")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "prediction.json"))
    args = parser.parse_args()
    root = data_dir()
    if root is None:
        print("shared data folder absent: set CHASE_DATA_DIR")
        return 1
    t0 = time.time()
    rows = []
    first = datetime(2023, 1, 2, tzinfo=timezone.utc)
    for forecaster in args.forecasters.split(","):
        for grid in GRIDS:
            for k in range(args.starts):
                start = first + timedelta(hours=k * 7 * 24 + (k * 5) % 24)  # weekly, varying hour of day
                rows.append(dict(one_job(root, grid, start, forecaster), forecaster=forecaster))
    print("| forecaster | grid | jobs | median abs error | p90 abs error | final within 80 % range |")
    print("|---|---|---|---|---|---|")
    summary = []
    for forecaster in args.forecasters.split(","):
        for grid in [*GRIDS, "all"]:
            sel = [r for r in rows if r["forecaster"] == forecaster and (grid == "all" or r["grid"] == grid)]
            errs = sorted(abs(r["error"]) for r in sel)
            p90 = errs[min(len(errs) - 1, int(0.9 * len(errs)))]
            cover = sum(r["covered"] for r in sel) / len(sel)
            summary.append(
                {
                    "forecaster": forecaster,
                    "grid": grid,
                    "n": len(sel),
                    "median_abs_error": statistics.median(errs),
                    "p90_abs_error": p90,
                    "coverage": cover,
                }
            )
            print(
                f"| {forecaster} | {grid} | {len(sel)} | {100 * statistics.median(errs):.1f} % | {100 * p90:.1f} % | "
                f"{100 * cover:.0f} % |"
            )
    out = Path(args.out)
    out.write_text(json.dumps({"summary": summary, "rows": rows, "wall_s": time.time() - t0}, indent=2))
    print(f"\n{len(rows)} jobs in {time.time() - t0:.0f} s; rows in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
