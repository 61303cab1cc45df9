"""Fault injection for both adapters over the simulated GPU.

One scenario, two frameworks: :func:`run` trains a tiny model with Lightning or Hugging Face and
returns what the tests compare. Faults are injected at process-internal boundaries only: the simulated
GPU's Zeus interface (setters, energy counter), the clock, the provider, or a session method.

Run as a script (``python -m tests.faults_helpers ADAPTER STEP WORKDIR``) it trains in a child process
and sends itself SIGTERM at simulated step ``STEP``; every limit set is appended to
``WORKDIR/limits.log`` so the parent sees the last one after the child is gone.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

ADAPTERS = ("lightning", "hf")

#: chase with eta=0 and two candidates: profiling sets 300 W, then 200 W, then the decision sets 300 W
#: again, so a set happens after profiling (where the mid-run fault tests arm their failures).
PROFILE_THEN_SET = dict(policy="chase", eta=0.0, power_limits_w=[200, 300])


def callback_options(sim, tmp_path: Path, **kwargs) -> dict:
    """The options of the existing adapter tests (``_callback`` / ``chase_callback``)."""
    options = dict(provider=sim.provider, simulation=sim, forecaster="persistence", decision_interval_s=1800,
                   report_path=str(tmp_path / "report.json"), profile_warmup_steps=1, profile_measure_steps=3)
    options.update(kwargs)
    return options


def make_callback(adapter: str, **options):
    """A ``ChaseCallback`` or ``ChaseTrainerCallback``."""
    if adapter == "lightning":
        from chase_integrations.lightning import ChaseCallback

        return ChaseCallback(**options)
    from chase_integrations.huggingface import ChaseTrainerCallback

    return ChaseTrainerCallback(**options)


@dataclass
class Outcome:
    """What a run left behind."""

    callback: Any
    model: Any
    steps: int
    error: BaseException | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def params(self) -> list:
        return [p.detach().clone() for p in self.model.parameters()]


def run(adapter: str, tmp_path: Path, callback=None, epochs: int = 3, steps: int = 20, model=None,
        expect: type[BaseException] | tuple | None = None, extra_callbacks=(), **trainer_kwargs) -> Outcome:
    """Train ``epochs`` x ``steps`` optimizer steps with ``callback`` (or none); same seed, same data.

    ``expect``: exception types the run may end with (recorded, not raised). ChaseWarnings are recorded.
    """
    import torch

    from chase_integrations.errors import ChaseWarning

    torch.manual_seed(0)
    callbacks = ([callback] if callback is not None else []) + list(extra_callbacks)
    error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if adapter == "lightning":
                from tests.lightning_helpers import TinyModel, loader, trainer

                model = model if model is not None else TinyModel()
                t = trainer(callbacks, tmp_path, max_epochs=epochs, **trainer_kwargs)
                t.fit(model, loader(steps))
                done = t.global_step
            else:
                from chase_integrations.huggingface.demo import TinyRegressor
                from tests.hf_helpers import hf_trainer

                model = model if model is not None else TinyRegressor()
                t = hf_trainer(callbacks, tmp_path, model=model, steps=steps, epochs=epochs, **trainer_kwargs)
                t.train()
                done = t.state.global_step
        except BaseException as e:
            if expect is None or not isinstance(e, expect):
                raise
            error, done = e, -1
    ours = [str(w.message) for w in caught if issubclass(w.category, ChaseWarning)]
    return Outcome(callback, model, done, error, ours)


def at_sim_step(sim, condition: Callable[[int], bool], action: Callable[[], None], once: bool = True) -> None:
    """Run ``action()`` inside the simulated step whose number (1-based) satisfies ``condition``.

    The session calls ``sim.step`` at every optimizer step, before its own profiling and decisions, so
    this is a boundary both adapters cross identically.
    """
    original = sim.step
    fired = []

    def step(gpu_indices=None):
        seconds = original(gpu_indices)
        if condition(sim.steps) and not (once and fired):
            fired.append(sim.steps)
            action()
        return seconds

    sim.step = step


def when_limits_set(sim, n: int, action: Callable[[], None]) -> None:
    """Run ``action()`` once, at the first step after the GPU's limit has been set ``n`` times."""
    gpu = sim.gpus.gpus[0]
    at_sim_step(sim, lambda _: len(gpu.limit_history_w) >= n, action)


class LostForGood:
    """Sets raise Zeus's ``ZeusGPULostError`` once armed (a GPU that fell off the bus), ``failures`` times
    (``None``: for good)."""

    def __init__(self, gpu, failures: int | None = None) -> None:
        from zeus.device.gpu.common import ZeusGPULostError

        self.gpu, self.error, self.armed, self.failures = gpu, ZeusGPULostError, False, failures
        self._set = gpu.set_power_management_limit
        gpu.set_power_management_limit = self.set

    def set(self, power_limit_mw: int, block: bool = True) -> None:
        if self.armed and (self.failures is None or self.failures > 0):
            if self.failures is not None:
                self.failures -= 1
            raise self.error("GPU is lost (simulated)")
        self._set(power_limit_mw, block)


class JumpingClock:
    """Wraps a ``SimulatedClock``: ``now()`` can jump (NTP step, DST bug, VM resume); ``monotonic()`` cannot."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.offset = timedelta(0)

    def jump(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)

    def now(self):
        return self.inner.now() + self.offset

    def monotonic(self) -> float:
        return self.inner.monotonic()

    def advance(self, seconds: float) -> None:
        self.inner.advance(seconds)

    @property
    def start(self):
        return self.inner.start


def report(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "report.json").read_text())


# ---------------------------------------------------------------- SIGTERM child
def _child(adapter: str, sigterm_at_step: int, workdir: Path) -> None:
    from tests.sigterm_child import make_sim

    sim = make_sim(workdir, workdir / "limits.log")
    log = workdir / "limits.log"

    def sigterm() -> None:
        with open(log, "a") as f:
            f.write("-1\n")  # marks the signal in the log of limits
        os.kill(os.getpid(), signal.SIGTERM)

    at_sim_step(sim, lambda n: n == sigterm_at_step, sigterm)
    cb = make_callback(adapter, **callback_options(sim, workdir, **PROFILE_THEN_SET))
    run(adapter, workdir, cb, epochs=3, steps=20)


if __name__ == "__main__":
    _child(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
