"""ChaseCallback: carbon-aware GPU power limits for a PyTorch Lightning ``Trainer``."""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks.callback import Callback
from typing_extensions import override

from chase_integrations.core.accounting import PROGRESS_BAR_KEYS
from chase_integrations.core.arguments import config_from, with_arguments
from chase_integrations.core.collective import LocalCollective
from chase_integrations.core.devices import resolve_gpu_indices
from chase_integrations.core.guard import guarded
from chase_integrations.core.profile_store import workload_fingerprint
from chase_integrations.core.session import STATE_VERSION, ChaseSession, RunContext
from chase_integrations.core.startup import known_total_steps
from chase_integrations.lightning.collective import LightningCollective

logger = logging.getLogger(__name__)


@with_arguments
class ChaseCallback(Callback):
    r"""Sets the GPU power limit as the grid's carbon intensity changes, within a slowdown budget.

    At train start it remembers every GPU's limit, profiles the candidate limits on real training steps
    (a few warm-up then measured steps each, through Zeus), then decides at each epoch end and every
    ``decision_interval_s``: rank 0 reads the provider and the forecaster, the policy picks a limit, every
    rank sets it on its own GPU. Energy comes from Zeus windows, carbon = energy × intensity × PUE per
    interval. Original limits are restored on every exit path.

    Args:
        {arguments}

    Raises:
        ConfigurationError: at construction, for any bad argument (names it, the value, what is allowed).
        PowerPermissionError: at train start, before any step, with ``strict=True`` and no permission.

    Logged metrics (through every logger of the Trainer, at each decision; power limit and carbon also
    on the progress bar):

    {metrics}

    Example::

        from lightning import Trainer
        from chase_integrations.carbon import ElectricityMapsProvider
        from chase_integrations.lightning import ChaseCallback

        chase = ChaseCallback(provider=ElectricityMapsProvider(zone="DE"), policy="budget", max_slowdown=0.05,
                              decision_interval_s=900, report_path="chase_report.json")
        Trainer(max_epochs=10, callbacks=[chase]).fit(model, datamodule)
    """

    def __init__(self, provider, **kwargs: Any) -> None:
        self.config = config_from("ChaseCallback", provider, kwargs)
        self.session = ChaseSession(self.config)
        self._last_global_step: int | None = None
        self._pbar: dict[str, float] = {}
        self._pbar_dirty = False
        self.report: dict | None = None

    @property
    @override
    def state_key(self) -> str:
        return "ChaseCallback"

    # ------------------------------------------------------------------ hooks
    @override
    @guarded("start")
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.session.start(self._context(trainer))
        self._last_global_step = trainer.global_step
        self._emit(trainer, self.session.pop_metrics())

    @override
    @guarded("step_end")
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step == self._last_global_step:  # gradient accumulation: not an optimizer step
            return
        self._last_global_step = trainer.global_step
        self._emit(trainer, self.session.step_end())
        if self._pbar_dirty:
            for key, value in self._pbar.items():
                pl_module.log(key, value, prog_bar=True, logger=False, on_step=True, on_epoch=False)
            self._pbar_dirty = False

    @override
    @guarded("epoch_end")
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._emit(trainer, self.session.epoch_end())

    @override
    @guarded("end", after_failure=True)
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.report = self.session.end("finished")
        self._emit(trainer, self.session.pop_metrics())

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.report = self.session.abort(exception) or self.report

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.session.restore()

    @override
    def state_dict(self) -> dict[str, Any]:
        try:
            return self.session.state_dict()
        except Exception as e:  # a checkpoint must never fail because of us
            self.session.absorb_internal_error("state_dict", e)
            return {"version": STATE_VERSION}

    @override
    @guarded("load_state_dict", after_failure=True)
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.session.load_state_dict(state_dict)

    # ------------------------------------------------------------------ helpers
    def _context(self, trainer: pl.Trainer) -> RunContext:
        world, local_rank = int(trainer.world_size), int(trainer.local_rank)
        device = trainer.strategy.root_device
        sim = self.config.simulation
        indices = resolve_gpu_indices(
            simulation_num_gpus=sim.num_gpus if sim is not None else None, world_size=world, local_rank=local_rank,
            cuda_index=(device.index or 0) if device.type == "cuda" else None, gpus_given=self.config.gpus is not None,
        )
        collective = LightningCollective(trainer.strategy) if world > 1 else LocalCollective()
        workload = workload_fingerprint(  # a saved profile is reused only for the same workload
            trainer.lightning_module, batch_size=getattr(trainer.train_dataloader, "batch_size", None),
            accumulate_grad_batches=trainer.accumulate_grad_batches, precision=str(trainer.precision))
        return RunContext(indices, collective, known_total_steps(trainer.estimated_stepping_batches), local_rank,
                          workload)

    def _emit(self, trainer: pl.Trainer, metrics: dict[str, float] | None) -> None:
        if not metrics:
            return
        self._pbar = {key: metrics[key] for key in PROGRESS_BAR_KEYS if key in metrics}
        self._pbar_dirty = True
        if trainer.global_rank != 0:
            return
        for lg in trainer.loggers:
            lg.log_metrics(metrics, step=trainer.global_step)
