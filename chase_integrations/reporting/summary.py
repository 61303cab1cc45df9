"""Read a run report (docs/metrics.md, "Run report") and describe it in text: totals, savings, time per limit.

Pure: no plotting, no printing. ``chase report`` and ``notebooks/03_reading_a_run.ipynb`` use it.

Example:
    >>> report = {"policy": "budget", "carbon_g": 900.0, "baseline_carbon_g": 1000.0, "carbon_saved_g": 100.0,
    ...           "energy_j": 7.2e6, "time_s": 3780.0, "baseline_time_s": 3600.0, "intervals": [
    ...     {"start": "2024-01-01T00:00:00+00:00", "end": "2024-01-01T01:03:00+00:00", "power_limit_w": 250,
    ...      "intensity_g_per_kwh": 450.0, "forecast_g_per_kwh": None, "energy_j": 7.2e6, "carbon_g": 900.0}]}
    >>> s = summarize(validate_report(report))
    >>> round(s["carbon_reduction"], 3), round(s["time_increase"], 3)
    (0.1, 0.05)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from chase_integrations.errors import ChaseError

REQUIRED_KEYS = ("policy", "carbon_g", "energy_j", "time_s", "baseline_carbon_g", "baseline_time_s", "intervals")
INTERVAL_KEYS = ("start", "end", "power_limit_w", "intensity_g_per_kwh", "energy_j", "carbon_g")
_HINT = "write one with report_path=... on a callback, `chase demo --report run.json` or `chase simulate --report`"


class ReportError(ChaseError, ValueError):
    """A run report is missing, unreadable or not in the run-report format (docs/metrics.md)."""


def load_report(path: str | Path) -> dict:
    """Read and check a run report JSON file.

    Raises:
        ReportError: The file is missing, is not JSON, or lacks the fields of a run report.
    """
    path = Path(path)
    if not path.exists():
        raise ReportError(f"run report {str(path)!r} does not exist. HINT: {_HINT}.")
    if not path.is_file():
        raise ReportError(f"run report {str(path)!r} is not a file.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ReportError(f"cannot read run report {str(path)!r}: {e}") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ReportError(f"run report {str(path)!r} is not valid JSON (line {e.lineno}, column {e.colno}: "
                          f"{e.msg}).") from e
    return validate_report(data, source=str(path))


def validate_report(report: Any, source: str = "the report") -> dict:
    """Check that ``report`` has the run-report fields this module reads; return it unchanged.

    Raises:
        ReportError: Naming the first missing or malformed field.
    """
    if not isinstance(report, Mapping):
        raise ReportError(f"{source} must be a JSON object (a run report), got {type(report).__name__}.")
    missing = [k for k in REQUIRED_KEYS if k not in report]
    if missing:
        raise ReportError(f"{source} is not a run report: missing {', '.join(missing)}. HINT: {_HINT}.")
    for key in REQUIRED_KEYS[1:-1]:
        if not _is_number(report[key]):
            raise ReportError(f"{source}: `{key}` must be a number, got {report[key]!r}.")
    intervals = report["intervals"]
    if not isinstance(intervals, list):
        raise ReportError(f"{source}: `intervals` must be a list, got {type(intervals).__name__}.")
    for i, iv in enumerate(intervals):
        if not isinstance(iv, Mapping):
            raise ReportError(f"{source}: intervals[{i}] must be an object, got {iv!r}.")
        for key in INTERVAL_KEYS:
            if key not in iv:
                raise ReportError(f"{source}: intervals[{i}] has no `{key}`.")
        for key in ("start", "end"):
            try:
                parse_time(iv[key])
            except (TypeError, ValueError) as e:
                raise ReportError(f"{source}: intervals[{i}].{key} must be an ISO-8601 time, got {iv[key]!r}.") from e
        for key in INTERVAL_KEYS[2:]:
            if not _is_number(iv[key]):
                raise ReportError(f"{source}: intervals[{i}].{key} must be a number, got {iv[key]!r}.")
    return dict(report)


def parse_time(text: str) -> datetime:
    """An ISO-8601 time from a report as an aware UTC datetime (naive is taken as UTC)."""
    when = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def summarize(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report's key numbers as a JSON-safe dict (``chase report --json``).

    Fractions are fractions; ``None`` where the report lacks what a number needs.
    """
    intervals = list(report["intervals"])
    base_c, base_t = float(report["baseline_carbon_g"]), float(report["baseline_time_s"])
    saved = float(report.get("carbon_saved_g", base_c - float(report["carbon_g"])))
    energy = sum(float(iv["energy_j"]) for iv in intervals)
    with_forecast = [iv for iv in intervals if _is_number(iv.get("forecast_g_per_kwh"))]
    intensities = [float(iv["intensity_g_per_kwh"]) for iv in intervals]
    out: dict[str, Any] = {
        "policy": report["policy"],
        "provider": report.get("provider"),
        "mode": report.get("mode"),
        "status": report.get("status"),
        "carbon_g": float(report["carbon_g"]),
        "baseline_carbon_g": base_c,
        "carbon_saved_g": saved,
        "carbon_reduction": saved / base_c if base_c > 0 else None,
        "energy_j": float(report["energy_j"]),
        "baseline_energy_j": _float_or_none(report.get("baseline_energy_j")),
        "time_s": float(report["time_s"]),
        "baseline_time_s": base_t,
        "time_increase": float(report["time_s"]) / base_t - 1.0 if base_t > 0 else None,
        "intervals": len(intervals),
        "profiling_intervals": sum(1 for iv in intervals if iv.get("phase") == "profile"),
        "start": intervals[0]["start"] if intervals else None,
        "end": intervals[-1]["end"] if intervals else None,
        "mean_intensity_g_per_kwh": sum(intensities) / len(intensities) if intensities else None,
        "energy_weighted_intensity_g_per_kwh": (
            sum(float(iv["intensity_g_per_kwh"]) * float(iv["energy_j"]) for iv in intervals) / energy
            if energy > 0 else None),
        "min_intensity_g_per_kwh": min(intensities) if intensities else None,
        "max_intensity_g_per_kwh": max(intensities) if intensities else None,
        "forecast_mae_g_per_kwh": (
            sum(abs(float(iv["forecast_g_per_kwh"]) - float(iv["intensity_g_per_kwh"])) for iv in with_forecast)
            / len(with_forecast) if with_forecast else None),
        "forecast_intervals": len(with_forecast),
        "fallbacks": int(report.get("fallbacks", 0) or 0),
        "default_power_limit_w": report.get("default_power_limit_w"),
        "power_limits_used_w": sorted({int(iv["power_limit_w"]) for iv in intervals}),
        "predicted_total_carbon_g": _float_or_none(report.get("predicted_total_carbon_g")),
    }
    prediction = report.get("prediction")
    if isinstance(prediction, Mapping):
        out["predicted_lower_carbon_g"] = _float_or_none(prediction.get("lower_carbon_g"))
        out["predicted_upper_carbon_g"] = _float_or_none(prediction.get("upper_carbon_g"))
        early = prediction.get("early")
        if isinstance(early, Mapping):  # what was predicted early, to set beside the outcome
            out["early_prediction"] = {k: _float_or_none(early.get(k)) for k in
                                       ("total_carbon_g", "lower_carbon_g", "upper_carbon_g", "done_fraction")}
    cost = report.get("profiling")
    out["profiling"] = {k: _float_or_none(cost.get(k)) for k in
                        ("duration_s", "steps", "time_s", "carbon_g", "share_of_budget")} \
        if isinstance(cost, Mapping) and cost.get("steps") else None
    out["scope"] = report.get("scope", "gpu")
    out["gpu_carbon_saved_g"] = _float_or_none(report.get("gpu_carbon_saved_g"))
    exact = report.get("exact_baseline")
    out["exact_carbon_reduction"] = _float_or_none(exact.get("carbon_reduction")) if isinstance(exact, Mapping) \
        else None
    return out


