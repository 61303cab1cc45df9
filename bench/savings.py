"""Carbon savings of each policy over real grid traces (issue 6's acceptance benchmark).

Every number comes from ``chase_integrations.simulation.simulate`` (the real engine over a simulated
GPU). For each workload, grid and start time it simulates a job of ``--job-hours`` (at the default
limit) under: default, every static 25 W cap within 10 % slowdown, zeus (the static limit Zeus's
``GlobalPowerLimitOptimizer`` picks by default), chase (η 0.25/0.5/0.75), and for each slowdown budget
the budget policy (with and without interpolated limits) and the clairvoyant oracle.

Intensity: Electricity Maps hourly traces, value column ``ci_direct_gco2eq_per_kwh`` (direct,
operational emissions). Start times: ``--starts`` per grid, every 21 days from 2021-01-10 at an hour
of day that cycles through the day (``--tuning``: a disjoint set, 10 days later and 3 hours later in
the day, for tuning without touching the evaluation starts). Needs the shared data folder
(``CHASE_DATA_DIR``).

The forecast-driven policies (chase, budget) run once per forecaster in ``--forecasters``; the
references (default, static caps, zeus, oracle) once per scenario, shared by every forecaster's table.
ARIMA runs once per scenario (grid x start), for every workload and host power of it: a forecaster sees
only the trace, never the decisions, so every policy gets the same forecasts, and ``_Tape`` records them
on the first run and replays them to the others
(the same results to the last bit as a fresh forecaster per policy that is fed every hour of the trace;
a forecast the tape lacks raises). A run that counted a fallback (a forecaster failure included), an
internal error or a degradation marks its cell INVALID and the benchmark exits with status 3.
``--host-power-w 0,75,150,300``: one run per value, carbon of the whole node (``simulate(host_power_w=...)``).

Usage:
    python bench/savings.py                      # A40 ResNet-50, V100 ResNet-50, A40 BERT (SQuAD)
    python bench/savings.py --gpus v100 --forecasters seasonal_naive,arima
    python bench/savings.py --workloads a40-resnet50 --starts 10 --processes 2
    python bench/savings.py --profile live       # first runs next to repeat runs (bench/first_run.py)

Prints one markdown table per workload and forecaster and writes ``bench/results/savings-<workload>.json``
(``summary``/``per_grid``: one table per forecaster; ``rows``: every scenario, forecast-driven
policies keyed ``<policy>@<forecaster>``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing as mp
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from chase_integrations._data import data_dir  # noqa: E402

GRIDS = {
    "DE-LU": "carbon/electricitymaps_sustain_cluster/DE-LU_2021-2024_hourly.csv",
    "GB": "carbon/electricitymaps_sustain_cluster/GB_2021-2024_hourly.csv",
    "US-CAL-CISO": "carbon/electricitymaps_sustain_cluster/US-CAL-CISO_2021-2024_hourly.csv",
    "US-TEX-ERCO": "carbon/electricitymaps_sustain_cluster/US-TEX-ERCO_2021-2024_hourly.csv",
    "ES": "carbon/electricitymaps_decarbonization_potential/ES_2021-2023_hourly.csv",
}
VALUE_COLUMN = "ci_direct_gco2eq_per_kwh"
WORKLOADS = {
    "a40-resnet50": ("gpu/nsdi23_trace/summary_power_a40.csv", "imagenet/resnet50", 256),
    "v100-resnet50": ("gpu/nsdi23_trace/summary_power_v100.csv", "imagenet/resnet50", 256),
    "a40-bert-squad": ("gpu/nsdi23_trace/summary_power_a40.csv", "squad/bert_base_uncased", 32),
    "v100-bert-squad": ("gpu/nsdi23_trace/summary_power_v100.csv", "squad/bert_base_uncased", 32),
    "a40-bert-sentiment140": ("gpu/nsdi23_trace/summary_power_a40.csv", "sentiment140/bert_base_uncased", 128),
    "v100-bert-sentiment140": ("gpu/nsdi23_trace/summary_power_v100.csv", "sentiment140/bert_base_uncased", 128),
    # this project's H200 sweep (bench/results/h200), embedded in the package: chase_integrations/datasets.py
    "h200-resnet50": ("embedded:h200", "synthetic-imagenet/resnet50", 128),
}
BUDGETS = (0.025, 0.05, 0.10)
ETAS = (0.25, 0.5, 0.75)
STATIC_MAX_SLOWDOWN = 0.10


def data_root() -> Path | None:
    """The shared data folder (``CHASE_DATA_DIR``), or ``None`` after saying that it is absent."""
    root = data_dir()
    if root is None:
        print("The shared data folder is absent (set CHASE_DATA_DIR); nothing to benchmark.")
    return root


def profile_csv(workload: str, root: Path) -> str:
    """The GPU profile CSV of a :data:`WORKLOADS` entry: in the data folder, or embedded in the package."""
    csv = WORKLOADS[workload][0]
    if csv.startswith("embedded:"):
        from chase_integrations.datasets import gpu_profile_path

        return str(gpu_profile_path(csv.removeprefix("embedded:")))
    return str(root / csv)


def start_times(n: int, tuning: bool = False) -> list[str]:
    """``n`` start times: every 21 days from 2021-01-10, the hour of day cycling by 7 h.

    ``tuning``: the same cadence 10 days and 3 hours later (30-hour jobs never overlap the evaluation set).
    """
    t0 = datetime(2021, 1, 10, tzinfo=timezone.utc)
    days, hours = (10, 3) if tuning else (0, 0)
    return [(t0 + timedelta(days=21 * k + days, hours=(7 * k + hours) % 24)).strftime("%Y-%m-%dT%H:%M:%SZ")
            for k in range(n)]


def static_caps(profile_csv: str, workload: str, batch_size: int) -> list[int]:
    """25 W caps below the default whose slowdown is at most ``STATIC_MAX_SLOWDOWN``."""
    from chase_integrations.simulation.gpu_profile import load_gpu_profile

    ep = load_gpu_profile(profile_csv, workload, batch_size)
    hi = ep.limits_w[-1]
    t0 = ep.time_per_epoch_s[hi]
    return [p for p in range(hi - 25, ep.limits_w[0] - 1, -25)
            if p in ep.time_per_epoch_s and ep.time_per_epoch_s[p] / t0 - 1 <= STATIC_MAX_SLOWDOWN]


def tuned_caps(ep, host_power_w: float | None = None) -> dict[float, int]:
    """Per budget: the least-energy whole-watt cap whose slowdown (interpolated profile) fits the budget.

    Energy of the whole node: the GPU's plus ``host_power_w`` over the step (one GPU).
    """
    from chase_integrations.core.cost import CostModel

    prof = CostModel(host_power_w=host_power_w).node_profile(ep.step_profile(1))
    hi, t0 = prof.default_limit_w, prof.time_per_step_s(prof.default_limit_w)
    caps = {}
    for s in BUDGETS:
        fits = [w for w in range(prof.limits_w[0], hi + 1) if prof.time_per_step_s(w) <= t0 * (1 + s)]
        caps[s] = min(fits, key=prof.energy_per_step_j)
    return caps


TAPE_HOURS = 64  # hours of forecast kept per hour (the engine asks for at most 48)
TAPE_ALPHA = 0.2  # the interval the engine asks for (80 %)


class _Tape:
    """One real forecaster per scenario, fed every hour once; its forecast at each hour, kept.

    A forecaster sees only the trace (never the decisions), so every policy of a scenario gets the same
    fit and the same hourly updates, and so the same forecasts. The tape runs the real forecaster once,
    recording ``predict_interval(TAPE_HOURS)`` after each new hour, and every policy reads from it.
    The tape feeds its forecaster every row of the trace in turn, also the hours a run skipped (a run
    that decided at 10:00 and next at 12:05 never fed 11:00), so a later run that reads 11:00 finds it:
    the same forecasts as a forecaster fed every hour, for any set of runs and start times.
    """

    def __init__(self, spec: str, trace: str | None = None) -> None:
        self.spec = spec
        self.trace = trace
        self.inner = None
        self.fit_key = None
        self.last = None
        self.out: dict = {}

    def _record(self, at) -> None:
        self.inner.wait()
        self.last = at
        self.out[at] = self.inner.predict_interval(TAPE_HOURS, alpha=TAPE_ALPHA)

    def advance(self, reading) -> None:
        """Feed every trace row after the last one fed, up to ``reading`` (recording after each)."""
        from chase_integrations.carbon.reading import IntensityReading
        from chase_integrations.simulation.simulate import _trace

        if self.trace is not None:
            provider = _trace(self.trace, VALUE_COLUMN, None)
            times = np.asarray(provider.times_s, dtype=float)
            lo, hi = self.last.timestamp(), reading.time.timestamp()
            for i in np.flatnonzero((times > lo) & (times < hi)):
                when = datetime.fromtimestamp(float(times[i]), tz=timezone.utc)
                self.inner.update(IntensityReading(when, float(provider.values_g_per_kwh[i]), False))
                self._record(when)
        self.inner.update(reading)
        self._record(reading.time)

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


def _taped(tape: _Tape):
    """A Forecaster that reads ``tape`` (advancing its real forecaster when the run reaches a new hour)."""
    from chase_integrations.carbon.reading import IntensityReading
    from chase_integrations.forecast import Forecaster, make_forecaster

    class Taped(Forecaster):
        name = tape.spec

        def __init__(self) -> None:
            self.at = None

        def fit(self, history) -> None:
            history = sorted(history, key=lambda r: r.time)
            key = (len(history), history[0].time, history[-1].time)
            if tape.fit_key is None:
                tape.inner = make_forecaster(tape.spec)
                tape.inner.fit(history)
                tape.fit_key = key
                tape._record(history[-1].time)
            elif key != tape.fit_key:
                raise RuntimeError(f"the tape was fitted on other history ({tape.fit_key} != {key})")
            self.at = history[-1].time

        def update(self, reading) -> None:
            if reading.time > tape.last:
                tape.advance(reading)
            elif reading.time not in tape.out:
                raise RuntimeError(f"no taped forecast at {reading.time}")
            self.at = reading.time

        def predict_interval(self, hours: int, alpha: float = 0.2):
            if alpha != TAPE_ALPHA or hours > TAPE_HOURS:
                raise RuntimeError(f"the tape holds {TAPE_HOURS} h at alpha {TAPE_ALPHA}, not {hours} h at {alpha}")
            return tape.out[self.at][:hours]

        def predict(self, hours: int):
            return [IntensityReading(iv.time, iv.g_per_kwh, True) for iv in self.predict_interval(hours)]

    return Taped()


def run_one(task: dict) -> dict:
    """All policies for one (workload, grid, start)."""
    return run_group([task])[0]


def run_group(tasks: list[dict]) -> list[dict]:
    """All policies for several (workload, host power) variants of one (grid, start), sharing one tape.

    The tape holds the forecaster's output, which depends on the trace and the start only, so every workload
    and host power of a scenario reads the same forecasts (a tape fitted on other history raises).
    """
    first = tasks[0]
    assert all((t["trace"], t["start"]) == (first["trace"], first["start"]) for t in tasks), "one scenario per group"
    tapes = {fc: _Tape(fc, first["trace"]) for fc in first["forecasters"] if fc == "arima" and first.get("tape", True)}
    try:
        return [_run_one(task, tapes) for task in tasks]
    finally:
        for tape in tapes.values():
            tape.close()


def _run_one(task: dict, tapes: dict) -> dict:
    from chase_integrations.core import budget
    from chase_integrations.simulation.simulate import simulate

    common = dict(trace=task["trace"], gpu_profile=task["profile"], workload=task["workload"],
                  batch_size=task["batch_size"], job_hours=task["job_hours"], start=task["start"],
                  trace_value_column=VALUE_COLUMN, decision_interval_s=3600,
                  host_power_w=task.get("host_power_w"))
    out: dict[str, tuple[float, float]] = {}
    invalid: dict[str, dict[str, int]] = {}

    def forecaster(name: str):
        return _taped(tapes[name]) if name in tapes else name

    def record(key: str, **kw) -> None:
        r = simulate(**common, **kw, profile="preloaded")
        out[key] = (r.carbon_reduction, r.time_increase)
        counts = {"fallbacks": r.fallbacks, "internal_errors": r.internal_errors, "degraded": r.degraded}
        if any(counts.values()):  # not a clean run of the policy its row names: the cell is invalid
            invalid[key] = counts

    record("default", policy="default")
    for cap in task["caps"]:
        record(f"static-{cap}", policy="static", static_power_limit_w=cap)
    zeus_cap = task["zeus_w"]
    out["zeus"] = out.get(f"static-{zeus_cap}")
    if out["zeus"] is None:
        record("zeus", policy="zeus")
    for s, watts in task["tuned_w"].items():
        record(f"tuned_static-{s}", policy="static", static_power_limit_w=watts)
    for s in BUDGETS:
        record(f"oracle-{s}", policy="oracle", max_slowdown=s)
    for fc in task["forecasters"]:
        for eta in ETAS:
            record(f"chase-{eta}@{fc}", policy="chase", eta=eta, forecaster=forecaster(fc))
        for s in BUDGETS:
            record(f"budget-{s}@{fc}", policy="budget", max_slowdown=s, forecaster=forecaster(fc))
            if task["no_interp"]:
                budget.INTERPOLATE = False
                try:
                    record(f"budget_nointerp-{s}@{fc}", policy="budget", max_slowdown=s,
                           forecaster=forecaster(fc))
                finally:
                    budget.INTERPOLATE = True
    return {"grid": task["grid"], "start": task["start"], "results": out, "invalid": invalid}


def for_forecaster(rows: list[dict], forecaster: str) -> list[dict]:
    """The rows as one forecaster's run: its ``<policy>@<forecaster>`` keys without the suffix, plus the references."""
    tag = f"@{forecaster}"
    def own(d: dict) -> dict:
        return {k.removesuffix(tag): v for k, v in d.items() if "@" not in k or k.endswith(tag)}

    return [dict(r, results=own(r["results"]), invalid=own(r.get("invalid", {}))) for r in rows]


