"""ChaseTrainerCallback: carbon-aware GPU power limits for a Hugging Face ``transformers.Trainer``."""

from __future__ import annotations

import logging
import weakref
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from typing_extensions import override

from chase_integrations.core.arguments import config_from, with_arguments
from chase_integrations.core.collective import LocalCollective
from chase_integrations.core.devices import resolve_gpu_indices
from chase_integrations.core.guard import guarded
from chase_integrations.core.profile_store import workload_fingerprint
from chase_integrations.core.session import ChaseSession, RunContext
from chase_integrations.core.startup import known_total_steps
from chase_integrations.huggingface import _trainer
from chase_integrations.huggingface.collective import AccelerateCollective

logger = logging.getLogger(__name__)


@with_arguments
class ChaseTrainerCallback(TrainerCallback):
    r"""Sets the GPU power limit as the grid's carbon intensity changes, within a slowdown budget.

    The Hugging Face twin of :class:`chase_integrations.lightning.ChaseCallback`: same arguments, same
    validation, decisions, accounting, report and restoration, on the same engine. At train start it
    remembers every GPU's limit and profiles the candidate limits on real training steps, then decides at
    each epoch end and every ``decision_interval_s``. A *step* is an optimizer step (``on_step_end``), so
    gradient accumulation does not inflate it. Original limits are restored on every exit path.

    How it reaches the ``Trainer`` (hooks are not given it): ``Trainer.__init__`` calls ``on_init_end``
    and the callback takes the ``Trainer`` from that call; for a callback added later with
    ``trainer.add_callback``, call :meth:`attach` (it adds the callback if needed). Through it the callback

    * logs with ``trainer.log(...)``, so metrics reach ``trainer.state.log_history`` and every
      ``report_to`` integration (TensorBoard shows them as ``train/chase/...``, its usual prefix);
    * wraps that instance's ``train`` so an exception, ``KeyboardInterrupt`` or ``SystemExit`` restores
      the limits at once and writes the report (status ``failed`` / ``interrupted``) before it propagates.
      SIGTERM and interpreter exit are covered by the power module's handler and ``atexit`` hook.

    Resume: at each checkpoint save it writes its ledger to ``checkpoint-N/chase_state.json``;
    ``trainer.train(resume_from_checkpoint=...)`` with a fresh callback reads it back, whatever
    ``restore_callback_states_from_checkpoint`` says. The callback is deliberately not an
    ``ExportableState``: Hugging Face rebuilds those from JSON ``args``, and a provider, a simulation or
    a ``GPUs`` object cannot be JSON.

    Args:
        {arguments}

    Raises:
        ConfigurationError: at construction, for any bad argument (names it, the value, what is allowed).
        PowerPermissionError: at train start, before any step, with ``strict=True`` and no permission.

    Logged metrics (through ``trainer.log``, at each decision, at the step it happened):

    {metrics}

    Example::

        from transformers import Trainer, TrainingArguments
        from chase_integrations.carbon import ElectricityMapsProvider
        from chase_integrations.huggingface import ChaseTrainerCallback

        chase = ChaseTrainerCallback(provider=ElectricityMapsProvider(zone="DE"), policy="budget",
                                     max_slowdown=0.05, decision_interval_s=900,
                                     report_path="chase_report.json")
        trainer = Trainer(model=model, args=TrainingArguments("out", report_to=["tensorboard"]),
                          train_dataset=train_dataset, callbacks=[chase])
        trainer.train()
    """

    def __init__(self, provider, **kwargs: Any) -> None:
        self.config = config_from("ChaseTrainerCallback", provider, kwargs)
        self.session = ChaseSession(self.config)
        self.report: dict | None = None
        self._trainer_ref: weakref.ReferenceType | None = None
        self._guarded_ref: weakref.ReferenceType | None = None
        self._resume_from: str | None = None
        self._resume_known = False

    # ------------------------------------------------------------------ explicit attachment
    def attach(self, trainer: Any) -> ChaseTrainerCallback:
        """Connect to ``trainer`` (adding this callback to it if absent); returns ``self``.

        Automatic when the callback is passed to the ``Trainer``'s constructor. Call it after
        ``trainer.add_callback(callback)``, before ``trainer.train()``, so that exceptions are caught.
        """
        if not any(cb is self for cb in trainer.callback_handler.callbacks):
            trainer.add_callback(self)
        self._trainer_ref = weakref.ref(trainer)
        guarded = self._guarded_ref() if self._guarded_ref is not None else None
        if guarded is not trainer:
            _trainer.guard_train(trainer, self._on_train_call, self._abort, self._after_train_call)
            self._guarded_ref = weakref.ref(trainer)
        return self

    @property
    def trainer(self) -> Any | None:
        """The ``Trainer`` this callback is attached to, if any."""
        return self._trainer_ref() if self._trainer_ref is not None else None

    # ------------------------------------------------------------------ hooks
    @override
    def on_init_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        trainer = _trainer.find_trainer(self)
        if trainer is not None:
            self.attach(trainer)

    @override
    @guarded("start", after_failure=True)
    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if self.trainer is None:
            self._attach_late()
        if self.session.ended:  # a second trainer.train() on the same callback is a new run
            self.session, self.report = ChaseSession(self.config), None
        if state.global_step > 0 and not self.session.started:
            self._load_checkpoint_state(args, state)
        self.session.start(self._context(args, state))
        self._emit(control, self.session.pop_metrics())

    @override
    @guarded("step_end")
    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self._emit(control, self.session.step_end())

    @override
    @guarded("epoch_end")
    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self._emit(control, self.session.epoch_end())

    @override
    @guarded("end", after_failure=True)
    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self.report = self.session.end("finished")
        self._emit(control, self.session.pop_metrics())

    @override
    @guarded("save")
    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if not args.should_save or not self.session.started:
            return
        folder = _trainer.checkpoint_dir(args, state.global_step)
        if not folder.is_dir():
            self.session.warner.warn(
                "checkpoint-dir", f"Checkpoint folder {str(folder)!r} not found; the carbon ledger is not "
                "saved with this checkpoint (resuming from it starts a new ledger).")
            return
        _trainer.write_state(folder, self.session.state_dict())

    def state_dict(self) -> dict[str, Any]:
        """The session's JSON-safe state (what ``checkpoint-N/chase_state.json`` holds)."""
        return self.session.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (applied at train start, before any step)."""
        self.session.load_state_dict(state_dict)

    # ------------------------------------------------------------------ helpers
    def _attach_late(self) -> None:
        """Added with ``add_callback`` and never attached: find the Trainer now, guard its current step."""
        trainer = _trainer.find_trainer(self)
        if trainer is None:
            self.session.warner.warn(
                "no-trainer", "ChaseTrainerCallback could not find its Trainer: metrics reach only the "
                "report, and an exception restores limits only at exit. HINT: call callback.attach(trainer) "
                "before train().")
            return
        self.attach(trainer)  # covers later train() calls
        _trainer.guard_method(trainer, "training_step", self._abort)  # covers this one's steps

    def _on_train_call(self, resume_from_checkpoint: str | None) -> None:
        self._resume_from, self._resume_known = resume_from_checkpoint, True

    def _after_train_call(self) -> None:
        self._resume_from, self._resume_known = None, False
        self.session.restore()

    def _abort(self, exception: BaseException) -> None:
        if not self.session.started or self.session.ended:
            return
        self.report = self.session.abort(exception) or self.report

    def _load_checkpoint_state(self, args: TrainingArguments, state: TrainerState) -> None:
        folder = self._resume_from if self._resume_known else _trainer.checkpoint_dir(args, state.global_step)
        try:
            saved = _trainer.read_state(folder)
        except (OSError, ValueError, AttributeError) as e:  # damaged chase_state.json: start afresh, loudly
            self.session.warner.warn(
                "checkpoint-state-unreadable", f"{_trainer.STATE_FILE} in {str(folder)!r} could not be read "
                f"({type(e).__name__}: {e}); the carbon ledger starts afresh from here.")
            return
        if saved is None:
            self.session.warner.warn(
                "no-checkpoint-state", f"Resuming at step {state.global_step} but {str(folder)!r} holds no "
                f"{_trainer.STATE_FILE}; the carbon ledger starts afresh from here.")
            return
        self.session.load_state_dict(saved)

    def _context(self, args: TrainingArguments, state: TrainerState) -> RunContext:
        world, local_rank = int(args.world_size), int(args.local_process_index)
        device, sim = args.device, self.config.simulation
        indices = resolve_gpu_indices(
            simulation_num_gpus=sim.num_gpus if sim is not None else None, world_size=world, local_rank=local_rank,
            cuda_index=(device.index or 0) if device.type == "cuda" else None, gpus_given=self.config.gpus is not None,
            # one process on several GPUs (DataParallel): it drives them all
            devices=list(range(args.n_gpu)) if sim is None and device.type == "cuda" and world == 1
            and args.n_gpu > 1 else None,
        )
        collective = AccelerateCollective(args.process_index, world, device) if world > 1 else LocalCollective()
        workload = workload_fingerprint(  # a saved profile is reused only for the same workload
            getattr(self.trainer, "model", None), batch_size=args.per_device_train_batch_size,
            gradient_accumulation_steps=args.gradient_accumulation_steps, fp16=args.fp16, bf16=args.bf16)
        return RunContext(indices, collective, known_total_steps(state.max_steps), local_rank, workload)

    def _emit(self, control: TrainerControl, metrics: dict[str, float] | None) -> None:
        """Log through ``trainer.log`` (log_history and every integration), keeping the step's own logging."""
        trainer = self.trainer
        if not metrics or trainer is None:
            return
        should_log = control.should_log  # trainer.log -> on_log clears it; the Trainer's own log must survive
        trainer.log(dict(metrics))
        control.should_log = trainer.control.should_log = should_log