def format_summary(report: Mapping[str, Any]) -> str:
    """A short human summary of a run report: carbon, energy and time against the default limit."""
    s = summarize(report)
    unit, scale = _carbon_unit(max(s["carbon_g"], s["baseline_carbon_g"]))
    head = f"Run report: policy {s['policy']}"
    if s["provider"]:
        head += f", provider {s['provider']}"
    if s["mode"] or s["status"]:
        head += f" ({', '.join(x for x in (s['mode'], s['status']) if x)})"
    lines = [head]
    lines.append(f"  carbon     {s['carbon_g'] / scale:10.3f} {unit}   default limit (estimate): "
                 f"{s['baseline_carbon_g'] / scale:.3f} {unit}; saved {s['carbon_saved_g'] / scale:.3f} {unit} "
                 f"({format_percent(s['carbon_reduction'])})")
    energy = f"  energy     {s['energy_j'] / 3.6e6:10.3f} kWh"
    if s["baseline_energy_j"] is not None:
        energy += f"       default limit: {s['baseline_energy_j'] / 3.6e6:.3f} kWh"
    lines.append(energy)
    lines.append(f"  time       {s['time_s'] / 3600:10.2f} h         default limit: "
                 f"{s['baseline_time_s'] / 3600:.2f} h (time {format_percent(s['time_increase'], signed=True)})")
    if s["start"]:
        lines.append(f"  span       {_short(s['start'])} to {_short(s['end'])} UTC, {s['intervals']} intervals"
                     + (f" ({s['profiling_intervals']} profiling)" if s["profiling_intervals"] else ""))
    cost = s.get("profiling")
    if cost and cost.get("duration_s") is not None and cost.get("time_s") is not None:
        text = (f"  profiling  {cost['duration_s'] / 60:.1f} min over {cost['steps']:.0f} steps; cost "
                f"{cost['time_s']:+.0f} s")
        if cost.get("share_of_budget") is not None:
            text += f" ({format_percent(cost['share_of_budget'])} of the slowdown budget)"
        if cost.get("carbon_g") is not None:
            text += f", {cost['carbon_g'] / scale:+.3f} {unit}"
        lines.append(text)
    if s["mean_intensity_g_per_kwh"] is not None:
        lines.append(f"  intensity  mean {s['mean_intensity_g_per_kwh']:.0f} gCO2eq/kWh over intervals "
                     f"(range {s['min_intensity_g_per_kwh']:.0f}-{s['max_intensity_g_per_kwh']:.0f})")
    if s["forecast_mae_g_per_kwh"] is not None:
        lines.append(f"  forecast   mean absolute error {s['forecast_mae_g_per_kwh']:.1f} gCO2eq/kWh "
                     f"over {s['forecast_intervals']} intervals")
    if s["exact_carbon_reduction"] is not None:
        lines.append(f"  replayed   the same job replayed at the default limit (simulation, exact): saving "
                     f"{format_percent(s['exact_carbon_reduction'])}; above: the run's in-run estimate")
    if s["scope"] != "gpu" and s["gpu_carbon_saved_g"] is not None:
        lines.append(f"  scope      {s['scope']} (GPUs alone: saved {s['gpu_carbon_saved_g'] / scale:.3f} {unit})")
    early = s.get("early_prediction")
    if early and early.get("total_carbon_g") is not None:
        done = format_percent(early["done_fraction"])
        text = f"  predicted  {early['total_carbon_g'] / scale:.3f} {unit} at {done} of the job"
        if early.get("lower_carbon_g") is not None and early.get("upper_carbon_g") is not None:
            text += f" (80 % range {early['lower_carbon_g'] / scale:.3f}-{early['upper_carbon_g'] / scale:.3f})"
        lines.append(text + f"; outcome {s['carbon_g'] / scale:.3f} {unit}")
    elif s["predicted_total_carbon_g"] is not None:
        text = f"  predicted  {s['predicted_total_carbon_g'] / scale:.3f} {unit} in total at the last decision"
        lo, hi = s.get("predicted_lower_carbon_g"), s.get("predicted_upper_carbon_g")
        if lo is not None and hi is not None:
            text += f" (range {lo / scale:.3f}-{hi / scale:.3f} {unit})"
        lines.append(text)
    lines.append(f"  limits     {', '.join(str(w) for w in s['power_limits_used_w']) or '-'} W"
                 + (f" (default {s['default_power_limit_w']} W)" if s["default_power_limit_w"] else "")
                 + f"; provider fallbacks {s['fallbacks']}")
    return "\n".join(lines)


