"""The framework-free engine: train start → profile → decide → account → train end.

Adapters (Lightning, Hugging Face, :class:`~chase_integrations.Chase`) turn their hooks into
:class:`ChaseSession` calls and log the metrics it returns. Every rank runs a session; rank 0 alone
talks to the provider and the forecaster, and its :class:`~chase_integrations.core.decision.Decision`
reaches the other ranks through the adapter's collective, at a step number all ranks agree on.

The session keeps the lifecycle and the decision step; beside it live train-start setup
(:mod:`.startup`), the profiling driver (:mod:`.profiler`), interval accounting (:mod:`.accounting`),
checkpoint state (:mod:`.checkpoint`), the report (:mod:`.report`) and the composition (:mod:`.compose`).
"""

from __future__ import annotations

import logging
from datetime import datetime

from chase_integrations._warnings import OnceWarner
from chase_integrations.core import degraded
from chase_integrations.core import profiler as actions
from chase_integrations.core.accounting import PREDICTED_TOTAL_CARBON_G, Accountant, counter_notes
from chase_integrations.core.checkpoint import STATE_VERSION, CheckpointState, check_state, read_state
from chase_integrations.core.collective import Collective, LocalCollective
from chase_integrations.core.compose import compose
from chase_integrations.core.config import ChaseConfig
from chase_integrations.core.decision import Decision, DecisionInputs, UsableProfiles, decision_inputs
from chase_integrations.core.degraded import Degradations
from chase_integrations.core.footprint import describe_prediction, format_value
from chase_integrations.core.ledger import Ledger
from chase_integrations.core.profile import PowerProfile
from chase_integrations.core.profile_store import load_saved_profile, profile_location, save_profile, share_from_rank0
from chase_integrations.core.profiling import ProfilingPlan
from chase_integrations.core.report import RunFacts, build_report, write_report
from chase_integrations.core.startup import RunContext, probe_provider, start_gpus
from chase_integrations.errors import PowerControlError

__all__ = ["STATE_VERSION", "ChaseSession", "RunContext"]

logger = logging.getLogger(__name__)

_PROBE_STEPS = 5  # steps to measure the step rate before the first timed decision


