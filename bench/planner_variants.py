"""Where the budget policy's gap to the oracle comes from, and planner variants that did not close it.

The budget policy trails the clairvoyant oracle most at small budgets on the V100 (issue 6: V100 BERT SQuAD at
2.5 %). This bench splits that gap by forecast horizon and measures planner changes aimed at it. For each
scenario (grid x start) it runs the real ARIMA forecaster once (``savings._Tape``: every policy of a scenario
gets the same forecasts, so the variants differ only in what they do with them) and simulates the budget
policy under:

* ``base``: the shipped policy.
* ``truth-A-B``: the forecast for ``A`` to ``B`` hours ahead replaced with the true intensity (``truth-0-64``
  is the planner given the whole true future: what forecast error costs).
* ``spread-S``: the planner spends the budget in expectation over the forecaster's own error instead of on
  the point forecast: each hour split into 7 equally likely scenarios (normal quantiles, standard deviation
  from the 80 % prediction interval, scaled by ``S``).
* ``horizon-H``: plan only the next ``H`` hours, with the time budget pro rata.
* ``smooth-W``: the multiplier smoothed between decisions (geometric, weight ``W`` on the previous one),
  damping the plan's reaction to each new forecast; the current hour runs at the smoothed multiplier's
  limit.

Start times: ``savings.start_times(tuning=True)`` (disjoint from the evaluation starts of
``bench/savings.py``). Needs the shared data folder (``CHASE_DATA_DIR``).

Usage:
    python bench/planner_variants.py                         # v100-bert-squad, 50 starts x 5 grids
    python bench/planner_variants.py --workload v100-resnet50 --starts 10
    python bench/planner_variants.py --variants base,truth-0-64 --budgets 0.025 --host-power-w 300  # node level

Prints, per budget and variant, the median carbon reduction, its ratio to the oracle's (median and mean) and
the p95 time increase; writes ``bench/results/planner_variants-<workload>.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import savings  # noqa: E402

VARIANTS = ("base", "truth-0-6", "truth-0-12", "truth-6-64", "truth-12-64", "truth-0-64",
            "spread-1", "spread-2", "horizon-24", "horizon-12", "smooth-0.3", "smooth-0.6")
SPREAD_NODES = 7
RECORD_SLOWDOWN = 0.12  # the taping run covers every variant's job length (budgets up to 10 %)


def _spread_planner(tape_view: dict, scale: float):
    """``plan_budget`` over each hour's error scenarios (the forecaster's interval, read off the tape)."""
    from statistics import NormalDist

    from chase_integrations.core import budget

    z = np.array([NormalDist().inv_cdf((j + 0.5) / SPREAD_NODES) for j in range(SPREAD_NODES)])
    z80 = NormalDist().inv_cdf(0.9)

    def plan(profile, intensities, remaining_steps, remaining_time_s, first_hour_s=budget.HOUR_S, **kw):
        if remaining_steps <= 0:
            return budget.plan_budget(profile, intensities, remaining_steps, remaining_time_s, first_hour_s, **kw)
        hull = budget._hull(profile)
        hours = max(len(intensities),
                    int(np.ceil((remaining_steps * hull.time_s[-1] - first_hour_s) / budget.HOUR_S)) + 2)
        ci = np.maximum(budget._extend(intensities, hours), 0.0)
        intervals = tape_view["last"][: len(intensities) - 1]
        sd = budget._extend([0.0, *((iv.upper_g_per_kwh - iv.g_per_kwh) / z80 for iv in intervals)], hours)
        spans = np.full(hours, budget.HOUR_S)
        spans[0] = max(first_hour_s, 1e-9)
        ci_k = np.maximum(ci[:, None] + scale * sd[:, None] * z[None, :], 0.0).ravel()
        proj = budget._Projector(ci_k, np.repeat(spans / SPREAD_NODES, SPREAD_NODES), float(remaining_steps))
        return budget._solve(hull, proj, float(remaining_time_s), budget.INTERPOLATE)

    return plan


def _horizon_planner(hours: int):
    from chase_integrations.core import budget

    def plan(profile, intensities, remaining_steps, remaining_time_s, *a, **kw):
        base_s = remaining_steps * profile.time_per_step_s(profile.default_limit_w)
        if base_s > hours * budget.HOUR_S:
            frac = hours * budget.HOUR_S / base_s
            return budget.plan_budget(profile, intensities[: hours + 1], remaining_steps * frac,
                                      remaining_time_s * frac, *a, **kw)
        return budget.plan_budget(profile, intensities, remaining_steps, remaining_time_s, *a, **kw)

    return plan


def _smoothed_planner(weight: float):
    import math

    from chase_integrations.core import budget

    state: dict = {"mu": None}

    def plan(profile, intensities, *a, **kw):
        result = budget.plan_budget(profile, intensities, *a, **kw)
        mu, previous = result.mu, state["mu"]
        if not 0 < mu < math.inf:
            state["mu"] = None
            return result
        used = mu if previous is None else math.exp(weight * math.log(previous) + (1 - weight) * math.log(mu))
        state["mu"] = used
        if used == mu:
            return result
        hull = budget._hull(profile)
        vertex = int((intensities[0] * hull.savings_j_per_s > used).sum())
        return dataclasses.replace(result, limit_w=int(hull.limits_w[vertex]), mu=used)

    return plan


def run_one(task: dict) -> dict:
    """Oracle and every variant of the budget policy for one (grid, start)."""
    from chase_integrations.core import budget, decide
    from chase_integrations.simulation.simulate import _trace, simulate

    common = task["common"]
    tape = savings._Tape("arima")
    try:
        simulate(**common, policy="budget", max_slowdown=RECORD_SLOWDOWN, forecaster=savings._taped(tape))
    finally:
        tape.close()
        tape.inner = None  # from here on the tape only replays (a forecast it lacks raises)
    recorded = tape.out
    provider = _trace(common["trace"], savings.VALUE_COLUMN, None)
    truth = dict(zip(np.asarray(provider.times_s, float).astype(int).tolist(),
                     np.asarray(provider.values_g_per_kwh, float).tolist()))
    out: dict = {f"oracle-{s}": simulate(**common, policy="oracle", max_slowdown=s).carbon_reduction
                 for s in task["budgets"]}
    for variant in task["variants"]:
        view = {"last": []}
        tape.out = recorded
        make_planner = lambda: budget.plan_budget  # noqa: E731 - a fresh planner (and its state) per job
        arg = variant.split("-")[1] if "-" in variant else ""
        if variant.startswith("truth-"):
            lo, hi = (int(x) for x in variant.split("-")[1:])
            tape.out = {t: [dataclasses.replace(iv, g_per_kwh=truth.get(int(iv.time.timestamp()), iv.g_per_kwh))
                            if lo <= i < hi else iv for i, iv in enumerate(ivs)] for t, ivs in recorded.items()}
        elif variant.startswith("spread-"):
            make_planner = lambda x=float(arg), v=view: _spread_planner(v, x)  # noqa: E731
        elif variant.startswith("horizon-"):
            make_planner = lambda x=int(arg): _horizon_planner(x)  # noqa: E731
        elif variant.startswith("smooth-"):
            make_planner = lambda x=float(arg): _smoothed_planner(x)  # noqa: E731
        forecaster = savings._taped(tape)
        predict_interval = forecaster.predict_interval

        def remembered(hours, alpha=0.2, _f=predict_interval, _view=view):
            _view["last"] = _f(hours, alpha)
            return _view["last"]

        forecaster.predict_interval = remembered
        try:
            for s in task["budgets"]:
                decide.plan_budget = make_planner()
                r = simulate(**common, policy="budget", max_slowdown=s, forecaster=forecaster)
                out[f"{variant}-{s}"] = (r.carbon_reduction, r.time_increase)
        finally:
            decide.plan_budget = budget.plan_budget
    return {"grid": task["grid"], "start": common["start"], "results": out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", default="v100-bert-squad", choices=sorted(savings.WORKLOADS))
    parser.add_argument("--starts", type=int, default=50)
    parser.add_argument("--budgets", default="0.025,0.05,0.1")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--host-power-w", type=float, default=None,
                        help="W per GPU for the rest of the server: node-level decisions and savings (issue 17); "
                             "result file planner_variants-<workload>-host<W>w.json")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args(argv)
    root = savings.data_root()
    if root is None:
        return 2
    _, network, batch = savings.WORKLOADS[args.workload]
    budgets = [float(b) for b in args.budgets.split(",")]
    variants = args.variants.split(",")
    profile = savings.profile_csv(args.workload, root)
    tasks = [dict(grid=g, budgets=budgets, variants=variants,
                  common=dict(trace=str(root / savings.GRIDS[g]), gpu_profile=profile, workload=network,
                              batch_size=batch, job_hours=30.0, start=s, trace_value_column=savings.VALUE_COLUMN,
                              decision_interval_s=3600, host_power_w=args.host_power_w))
             for g in savings.GRIDS for s in savings.start_times(args.starts, tuning=True)]
    t0 = time.perf_counter()
    pool = mp.get_context("spawn").Pool(args.processes)
    try:
        rows = pool.map(run_one, tasks, chunksize=2)
    finally:
        pool.close()
        pool.join()
    elapsed = time.perf_counter() - t0
    summary: dict = {}
    print(f"{args.workload}: {len(tasks)} scenarios (tuning starts), {elapsed:.0f} s\n")
    print("| budget | variant | median reduction | / oracle (median) | / oracle (mean) | p95 time increase |")
    print("|---|---|---|---|---|---|")
    for s in budgets:
        oracle = [r["results"][f"oracle-{s}"] for r in rows]
        print(f"| {100 * s:g} % | oracle | {100 * statistics.median(oracle):.2f} % | | | |")
        for v in variants:
            red = [r["results"][f"{v}-{s}"][0] for r in rows]
            inc = [r["results"][f"{v}-{s}"][1] for r in rows]
            summary[f"{v}-{s}"] = row = {
                "median_reduction": statistics.median(red),
                "ratio_median": statistics.median(red) / statistics.median(oracle),
                "ratio_mean": float(np.mean(red) / np.mean(oracle)),
                "p95_time_increase": float(np.percentile(inc, 95)),
            }
            print(f"| {100 * s:g} % | {v} | {100 * row['median_reduction']:.2f} % | {row['ratio_median']:.3f} | "
                  f"{row['ratio_mean']:.3f} | {100 * row['p95_time_increase']:.2f} % |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.host_power_w is None else f"-host{args.host_power_w:g}w"
    (out / f"planner_variants-{args.workload}{suffix}.json").write_text(json.dumps({
        "workload": args.workload, "budgets": budgets, "variants": variants, "starts": args.starts,
        "host_power_w": args.host_power_w,
        "command": " ".join(["python bench/planner_variants.py", *(argv or sys.argv[1:])]),
        "summary": summary, "rows": rows, "elapsed_s": elapsed}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
