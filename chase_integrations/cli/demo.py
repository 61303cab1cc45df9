"""``chase demo``: a simulated training run over a real carbon trace, with a short report.

By default it replays the embedded ``US-CISO-2022`` trace (California ISO, EIA-930) with the embedded Zeus
A40 profile (ResNet-50, batch 256), from 2022-03-01, and says so; ``--trace`` / ``--gpu-profile`` take a
file or another short name (``chase data list``), ``--synthetic`` uses data built in code instead.

Example:
    >>> import argparse, tempfile
    >>> parser = argparse.ArgumentParser(prog="chase")
    >>> add_parser(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["demo"])
    >>> inputs = resolve_inputs(args.trace, args.value_column, args.gpu_profile, tempfile.mkdtemp(), args.start)
    >>> inputs.provider.path.name, inputs.gpu_profile.name, inputs.start
    ('US-CISO-2022.csv.gz', 'summary_power_a40.csv', '2022-03-01T00:00:00Z')
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from chase_integrations.datasets import DEMO_GPU_PROFILE, DEMO_TRACE

#: Where the demo starts on the embedded trace: early March, when California's solar makes a deep daily dip.
DEMO_START = "2022-03-01T00:00:00Z"
#: Where it starts on the synthetic trace (``--synthetic``).
SYNTHETIC_START = "2023-03-01T00:00:00Z"


def add_parser(sub) -> None:
    """Register ``chase demo``."""
    p = sub.add_parser(
        "demo",
        help="simulated training run over a carbon trace; prints the report",
        description="Train a tiny CPU model standing in for ResNet-50 on an A40, over a real carbon trace "
        f"(default: the embedded {DEMO_TRACE}), with ChaseCallback on a simulated GPU, and print what it did.",
    )
    p.add_argument("--framework", choices=["lightning", "hf"], default="lightning")
    p.add_argument("--trace", help=f"carbon-intensity CSV or embedded trace name (default: {DEMO_TRACE}; "
                   "`chase data list`)")
    p.add_argument("--value-column", help="intensity column of --trace (default: inferred)")
    p.add_argument("--gpu-profile", help=f"Zeus trace CSV or embedded profile name (default: {DEMO_GPU_PROFILE})")
    p.add_argument("--synthetic", action="store_true",
                   help="where --trace / --gpu-profile are not given, use data built in code (not real data)")
    p.add_argument("--workload", default="imagenet/resnet50")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--start", default=None, help=f"simulated start time, UTC (default: {DEMO_START} on an "
                   "embedded trace, else 2 days into the trace)")
    p.add_argument("--policy", default="budget", choices=["budget", "chase", "static", "monitor"])
    p.add_argument("--max-slowdown", type=float, default=0.05)
    p.add_argument("--eta", type=float, default=0.5)
    p.add_argument("--static-power-limit-w", type=int, default=None)
    p.add_argument("--forecaster", default="seasonal_naive", choices=["arima", "persistence", "seasonal_naive"])
    p.add_argument("--epochs", type=int, default=24, help="profiled epochs to train (about 1 h each on an A40)")
    p.add_argument("--steps-per-epoch", type=int, default=20)
    p.add_argument("--decision-interval-s", type=float, default=1800.0)
    p.add_argument("--report", help="also write the JSON report here")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the summary")
    p.set_defaults(run=run)


@dataclass(frozen=True)
class DemoInputs:
    """What the demo runs on, and the lines that say so."""

    provider: object  # a TraceProvider (not imported at module level: ``chase --help`` stays light)
    gpu_profile: Path
    start: str
    notes: list[str]


def resolve_inputs(
    trace: str | None, value_column: str | None, gpu_profile: str | None, workdir: str | Path,
    start: str | None = None, synthetic: bool = False, workload: str = "imagenet/resnet50", batch_size: int = 256,
) -> DemoInputs:
    """Pick the trace, GPU profile and start: the user's, else the embedded ones (``synthetic``: built in code)."""
    from chase_integrations.carbon.formats import CLI_ARGUMENTS
    from chase_integrations.carbon.trace import TraceProvider
    from chase_integrations.datasets import gpu_profile_path
    from chase_integrations.errors import ConfigurationError
    from chase_integrations.simulation.clock import parse_utc
    from chase_integrations.simulation.synthetic import (
        SYNTHETIC_PROFILE_DESCRIPTION,
        SYNTHETIC_TRACE_DESCRIPTION,
        write_synthetic_gpu_profile,
        write_synthetic_trace,
    )

    workdir = Path(workdir)
    notes = []
    if trace is None and synthetic:
        start = start or SYNTHETIC_START
        trace = str(write_synthetic_trace(workdir / "synthetic_trace.csv", start=start))
        notes.append(f"trace: SYNTHETIC, {SYNTHETIC_TRACE_DESCRIPTION}")
    else:
        trace = trace or DEMO_TRACE
    provider = TraceProvider(trace, value_column=value_column, arguments=CLI_ARGUMENTS)
    if not notes:
        notes.append(f"trace: {_describe(trace, 'trace')}")
        if not Path(trace).is_file():  # an embedded trace: they all cover DEMO_START
            start = start or DEMO_START
    if start is None:
        start = (provider.start + min(timedelta(days=2), (provider.end - provider.start) / 2)).isoformat()
    if not provider.start <= parse_utc(start) <= provider.end:
        raise ConfigurationError.invalid("--start", start, f"a time within the trace ({provider.start.isoformat()} "
                                         f"to {provider.end.isoformat()})")
    if gpu_profile is None and synthetic:
        path = write_synthetic_gpu_profile(workdir / "synthetic_a40.csv", workload=workload, batch_size=batch_size)
        notes.append(f"GPU profile: SYNTHETIC, {SYNTHETIC_PROFILE_DESCRIPTION}")
    else:
        gpu_profile = gpu_profile or DEMO_GPU_PROFILE
        path = gpu_profile_path(gpu_profile, argument="--gpu-profile")  # raises for an unknown name
        notes.append(f"GPU profile: {_describe(gpu_profile, 'gpu_profile')}, {workload} batch {batch_size}")
    return DemoInputs(provider, path, start, notes)


