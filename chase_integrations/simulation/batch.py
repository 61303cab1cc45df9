"""Many :func:`~chase_integrations.simulation.simulate.simulate` runs: policies × start times, summarized.

Used by ``notebooks/01_will_it_pay_off.ipynb`` (and usable by ``bench/savings.py``). Every number comes
from ``simulate()``'s public API; nothing here changes how a job is simulated.

Example:
    >>> from chase_integrations.simulation.batch import pareto_front
    >>> pareto_front([(0.0, 0.0), (0.02, 0.10), (0.05, 0.08), (0.05, 0.15)])
    [0, 1, 3]

A full comparison (seconds per few hundred simulations)::

    policies = policy_grid(budgets=(0.025, 0.05, 0.10), static_caps_w=[275, 250, 225, 200])
    starts = start_times(TRACE_CSV, n=16, job_hours=24, trace_value_column="ci_direct_gco2eq_per_kwh")
    rows = simulate_many(starts, policies, trace=TRACE_CSV, gpu_profile=PROFILE_CSV, job_hours=24,
                         trace_value_column="ci_direct_gco2eq_per_kwh")
    table = summarize(rows)  # one row per policy label: median reduction, median/p95 time increase
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chase_integrations.errors import ConfigurationError

if TYPE_CHECKING:
    import pandas as pd

#: Slowdown budgets compared by default (fractions).
DEFAULT_BUDGETS = (0.025, 0.05, 0.10)


@dataclass(frozen=True)
class BatchRow:
    """One simulated job: a policy label at a start time. Fractions are fractions; units in the names."""

    label: str
    start: str
    policy: str
    max_slowdown: float | None
    power_limit_w: int | None
    forecaster: str | None
    carbon_g: float
    baseline_carbon_g: float
    carbon_reduction: float
    energy_j: float
    time_s: float
    baseline_time_s: float
    time_increase: float
    fallbacks: int = 0
    internal_errors: int = 0
    degraded: int = 0

    @property
    def valid(self) -> bool:
        """A clean run of its policy: no fallback, internal error or degradation counted."""
        return not (self.fallbacks or self.internal_errors or self.degraded)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every field."""
        return asdict(self)


def policy_grid(
    *,
    budgets: Sequence[float] = DEFAULT_BUDGETS,
    static_caps_w: Sequence[int] = (),
    etas: Sequence[float] = (0.5,),
    forecaster: Any = "seasonal_naive",
    default: bool = True,
    zeus: bool = True,
    oracle: bool = True,
    first_run: bool = False,
) -> dict[str, dict[str, Any]]:
    """The usual comparison as ``{label: simulate() keyword arguments}``.

    Labels: ``default``, ``static 250 W`` (one per cap), ``zeus``, ``chase η=0.5`` (one per η),
    ``budget 5 %`` and ``oracle 5 %`` (one each per budget); with ``first_run``, ``budget 5 % first run``
    too. The engine's policies run as repeat runs (``profile="preloaded"``: the profile known from the
    start); a first run (``profile="live"``) also profiles the GPU, paid from its budget.
    """
    grid: dict[str, dict[str, Any]] = {}
    if default:
        grid["default"] = {"policy": "default"}
    for cap in static_caps_w:
        grid[f"static {int(cap)} W"] = {"policy": "static", "static_power_limit_w": int(cap), "profile": "preloaded"}
    if zeus:
        grid["zeus"] = {"policy": "zeus"}
    for eta in etas:
        grid[f"chase η={eta:g}"] = {"policy": "chase", "eta": float(eta), "forecaster": forecaster,
                                     "profile": "preloaded"}
    for s in budgets:
        grid[f"budget {_pct(s)}"] = {"policy": "budget", "max_slowdown": float(s), "forecaster": forecaster,
                                     "profile": "preloaded"}
        if first_run:
            grid[f"budget {_pct(s)} first run"] = {"policy": "budget", "max_slowdown": float(s),
                                                   "forecaster": forecaster, "profile": "live"}
    if oracle:
        for s in budgets:
            grid[f"oracle {_pct(s)}"] = {"policy": "oracle", "max_slowdown": float(s)}
    return grid


def profile_slowdowns(gpu_profile: str | Path, workload: str = "imagenet/resnet50", batch_size: int = 256,
                      optimizer: str | None = None) -> dict[int, float]:
    """Time increase (fraction) of each profiled limit over the default (highest) limit, from the profile."""
    from chase_integrations.simulation.gpu_profile import load_gpu_profile

    ep = load_gpu_profile(gpu_profile, workload, batch_size, optimizer)
    t0 = ep.time_per_epoch_s[ep.limits_w[-1]]
    return {p: ep.time_per_epoch_s[p] / t0 - 1.0 for p in ep.limits_w}