def summarise(rows: list[dict], caps: list[int], profile_rel: dict[int, float]) -> dict:
    """Median reduction and median/p95 time increase per policy and budget."""
    def stats(key: str, among: list[dict] | None = None) -> dict:
        among = rows if among is None else among
        red = [r["results"][key][0] for r in among if key in r["results"]]
        inc = [r["results"][key][1] for r in among if key in r["results"]]
        return {"median_reduction": statistics.median(red), "median_time_increase": statistics.median(inc),
                "p95_time_increase": float(np.percentile(inc, 95)), "n": len(red),
                "invalid": sum(1 for r in among if key in r.get("invalid", {}))}

    table: dict = {"default": stats("default"), "zeus": stats("zeus")}
    for eta in ETAS:
        table[f"chase-{eta}"] = stats(f"chase-{eta}")
    for cap in caps:
        table[f"static-{cap}"] = stats(f"static-{cap}")
    keys = {k for r in rows for k in r["results"]}
    for s in BUDGETS:
        eligible = [c for c in caps if profile_rel[c] - 1 <= s + 1e-12]
        best = max(eligible, key=lambda c: table[f"static-{c}"]["median_reduction"]) if eligible else None
        table[f"best_static-{s}"] = dict(table[f"static-{best}"], cap_w=best) if best else None
        for name in ("budget", "oracle", "budget_nointerp", "tuned_static"):
            if f"{name}-{s}" in keys:
                table[f"{name}-{s}"] = stats(f"{name}-{s}")
        if f"budget-{s}" in keys and f"oracle-{s}" in keys:  # paired: each start against its own oracle
            pairs = [r["results"][f"budget-{s}"][0] / r["results"][f"oracle-{s}"][0] for r in rows
                     if f"budget-{s}" in r["results"] and r["results"][f"oracle-{s}"][0] > 0]
            table[f"budget-{s}"]["median_ratio_to_oracle_per_start"] = statistics.median(pairs) if pairs else None
        if f"budget_nointerp-{s}" in keys:  # the interpolated budget policy on the same start times
            paired = [r for r in rows if f"budget_nointerp-{s}" in r["results"]]
            table[f"budget_paired-{s}"] = stats(f"budget-{s}", paired)
    return table