def _describe(value: str, kind: str) -> str:
    """For a short name: which embedded data, its source and licence (two lines); for a file: its path."""
    from chase_integrations.datasets import get_dataset

    if Path(value).is_file():
        return str(value)
    d = get_dataset(value, kind)
    return f"{d.name}, embedded real data: {d.description}\n    ({d.source}; licence {d.licence})"


def run(args: argparse.Namespace) -> int:
    """Run the demo and print its summary."""
    from chase_integrations.simulation import Simulation

    with tempfile.TemporaryDirectory(prefix="chase-demo-") as tmp:
        workdir = Path(tmp)
        inputs = resolve_inputs(args.trace, args.value_column, args.gpu_profile, workdir, args.start,
                                synthetic=args.synthetic, workload=args.workload, batch_size=args.batch_size)
        notes = [*inputs.notes, f"start: {inputs.start}"]
        sim = Simulation(
            gpu_profile=inputs.gpu_profile,
            workload=args.workload,
            batch_size=args.batch_size,
            trace=None,
            start=inputs.start,
            steps_per_epoch=args.steps_per_epoch,
        )
        sim.provider = inputs.provider.with_clock(sim.clock)
        kwargs = dict(
            provider=sim.provider,
            simulation=sim,
            policy=args.policy,
            max_slowdown=args.max_slowdown,
            eta=args.eta,
            static_power_limit_w=args.static_power_limit_w,
            forecaster=args.forecaster,
            decision_interval_s=args.decision_interval_s,
            report_path=args.report,
            profile_warmup_steps=1,
            profile_measure_steps=3,
        )
        if args.framework == "hf":
            from chase_integrations.huggingface.demo import run_hf_demo

            report = run_hf_demo(sim, kwargs, args.epochs, args.steps_per_epoch)
        else:
            report = _run_lightning(sim, kwargs, args.epochs, args.steps_per_epoch, workdir)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_summary(report, notes, args.framework))
    return 0


def _run_lightning(sim, kwargs: dict, epochs: int, steps_per_epoch: int, workdir: Path) -> dict:
    import logging
    import warnings

    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from chase_integrations.lightning import ChaseCallback

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)

    class Tiny(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(8, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    g = torch.Generator().manual_seed(0)
    data = TensorDataset(
        torch.randn(steps_per_epoch * 4, 8, generator=g), torch.randn(steps_per_epoch * 4, 1, generator=g)
    )
    callback = ChaseCallback(**kwargs)
    trainer = L.Trainer(
        max_epochs=epochs,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
        default_root_dir=str(workdir),
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="lightning")
        trainer.fit(Tiny(), DataLoader(data, batch_size=4))
    return callback.report


def format_summary(report: dict, notes: list[str], framework: str = "lightning") -> str:
    """The demo's header and notes, then the report's summary (:func:`chase_integrations.reporting.format_summary`)."""
    from chase_integrations.reporting import format_summary as report_summary

    head = [f"chase demo ({framework}, simulated GPU, policy {report['policy']})", *[f"  {n}" for n in notes], ""]
    restored = f"  original limits {report['original_power_limits_w']} W, restored at the end"
    return "\n".join([*head, report_summary(report), restored])