class ChaseSession:
    """One training run's carbon-aware power control. See the module docstring.

    Args:
        config: The validated arguments.
        profile: A per-step profile known in advance (the simulator's; a repeat run): no profiling phase.
    """

    def __init__(self, config: ChaseConfig, profile: PowerProfile | None = None) -> None:
        self.config = config
        self.parts = compose(config)
        self.policy = self.parts.policy
        self.clock = self.parts.clock
        self.warner = OnceWarner()
        self.ledger = Ledger()
        self.profile: PowerProfile | None = profile
        self.plan: ProfilingPlan | None = None
        self.profiler: actions.Profiler | None = None
        self.mode = "idle"  # idle | active | advisory | monitor | disabled
        self.status = "created"
        self.steps = 0
        self.started = self.ended = False
        self._restored_state: dict | None = None
        self._collective: Collective = LocalCollective()
        self.controller = self.meter = None
        self.original_limits_w: dict[int, int] = {}
        self.current_limit_w: int | None = None
        self.default_limit_w: int | None = None
        self.candidates_w: list[int] = []
        self.intensity = self.decider = None
        self.accountant: Accountant | None = None
        self.total_steps: int | None = None
        self._next_decision_step: int | None = None
        self._outbox: dict[str, float] | None = None
        self._usable = UsableProfiles()
        self.notes: list[str] = []
        self.degradations = Degradations()
        self.prediction: dict | None = None
        #: Unexpected exceptions inside chase-integrations absorbed so far (see :meth:`absorb_internal_error`).
        self.internal_errors = 0
        #: Set after an absorbed internal error: the session does nothing more except end and restore.
        self.broken = False

    # ================================================================ lifecycle
    @property
    def rank(self) -> int:
        """This process's global rank."""
        return self._collective.rank

    def start(self, ctx: RunContext) -> None:
        """Train start: remember limits, check permission, resolve candidates, load or plan the profile."""
        if self.started:
            return
        self.started, self.status = True, "running"
        self._collective = ctx.collective
        self.total_steps = ctx.total_steps
        cfg = self.config
        if self.rank == 0:
            self.intensity, self.decider = self.parts.decider(self.warner)
        setup, job_mode = start_gpus(self.parts, ctx, self.warner, self.notes)
        self.controller, self.meter, self.mode = setup.controller, setup.meter, setup.mode
        self.original_limits_w, self.default_limit_w = setup.original_limits_w, setup.default_limit_w
        self.candidates_w = setup.candidates_w
        probe_provider(self._collective, self.intensity.latest if self.intensity else None, cfg.strict)
        if self.mode == "advisory":  # no permission: measuring, logging, changing nothing
            self.degradations.begin(degraded.NO_PERMISSION, self.clock.now().isoformat())
        self.accountant = self.parts.accountant(self._collective, self.meter, self.intensity, self.warner, setup)
        self._restore_from_state()
        if job_mode == "disabled":
            self.accountant.open_interval(self.clock.now(), self.current_limit_w, None)
            return
        self._profile_at = profile_location(cfg.profile_path, self.controller, ctx.collective.world_size, ctx.workload)
        self._share_rank0_profile()
        hi = self.default_limit_w
        if self.controller is not None:
            self.current_limit_w = next(iter(self.original_limits_w.values()), hi)
        self.accountant.open_interval(self.clock.now(), self.current_limit_w, None)
        if job_mode == "active" and self.profile is None:
            self._start_profiling(self.policy.profile_limits_w(self.candidates_w, hi))
        elif job_mode in ("active", "advisory") and self.profile is not None:
            self._decide(reason="start")
        if job_mode in ("monitor", "advisory") and cfg.decision_interval_s and self._next_decision_step is None:
            self._next_decision_step = self.steps + _PROBE_STEPS

    def step_end(self) -> dict[str, float] | None:
        """One optimizer step finished: the metrics to log when an interval closed during it, else ``None``."""
        if not self.started or self.ended:
            return None
        self.steps += 1
        self.accountant.count_step()
        if self.parts.step_hook is not None and self.controller is not None:
            self.parts.step_hook(self.controller.gpu_indices)
        if self.profiler is not None and not self.profiler.done:
            self._carry_out(self.profiler.on_step(self.current_limit_w))
        elif self._next_decision_step is not None and self.steps >= self._next_decision_step:
            self._decide(reason="interval")
        return self.pop_metrics()

    def epoch_end(self) -> dict[str, float] | None:
        """An epoch ended: interrupt profiling (it resumes next epoch) or decide."""
        if not self.started or self.ended:
            return None
        if self.profiler is not None and not self.profiler.done:
            self._carry_out(self.profiler.on_epoch_end(self.current_limit_w))
        else:
            self._decide(reason="epoch")
            if self.rank == 0 and self.prediction is not None:
                logger.info("chase: %s", describe_prediction(self.prediction))
        return self.pop_metrics()

    def end(self, status: str = "finished") -> dict:
        """Train end (or abort): close the interval, restore every GPU, write the report. Idempotent."""
        if self.ended:
            return self.report()
        self.ended = True
        self.status = status
        try:
            if self.started and self.accountant is not None and not self.broken:  # an abort never blocks on ranks
                self._emit(self.accountant.close_last(self.clock.now(), self.ledger, self.profile,
                                                      self.default_limit_w, collective=status == "finished"))
        finally:
            self.restore()
        self.notes.extend(counter_notes(self.meter))
        report = self.report()
        if self.config.report_path and self.rank == 0:
            write_report(report, self.config.report_path)
        return report

    def absorb_internal_error(self, where: str, error: Exception) -> None:
        """An unexpected exception inside chase-integrations (not the user's code) reached an adapter hook.

        Single process, ``strict=False``: count it (report ``internal_errors``, ``notes``), warn once, restore
        every GPU and stop acting (:attr:`broken`); training goes on. Re-raised with ``strict=True``, in
        multi-process jobs (a rank that stopped joining collectives would hang the others: the framework's
        exception path restores and reports instead) and for the errors raised on purpose at train start.
        """
        from chase_integrations.errors import ChaseError

        on_purpose = where == "start" and isinstance(error, ChaseError)
        if self.config.strict or self._collective.world_size > 1 or on_purpose:
            raise error
        self.internal_errors += 1
        self.notes.append(f"internal error in {where}: {type(error).__name__}: {error}")
        logger.error("chase: internal error in %s; power control stopped for this run.", where, exc_info=error)
        self.warner.warn(
            "internal-error",
            f"chase-integrations failed internally in {where} ({type(error).__name__}: {error}). Training "
            "continues unchanged; original GPU power limits are restored and no further limit is set. Counted "
            "in the report's `internal_errors`; warned once. Pass strict=True to raise instead.",
        )
        self.broken = True
        self.mode = "disabled"
        self.degradations.begin(degraded.INTERNAL_ERROR, self.clock.now().isoformat())
        self.restore()
        if where == "end":  # the failure was in end() itself: still leave a report
            self.ended = True
            if self.status == "running":
                self.status = "finished"
        if self.ended and self.config.report_path and self.rank == 0:
            try:
                write_report(self.report(), self.config.report_path)
            except Exception:
                logger.exception("chase: could not write the run report")

    def abort(self, exception: BaseException) -> dict | None:
        """Training is dying with ``exception``: end as ``interrupted`` or ``failed``; never raises.

        Returns the report, or ``None`` when even that failed (the GPUs are restored regardless), so the
        report never hides the user's real error.
        """
        status = "interrupted" if isinstance(exception, (KeyboardInterrupt, SystemExit)) else "failed"
        try:
            return self.end(status)
        except Exception:
            logger.exception("chase: could not finish the run report after %s", type(exception).__name__)
            self.restore()
            return None

    def restore(self) -> list[str]:
        """Restore every owned GPU's original limit (idempotent; never raises)."""
        problems = self.controller.restore() if self.controller is not None else []
        if problems:
            self.notes.extend(problems)
        return problems

    def pop_metrics(self) -> dict[str, float] | None:
        """Metrics of intervals closed since the last call (cumulative values), or ``None``."""
        metrics, self._outbox = self._outbox, None
        return metrics

    # ================================================================ profiling
    def _start_profiling(self, limits_w: list[int]) -> None:
        cfg = self.config
        self.plan = ProfilingPlan.resumed(self.plan, limits_w, cfg.profile_warmup_steps, cfg.profile_measure_steps)
        gpus = len(self.controller.gpu_indices) if self.controller is not None else 0
        self.profiler = actions.Profiler(self.plan, self.clock, self._collective, self.meter, gpus, self.warner,
                                         self.notes, actions.Rules.of(cfg, self.policy, self.total_steps), self.ledger)
        self._carry_out(self.profiler.start(self.current_limit_w))

    def _carry_out(self, todo: list[actions.Action]) -> None:
        """Carry out the profiling driver's actions, in order."""
        for action in todo:
            if isinstance(action, actions.SwitchLimit):
                self._switch_limit(action.limit_w, forecast=None, phase="profile")
            elif isinstance(action, actions.MarkProfiling):
                if self.accountant.open is not None:
                    self.accountant.open.phase = "profile"  # already at this limit: the open interval profiles it
            elif isinstance(action, actions.BeginWindow):
                self.profiler.begin_window()
            elif isinstance(action, actions.ProfileDone):
                self._profiled(action)
            elif isinstance(action, actions.StopPowerControl):
                self.restore()
                self.mode = "monitor"
                self.degradations.begin(degraded.COUNTER_STALLED, self.clock.now().isoformat())
                self.candidates_w = []
                original_w = next(iter(self.original_limits_w.values()), self.default_limit_w)
                self._switch_limit(original_w, forecast=None, phase="train")  # the intervals from here run at it
                self._next_decision_step = self.steps + _PROBE_STEPS if self.config.decision_interval_s else None

    def _profiled(self, done: actions.ProfileDone) -> None:
        self.profile = done.profile
        if done.dropped_w:
            self.candidates_w = [w for w in self.candidates_w if w in self.profile]
        self._decide(reason="profiled")  # closes the last profiling interval, whose host power the profile keeps
        self.profile = save_profile(self.profile, self._profile_at if self.rank == 0 else None, self.controller,
                                    self.warner, self.ledger)

    def _share_rank0_profile(self) -> None:
        """Load the saved profile; with several ranks, all take rank 0's profile, progress and candidates."""
        cfg = self.config

        def load():
            if self.profile is None:
                saved = load_saved_profile(self._profile_at, self.policy, self.candidates_w, self.default_limit_w,
                                           cfg.power_limits_w is not None, self.warner)
                if saved is not None:
                    self.profile = saved
                    self.candidates_w = [w for w in self.candidates_w if w in saved]
            return self.profile, self.plan, list(self.candidates_w)

        if self._collective.world_size == 1:
            load()
        else:
            self.profile, self.plan, self.candidates_w = share_from_rank0(self._collective, load)

    # ================================================================ decisions
    def _decide(self, reason: str) -> None:
        """Close the interval, let rank 0 choose, broadcast, apply. Called on every rank at the same step."""
        now = self.clock.now()
        metrics, measured = self.accountant.close(now, self.ledger, self.profile, self.default_limit_w)
        self._emit(metrics)
        decision: Decision | None = None
        if self.rank == 0:
            decision = self.decider.decide(self._inputs(now), measured.latest if measured is not None else None)
        decision = self._collective.broadcast(decision)
        if self.rank == 0:
            self.degradations.follow(decision.degraded, now.isoformat(), self.warner.warn)
        if decision.prediction is not None:
            self.prediction = decision.prediction.to_dict()
            if self._outbox is not None:
                self._outbox[PREDICTED_TOTAL_CARBON_G] = float(decision.prediction.total_carbon_g)
        limit = decision.limit_w
        self._next_decision_step = (self.steps + decision.steps_until_next) if decision.steps_until_next else None
        if limit is not None and limit != self.current_limit_w:
            self._switch_limit(limit, decision.forecast_g_per_kwh, phase="train", now=now, close=False)
            if self.rank == 0:  # one line per job, not per rank
                logger.info("chase: power limit -> %d W (%s; forecast %s gCO2eq/kWh)", limit, reason,
                            format_value(decision.forecast_g_per_kwh))
        else:
            self.accountant.open_interval(now, self.current_limit_w, decision.forecast_g_per_kwh)

    def _inputs(self, now: datetime) -> DecisionInputs:
        """What rank 0 knows now."""
        original = next(iter(self.original_limits_w.values()), self.default_limit_w)
        return decision_inputs(now, self.profile, self.candidates_w, self.current_limit_w, self.default_limit_w,
                               self.ledger, self.total_steps, self.steps, self.config.decision_interval_s, self._usable,
                               original, self.accountant.cost)

    def _switch_limit(self, limit_w: int, forecast: float | None, phase: str, now: datetime | None = None,
                      close: bool = True) -> None:
        now = now or self.clock.now()
        if close:
            self._emit(self.accountant.close(now, self.ledger, self.profile, self.default_limit_w)[0])
        self._apply_limit(limit_w)
        self.accountant.open_interval(now, self.current_limit_w, forecast, phase=phase)

    def _apply_limit(self, limit_w: int) -> None:
        self.current_limit_w = int(limit_w)
        if self.mode != "active" or self.controller is None:
            return
        try:
            self.controller.set_all_w(limit_w)
        except PowerControlError as e:
            if self.config.strict:
                raise
            self.mode = "advisory"
            self.degradations.begin(degraded.SET_FAILED, self.clock.now().isoformat())
            self.warner.warn(
                "set-failed",
                f"Setting the GPU power limit failed mid-run ({e}); continuing in advisory mode (measuring and "
                "logging the limits it would set). Original limits are restored at the end.",
            )
            self.notes.append(str(e))
            self.restore()

    def _emit(self, metrics: dict[str, float]) -> None:
        """The one way metrics leave: into the outbox that the adapter's next :meth:`pop_metrics` empties."""
        if metrics:
            self._outbox = {**(self._outbox or {}), **metrics}

    # ================================================================ state
    def state_dict(self) -> dict:
        """JSON-safe state for checkpoints (derived quantities, no configuration, no secrets)."""
        intensity = self.intensity
        return CheckpointState(
            self.ledger, self.profile, self.plan, self.steps,
            dict(intensity.fallbacks) if intensity is not None else {},
            intensity.sorted_readings() if intensity is not None else [],
        ).to_dict()

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` (applied at train start, before any step)."""
        check_state(state, self.warner)
        self._restored_state = state
        if self.started:
            self._restore_from_state()

    def _restore_from_state(self) -> None:
        state, self._restored_state = self._restored_state, None
        if not state:
            return
        restored = read_state(state, self.warner, self.notes)
        if restored is None:  # unreadable: a fresh ledger, the run goes on
            self.ledger, self.profile, self.plan = Ledger(), None, None
            return
        self.ledger, self.steps = restored.ledger, restored.steps
        if restored.profile is not None:
            self.profile = restored.profile
        if restored.plan is not None and self.profile is None:
            self.plan = restored.plan
        if self.intensity is not None:
            restored.restore_readings(self.intensity)

    def report(self) -> dict:
        """The run report (docs/metrics.md)."""
        cfg = self.config
        status = getattr(self.controller, "watchdog_status", None)
        facts = RunFacts(
            self.policy.name, cfg.provider.describe(), getattr(cfg.provider, "signal", "average"), cfg.to_json(),
            cfg.pue, dict(self.intensity.fallbacks) if self.intensity is not None else {},
            list(self.original_limits_w.values()), self.default_limit_w, self.mode, self.status, self.profile,
            self.notes, self.internal_errors, sorted(self.warner.keys), self.prediction,
            {"watchdog": status() if callable(status) else status} if status is not None else {},
            self.degradations.to_list([iv.start for iv in self.ledger.intervals]),
        )
        return build_report(facts, self.ledger)
