"""How much the oracle's 0.2 % margin for faster plans costs it, at node level (issue 17's reference).

With the whole server counted, the planner also weighs faster plans that leave budget unused, and a plan
that spends the budget must win by ``budget.FASTER_MARGIN`` (0.2 % of the projected carbon): a hedge
against forecast error over the late hours a slower job reaches. ``OraclePolicy`` uses the same planner
on the true future, margin included, so it is not quite the clairvoyant optimum. This bench runs the
oracle with the margin and without it (margin 0: each decision takes the plan with the least projected
carbon) on the start times of ``bench/savings.py``, and reports both, and the better of the two per start:
the strongest clairvoyant reference at hand. The re-planned hourly oracle is not the global optimum either
way (without the margin it is sometimes worse), so the per-start better one is the fair yardstick.

``--policy budget`` measures the same for the budget policy (with ``--forecaster``; ``--tuning``: the tuning
start times, disjoint from the evaluation ones), to see whether the product's margin earns its keep.

Usage:
    python bench/oracle_margin.py --workload v100-bert-squad --host-power-w 300
    python bench/oracle_margin.py --workload v100-bert-squad --host-power-w 300 --policy budget --tuning
    python bench/oracle_margin.py --workload h200-resnet50 --host-power-w 150 --starts 10

Writes ``bench/results/oracle_margin-<workload>-host<W>w.json`` (``--policy budget``:
``budget_margin-<workload>-host<W>w[-tuning].json``) (rows keyed by grid and start, like
``savings-<workload>-host<W>w.json``). Needs the shared data folder (``CHASE_DATA_DIR``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import savings  # noqa: E402

MARGINS = (0.002, 0.0)


def run_one(task: dict) -> dict:
    """The policy at every budget, with and without the margin, for one (grid, start)."""
    from chase_integrations.core import budget
    from chase_integrations.simulation.simulate import simulate

    out = {}
    try:
        for margin in MARGINS:
            budget.FASTER_MARGIN = margin
            for s in savings.BUDGETS:
                r = simulate(**task["common"], policy=task["policy"], max_slowdown=s, profile="preloaded",
                             **({"forecaster": task["forecaster"]} if task["policy"] == "budget" else {}))
                out[f"{task['policy']}_margin{margin:g}-{s}"] = (r.carbon_reduction, r.time_increase)
    finally:
        budget.FASTER_MARGIN = MARGINS[0]
    return {"grid": task["grid"], "start": task["common"]["start"], "results": out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", default="v100-bert-squad", choices=sorted(savings.WORKLOADS))
    parser.add_argument("--host-power-w", type=float, required=True)
    parser.add_argument("--starts", type=int, default=50)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--policy", choices=("oracle", "budget"), default="oracle")
    parser.add_argument("--forecaster", default="seasonal_naive", help="the budget policy's (no ARIMA tape here)")
    parser.add_argument("--tuning", action="store_true", help="the tuning start times (disjoint from the default)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args(argv)
    root = savings.data_root()
    if root is None:
        return 2
    _, network, batch = savings.WORKLOADS[args.workload]
    profile = savings.profile_csv(args.workload, root)
    tasks = [dict(grid=g, policy=args.policy, forecaster=args.forecaster,
                  common=dict(trace=str(root / savings.GRIDS[g]), gpu_profile=profile, workload=network,
                              batch_size=batch, job_hours=30.0, start=s, trace_value_column=savings.VALUE_COLUMN,
                              decision_interval_s=3600, host_power_w=args.host_power_w))
             for g in savings.GRIDS for s in savings.start_times(args.starts, tuning=args.tuning)]
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(args.processes) as pool:
        rows = pool.map(run_one, tasks, chunksize=4)
    elapsed = time.perf_counter() - t0
    summary = {}
    print(f"{args.workload}, {args.host_power_w:g} W per GPU: {len(tasks)} scenarios, {elapsed:.0f} s")
    for s in savings.BUDGETS:
        with_m = [r["results"][f"{args.policy}_margin{MARGINS[0]:g}-{s}"][0] for r in rows]
        without = [r["results"][f"{args.policy}_margin{MARGINS[1]:g}-{s}"][0] for r in rows]
        best = [max(a, b) for a, b in zip(with_m, without)]
        summary[str(s)] = row = {"with_margin": statistics.median(with_m), "without_margin": statistics.median(without),
                                 "better_per_start": statistics.median(best)}
        print(f"  budget {100 * s:g} %: median reduction with the margin {100 * row['with_margin']:.3f} %, without "
              f"{100 * row['without_margin']:.3f} %, the better per start {100 * row['better_per_start']:.3f} %")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"{args.policy}_margin-{args.workload}-host{args.host_power_w:g}w" + ("-tuning" if args.tuning else "")
    (out / f"{name}.json").write_text(json.dumps({
        "workload": args.workload, "host_power_w": args.host_power_w, "starts": args.starts, "policy": args.policy,
        "forecaster": args.forecaster if args.policy == "budget" else None, "tuning_starts": args.tuning,
        "command": " ".join(["python bench/oracle_margin.py", *(argv or sys.argv[1:])]),
        "summary": summary, "rows": rows, "elapsed_s": elapsed}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