def limit_breakdown(report: Mapping[str, Any]) -> list[dict[str, float]]:
    """Per power limit: time, share of time, energy, carbon and energy-weighted intensity (ascending limit)."""
    rows: dict[int, dict[str, float]] = {}
    total_s = 0.0
    for iv in report["intervals"]:
        duration = _duration_s(iv)
        total_s += duration
        row = rows.setdefault(int(iv["power_limit_w"]), {"time_s": 0.0, "energy_j": 0.0, "carbon_g": 0.0})
        row["time_s"] += duration
        row["energy_j"] += float(iv["energy_j"])
        row["carbon_g"] += float(iv["carbon_g"])
    out = []
    for limit in sorted(rows):
        row = rows[limit]
        kwh = row["energy_j"] / 3.6e6
        out.append({"power_limit_w": limit, "time_s": row["time_s"],
                    "time_share": row["time_s"] / total_s if total_s > 0 else 0.0,
                    "energy_j": row["energy_j"], "carbon_g": row["carbon_g"],
                    "intensity_g_per_kwh": row["carbon_g"] / kwh if kwh > 0 else float("nan")})
    return out


def format_table(report: Mapping[str, Any]) -> str:
    """A terminal table of time, energy and carbon per power limit."""
    rows = limit_breakdown(report)
    unit, scale = _carbon_unit(max((r["carbon_g"] for r in rows), default=0.0))
    header = (f"{'limit W':>8} {'time h':>8} {'share':>7} {'energy kWh':>11} {'carbon ' + unit:>14} "
              f"{'gCO2eq/kWh':>11}")
    lines = [header, "-" * len(header)]
    for r in rows:
        intensity = "-" if math.isnan(r["intensity_g_per_kwh"]) else f"{r['intensity_g_per_kwh']:.0f}"
        lines.append(f"{r['power_limit_w']:>8d} {r['time_s'] / 3600:>8.2f} {100 * r['time_share']:>6.1f}% "
                     f"{r['energy_j'] / 3.6e6:>11.3f} {r['carbon_g'] / scale:>14.3f} {intensity:>11}")
    total_s = sum(r["time_s"] for r in rows)
    lines.append("-" * len(header))
    lines.append(f"{'total':>8} {total_s / 3600:>8.2f} {'100.0%' if rows else '-':>7} "
                 f"{sum(r['energy_j'] for r in rows) / 3.6e6:>11.3f} "
                 f"{sum(r['carbon_g'] for r in rows) / scale:>14.3f}")
    return "\n".join(lines)


