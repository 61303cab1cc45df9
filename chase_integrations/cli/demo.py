"""``chase demo``: a simulated training run over a carbon trace, with a short report."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from chase_integrations._data import data_path

DEFAULT_TRACE = ("carbon", "electricitymaps_sustain_cluster", "DE-LU_2021-2024_hourly.csv")
DEFAULT_TRACE_COLUMN = "ci_direct_gco2eq_per_kwh"
DEFAULT_PROFILE = ("gpu", "nsdi23_trace", "summary_power_a40.csv")


def add_parser(sub) -> None:
    """Register ``chase demo``."""
    p = sub.add_parser(
        "demo",
        help="simulated training run over a carbon trace; prints the report",
        description="Train a tiny CPU model standing in for ResNet-50 on an A40, over a carbon trace, "
        "with ChaseCallback on a simulated GPU, and print what it did.",
    )
    p.add_argument("--framework", choices=["lightning", "hf"], default="lightning")
    p.add_argument("--trace", help="carbon-intensity CSV (default: DE-LU from CHASE_DATA_DIR, else built in code)")
    p.add_argument("--value-column", help="intensity column of --trace")
    p.add_argument("--gpu-profile", help="Zeus trace CSV (default: A40 from CHASE_DATA_DIR, else built in code)")
    p.add_argument("--workload", default="imagenet/resnet50")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--start", default="2023-03-01T00:00:00Z", help="simulated start time (UTC)")
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


def resolve_inputs(
    trace: str | None, value_column: str | None, gpu_profile: str | None, workdir: Path, start: str
) -> tuple[str, str | None, str, list[str]]:
    """Pick the trace and GPU profile: the user's, then the shared data folder's, then built in code."""
    from chase_integrations.simulation.synthetic import (
        SYNTHETIC_PROFILE_DESCRIPTION,
        SYNTHETIC_TRACE_DESCRIPTION,
        write_synthetic_gpu_profile,
        write_synthetic_trace,
    )

    notes = []
    if trace is None:
        shared = data_path(*DEFAULT_TRACE)
        if shared is not None:
            trace, value_column = str(shared), value_column or DEFAULT_TRACE_COLUMN
            notes.append(f"trace: Electricity Maps DE-LU hourly, direct intensity ({shared})")
        else:
            trace = str(write_synthetic_trace(workdir / "synthetic_trace.csv", start=start))
            notes.append(f"trace: {SYNTHETIC_TRACE_DESCRIPTION} (no shared data folder found)")
    else:
        notes.append(f"trace: {trace}")
    if gpu_profile is None:
        shared = data_path(*DEFAULT_PROFILE)
        if shared is not None:
            gpu_profile = str(shared)
            notes.append(f"GPU profile: Zeus NSDI'23 A40 measurements ({shared})")
        else:
            gpu_profile = str(write_synthetic_gpu_profile(workdir / "synthetic_a40.csv"))
            notes.append(f"GPU profile: {SYNTHETIC_PROFILE_DESCRIPTION} (no shared data folder found)")
    else:
        notes.append(f"GPU profile: {gpu_profile}")
    return trace, value_column, gpu_profile, notes


def run(args: argparse.Namespace) -> int:
    """Run the demo and print its summary."""
    from chase_integrations.simulation import Simulation

    with tempfile.TemporaryDirectory(prefix="chase-demo-") as tmp:
        workdir = Path(tmp)
        trace, column, profile, notes = resolve_inputs(
            args.trace, args.value_column, args.gpu_profile, workdir, args.start
        )
        sim = Simulation(
            gpu_profile=profile,
            workload=args.workload,
            batch_size=args.batch_size,
            trace=trace,
            trace_value_column=column,
            start=args.start,
            steps_per_epoch=args.steps_per_epoch,
        )
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
    """A short human summary of a run report."""
    carbon, base = report["carbon_g"], report["baseline_carbon_g"]
    time_s, base_t = report["time_s"], report["baseline_time_s"]
    lines = [
        f"chase demo ({framework}, simulated GPU, policy {report['policy']})",
        *[f"  {n}" for n in notes],
        "",
        f"  carbon      {carbon / 1000:9.3f} kgCO2eq   (default limit: {base / 1000:.3f} kg; "
        f"saved {report['carbon_saved_g'] / 1000:.3f} kg, {_pct(-report['carbon_saved_g'], base)})",
        f"  energy      {report['energy_j'] / 3.6e6:9.3f} kWh",
        f"  time        {time_s / 3600:9.2f} h         "
        f"(default limit: {base_t / 3600:.2f} h, {_pct(time_s - base_t, base_t)})",
        f"  limits used {', '.join(str(w) for w in report['power_limits_used_w'])} W "
        f"(original {report['original_power_limits_w']} W, restored at the end)",
        f"  intervals   {len(report['intervals'])}, provider fallbacks {report['fallbacks']}, mode {report['mode']}",
    ]
    return "\n".join(lines)


def _pct(delta: float, base: float) -> str:
    return f"{100 * delta / base:+.1f} %" if base else "n/a"
