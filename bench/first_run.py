"""First runs next to repeat runs: the budget policy when it must profile the GPU first (issue 16).

``bench/savings.py --profile live`` runs this. For each workload, grid, start, job length and step
length it simulates the budget policy twice per budget: ``profile="live"`` (a first run: the engine
profiles the candidate limits on simulated steps, and that time counts against the budget) and
``profile="preloaded"`` (a repeat run: the profile is known from the start, what
``bench/savings.py`` reports). Same grids, start times and intensity column as ``bench/savings.py``.

Acceptance, in every cell (workload, job length, step length, budget): the p95 time increase of first
runs is at most budget + 0.5 points; no first run saves less carbon than zero; the median first-run
reduction is at least 80 % (3-hour jobs) or 95 % (30-hour jobs) of the repeat-run median.

Every scenario's result is appended to ``bench/results/first-run<suffix>.jsonl`` as it finishes (a run
cut short keeps what it did; ``--resume`` skips the scenarios already there), cheap cells first; the
summary goes to ``first-run<suffix>.json`` and stdout.

Usage:
    python bench/savings.py --profile live                              # the whole grid (hours on 2 cores)
    python bench/savings.py --profile live --job-hours 3 --starts 10 --processes 1
    python bench/savings.py --profile live --summarise                  # tables from the .jsonl so far
"""

from __future__ import annotations

import argparse
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

from savings import GRIDS, VALUE_COLUMN, WORKLOADS, data_root, start_times  # noqa: E402

BUDGETS = (0.025, 0.05, 0.10)
#: Least median first-run reduction, as a share of the repeat run's, by job length (h).
MIN_SHARE = {3.0: 0.80, 30.0: 0.95}
P95_SLACK = 0.005


def run_one(task: dict) -> dict:
    """Every budget, live and preloaded, for one scenario."""
    from chase_integrations.simulation.simulate import simulate

    out = {}
    for s in task["budgets"]:
        for mode in ("live", "preloaded"):
            r = simulate(trace=task["trace"], gpu_profile=task["profile"], workload=task["workload"],
                         batch_size=task["batch_size"], job_hours=task["job_hours"], start=task["start"],
                         trace_value_column=VALUE_COLUMN, decision_interval_s=3600, policy="budget",
                         max_slowdown=s, forecaster=task["forecaster"], step_s=task["step_s"], profile=mode,
                         keep_report=mode == "live")
            row = [r.carbon_reduction, r.time_increase]
            if mode == "live":
                cost = r.report["profiling"]
                row += [cost["share_of_job"], cost["share_of_budget"], cost["steps"]]
            out[f"{mode}-{s}"] = row
    return {k: task[k] for k in ("name", "grid", "start", "job_hours", "step_s")} | {"results": out}


def _key(row: dict) -> tuple:
    return row["name"], row["grid"], row["start"], float(row["job_hours"]), float(row["step_s"])


def summarise(rows: list[dict], budgets=BUDGETS) -> list[dict]:
    """One line per cell (workload, job hours, step, budget) with the acceptance verdicts."""
    cells: dict[tuple, list[dict]] = {}
    for r in rows:
        cells.setdefault((r["name"], float(r["job_hours"]), float(r["step_s"])), []).append(r)
    table = []
    for (name, hours, step), among in sorted(cells.items()):
        for s in budgets:
            live = [r["results"][f"live-{s}"] for r in among if f"live-{s}" in r["results"]]
            pre = [r["results"][f"preloaded-{s}"] for r in among if f"preloaded-{s}" in r["results"]]
            if not live:
                continue
            red, inc = [x[0] for x in live], [x[1] for x in live]
            med_live, med_pre = statistics.median(red), statistics.median(x[0] for x in pre)
            p95 = float(np.percentile(inc, 95))
            share = med_live / med_pre if med_pre > 0 else float("nan")
            need = MIN_SHARE.get(hours, 0.95)
            table.append({
                "workload": name, "job_hours": hours, "step_s": step, "budget": s, "n": len(live),
                "median_reduction_live": med_live, "median_reduction_preloaded": med_pre, "share": share,
                "p95_time_increase_live": p95, "min_reduction_live": min(red),
                "median_profiling_share_of_job": statistics.median(x[2] for x in live),
                "median_profiling_share_of_budget": statistics.median(x[3] or 0.0 for x in live),
                "ok_p95": p95 <= s + P95_SLACK + 1e-12, "ok_no_loss": min(red) >= 0.0, "ok_share": share >= need,
            })
    return table


