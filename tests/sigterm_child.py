"""Run in a subprocess by test_signals.py: train over a simulated GPU, then receive SIGTERM.

Every limit the simulated GPU is set to is appended to a file, so the parent can see the last one
after this process is gone.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from chase_integrations.simulation import Simulation
from chase_integrations.simulation.synthetic import write_synthetic_gpu_profile, write_synthetic_trace


def make_sim(workdir: Path, log: Path) -> Simulation:
    sim = Simulation(
        gpu_profile=write_synthetic_gpu_profile(workdir / "p.csv"),
        trace=write_synthetic_trace(workdir / "t.csv"),
        steps_per_epoch=20,
        initial_power_limit_w=275,
    )
    gpu = sim.gpus.gpus[0]
    original = gpu.set_power_management_limit

    def logged(power_limit_mw: int, block: bool = True) -> None:
        original(power_limit_mw, block)
        with open(log, "a") as f:
            f.write(f"{power_limit_mw // 1000}\n")

    gpu.set_power_management_limit = logged
    return sim


def main() -> None:
    mode, workdir = sys.argv[1], Path(sys.argv[2])
    log = workdir / "limits.log"
    sim = make_sim(workdir, log)
    if mode == "session":
        from chase_integrations.core.collective import LocalCollective
        from chase_integrations.core.config import ChaseConfig
        from chase_integrations.core.session import ChaseSession, RunContext

        session = ChaseSession(
            ChaseConfig(
                provider=sim.provider,
                simulation=sim,
                policy="static",
                static_power_limit_w=200,
                forecaster="persistence",
                profile_warmup_steps=0,
                profile_measure_steps=1,
            )
        )
        session.start(RunContext([0], LocalCollective(), total_steps=100))
        for _ in range(5):
            session.step_end()
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pause()
    else:
        import lightning as L

        from chase_integrations.lightning import ChaseCallback
        from tests.lightning_helpers import TinyModel, loader

        class SigtermAt(L.Callback):
            def on_train_batch_end(self, trainer, *args) -> None:
                if trainer.global_step == 25:
                    os.kill(os.getpid(), signal.SIGTERM)

        cb = ChaseCallback(
            provider=sim.provider,
            simulation=sim,
            policy="static",
            static_power_limit_w=200,
            forecaster="persistence",
            profile_warmup_steps=1,
            profile_measure_steps=2,
        )
        trainer = L.Trainer(
            max_epochs=5,
            callbacks=[cb, SigtermAt()],
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator="cpu",
        )
        trainer.fit(TinyModel(), loader(20))


if __name__ == "__main__":
    main()
