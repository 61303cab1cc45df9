"""Run in a subprocess by test_watchdog.py: a trainer over two simulated GPUs whose limits live in a file.

``python tests/watchdog_child.py ADAPTER SCENARIO WORKDIR``

- ADAPTER ``lightning`` or ``hf``: a real Trainer with the adapter's callback, static policy at 200 W
  (the GPUs start at 275 W). SCENARIO ``pause``: at step 25 (limit 200 W, mid-run) write
  ``WORKDIR/midrun`` and sleep until killed; ``clean``: train to the end and write the report.
- ADAPTER ``controller``, SCENARIO ``fork``: no framework; a ``PowerLimitController`` sets 200 W, forks a
  sleeping process that inherits the watchdog's pipe (as a forked DataLoader worker would), writes
  ``WORKDIR/midrun`` and sleeps until killed.

``WORKDIR/midrun`` holds this process's pid once the limit is 200 W on both GPUs.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

SLEEP_S = 300  # the test kills us long before


def mid_run(workdir: Path) -> None:
    """Tell the test we are mid-run at 200 W, then wait to be killed."""
    tmp = workdir / "midrun.tmp"
    tmp.write_text(str(os.getpid()))
    tmp.replace(workdir / "midrun")
    time.sleep(SLEEP_S)


def make_sim(workdir: Path):
    from chase_integrations.simulation import Simulation
    from chase_integrations.simulation.synthetic import write_synthetic_gpu_profile, write_synthetic_trace

    return Simulation(
        gpu_profile=write_synthetic_gpu_profile(workdir / "p.csv"),
        trace=write_synthetic_trace(workdir / "t.csv"),
        steps_per_epoch=20,
        num_gpus=2,
        initial_power_limit_w=275,
        power_state_path=workdir / "gpus.json",
    )


OPTIONS = dict(policy="static", static_power_limit_w=200, forecaster="persistence", profile_warmup_steps=1,
               profile_measure_steps=2)


def lightning(workdir: Path, scenario: str) -> None:
    import lightning as L

    from chase_integrations.lightning import ChaseCallback
    from tests.lightning_helpers import TinyModel, loader, trainer

    class PauseAt(L.Callback):
        def on_train_batch_end(self, trainer, *args) -> None:
            if scenario == "pause" and trainer.global_step == 25:
                mid_run(workdir)

    sim = make_sim(workdir)
    cb = ChaseCallback(provider=sim.provider, simulation=sim, report_path=str(workdir / "report.json"), **OPTIONS)
    trainer([cb, PauseAt()], workdir, max_epochs=3).fit(TinyModel(), loader(20))


def hf(workdir: Path, scenario: str) -> None:
    from transformers import TrainerCallback

    from tests.hf_helpers import chase_callback, hf_trainer

    class PauseAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if scenario == "pause" and state.global_step == 25:
                mid_run(workdir)

    sim = make_sim(workdir)
    cb = chase_callback(sim, workdir, **OPTIONS)
    hf_trainer([cb, PauseAt()], workdir, steps=20, epochs=3).train()


def controller(workdir: Path, scenario: str) -> None:
    from chase_integrations.power.limits import PowerLimitController

    sim = make_sim(workdir)
    ctl = PowerLimitController(sim.gpus, [0, 1])
    ctl.remember_originals()
    ctl.set_all_w(200)
    sleeper = os.fork()
    if sleeper == 0:  # holds the watchdog pipe's write end, like a forked DataLoader worker
        time.sleep(SLEEP_S)
        os._exit(0)
    (workdir / "sleeper").write_text(str(sleeper))
    mid_run(workdir)


if __name__ == "__main__":
    adapter, scenario, workdir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    {"lightning": lightning, "hf": hf, "controller": controller}[adapter](workdir, scenario)