def markdown(name: str, table: dict, per_grid: dict, forecaster: str) -> str:
    """The acceptance table and target checks as markdown."""
    def cell(key: str) -> str:
        row = table.get(key)
        if not row:
            return "n/a"
        bad = f" INVALID ({row['invalid']} runs fell back)" if row.get("invalid") else ""
        return f"{100 * row['median_reduction']:.1f} % / {100 * row['median_time_increase']:.2f} % / " \
               f"{100 * row['p95_time_increase']:.2f} %{bad}"

    lines = [f"### {name} (forecaster: {forecaster}; cells: median carbon reduction / median time increase / "
             "p95 time increase)", "",
             "| policy | " + " | ".join(f"budget {100 * s:g} %" for s in BUDGETS) + " |",
             "|---|" + "---|" * len(BUDGETS)]
    lines.append("| default | " + " | ".join(cell("default") for _ in BUDGETS) + " |")
    lines.append("| best static cap (25 W grid, within budget) | " + " | ".join(
        (f"{table[f'best_static-{s}']['cap_w']} W: " + cell(f"best_static-{s}")) if table.get(f"best_static-{s}")
        else "none" for s in BUDGETS) + " |")
    lines.append("| static cap tuned to the budget (any watt, interpolated profile) | " + " | ".join(
        cell(f"tuned_static-{s}") for s in BUDGETS) + " |")
    lines.append("| zeus (ZeusCost η=0.5) | " + " | ".join(cell("zeus") for _ in BUDGETS) + " |")
    for eta in ETAS:
        lines.append(f"| chase η={eta} | " + " | ".join(cell(f"chase-{eta}") for _ in BUDGETS) + " |")
    lines.append("| **budget** | " + " | ".join(cell(f"budget-{s}") for s in BUDGETS) + " |")
    if f"budget_nointerp-{BUDGETS[0]}" in table:
        n = table[f"budget_nointerp-{BUDGETS[0]}"]["n"]
        lines.append(f"| budget, no interpolation (n={n}) | "
                     + " | ".join(cell(f"budget_nointerp-{s}") for s in BUDGETS) + " |")
        lines.append(f"| budget, same {n} starts | " + " | ".join(cell(f"budget_paired-{s}") for s in BUDGETS) + " |")
    lines.append("| oracle (true future) | " + " | ".join(cell(f"oracle-{s}") for s in BUDGETS) + " |")
    lines += ["", "| target | " + " | ".join(f"{100 * s:g} %" for s in BUDGETS) + " |", "|---|" + "---|" * len(BUDGETS)]
    checks = {"budget ≥ 95 % of oracle (median)": [], "budget ≥ best static (median)": [],
              "budget p95 time ≤ budget + 0.5 pp": []}
    for s in BUDGETS:
        b, o, st = table[f"budget-{s}"], table[f"oracle-{s}"], table.get(f"best_static-{s}")
        ratio = b["median_reduction"] / o["median_reduction"] if o["median_reduction"] > 0 else float("nan")
        verdict = "met" if ratio >= 0.95 else "MISSED"
        checks["budget ≥ 95 % of oracle (median)"].append(f"{verdict} ({100 * ratio:.1f} %)")
        if st:
            diff = 100 * (b["median_reduction"] - st["median_reduction"])
            checks["budget ≥ best static (median)"].append(f"{'met' if diff >= 0 else 'MISSED'} ({diff:+.2f} pp)")
        else:
            checks["budget ≥ best static (median)"].append("no static cap fits")
        p95 = 100 * b["p95_time_increase"]
        checks["budget p95 time ≤ budget + 0.5 pp"].append(
            f"{'met' if p95 <= 100 * s + 0.5 + 1e-9 else 'MISSED'} ({p95:.2f} %)")
    for k, v in checks.items():
        lines.append(f"| {k} | " + " | ".join(v) + " |")
    paired = [table[f"budget-{s}"].get("median_ratio_to_oracle_per_start") for s in BUDGETS]
    lines.append("| for reference, not a target: median over starts of budget / that start's oracle | "
                 + " | ".join("n/a" if p is None else f"{100 * p:.1f} %" for p in paired) + " |")
    lines += ["", "Per grid, budget 5 %: median reduction budget / oracle / best static", "",
              "| grid | budget | oracle | best static |", "|---|---|---|---|"]
    for grid, t in per_grid.items():
        st = t.get("best_static-0.05")
        lines.append(f"| {grid} | {100 * t['budget-0.05']['median_reduction']:.1f} % | "
                     f"{100 * t['oracle-0.05']['median_reduction']:.1f} % | "
                     f"{100 * st['median_reduction']:.1f} % |" if st else f"| {grid} | - | - | - |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--profile=live" in argv or any(a == "--profile" and b == "live" for a, b in itertools.pairwise(argv)):
        from first_run import main as first_run  # first runs next to repeat runs (bench/first_run.py)

        return first_run(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=("preloaded", "live"), default="preloaded",
                        help="preloaded: repeat runs (this table); live: first runs next to repeat runs")
    parser.add_argument("--workloads", default="a40-resnet50,v100-resnet50,a40-bert-squad")
    parser.add_argument("--gpus", default=None, help="only these GPUs' workloads, e.g. 'v100' or 'a40,v100'")
    parser.add_argument("--grids", default=",".join(GRIDS))
    parser.add_argument("--starts", type=int, default=50)
    parser.add_argument("--job-hours", type=float, default=30.0)
    parser.add_argument("--forecasters", "--forecaster", default="seasonal_naive",
                        help="comma-separated: seasonal_naive, arima, persistence")
    parser.add_argument("--tuning", action="store_true", help="the tuning start times (disjoint from the default)")
    parser.add_argument("--suffix", default="", help="result file: savings-<workload><suffix>.json")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--no-interp-for", default="a40-resnet50",
                        help="workloads that also run the budget policy without interpolated limits "
                             "(on every 5th start time)")
    parser.add_argument("--host-power-w", default="",
                        help="comma-separated W per GPU for the rest of the server, e.g. 0,75,150,300: one run each, "
                             "node-level savings (result file suffix -host<W>w); empty: the GPUs alone")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args(argv)
    host_powers = [None if v.strip().lower() == "none" else float(v) for v in args.host_power_w.split(",")
                   if v.strip()] or [None]
    invalid_cells = 0
    root = data_root()
    if root is None:
        return 2
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    starts = start_times(args.starts, tuning=args.tuning)
    no_interp = set(args.no_interp_for.split(",")) if args.no_interp_for else set()
    forecasters = args.forecasters.split(",")
    names = args.workloads.split(",")
    if args.gpus:
        names = [n for n in names if n.split("-")[0] in args.gpus.split(",")]
    variants = [(n, h) for n in names for h in host_powers]
    setups, groups = {}, {}
    for name, host_w in variants:
        csv, workload, batch = WORKLOADS[name]
        profile = profile_csv(name, root)
        caps = static_caps(profile, workload, batch)
        from chase_integrations.simulation.gpu_profile import load_gpu_profile
        from chase_integrations.simulation.oracle import zeus_power_limit

        ep = load_gpu_profile(profile, workload, batch)
        zeus_w = zeus_power_limit(ep.step_profile(1))
        rel = {p: ep.time_per_epoch_s[p] / ep.time_per_epoch_s[ep.limits_w[-1]] for p in ep.limits_w}
        setups[name, host_w] = (csv, workload, batch, caps, rel)
        for g in args.grids.split(","):
            for i, s in enumerate(starts):
                groups.setdefault((g, s), []).append(dict(
                    grid=g, trace=str(root / GRIDS[g]), profile=profile, workload=workload, batch_size=batch,
                    job_hours=args.job_hours, start=s, caps=caps, forecasters=forecasters,
                    no_interp=name in no_interp and i % 5 == 0, zeus_w=zeus_w, tuned_w=tuned_caps(ep, host_w),
                    host_power_w=host_w, variant=(name, host_w)))
    t0 = time.perf_counter()
    pool = mp.get_context("spawn").Pool(args.processes)
    try:  # one task per scenario: its workloads and host powers share one forecaster tape
        done = pool.map(run_group, list(groups.values()), chunksize=1)
    finally:
        pool.close()  # not terminate(): workers exit normally
        pool.join()
    elapsed = time.perf_counter() - t0
    print(f"({len(groups)} scenarios x {len(variants)} workload/host-power variants in {elapsed:.0f} s)\n")
    by_variant: dict = {v: [] for v in variants}
    for group, rows in zip(groups.values(), done):
        for task, row in zip(group, rows):
            by_variant[task["variant"]].append(row)
    for (name, host_w), rows in by_variant.items():
        csv, workload, batch, caps, rel = setups[name, host_w]
        bad = [(r["grid"], r["start"], k, v) for r in rows for k, v in r["invalid"].items()]
        if bad:  # a fallback, an internal error or a degradation: the run is not what its row says
            invalid_cells += len(bad)
            print(f"INVALID: {len(bad)} runs counted a fallback, an internal error or a degradation, e.g. {bad[:3]}")
        scope = "the GPUs alone" if host_w is None else f"node: GPU + {host_w:g} W per GPU for the rest of the server"
        tables, per_grids = {}, {}
        for fc in forecasters:
            view = for_forecaster(rows, fc)
            tables[fc] = summarise(view, caps, rel)
            per_grids[fc] = {g: summarise([r for r in view if r["grid"] == g], caps, rel)
                             for g in args.grids.split(",")}
            print(markdown(f"{name}: {workload} batch {batch}, {args.job_hours:g}-hour jobs, "
                           f"{len(starts)} starts x {len(per_grids[fc])} grids, carbon of {scope}",
                           tables[fc], per_grids[fc], fc))
            print()
        suffix = ("-tuning" if args.tuning else "") + (f"-host{host_w:g}w" if host_w is not None else "") + args.suffix
        (out_dir / f"savings-{name}{suffix}.json").write_text(json.dumps({
            "workload": name, "profile": csv, "network": workload, "batch_size": batch, "job_hours": args.job_hours,
            "forecasters": forecasters, "value_column": VALUE_COLUMN, "grids": GRIDS, "starts": starts,
            "tuning_starts": args.tuning, "command": " ".join(["python bench/savings.py", *(argv or sys.argv[1:])]),
            "summary": tables, "per_grid": per_grids, "rows": rows, "elapsed_s": elapsed,
            "host_power_w": host_w, "invalid_runs": len(bad),
        }, indent=1))
    if invalid_cells:
        print(f"FAILED: {invalid_cells} runs fell back (fallback, internal error or degradation); their cells are "
              "marked INVALID above.")
        return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