def static_caps(gpu_profile: str | Path, workload: str = "imagenet/resnet50", batch_size: int = 256,
                max_slowdown: float = 0.10, optimizer: str | None = None) -> list[int]:
    """Profiled limits below the default whose slowdown is at most ``max_slowdown`` (descending)."""
    slow = profile_slowdowns(gpu_profile, workload, batch_size, optimizer)
    hi = max(slow)
    return sorted((p for p, s in slow.items() if p < hi and s <= max_slowdown + 1e-12), reverse=True)


def start_times(trace: str | Path, n: int, job_hours: float, *, trace_value_column: str | None = None,
                trace_time_column: str | None = None, history_hours: float = 48.0,
                max_slowdown: float = 0.10) -> list[str]:
    """``n`` start times spread evenly over ``trace`` (ISO-8601 UTC, whole hours).

    The first leaves ``history_hours`` of trace before it (what forecasters see at the start); the last
    leaves room for the job at ``max_slowdown`` and a day more. Spacing is not a multiple of a day in
    general, so the starts also cover different hours of the day.

    Raises:
        ConfigurationError: ``n`` < 1 or the trace is too short for one job.
    """
    from chase_integrations.carbon.formats import SIMULATION_ARGUMENTS
    from chase_integrations.carbon.trace import TraceProvider

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigurationError.invalid("n", n, "an integer >= 1")
    provider = TraceProvider(trace, time_column=trace_time_column, value_column=trace_value_column,
                             arguments=SIMULATION_ARGUMENTS)
    first = provider.start + timedelta(hours=history_hours)
    last = provider.end - timedelta(hours=job_hours * (1.0 + max_slowdown) + 24.0)
    span_h = (last - first).total_seconds() / 3600.0
    if span_h < 0:
        raise ConfigurationError.invalid(
            "trace", str(trace), f"a trace longer than {history_hours:g} h of history + the job + 1 day",
            hint="use a longer trace, a shorter job_hours or a smaller history_hours")
    first = first.replace(minute=0, second=0, microsecond=0) + (timedelta(hours=1) if first.minute else timedelta())
    step_h = span_h / n if n > 1 else 0.0
    out = []
    for k in range(n):
        when = first + timedelta(hours=math.floor(k * step_h))
        out.append(when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return out


def simulate_many(
    starts: Sequence[str | datetime],
    policies: Mapping[str, Mapping[str, Any]] | Sequence[str],
    *,
    progress: bool | None = None,
    processes: int = 1,
    strict: bool = True,
    **common: Any,
) -> list[BatchRow]:
    """Simulate every policy at every start time; one :class:`BatchRow` per job (start-major order).

    Args:
        starts: Start times (ISO-8601 UTC strings or aware datetimes).
        policies: ``{label: simulate() keyword arguments}`` (see :func:`policy_grid`) or plain policy names.
        progress: Progress bar on stderr (``None``: only when stderr is a terminal; see
            :mod:`chase_integrations.reporting.progress`).
        processes: Worker processes (1: in this process).
        strict: Raise :class:`~chase_integrations.errors.SimulationInvalidError` when any run counted a
            fallback, an internal error or a degradation (``False``: return them; :func:`summarize` counts
            them in its ``invalid`` column).
        **common: Keyword arguments of :func:`~chase_integrations.simulation.simulate.simulate` shared by
            every job (``trace``, ``gpu_profile``, ``job_hours``, ...).

    Raises:
        ConfigurationError: A bad argument here or in ``simulate()``.
    """
    from chase_integrations.reporting.progress import progress_bar

    specs = {p: {"policy": p} for p in policies} if not isinstance(policies, Mapping) else dict(policies)
    if not specs:
        raise ConfigurationError.invalid("policies", policies, "at least one policy")
    if "start" in common or "policy" in common:
        raise ConfigurationError.invalid("common", sorted(common), "simulate() arguments other than start and policy",
                                         hint="pass start times as `starts` and policies as `policies`")
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ConfigurationError.invalid("processes", processes, "an integer >= 1")
    tasks = [(_iso(s), label, dict(kw), common) for s in starts for label, kw in specs.items()]
    rows: list[BatchRow | None] = [None] * len(tasks)
    with progress_bar(len(tasks), "simulations", progress) as bar:
        if processes == 1 or len(tasks) < 2:
            for i, task in enumerate(tasks):
                rows[i] = _run_one(task)
                bar.advance()
        else:
            import multiprocessing as mp

            with ProcessPoolExecutor(max_workers=processes, mp_context=mp.get_context("spawn")) as pool:
                futures = {pool.submit(_run_one, task): i for i, task in enumerate(tasks)}
                for future in as_completed(futures):
                    rows[futures[future]] = future.result()
                    bar.advance()
    done = [r for r in rows if r is not None]
    bad = [r for r in done if not r.valid]
    if bad and strict:
        from chase_integrations.errors import SimulationInvalidError

        raise SimulationInvalidError(
            f"{len(bad)} of {len(done)} simulated runs fell back (fallbacks, internal errors or degradations), e.g. "
            f"{bad[0].label} at {bad[0].start}: {bad[0].fallbacks} fallbacks, {bad[0].internal_errors} internal "
            f"errors, {bad[0].degraded} degraded. Their numbers are not those of the policy named; pass strict=False "
            "to keep them (summarize() counts them as invalid).")
    return done


def to_frame(rows: Sequence[BatchRow]) -> pd.DataFrame:
    """The rows as a pandas DataFrame (one column per :class:`BatchRow` field)."""
    import pandas as pd

    return pd.DataFrame([r.to_dict() for r in rows])


def summarize(rows: Sequence[BatchRow]) -> pd.DataFrame:
    """Per policy label (in first-seen order): median and mean carbon reduction, median and p95 time increase.

    Columns: ``policy, max_slowdown, power_limit_w, median_reduction, mean_reduction, median_time_increase,
    p95_time_increase, n, invalid`` (fractions; ``invalid``: runs that fell back). ``power_limit_w`` is set
    where every start used the same static limit.
    """
    import numpy as np
    import pandas as pd

    groups: dict[str, list[BatchRow]] = {}
    for r in rows:
        groups.setdefault(r.label, []).append(r)
    records = []
    for label, group in groups.items():
        red = [r.carbon_reduction for r in group]
        inc = [r.time_increase for r in group]
        limits = {r.power_limit_w for r in group}
        records.append({
            "label": label, "policy": group[0].policy, "max_slowdown": group[0].max_slowdown,
            "power_limit_w": limits.pop() if len(limits) == 1 else None,
            "median_reduction": statistics.median(red), "mean_reduction": statistics.fmean(red),
            "median_time_increase": statistics.median(inc), "p95_time_increase": float(np.percentile(inc, 95)),
            "n": len(group), "invalid": sum(1 for r in group if not r.valid),
        })
    return pd.DataFrame.from_records(records).set_index("label")


def best_static(summary: pd.DataFrame, max_slowdown: float) -> str | None:
    """Label of the static cap with the highest median reduction whose median slowdown fits ``max_slowdown``."""
    static = summary[(summary["policy"] == "static") & (summary["median_time_increase"] <= max_slowdown + 1e-9)]
    if static.empty:
        return None
    return str(static["median_reduction"].idxmax())


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices (ascending) of the points ``(slowdown, reduction)`` that no other point beats on both.

    A point is dominated when another has no more slowdown and no less reduction, and is strictly better
    in one of them. Ties (identical points) are all kept.
    """
    front = []
    for i, (si, ri) in enumerate(points):
        dominated = any(
            (sj <= si and rj >= ri) and (sj < si or rj > ri)
            for j, (sj, rj) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return front


def _run_one(task: tuple[str, str, dict[str, Any], dict[str, Any]]) -> BatchRow:
    from chase_integrations.simulation.simulate import simulate

    start, label, kwargs, common = task
    result = simulate(**common, **kwargs, start=start)
    return BatchRow(
        label=label, start=start, policy=result.policy,
        max_slowdown=float(kwargs["max_slowdown"]) if "max_slowdown" in kwargs else None,
        power_limit_w=result.power_limit_w, forecaster=result.forecaster,
        carbon_g=result.carbon_g, baseline_carbon_g=result.baseline_carbon_g,
        carbon_reduction=result.carbon_reduction, energy_j=result.energy_j, time_s=result.time_s,
        baseline_time_s=result.baseline_time_s, time_increase=result.time_increase,
        fallbacks=result.fallbacks, internal_errors=result.internal_errors, degraded=result.degraded,
    )


def _iso(start: str | datetime) -> str:
    if isinstance(start, datetime):
        when = start if start.tzinfo is not None else start.replace(tzinfo=timezone.utc)
        return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(start)


def _pct(fraction: float) -> str:
    return f"{100 * fraction:g} %"