def format_intervals(report: Mapping[str, Any]) -> str:
    """A terminal table with one row per interval (``chase report --intervals``)."""
    header = (f"{'start (UTC)':<17} {'min':>6} {'phase':<8} {'limit W':>7} {'gCO2eq/kWh':>10} {'forecast':>9} "
              f"{'energy kWh':>10} {'carbon g':>9}")
    lines = [header, "-" * len(header)]
    for iv in report["intervals"]:
        forecast = iv.get("forecast_g_per_kwh")
        lines.append(f"{_short(iv['start']):<17} {_duration_s(iv) / 60:>6.1f} {iv.get('phase', '-')!s:<8} "
                     f"{int(iv['power_limit_w']):>7d} {float(iv['intensity_g_per_kwh']):>10.1f} "
                     f"{(f'{float(forecast):.1f}' if _is_number(forecast) else '-'):>9} "
                     f"{float(iv['energy_j']) / 3.6e6:>10.4f} {float(iv['carbon_g']):>9.2f}")
    return "\n".join(lines)


def carbon_unit(grams: float) -> tuple[str, float]:
    """``("kgCO2eq", 1000.0)`` for 1 kg and more, else ``("gCO2eq", 1.0)``: the unit and its size in g."""
    return _carbon_unit(grams)


def _carbon_unit(grams: float) -> tuple[str, float]:
    return ("kgCO2eq", 1000.0) if abs(grams) >= 1000.0 else ("gCO2eq", 1.0)


def _duration_s(iv: Mapping[str, Any]) -> float:
    if _is_number(iv.get("duration_s")):
        return float(iv["duration_s"])
    return (parse_time(iv["end"]) - parse_time(iv["start"])).total_seconds()


def _short(text: str) -> str:
    return parse_time(text).strftime("%Y-%m-%d %H:%M")


def format_percent(fraction: float | None, signed: bool = False) -> str:
    """A fraction as a percentage for people (``"n/a"`` when missing).

    Example:
        >>> format_percent(0.1364), format_percent(0.025, signed=True), format_percent(None)
        ('13.6 %', '+2.5 %', 'n/a')
    """
    if fraction is None:
        return "n/a"
    return f"{100 * fraction:+.1f} %" if signed else f"{100 * fraction:.1f} %"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _float_or_none(value: Any) -> float | None:
    return float(value) if _is_number(value) else None
