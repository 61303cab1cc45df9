r"""``chase simulate``: one job over a carbon trace, offline, through the real engine.

Example:
    chase simulate --trace US-CISO-2022 --gpu-profile a40 --workload imagenet/resnet50 --batch-size 256 \\
        --job-hours 30 --start 2022-03-01T00:00:00Z --policy budget --max-slowdown 0.05 --json

``--trace`` and ``--gpu-profile`` take a file or the short name of an embedded dataset (``chase data list``).
"""

from __future__ import annotations

import argparse
import json
import sys

from chase_integrations.core.arguments import argument_help
from chase_integrations.errors import ChaseError

_POLICIES = ("budget", "chase", "static", "default", "zeus", "oracle", "monitor")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``simulate`` subcommand to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "simulate", help="simulate one training job over a carbon-intensity trace",
        description="Simulate one training job over a carbon-intensity trace with a measured GPU profile, "
                    "through the same engine as the callbacks.",
    )
    p.add_argument("--trace", required=True, help="carbon-intensity CSV (a timestamp and a gCO2eq/kWh column) or "
                   "an embedded trace's short name, e.g. US-CISO-2022 (`chase data list`)")
    p.add_argument("--trace-value-column", default=None, help="intensity column of --trace (default: inferred)")
    p.add_argument("--trace-time-column", default=None, help="timestamp column of --trace (default: inferred)")
    p.add_argument("--gpu-profile", required=True, help="GPU profile CSV in the Zeus trace format or an embedded "
                   "profile's short name: a40, v100, rtx6000, p100, h200")
    p.add_argument("--workload", default="imagenet/resnet50", help="dataset/network in the profile")
    p.add_argument("--batch-size", type=int, default=256, help="batch size in the profile")
    p.add_argument("--optimizer", default=None, help="optimizer in the profile, when it has several")
    p.add_argument("--job-hours", type=float, required=True, help="job length at the default (highest) limit, h")
    p.add_argument("--start", required=True, help="start time, ISO-8601 UTC (e.g. 2023-03-01T00:00:00Z)")
    p.add_argument("--policy", default="budget", choices=_POLICIES, help=argument_help(
        "policy", "Here also: default (the GPU's default limit), zeus (Zeus's static choice), oracle (the "
        "budget policy with the true future)."))
    p.add_argument("--max-slowdown", type=float, default=0.05, help=argument_help("max_slowdown", "Also oracle's."))
    p.add_argument("--forecaster", default="arima", choices=("arima", "persistence", "seasonal_naive"),
                   help=argument_help("forecaster"))
    p.add_argument("--decision-interval-s", type=float, default=3600.0,
                   help=argument_help("decision_interval_s").replace("not given =", "0 =") + " Default 3600.")
    p.add_argument("--eta", type=float, default=0.5, help=argument_help("eta"))
    p.add_argument("--max-intensity", type=float, default=None, help=argument_help("max_intensity_g_per_kwh"))
    p.add_argument("--static-power-limit-w", type=int, default=None, help=argument_help("static_power_limit_w"))
    p.add_argument("--pue", type=float, default=1.0, help=argument_help("pue"))
    p.add_argument("--host-power-w", type=float, default=None, help=argument_help("host_power_w"))
    p.add_argument("--embodied-g-per-gpu-hour", type=float, default=0.0,
                   help=argument_help("embodied_g_per_gpu_hour"))
    p.add_argument("--profile", default="live", choices=("live", "preloaded"),
                   help="live: a first run, profiling the GPU on simulated steps of --step-s (default); "
                        "preloaded: a repeat run that starts with the profile known")
    p.add_argument("--step-s", type=float, default=60.0, help="length of one simulated step, s (default 60)")
    p.add_argument("--report", default=None, help="also write the engine's run report (JSON) here")
    p.add_argument("--json", action="store_true", help="print one JSON object (the result's fields)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``chase simulate``; return the exit status (0 ok, 2 bad arguments or data)."""
    from chase_integrations.carbon.formats import SIMULATE_CLI_ARGUMENTS
    from chase_integrations.carbon.trace import TraceProvider
    from chase_integrations.datasets import gpu_profile_path
    from chase_integrations.simulation.simulate import simulate

    try:
        # read here, so that errors name the options typed (--trace-value-column, not trace_value_column)
        trace = TraceProvider(args.trace, time_column=args.trace_time_column, value_column=args.trace_value_column,
                              arguments=SIMULATE_CLI_ARGUMENTS)
        gpu_profile = gpu_profile_path(args.gpu_profile, argument="--gpu-profile")
        result = simulate(
            trace=trace, gpu_profile=gpu_profile, workload=args.workload, batch_size=args.batch_size,
            job_hours=args.job_hours, start=args.start, policy=args.policy, max_slowdown=args.max_slowdown,
            forecaster=args.forecaster, decision_interval_s=args.decision_interval_s or None, eta=args.eta,
            static_power_limit_w=args.static_power_limit_w, max_intensity_g_per_kwh=args.max_intensity,
            trace_value_column=args.trace_value_column, trace_time_column=args.trace_time_column,
            optimizer=args.optimizer, pue=args.pue, report_path=args.report, host_power_w=args.host_power_w,
            embodied_g_per_gpu_hour=args.embodied_g_per_gpu_hour, profile=args.profile, step_s=args.step_s,
        )
    except (ChaseError, ValueError, ImportError) as e:
        print(f"chase simulate: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    limits = sorted({d["power_limit_w"] for d in result.decisions})
    scope = "GPU only" if result.scope == "gpu" else f"whole node, {args.host_power_w:g} W per GPU besides the GPU"
    print(f"policy {result.policy}: {result.carbon_g / 1000:.3f} kgCO2eq ({scope}), {result.energy_j / 3.6e6:.2f} kWh, "
          f"{result.time_s / 3600:.2f} h")
    print(f"default limit (the same job replayed at it): {result.baseline_carbon_g / 1000:.3f} kgCO2eq, "
          f"{result.baseline_energy_j / 3.6e6:.2f} kWh, {result.baseline_time_s / 3600:.2f} h")
    print(f"carbon reduction {100 * result.carbon_reduction:.1f} % against that replay (the run's own in-run "
          f"estimate, as its report says: {100 * result.estimated_carbon_reduction:.1f} %); time increase "
          f"{100 * result.time_increase:.2f} %; {len(result.decisions)} decisions, limits used {limits} W")
    if result.scope == "node":
        print(f"the GPUs alone: carbon reduction {100 * result.gpu_carbon_reduction:.1f} %")
    if result.fallbacks:
        print(f"note: {result.fallbacks} intervals used a fallback intensity (the trace has gaps or ends)")
    return 0
