"""Speed of ``simulate()``: wall and CPU time of one 30-hour job, with and without forecasting.

A40 ResNet-50 (batch 256) over the DE-LU Electricity Maps trace (``ci_direct_gco2eq_per_kwh``), budget
policy (5 % slowdown), hourly decisions, three start times. Each forecaster gets one warm-up call (it
parses and caches the trace), then ``--rounds`` passes over the start times; the table shows the
medians and the range. Targets: 50 ms per call with ``persistence``, 2 s with ``arima``.

Usage:
    python bench/simulate_speed.py                                  # persistence and arima
    python bench/simulate_speed.py --forecasters persistence --rounds 20
    python bench/simulate_speed.py --reference bench/results/simulate_speed-before.json

``--reference`` adds each median's ratio to the same forecaster's median in an earlier result file (run
both on the same machine, under the same load). Writes ``bench/results/simulate_speed.json`` (``--out``).
Needs the shared data folder (``CHASE_DATA_DIR``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from chase_integrations._data import data_dir  # noqa: E402

TRACE = "carbon/electricitymaps_sustain_cluster/DE-LU_2021-2024_hourly.csv"
PROFILE = "gpu/nsdi23_trace/summary_power_a40.csv"
STARTS = ("2021-03-14T21:00:00Z", "2022-06-19T07:00:00Z", "2023-10-02T18:00:00Z")
TARGET_MS = {"persistence": 50.0, "arima": 2000.0}


def time_calls(root: Path, forecaster: str, rounds: int) -> dict:
    """Wall and CPU ms of each ``simulate()`` call after a warm-up call, with their medians."""
    from chase_integrations.simulation.simulate import simulate

    common = dict(trace=root / TRACE, gpu_profile=root / PROFILE, workload="imagenet/resnet50", batch_size=256,
                  job_hours=30, policy="budget", max_slowdown=0.05, forecaster=forecaster,
                  decision_interval_s=3600, trace_value_column="ci_direct_gco2eq_per_kwh")
    simulate(**common, start=STARTS[0])  # warm: trace parse cache, imports
    wall_ms, cpu_ms = [], []
    for _ in range(rounds):
        for start in STARTS:
            w0, c0 = time.perf_counter(), time.process_time()
            simulate(**common, start=start)
            wall_ms.append(1000 * (time.perf_counter() - w0))
            cpu_ms.append(1000 * (time.process_time() - c0))
    return {
        "calls": len(wall_ms),
        "wall_ms_median": statistics.median(wall_ms),
        "cpu_ms_median": statistics.median(cpu_ms),
        "wall_ms_min": min(wall_ms),
        "wall_ms_max": max(wall_ms),
        "target_ms": TARGET_MS.get(forecaster),
        "wall_ms": wall_ms,
        "cpu_ms": cpu_ms,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--forecasters", default="persistence,arima", help="comma-separated")
    parser.add_argument("--rounds", type=int, default=0,
                        help="passes over the start times (0: 10 for persistence, 2 for arima)")
    parser.add_argument("--reference", default=None, help="an earlier simulate_speed JSON to compare with")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "simulate_speed.json"))
    args = parser.parse_args(argv)
    root = data_dir()
    if root is None:
        print("The shared data folder is absent (set CHASE_DATA_DIR); nothing to benchmark.")
        return 0
    reference = json.loads(Path(args.reference).read_text())["results"] if args.reference else {}
    results = {}
    print("| forecaster | calls | wall ms (median) | CPU ms (median) | wall ms (min-max) | target ms | vs reference |")
    print("|---|---|---|---|---|---|---|")
    for forecaster in args.forecasters.split(","):
        rounds = args.rounds or (10 if forecaster == "persistence" else 2)
        r = results[forecaster] = time_calls(root, forecaster, rounds)
        ref = reference.get(forecaster)
        if ref:
            r["reference_wall_ms_median"] = ref["wall_ms_median"]
            r["ratio_to_reference"] = r["wall_ms_median"] / ref["wall_ms_median"]
        ratio = f"{r['ratio_to_reference']:.2f}x" if ref else "-"
        print(f"| {forecaster} | {r['calls']} | {r['wall_ms_median']:.1f} | {r['cpu_ms_median']:.1f} | "
              f"{r['wall_ms_min']:.1f}-{r['wall_ms_max']:.1f} | {r['target_ms'] or '-'} | {ratio} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.machine(), "python": platform.python_version(),
                               "reference": args.reference, "results": results}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
