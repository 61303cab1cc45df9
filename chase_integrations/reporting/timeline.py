"""Plot a run report over time: intensity and forecast, power limit, cumulative carbon vs the default limit.

matplotlib is an optional dependency (extra ``plot``); it is imported when a plot is made. The figure
is built without ``pyplot``, so it works on any backend (headless included) and is not kept open by
pyplot: save it with ``fig.savefig(path)`` or show it in a notebook with ``display(fig)``.

Example:
    >>> from chase_integrations.reporting import load_report, plot_timeline  # doctest: +SKIP
    >>> plot_timeline(load_report("run.json")).savefig("run.png", dpi=120)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from chase_integrations.errors import ChaseError
from chase_integrations.reporting.summary import ReportError, carbon_unit, format_percent, parse_time, summarize

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PLOT_EXTRA_HINT = 'pip install "chase-integrations[plot]"'
_LEGEND = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "fontsize": 9, "frameon": False}


class MissingExtraError(ChaseError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""


def require_matplotlib() -> Any:
    """Import matplotlib, or raise :class:`MissingExtraError` naming the ``plot`` extra."""
    try:
        import matplotlib
        from matplotlib.figure import Figure  # noqa: F401 - checks the part we use is importable
    except ImportError as e:
        raise MissingExtraError(
            f"plotting needs matplotlib, which is not installed ({e}). HINT: {PLOT_EXTRA_HINT}"
        ) from e
    return matplotlib


def plot_timeline(report: Mapping[str, Any], *, title: str | None = None,
                  figsize: tuple[float, float] = (12.0, 8.5)) -> Figure:
    """Three panels over time (UTC) from a run report.

    1. Grid carbon intensity of each interval and the forecast the decision used (gCO2eq/kWh);
       profiling intervals are shaded.
    2. The GPU power limit in force (W), with the default limit dashed.
    3. Cumulative emissions (gCO2eq or kgCO2eq) against the in-run estimate of the same steps run
       at the default limit, with the gap (the saving) shaded.

    Args:
        report: A run report (e.g. from :func:`~chase_integrations.reporting.load_report`).
        title: Figure title (default: policy, carbon saved and time increase).
        figsize: Figure size in inches.

    Raises:
        ReportError: The report has no intervals.
        MissingExtraError: matplotlib is not installed.
    """
    intervals = list(report.get("intervals") or [])
    if not intervals:
        raise ReportError("the run report has no intervals to plot (did the run stop before its first step?).")
    require_matplotlib()
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    starts = [parse_time(iv["start"]) for iv in intervals]
    ends = [parse_time(iv["end"]) for iv in intervals]
    edges = [*starts, ends[-1]]  # step plots: each value holds from its start to the next start

    def stepped(values: list[float | None]) -> list[float]:
        vals = [float("nan") if v is None else float(v) for v in values]
        return [*vals, vals[-1]]

    intensity = [float(iv["intensity_g_per_kwh"]) for iv in intervals]
    forecast = [iv.get("forecast_g_per_kwh") for iv in intervals]
    limits = [float(iv["power_limit_w"]) for iv in intervals]
    s = summarize(report)

    fig = Figure(figsize=figsize, layout="constrained")
    ax_ci, ax_pl, ax_c = fig.subplots(3, 1, sharex=True, height_ratios=[1.2, 1.0, 1.3])

    ax_ci.step(edges, stepped(intensity), where="post", color="tab:green", lw=1.8,
               label="grid intensity (interval mean)")
    if any(f is not None for f in forecast):
        ax_ci.step(edges, stepped(forecast), where="post", color="tab:purple", lw=1.4, ls="--",
                   label="forecast used by the decision")
    profiling = [(a, b) for a, b, iv in zip(starts, ends, intervals) if iv.get("phase") == "profile"]
    for i, (a, b) in enumerate(profiling):
        for ax in (ax_ci, ax_pl, ax_c):
            ax.axvspan(a, b, color="0.85", lw=0, zorder=0, label="profiling" if (i == 0 and ax is ax_ci) else None)
    ax_ci.set_ylabel("carbon intensity\n(gCO2eq/kWh)")
    ax_ci.legend(**_LEGEND)

    ax_pl.step(edges, stepped(limits), where="post", color="tab:blue", lw=1.8, label="power limit in force")
    default_w = report.get("default_power_limit_w") or max(limits)
    ax_pl.axhline(float(default_w), color="0.3", ls=":", lw=1.2, label=f"default limit ({float(default_w):.0f} W)")
    ax_pl.set_ylabel("GPU power limit\n(W)")
    lo, hi = min(limits), max(max(limits), float(default_w))
    pad = max(10.0, 0.08 * (hi - lo))
    ax_pl.set_ylim(lo - pad, hi + pad)
    ax_pl.legend(**_LEGEND)

    unit, scale = carbon_unit(max(s["carbon_g"], s["baseline_carbon_g"]))
    cum, run = [0.0], 0.0
    for iv in intervals:
        run += float(iv["carbon_g"])
        cum.append(run / scale)
    times = [starts[0], *ends]
    ax_c.plot(times, cum, color="tab:red", lw=2.0, label=f"this run ({s['policy']} policy)")
    if all(isinstance(iv.get("baseline_carbon_g"), (int, float)) for iv in intervals):
        base, run = [0.0], 0.0
        for iv in intervals:
            run += float(iv["baseline_carbon_g"])
            base.append(run / scale)
        ax_c.plot(times, base, color="0.25", lw=1.6, ls="--", label="same steps at the default limit (estimate)")
        gap = base[-1] - cum[-1]
        ax_c.fill_between(times, cum, base, where=[b >= c for b, c in zip(base, cum)], color="tab:green",
                          alpha=0.18, lw=0, interpolate=True,
                          label=f"carbon saved: {gap:.3g} {unit}" if gap >= 0 else "saved (while below)")
        if any(c > b for b, c in zip(base, cum)):
            ax_c.fill_between(times, cum, base, where=[c > b for b, c in zip(base, cum)], color="tab:red",
                              alpha=0.15, lw=0, interpolate=True,
                              label=f"extra carbon: {-gap:.3g} {unit}" if gap < 0 else "extra (while above)")
    ax_c.set_ylabel(f"cumulative emissions\n({unit})")
    ax_c.set_xlabel("time (UTC)")
    ax_c.set_ylim(bottom=0)
    ax_c.legend(**_LEGEND)

    locator = mdates.AutoDateLocator()
    ax_c.xaxis.set_major_locator(locator)
    ax_c.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    for ax in (ax_ci, ax_pl, ax_c):
        ax.grid(True, alpha=0.3)
    if title is None:
        saved = s["carbon_saved_g"]
        reduction = s["carbon_reduction"]
        title = (f"{s['policy']} policy: {abs(saved) / scale:.3g} {unit} {'saved' if saved >= 0 else 'extra'} "
                 f"({format_percent(abs(reduction) if reduction is not None else None)} "
                 f"{'less' if saved >= 0 else 'more'} than the default limit), time "
                 f"{format_percent(s['time_increase'], signed=True)}")
    fig.suptitle(title, fontsize=12)
    return fig
