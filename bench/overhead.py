"""Overhead of ChaseCallback on a training step.

Interleaved Lightning runs of a ~15 ms CPU step, with and without the callback (policy ``chase``, a
``StaticProvider``, decisions every 2 s of wall time, real ``ZeusMonitor`` windows over simulated GPU
counters, profiling included). Reports the ratio of mean step times and the worst extra delay of a
step on which a decision happened.

    python bench/overhead.py [--rounds 4] [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from chase_integrations.carbon import StaticProvider
from chase_integrations.lightning import ChaseCallback
from chase_integrations.simulation import SimulatedGPU, SimulatedGPUs

torch.set_num_threads(1)


class Work(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(512, 512)

    def training_step(self, batch, batch_idx):
        x = batch[0]
        for _ in range(6):
            x = torch.tanh(self.layer(x))
        return x.pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-4)


class GpuWork(L.Callback):
    """Advances the simulated GPU's energy counter by the wall time of each step (as a real GPU's would).

    Without it the counter never moves, the engine rightly finds it stalled and stops power control, and the
    benchmark would time a run that makes no decisions that change anything.
    """

    def __init__(self, gpu: SimulatedGPU) -> None:
        self.gpu = gpu
        self.last = time.perf_counter()

    def on_train_batch_end(self, *args) -> None:
        now = time.perf_counter()
        self.gpu.run(now - self.last)
        self.last = now


class StepTimer(L.Callback):
    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_train_batch_end(self, *args) -> None:
        self.stamps.append(time.perf_counter())


def run(steps: int, with_chase: bool) -> tuple[list[float], list[int]]:
    data = TensorDataset(torch.randn(steps * 64, 512))
    timer = StepTimer()
    callbacks = []
    chase = None
    if with_chase:
        gpu = SimulatedGPU(0, "sim", 100, 300, power_w_at=lambda w: 0.8 * w, initial_limit_w=300)
        gpus = SimulatedGPUs([gpu])
        callbacks.append(GpuWork(gpu))  # before ChaseCallback: the counter has moved when it reads it
        chase = ChaseCallback(provider=StaticProvider(300.0), policy="chase", forecaster="persistence", gpus=gpus,
                              decision_interval_s=2.0, profile_warmup_steps=2, profile_measure_steps=5)
        callbacks.append(chase)
    callbacks.append(timer)  # after ChaseCallback: its hook time is inside the measured step
    trainer = L.Trainer(max_epochs=1, callbacks=callbacks, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1)
    trainer.fit(Work(), DataLoader(data, batch_size=64))
    durations = [b - a for a, b in zip(timer.stamps, timer.stamps[1:])]
    decision_steps = []
    if chase is not None:
        decision_steps = [s for s in range(1, len(timer.stamps)) if s in _decision_steps(chase)]
    return durations, decision_steps


def _decision_steps(chase) -> set[int]:
    steps, out = 0, set()
    for iv in chase.report["intervals"]:
        steps += iv["steps"]
        out.add(steps - 1)
    return out


def main() -> None:
    import logging

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    base_all, chase_all, decision_extra = [], [], []
    for _ in range(args.rounds):
        base, _unused = run(args.steps, False)
        with_c, decisions = run(args.steps, True)
        base_all += base[10:]
        chase_all += with_c[10:]
        median = statistics.median(with_c)
        decision_extra += [with_c[s - 1] - median for s in decisions if 0 < s <= len(with_c)]
    result = {
        "step_ms_without": 1000 * statistics.mean(base_all),
        "step_ms_with": 1000 * statistics.mean(chase_all),
        "ratio_mean": statistics.mean(chase_all) / statistics.mean(base_all),
        "ratio_median": statistics.median(chase_all) / statistics.median(base_all),
        "decisions": len(decision_extra),
        "max_decision_extra_ms": 1000 * max(decision_extra, default=0.0),
        "max_step_extra_ms_with": 1000 * (max(chase_all) - statistics.median(chase_all)),
        "max_step_extra_ms_without": 1000 * (max(base_all) - statistics.median(base_all)),
    }
    print("| metric | value |\n|---|---|")
    for k, v in result.items():
        print(f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |")
    out = Path(__file__).parent / "results" / "overhead.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
