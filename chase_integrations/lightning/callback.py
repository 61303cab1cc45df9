"""ChaseCallback: carbon-aware GPU power limits for a PyTorch Lightning ``Trainer``."""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks.callback import Callback
from typing_extensions import override

from chase_integrations.core.collective import LocalCollective
from chase_integrations.core.config import ChaseConfig
from chase_integrations.core.guard import guarded
from chase_integrations.core.session import STATE_VERSION, ChaseSession, RunContext

logger = logging.getLogger(__name__)


class LightningCollective:
    """The engine's collectives on Lightning's strategy (``broadcast``, ``all_gather``)."""

    def __init__(self, strategy) -> None:
        self.strategy = strategy
        self.rank = int(strategy.global_rank)
        self.world_size = int(strategy.world_size)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        return self.strategy.broadcast(obj, src=0)

    def sum_max(self, to_sum: float, to_max: float) -> tuple[float, float]:
        """Sum and max over ranks, with one ``all_gather``."""
        local = torch.tensor([float(to_sum), float(to_max)], dtype=torch.float64, device=self.strategy.root_device)
        gathered = self.strategy.all_gather(local).reshape(-1, 2).cpu()
        return float(gathered[:, 0].sum()), float(gathered[:, 1].max())


class ChaseCallback(Callback):
    r"""Sets the GPU power limit as the grid's carbon intensity changes, within a slowdown budget.

    At train start it remembers every GPU's limit, profiles the candidate limits on real training steps
    (a few warm-up then measured steps each, through Zeus), then decides at each epoch end and every
    ``decision_interval_s``: rank 0 reads the provider and the forecaster, the policy picks a limit, every
    rank sets it on its own GPU. Energy comes from Zeus windows, carbon = energy × intensity × PUE per
    interval. Original limits are restored on every exit path.

    Args:
        provider: Where carbon intensity comes from (see :mod:`chase_integrations.carbon`).
        policy: ``"budget"`` (least carbon within ``max_slowdown``), ``"chase"`` (the paper's rule),
            ``"static"`` (one fixed limit) or ``"monitor"`` (measure and log only).
        max_slowdown: Budget policy: allowed increase of total training time (0.05 = 5 %).
        eta: Chase policy: η in [0, 1].
        max_intensity_g_per_kwh: Chase policy: MaxCI in gCO2eq/kWh; ``None`` = highest in the last 24 h.
        static_power_limit_w: Static policy: the limit in W.
        forecaster: ``"arima"``, ``"persistence"``, ``"seasonal_naive"`` or a forecaster object.
        decision_interval_s: Also decide every N seconds inside an epoch; ``None`` = epoch ends only.
        power_limits_w: Candidate limits in W; ``None`` = the GPU's range in 25 W steps.
        profile_path: Save the measured profile here and reuse it when it exists.
        gpus: A ``zeus.device.gpu.GPUs``; ``None`` = ``zeus.device.get_gpus()``.
        simulation: A :class:`~chase_integrations.simulation.Simulation` (simulated GPUs and clock).
        pue: Data-centre PUE (>= 1); emissions = GPU energy × PUE × intensity.
        report_path: Write the JSON run report here when training ends.
        strict: Raise instead of degrading (no permission to set limits, provider down).
        \**kwargs: Advanced: ``profile_warmup_steps`` (3), ``profile_measure_steps`` (10),
            ``fallback_intensity_g_per_kwh`` (None), ``max_reading_age_s`` (10800).

    Raises:
        ConfigurationError: at construction, for any bad argument (names it, the value, what is allowed).
        PowerPermissionError: at train start, before any step, with ``strict=True`` and no permission.

    Logged metrics (through every logger of the Trainer, at each decision; power limit and carbon also
    on the progress bar):

    ===================================  ============  =====================================================
    key                                  unit          meaning
    ===================================  ============  =====================================================
    ``chase/power_limit_w``              W             limit in force for the interval just ended
    ``chase/intensity_g_per_kwh``        gCO2eq/kWh    measured grid intensity over that interval
    ``chase/forecast_g_per_kwh``         gCO2eq/kWh    the forecast the decision used
    ``chase/energy_j``                   J             cumulative GPU energy, all GPUs of all ranks
    ``chase/carbon_g``                   gCO2eq        cumulative operational emissions
    ``chase/carbon_saved_g``             gCO2eq        cumulative estimate avoided vs. the default limit
    ===================================  ============  =====================================================

    Example::

        from lightning import Trainer
        from chase_integrations.carbon import ElectricityMapsProvider
        from chase_integrations.lightning import ChaseCallback

        chase = ChaseCallback(provider=ElectricityMapsProvider(zone="DE"), policy="budget", max_slowdown=0.05,
                              decision_interval_s=900, report_path="chase_report.json")
        Trainer(max_epochs=10, callbacks=[chase]).fit(model, datamodule)
    """

    def __init__(
        self,
        provider,
        policy: str = "budget",
        max_slowdown: float = 0.05,
        eta: float = 0.5,
        max_intensity_g_per_kwh: float | None = None,
        static_power_limit_w: int | None = None,
        forecaster: Any = "arima",
        decision_interval_s: float | None = None,
        power_limits_w: list[int] | None = None,
        profile_path: str | None = None,
        gpus: Any = None,
        simulation: Any = None,
        pue: float = 1.0,
        report_path: str | None = None,
        strict: bool = False,
        **kwargs: Any,
    ) -> None:
        self.config = ChaseConfig(
            provider=provider,
            policy=policy,
            max_slowdown=max_slowdown,
            eta=eta,
            max_intensity_g_per_kwh=max_intensity_g_per_kwh,
            static_power_limit_w=static_power_limit_w,
            forecaster=forecaster,
            decision_interval_s=decision_interval_s,
            power_limits_w=power_limits_w,
            profile_path=profile_path,
            gpus=gpus,
            simulation=simulation,
            pue=pue,
            report_path=report_path,
            strict=strict,
            **kwargs,
        )
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
        strategy = trainer.strategy
        world = int(trainer.world_size)
        collective = LightningCollective(strategy) if world > 1 else LocalCollective()
        local_rank = int(trainer.local_rank)
        sim = self.config.simulation
        if sim is not None:
            indices = [local_rank % sim.num_gpus] if world > 1 else list(range(sim.num_gpus))
        else:
            device = strategy.root_device
            indices = [device.index or 0] if device.type == "cuda" else ([local_rank] if self.config.gpus else [])
        total = trainer.estimated_stepping_batches
        total_steps = int(total) if total is not None and total != float("inf") else None
        return RunContext(gpu_indices=indices, collective=collective, total_steps=total_steps, local_rank=local_rank)

    def _emit(self, trainer: pl.Trainer, metrics: dict[str, float] | None) -> None:
        if not metrics:
            return
        self._pbar = {
            "chase/power_limit_w": metrics["chase/power_limit_w"],
            "chase/carbon_g": metrics["chase/carbon_g"],
        }
        self._pbar_dirty = True
        if trainer.global_rank != 0:
            return
        for lg in trainer.loggers:
            lg.log_metrics(metrics, step=trainer.global_step)
