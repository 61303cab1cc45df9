"""What the two-process child scripts share: options, counting provider/forecaster, per-rank results.

Every process of a job builds its own :class:`~chase_integrations.simulation.Simulation`, so each sees
its own simulated node with ``--num-gpus`` GPUs; rank ``r`` trains on simulated GPU ``r``. Each rank
writes ``rank<r>.json`` into ``--out`` (the test reads them); rank 0 also writes the run report.
"""

from __future__ import annotations

import argparse
import json
import os
import traceback
import warnings
from pathlib import Path

import torch.distributed as dist

from chase_integrations.carbon import TraceProvider
from chase_integrations.errors import ChaseWarning
from chase_integrations.forecast import PersistenceForecaster
from chase_integrations.simulation import Simulation


class CountingTraceProvider(TraceProvider):
    """A :class:`TraceProvider` that counts the calls made to it in this process."""

    calls = 0

    def latest(self):
        CountingTraceProvider.calls += 1
        return super().latest()

    def history(self, hours: float = 24):
        CountingTraceProvider.calls += 1
        return super().history(hours)

    def forecast(self, hours):
        CountingTraceProvider.calls += 1
        return super().forecast(hours)


class CountingForecaster(PersistenceForecaster):
    """A :class:`PersistenceForecaster` that counts its calls in this process."""

    calls = 0

    def fit(self, history):
        CountingForecaster.calls += 1
        return super().fit(history)

    def update(self, reading):
        CountingForecaster.calls += 1
        return super().update(reading)

    def predict(self, hours):
        CountingForecaster.calls += 1
        return super().predict(hours)


def parse_args() -> argparse.Namespace:
    """The child scripts' options."""
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True, help="folder for rank<r>.json and report.json")
    p.add_argument("--profile", required=True, help="GPU profile CSV of every rank but rank 1")
    p.add_argument("--profile-rank1", default=None, help="GPU profile CSV of rank 1 (a slower GPU)")
    p.add_argument("--trace", required=True)
    p.add_argument("--no-permission-rank", type=int, default=-1, help="this rank may not set limits")
    p.add_argument("--strict", action="store_true")
    p.add_argument("--steps", type=int, default=20, help="optimizer steps per epoch on each rank")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--min-window-s", type=float, default=2.0, help="profile_min_window_s")
    p.add_argument("--frozen-counter-w", type=int, default=None,
                   help="every GPU's energy counter stands still while its limit is this many W")
    return p.parse_args()


def make_simulation(args: argparse.Namespace, rank: int) -> Simulation:
    """This process's simulated node: two GPUs at 275 W (of 100-300 W)."""
    profile = args.profile_rank1 if rank == 1 and args.profile_rank1 else args.profile
    sim = Simulation(gpu_profile=profile, workload="imagenet/resnet50", batch_size=256, trace=None,
                     start="2023-03-01T00:00:00Z", num_gpus=2, steps_per_epoch=20, initial_power_limit_w=275,
                     allow_set_power_limit=rank != args.no_permission_rank)
    if args.frozen_counter_w is not None:
        for gpu in sim.gpus.gpus:
            gpu.run = _frozen_at(gpu, gpu.run, args.frozen_counter_w)
    return sim


def _frozen_at(gpu, run, limit_w: int):
    def run_gpu(seconds: float) -> None:
        if gpu.power_limit_w != limit_w:
            run(seconds)

    return run_gpu


def callback_options(args: argparse.Namespace, sim: Simulation) -> dict:
    """Keyword arguments of both callbacks (the same on every rank)."""
    return dict(
        provider=CountingTraceProvider(args.trace, clock=sim.clock), simulation=sim,
        forecaster=CountingForecaster(), policy="budget", max_slowdown=0.1, decision_interval_s=1800,
        power_limits_w=[200, 250, 300], report_path=str(Path(args.out) / "report.json"), strict=args.strict,
        profile_warmup_steps=1, profile_measure_steps=3, profile_min_window_s=args.min_window_s,
    )


def run_and_record(args: argparse.Namespace, rank_of, train, sim_of, callback_of) -> int:
    """Run ``train()``, then write this rank's ``rank<r>.json``; return the exit status (0: trained)."""
    error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ChaseWarning)
        try:
            train()
        except Exception as e:  # recorded for the test, which checks every rank failed the same way
            error = {"type": type(e).__name__, "message": str(e), "traceback": traceback.format_exc()}
    rank = rank_of()
    sim, cb = sim_of(), callback_of()
    session = cb.session
    result = {
        "rank": rank,
        "pid": os.getpid(),
        "error": error,
        "provider_calls": CountingTraceProvider.calls,
        "forecaster_calls": CountingForecaster.calls,
        "limit_history_w": [list(g.limit_history_w) for g in sim.gpus.gpus],
        "final_limits_w": list(sim.power_limits_w),
        "counter_energy_j": [sim.gpus.get_total_energy_consumption(i) / 1000.0 for i in range(sim.num_gpus)],
        "own_time_per_step_s": {str(w): sim.step_profile.time_per_step_s(w) for w in (200, 250, 300)},
        "own_energy_per_step_j": {str(w): sim.step_profile.energy_per_step_j(w) for w in (200, 250, 300)},
        "warnings": [str(w.message) for w in caught if issubclass(w.category, ChaseWarning)],
        "mode": session.mode,
        "steps": session.steps,
        "profile": session.profile.to_dict() if session.profile is not None else None,
        "report": cb.report,
    }
    Path(args.out, f"rank{rank}.json").write_text(json.dumps(result, indent=1, default=str))
    # The frameworks leave the gloo process group to interpreter exit, where its threads were once
    # seen to abort a rank that had finished ("terminate called without an active exception",
    # SIGABRT) on a loaded machine; tear it down while the interpreter is whole.
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    return 0 if error is None else 3
