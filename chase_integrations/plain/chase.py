"""Chase: carbon-aware GPU power limits for plain PyTorch loops, 🤗 Accelerate and Lightning Fabric."""

from __future__ import annotations

import logging
import numbers
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from chase_integrations.core.arguments import config_from, with_arguments
from chase_integrations.core.collective import Collective, LocalCollective
from chase_integrations.core.devices import resolve_gpu_indices
from chase_integrations.core.guard import guarded
from chase_integrations.core.profile_store import workload_fingerprint
from chase_integrations.core.session import STATE_VERSION, ChaseSession, RunContext
from chase_integrations.errors import ConfigurationError

logger = logging.getLogger(__name__)


@with_arguments
class Chase:
    r"""Sets the GPU power limit as the grid's carbon intensity changes, within a slowdown budget, in any loop.

    The framework-free twin of :class:`chase_integrations.lightning.ChaseCallback` and
    :class:`chase_integrations.huggingface.ChaseTrainerCallback`: the same arguments, validation, engine,
    decisions, ledger, report and limit restoration, driven by three calls instead of a Trainer's hooks.
    :meth:`start` (or entering ``with``) remembers every GPU's limit and checks permission; :meth:`step`
    after each optimizer step profiles the candidate limits, then decides every ``decision_interval_s``;
    :meth:`epoch_end` also decides; :meth:`end` (or leaving ``with``) restores every GPU's original limit
    and writes the report. An internal error never stops the loop: it is counted, warned about once, and
    power control stops with the original limits restored (``strict=True`` raises instead).

    Failures: an exception, ``KeyboardInterrupt`` or ``SystemExit`` inside ``with`` restores every GPU's
    original limit and writes the report with ``"status": "failed"`` (or ``"interrupted"``) before it
    propagates unchanged. SIGTERM restores the limits at once, then exits through ``SystemExit`` (so the
    report is written as ``"interrupted"``) unless an earlier SIGTERM handler decides otherwise; an
    ``atexit`` hook covers every other exit. Without ``with``, wrap the loop in ``try``/``finally: end()``.

    Several processes: with ``accelerator=`` the decision and the energy sums travel through 🤗
    Accelerate's collectives, with ``fabric=`` through Lightning Fabric's, otherwise through the initialised
    ``torch.distributed`` process group (none: one process). Every rank makes the same calls in the same
    order (``step()`` after each optimizer step, ``epoch_end()`` at each epoch end, on every rank); rank 0
    alone reads the provider and decides. Each process controls its own GPU: the simulated GPU
    ``local_rank``, the ``Accelerator``'s or ``Fabric``'s CUDA device, else CUDA device ``LOCAL_RANK``
    (one process: the current CUDA device), or exactly ``devices``.

    Args:
        {arguments}
        total_steps: Optimizer steps of the whole job (e.g. ``epochs * len(loader)``), when known: the budget
            policy spreads its slowdown over it and the footprint prediction needs it. ``None`` = unknown.
        log: Called as ``log(metrics)`` with the metrics dict at each decision, on rank 0 only
            (``log=print``, ``log=accelerator.log``, ``log=fabric.log_dict``, ``log=wandb.log``). It is your
            code: an exception it raises propagates (and, inside ``with``, restores the limits).
        accelerator: An ``accelerate.Accelerator``: its processes, collectives and device.
        fabric: A launched ``lightning.fabric.Fabric``: its processes, collectives and device.
        devices: The GPU indices this process controls, overriding the rule above (``[]``: none).
        model: The model being trained (anything with ``parameters()``): its parameter count keys a saved
            profile (``profile_path``) to this workload, so another model's profile is never reused for it.
            Without it, a saved profile matches on GPU model and world size alone (warned once).

    Attributes:
        report: The run report (dict, as written to ``report_path``) once the run has ended, else ``None``.
        session: The engine (:class:`~chase_integrations.core.session.ChaseSession`).

    Raises:
        ConfigurationError: at construction, for any bad argument (names it, the value, what is allowed).
        PowerPermissionError: at :meth:`start`, before any step, with ``strict=True`` and no permission.

    Metrics (the dict that :meth:`step`, :meth:`epoch_end` and :meth:`end` return and ``log`` receives,
    at each decision):

    {metrics}

    Example (a simulated GPU, so it runs anywhere):
        >>> import tempfile
        >>> from chase_integrations import Chase
        >>> from chase_integrations.simulation import Simulation
        >>> from chase_integrations.simulation.synthetic import write_synthetic_gpu_profile, write_synthetic_trace
        >>> tmp = tempfile.mkdtemp()
        >>> sim = Simulation(gpu_profile=write_synthetic_gpu_profile(f"{tmp}/gpu.csv"), steps_per_epoch=20,
        ...                  trace=write_synthetic_trace(f"{tmp}/trace.csv"), initial_power_limit_w=275)
        >>> chase = Chase(provider=sim.provider, simulation=sim, policy="budget", max_slowdown=0.05,
        ...               forecaster="persistence", decision_interval_s=1800, total_steps=3 * 20,
        ...               profile_warmup_steps=1, profile_measure_steps=3)
        >>> with chase:
        ...     for epoch in range(3):
        ...         for batch in range(20):
        ...             metrics = chase.step()  # after each optimizer step: a dict at a decision, else None
        ...         _ = chase.epoch_end()
        >>> chase.report["status"], chase.report["steps"], sim.power_limits_w  # the original limit is back
        ('finished', 60, [275])
    """

    def __init__(
        self,
        provider,
        *,
        total_steps: int | None = None,
        log: Callable[[dict[str, float]], Any] | None = None,
        accelerator: Any = None,
        fabric: Any = None,
        devices: Sequence[int] | None = None,
        model: Any = None,
        **kwargs: Any,
    ) -> None:
        self.config = config_from("Chase", provider, kwargs)
        simulation = self.config.simulation
        self.total_steps = _total_steps(total_steps)
        if log is not None and not callable(log):
            raise ConfigurationError.invalid("log", log, "None or a callable taking the metrics dict",
                                             hint="e.g. log=print or log=accelerator.log")
        self.log = log
        _check_frameworks(accelerator, fabric)
        self.accelerator = accelerator
        self.fabric = fabric
        self.devices = _devices(devices, simulation)
        if model is not None and not callable(getattr(model, "parameters", None)):
            raise ConfigurationError.invalid("model", model, "None or the model being trained (anything with "
                                             "parameters(), e.g. a torch.nn.Module)", hint="e.g. model=model")
        self.model = model
        self.session = ChaseSession(self.config)
        self.report: dict | None = None

    # ------------------------------------------------------------------ the loop's calls
    def start(self) -> Chase:
        """Start the run (``with`` does it): remember every GPU's limit, check permission, plan profiling.

        Call it on every rank, before the first step. Returns ``self``. A second run on the same object
        (after :meth:`end`) starts a new ledger.

        Raises:
            PowerPermissionError: with ``strict=True`` and no permission (the report is written first).
            ConfigurationError: when the GPUs' range rules out ``power_limits_w`` or ``static_power_limit_w``.
        """
        if self.session.ended:
            self.session, self.report = ChaseSession(self.config), None
        try:
            self._emit(self._start())
        except BaseException as e:  # `with` does not call __exit__ when __enter__ raises: finish here
            self._abort(e)
            raise
        return self

    def step(self) -> dict[str, float] | None:
        """One optimizer step finished (call it after ``optimizer.step()``, on every rank).

        Cheap unless profiling or a decision is due. Returns the metrics dict when a decision closed an
        interval during this step (on every rank; ``log`` gets it on rank 0), else ``None``. With
        ``accelerator=``, a call on a micro-batch that does not sync gradients (inside
        ``accelerator.accumulate``, where ``optimizer.step()`` does nothing) is not counted.
        """
        if self.accelerator is not None and not getattr(self.accelerator, "sync_gradients", True):
            return None  # gradient accumulation: not an optimizer step (the same on every rank)
        if not self.session.started and not self.session.ended:
            self.session.warner.warn(
                "not-started", "Chase.step() was called before Chase.start(); starting now (the steps so far are "
                "not measured). HINT: use `with chase:` around the loop, or call chase.start() before it.")
            self.start()
            return None
        return self._emit(self._step())

    def epoch_end(self) -> dict[str, float] | None:
        """An epoch ended (optional; call it on every rank): decide now. Returns the metrics dict, if any."""
        return self._emit(self._epoch_end())

    def end(self) -> dict | None:
        """Finish the run (``with`` does it): restore every GPU's original limit, write and return the report.

        Idempotent. Call it on every rank (it joins a last reduction of the energy).
        """
        metrics = self._end()
        if self.report is None and self.session.ended:  # end() failed and was absorbed: still give a report
            try:
                self.report = self.session.report()
            except Exception:
                logger.exception("chase: could not build the run report")
        self._emit(metrics)
        return self.report

    def __enter__(self) -> Chase:
        return self.start()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None:
            self.end()
        else:
            self._abort(exc)
        return False  # the exception, if any, propagates unchanged

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The JSON-safe ledger, profile and fallback counts, to save with a checkpoint (same on every rank)."""
        try:
            return self.session.state_dict()
        except Exception as e:  # a checkpoint must never fail because of us
            self.session.absorb_internal_error("state_dict", e)
            return {"version": STATE_VERSION}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the ledger of a :meth:`state_dict` (call it before :meth:`start`, on every rank)."""
        if not isinstance(state_dict, dict):
            raise ConfigurationError.invalid("state_dict", type(state_dict).__name__, "a dict from Chase.state_dict()")
        if self.session.ended:  # resuming into a new run on the same object
            self.session, self.report = ChaseSession(self.config), None
        self._load_state_dict(state_dict)

    # ------------------------------------------------------------------ guarded engine calls
    @guarded("start")
    def _start(self) -> dict[str, float] | None:
        self.session.start(self._context())
        return self.session.pop_metrics()

    @guarded("step_end")
    def _step(self) -> dict[str, float] | None:
        return self.session.step_end()

    @guarded("epoch_end")
    def _epoch_end(self) -> dict[str, float] | None:
        return self.session.epoch_end()

    @guarded("end", after_failure=True)
    def _end(self) -> dict[str, float] | None:
        self.report = self.session.end("finished")
        return self.session.pop_metrics()

    @guarded("load_state_dict", after_failure=True)
    def _load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.session.load_state_dict(state_dict)

    def _abort(self, exception: BaseException) -> None:
        """The loop is dying with ``exception``: restore, write the report; never raises."""
        if self.session.ended:
            return
        self.report = self.session.abort(exception) or self.report

    # ------------------------------------------------------------------ helpers
    def _emit(self, metrics: dict[str, float] | None) -> dict[str, float] | None:
        """Hand ``metrics`` to ``log`` on rank 0; return a copy to the caller (every rank)."""
        if not metrics:
            return None
        if self.log is not None and self.session.rank == 0:
            self.log(dict(metrics))
        return dict(metrics)

    def _context(self) -> RunContext:
        """This process's place in the job: collective, local rank and GPUs, from the framework it uses."""
        collective: Collective = LocalCollective()
        device = None
        if self.accelerator is not None:
            from chase_integrations.plain.collectives import AccelerateCollective

            acc = self.accelerator
            world, local_rank, device = int(acc.num_processes), int(acc.local_process_index), acc.device
            if world > 1:
                collective = AccelerateCollective.from_accelerator(acc)
        elif self.fabric is not None:
            from chase_integrations.plain.collectives import FabricCollective

            fab = self.fabric
            world, local_rank, device = int(fab.world_size), int(fab.local_rank), fab.device
            if world > 1:
                collective = FabricCollective(fab)
        else:
            world, local_rank = 1, int(os.environ.get("LOCAL_RANK", "0"))
            dist = sys.modules.get("torch.distributed")  # not imported: no process group to join
            if dist is not None and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
                from chase_integrations.plain.collectives import TorchDistributedCollective

                collective = TorchDistributedCollective()
                world = collective.world_size
                local_rank = int(os.environ.get("LOCAL_RANK", str(collective.rank)))
        sim = self.config.simulation
        indices = resolve_gpu_indices(
            simulation_num_gpus=sim.num_gpus if sim is not None else None,
            world_size=world,
            local_rank=local_rank,
            cuda_index=_cuda_index(device, world, local_rank),
            gpus_given=self.config.gpus is not None,
            devices=self.devices,
        )
        workload = workload_fingerprint(self.model)  # a saved profile is reused only for the same workload
        if workload is None and self.config.profile_path:
            self.session.warner.warn("profile-unkeyed", (
                f"profile_path={self.config.profile_path!r} without model=: the saved profile is matched on GPU "
                "model and world size alone, so another workload's profile could be reused; pass "
                "Chase(..., model=model)."))
        return RunContext(gpu_indices=indices, collective=collective, total_steps=self.total_steps,
                          local_rank=local_rank, workload=workload)