def markdown(table: list[dict]) -> str:
    """The summary as a markdown table."""
    lines = ["| workload | job | step | budget | n | first run: median reduction / p95 time | repeat run | "
             "first/repeat | worst start | profiling: share of job / of budget | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in table:
        bad = [k for k in ("ok_p95", "ok_no_loss", "ok_share") if not c[k]]
        verdict = "met" if not bad else "MISSED " + ",".join(bad)
        lines.append(
            f"| {c['workload']} | {c['job_hours']:g} h | {c['step_s']:g} s | {100 * c['budget']:g} % | {c['n']} | "
            f"{100 * c['median_reduction_live']:.1f} % / {100 * c['p95_time_increase_live']:.2f} % | "
            f"{100 * c['median_reduction_preloaded']:.1f} % | {100 * c['share']:.1f} % | "
            f"{100 * c['min_reduction_live']:.1f} % | {100 * c['median_profiling_share_of_job']:.2f} % / "
            f"{100 * c['median_profiling_share_of_budget']:.1f} % | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=("live",), default="live")
    parser.add_argument("--workloads", default="a40-resnet50,v100-bert-squad")
    parser.add_argument("--grids", default=",".join(GRIDS))
    parser.add_argument("--starts", type=int, default=50)
    parser.add_argument("--job-hours", default="3,30")
    parser.add_argument("--step-s", default="220,60,10,0.5")
    parser.add_argument("--budgets", default=",".join(str(b) for b in BUDGETS))
    parser.add_argument("--forecaster", default="seasonal_naive")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--suffix", default="")
    parser.add_argument("--resume", action="store_true", help="skip scenarios already in the .jsonl")
    parser.add_argument("--summarise", action="store_true", help="only summarise the .jsonl")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args(argv)
    root = data_root()
    if root is None:
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / f"first-run{args.suffix}.jsonl"
    budgets = tuple(float(b) for b in args.budgets.split(","))
    done = [json.loads(line) for line in jsonl.read_text().splitlines()] if jsonl.exists() else []
    if not args.summarise:
        seen = {_key(r) for r in done} if args.resume else set()
        if not args.resume:
            done = []
            jsonl.write_text("")
        tasks = []
        for hours in (float(h) for h in args.job_hours.split(",")):  # cheap cells first
            for step in (float(s) for s in args.step_s.split(",")):
                for name in args.workloads.split(","):
                    csv, workload, batch = WORKLOADS[name]
                    for grid in args.grids.split(","):
                        for start in start_times(args.starts):
                            task = dict(name=name, grid=grid, start=start, job_hours=hours, step_s=step,
                                        trace=str(root / GRIDS[grid]), profile=str(root / csv), workload=workload,
                                        batch_size=batch, budgets=budgets, forecaster=args.forecaster)
                            if _key(task) not in seen:
                                tasks.append(task)
        t0 = time.perf_counter()
        with jsonl.open("a") as f, mp.get_context("spawn").Pool(args.processes) as pool:
            for i, row in enumerate(pool.imap(run_one, tasks, chunksize=1)):
                f.write(json.dumps(row) + "\n")
                f.flush()
                done.append(row)
                if (i + 1) % 100 == 0:
                    print(f"{i + 1}/{len(tasks)} scenarios, {time.perf_counter() - t0:.0f} s", flush=True)
        print(f"({len(tasks)} scenarios in {time.perf_counter() - t0:.0f} s, {args.processes} process(es))")
    table = summarise(done, budgets)
    print(markdown(table))
    (out / f"first-run{args.suffix}.json").write_text(json.dumps({
        "command": " ".join(["python bench/savings.py", *(argv or [])]), "forecaster": args.forecaster,
        "value_column": VALUE_COLUMN, "cells": table, "scenarios": len(done)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