def _cuda_index(device: Any, world: int, local_rank: int) -> int | None:
    """The CUDA device this process trains on, or ``None``; never initialises CUDA or imports torch."""
    if device is not None:
        return (device.index or 0) if getattr(device, "type", None) == "cuda" else None
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    if world > 1:
        return local_rank % max(1, torch.cuda.device_count())  # one GPU per process: LOCAL_RANK's
    return torch.cuda.current_device() if torch.cuda.is_initialized() else 0


def _total_steps(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigurationError.invalid("total_steps", value, "None or an integer >= 1 (optimizer steps of the job)",
                                         hint="e.g. total_steps=epochs * len(loader)")
    return int(value)


def _check_frameworks(accelerator: Any, fabric: Any) -> None:
    if accelerator is not None and fabric is not None:
        raise ConfigurationError.invalid("fabric", fabric, "None when `accelerator` is given (one framework per job)")
    if accelerator is not None and not all(
        hasattr(accelerator, a) for a in ("process_index", "num_processes", "local_process_index", "device")
    ):
        raise ConfigurationError.invalid("accelerator", accelerator, "None or an accelerate.Accelerator")
    if fabric is not None and not all(callable(getattr(fabric, a, None)) for a in ("broadcast", "all_gather")):
        raise ConfigurationError.invalid("fabric", fabric, "None or a lightning.fabric.Fabric")


def _devices(value: Any, simulation: Any) -> list[int] | None:
    if value is None:
        return None
    allowed = "None or a list of GPU indices (integers >= 0)"
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigurationError.invalid("devices", value, allowed)
    if any(isinstance(i, bool) or not isinstance(i, numbers.Integral) or i < 0 for i in value):
        raise ConfigurationError.invalid("devices", value, allowed)
    if simulation is not None and any(i >= simulation.num_gpus for i in value):
        raise ConfigurationError.invalid("devices", value, f"indices of the simulation's {simulation.num_gpus} GPUs")
    return [int(i) for i in value]
