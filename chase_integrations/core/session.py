"""The framework-free engine: train start → profile → decide → account → train end.

Adapters (Lightning, Hugging Face) translate their hooks into :class:`ChaseSession` calls and log the
metrics it returns; they hold no arithmetic. Every rank runs a session; rank 0 alone talks to the
provider and the forecaster, and its decisions reach the other ranks through the adapter's
:class:`~chase_integrations.core.collective.Collective`. Decisions happen at step numbers all ranks
agree on (rank 0 broadcasts the next decision step with each decision), so collectives line up.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from datetime import datetime

from chase_integrations._warnings import OnceWarner
from chase_integrations.core.clock import SystemClock
from chase_integrations.core.collective import Collective, LocalCollective
from chase_integrations.core.config import ChaseConfig
from chase_integrations.core.decide import Decider
from chase_integrations.core.intensity import IntensitySource
from chase_integrations.core.ledger import Interval, Ledger
from chase_integrations.core.profile import PowerProfile
from chase_integrations.core.profiling import ProfilingPlan
from chase_integrations.core.report import build_report, write_report
from chase_integrations.errors import ConfigurationError, PowerControlError, PowerPermissionError

logger = logging.getLogger(__name__)

STATE_VERSION = 1
_MODES = ("disabled", "monitor", "advisory", "active")  # a job runs the flow of its most capable rank
_PROBE_STEPS = 5  # steps to measure the step rate before the first timed decision
#: A profiling window whose GPUs averaged less than this (W per GPU) read an energy counter that did not
#: advance: a powered GPU draws tens of watts even idle.
STALLED_POWER_W = 5.0
#: Only windows at least this long are judged: shorter ones may read zero on a working counter (NVML updates
#: it every ~100 ms).
STALLED_MIN_WINDOW_S = 1.0


@dataclass
class RunContext:
    """What the adapter knows about this process and the job.

    Attributes:
        gpu_indices: Indices (in the ``GPUs`` object) of the GPUs this rank trains on.
        collective: Cross-rank operations (``LocalCollective`` for one process).
        total_steps: Optimizer steps of the whole job when known (``max_steps``/``max_epochs``).
        local_rank: This process's rank on its node.
    """

    gpu_indices: list[int]
    collective: Collective
    total_steps: int | None = None
    local_rank: int = 0


class ChaseSession:
    """One training run's carbon-aware power control. See the module docstring."""

    def __init__(self, config: ChaseConfig, decider: Decider | None = None) -> None:
        """Store the configuration; nothing touches hardware or the network before :meth:`start`.

        ``decider`` replaces rank 0's decision maker (references such as the oracle in simulation).
        """
        self.config = config
        self._given_decider = decider
        self.sim = config.simulation
        self.clock = self.sim.clock if self.sim is not None else SystemClock()
        self.warner = OnceWarner()
        self.ledger = Ledger()
        self.profile: PowerProfile | None = None
        self.plan: ProfilingPlan | None = None
        self.mode = "idle"  # idle | active | advisory | monitor | disabled
        self.status = "created"
        self.steps = 0
        self.started = False
        self.ended = False
        self._restored_state: dict | None = None
        self._collective: Collective = LocalCollective()
        self.controller = None
        self.meter = None
        self.original_limits_w: dict[int, int] = {}
        self.current_limit_w: int | None = None
        self.default_limit_w: int | None = None
        self.candidates_w: list[int] = []
        self.intensity: IntensitySource | None = None
        self.decider: Decider | None = None
        self.total_steps: int | None = None
        self._interval: dict | None = None
        self._next_decision_step: int | None = None
        self._last_forecast: float | None = None
        self.notes: list[str] = []
        self.last_metrics: dict[str, float] = {}
        self._fresh_metrics: dict[str, float] | None = None
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
            self.intensity = IntensitySource(
                cfg.provider,
                self.clock,
                cfg.max_reading_age_s,
                cfg.fallback_intensity_g_per_kwh,
                cfg.strict,
                self.warner,
            )
            self.decider = self._given_decider or Decider(cfg, self.intensity, self.clock)
        error: Exception | None = None
        try:
            self._setup_gpus(ctx)
        except Exception as e:  # raised by _agree_at_start on every rank: a lone raise would hang the others
            error = e
        job_mode = self._agree_at_start(error)
        self._restore_from_state()
        if job_mode == "disabled":
            self._open_interval(self.clock.now(), None)
            return
        self._share_rank0_profile()
        hi = self.default_limit_w
        if self.controller is not None:
            self.current_limit_w = next(iter(self.original_limits_w.values()), hi)
        self._open_interval(self.clock.now(), None)
        if job_mode == "active" and cfg.policy == "static" and self.profile is None:
            self._start_profiling([hi, cfg.static_power_limit_w] if cfg.static_power_limit_w != hi else [hi])
        elif job_mode == "active" and self.profile is None:
            self._start_profiling(self.candidates_w)
        elif job_mode in ("active", "advisory") and self.profile is not None:
            self._decide(reason="start")
        if job_mode in ("monitor", "advisory") and cfg.decision_interval_s and self._next_decision_step is None:
            self._next_decision_step = self.steps + _PROBE_STEPS

    def _setup_gpus(self, ctx: RunContext) -> None:
        """This rank alone: its GPUs' controller and meter, original limits, candidates, mode, permission."""
        cfg = self.config
        gpus = self._resolve_gpus() if ctx.gpu_indices else None
        if gpus is None:
            if not ctx.gpu_indices:
                self.warner.warn(
                    "no-gpu-owned",
                    "This process trains on no GPU; chase-integrations records carbon "
                    "intensity only and changes no power limit.",
                )
            self.mode = "disabled"
            return
        from chase_integrations.power.limits import PowerLimitController
        from chase_integrations.power.meter import EnergyMeter

        self.controller = PowerLimitController(gpus, ctx.gpu_indices)
        if self.sim is not None:
            cpus = getattr(self.sim, "cpus", None)  # simulated runs never read the real machine's RAPL
        else:
            cpus = "auto" if ctx.local_rank == 0 else None  # one process per node reads RAPL
        self.meter = EnergyMeter(gpus, ctx.gpu_indices, sync_execution=self.sim is None and cfg.gpus is None, cpus=cpus)
        self.original_limits_w = self.controller.remember_originals()
        lo, hi = self.controller.constraints_w()
        self.default_limit_w = hi
        self.candidates_w = self._candidates(lo, hi)
        self.mode = "monitor" if cfg.policy == "monitor" else "active"
        if self.mode == "active":
            self._check_permission()

    def _agree_at_start(self, error: Exception | None) -> str:
        """Every rank, once, at train start; returns the job-wide mode.

        A failure on any rank (``strict`` without permission, a bad ``power_limits_w``) raises on every
        rank, so none waits forever in a later collective. A rank that cannot set limits runs in advisory
        mode alone but profiles and decides in lockstep with the others: the job follows its most capable
        rank (``active`` when any rank can set limits). With several ranks, candidates come from the
        limits that every rank's GPUs allow, so all GPUs can run the same limit.
        """
        c = self._collective
        failed, permission = c.sum_max(float(error is not None), float(isinstance(error, PermissionError)))
        try:
            if error is not None:
                raise error
            if failed:
                kind = PowerPermissionError if permission else PowerControlError
                raise kind(
                    f"{int(failed)} of {c.world_size} ranks could not set up GPU power control at train "
                    f"start (see their errors); stopping rank {self.rank} too, so that no rank waits for "
                    "the others."
                )
            n_advisory, top = c.sum_max(float(self.mode == "advisory"), float(_MODES.index(self.mode)))
            if c.world_size > 1:
                own = self.controller.constraints_w() if self.controller is not None else (-math.inf, math.inf)
                _, lo = c.sum_max(0.0, float(own[0]))
                _, neg_hi = c.sum_max(0.0, -float(own[1]))
                if math.isfinite(lo) and (lo, -neg_hi) != own:
                    if lo > -neg_hi:
                        raise ConfigurationError(
                            f"The ranks' GPUs allow no common power limit ([{lo:.0f}, "
                            f"{-neg_hi:.0f}] W); every GPU of a job must run the same limit."
                        )
                    self.default_limit_w = int(-neg_hi)
                    self.candidates_w = self._candidates(int(lo), int(-neg_hi))
        except Exception:
            if self.controller is not None:
                self.controller.restore()
            raise
        if self.rank == 0 and 0 < n_advisory < c.world_size:
            self.notes.append(
                f"{int(n_advisory)} of {c.world_size} ranks could not set power limits and ran in "
                "advisory mode; the other ranks set them."
            )
        return _MODES[int(top)]

    def _share_rank0_profile(self) -> None:
        """Load the saved profile; with several ranks, all take rank 0's profile, progress and candidates.

        A saved profile or a checkpoint may exist on rank 0's disk only; sharing them keeps every rank on
        the same plan (and so on the same collectives). If rank 0 cannot read the profile, every rank raises.
        """
        if self._collective.world_size == 1:
            self._load_profile()
            return
        mine = None
        if self.rank == 0:
            try:
                self._load_profile()
                mine = {
                    "profile": self.profile.to_dict() if self.profile is not None else None,
                    "plan": self.plan.to_dict() if self.plan is not None else None,
                    "candidates_w": list(self.candidates_w),
                }
            except Exception as e:  # tell the other ranks before raising, or they would wait for rank 0
                self._collective.broadcast({"error": f"{type(e).__name__}: {e}"})
                raise
        shared = self._collective.broadcast(mine)
        if "error" in shared:
            raise ConfigurationError(
                f"Rank 0 could not load the saved profile ({shared['error']}); stopping rank {self.rank} too."
            )
        if self.rank != 0:
            self.profile = PowerProfile.from_dict(shared["profile"]) if shared["profile"] else None
            self.plan = ProfilingPlan.from_dict(shared["plan"]) if shared["plan"] else None
            self.candidates_w = list(shared["candidates_w"])

    def step_end(self) -> dict[str, float] | None:
        """One optimizer step finished. Cheap unless a decision or profiling event is due.

        Returns the metrics to log when an interval closed during the step, else ``None``.
        """
        if not self.started or self.ended:
            return None
        self.steps += 1
        if self._interval is not None:
            self._interval["steps"] += 1
        if self.sim is not None and self.controller is not None:
            self.sim.step(self.controller.gpu_indices)
        if self.plan is not None and not self.plan.done:
            self._profiling_step()
        elif self._next_decision_step is not None and self.steps >= self._next_decision_step:
            self._decide(reason="interval")
        return self.pop_metrics() if self._fresh_metrics is not None else None

    def epoch_end(self) -> dict[str, float] | None:
        """An epoch ended: interrupt profiling (it resumes next epoch) or decide."""
        if not self.started or self.ended:
            return None
        if self.plan is not None and not self.plan.done:
            if self.plan.phase == "measure":
                energy, elapsed = self._end_measure()
                self.plan.add_partial(elapsed, energy)
            self.plan.interrupt()
            self._restart_profile_phase()
        else:
            self._decide(reason="epoch")
            if self.rank == 0 and self.prediction is not None:
                p = self.prediction
                logger.info(
                    "chase: predicted total %.1f gCO2eq (80 %% range %.1f-%.1f) vs %.1f at the default limit "
                    "(expected saving %.1f g); %.1f g emitted so far.",
                    p["total_carbon_g"],
                    p["lower_carbon_g"],
                    p["upper_carbon_g"],
                    p["default_total_carbon_g"],
                    p["expected_saving_g"],
                    p["measured_carbon_g"],
                )
        return self.pop_metrics()

    def end(self, status: str = "finished") -> dict:
        """Train end (or abort): close the interval, restore every GPU, write the report. Idempotent."""
        if self.ended:
            return self.report()
        self.ended = True
        self.status = status
        try:
            if self.started and self._interval is not None and not self.broken:
                if status == "finished":
                    self._close_interval(self.clock.now())
                else:
                    self._close_interval_local(self.clock.now())
        finally:
            self.restore()
        anomalies = self.meter.anomalies if self.meter is not None else []
        if anomalies:
            self.notes.append(f"GPU energy counter went backwards in {len(anomalies)} window(s), counted as 0 J "
                              f"(first: {anomalies[0]}).")
        report = self.report()
        if self.config.report_path and self.rank == 0:
            write_report(report, self.config.report_path)
        return report

    def absorb_internal_error(self, where: str, error: Exception) -> None:
        """An unexpected exception inside chase-integrations (not the user's code) reached an adapter hook.

        Single process, ``strict=False``: count it (report ``internal_errors`` and ``notes``), warn once,
        restore every GPU, and stop acting (:attr:`broken`); training goes on. The errors that the
        package raises on purpose at train start (:class:`~chase_integrations.errors.ChaseError`: bad
        ``power_limits_w``, an unreadable profile, ``strict``) still propagate, before any step.

        Re-raises ``error`` with ``strict=True`` and in multi-process jobs: a rank that stopped
        joining the session's collectives would leave the other ranks waiting forever, so there the
        error takes the framework's exception path (restore, report ``failed``) on this rank and the
        launcher stops the others, as for any error in one rank's training step.
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

    # ================================================================ profiling
    def _start_profiling(self, limits_w: list[int]) -> None:
        cfg = self.config
        ordered = sorted(set(limits_w), reverse=True)
        if self.plan is None or self.plan.limits_w != ordered:
            self.plan = ProfilingPlan(ordered, cfg.profile_warmup_steps, cfg.profile_measure_steps)
        if self.plan.done:
            self._finish_profiling()
            return
        self._restart_profile_phase()

    def _restart_profile_phase(self) -> None:
        assert self.plan is not None
        limit = self.plan.current_limit_w
        if limit is None:
            return
        if limit != self.current_limit_w:
            self._switch_limit(limit, forecast=None, phase="profile")
        elif self._interval is not None:
            self._interval["phase"] = "profile"  # already at this limit: the open interval profiles it
        if self.plan.start_event() == "begin_measure":
            self._begin_measure()

    def _begin_measure(self) -> None:
        if self.meter is not None:
            self.meter.begin("profile")
        self._measure_t0 = self.clock.monotonic()

    def _end_measure(self) -> tuple[float, float]:
        """Close the profiling window: (energy summed over ranks, time max over ranks)."""
        energy = self.meter.end("profile").energy_j if self.meter is not None else 0.0
        elapsed = self.clock.monotonic() - self._measure_t0
        return self._collective.sum_max(energy, elapsed)

    def _profiling_step(self) -> dict[str, float] | None:
        assert self.plan is not None
        event = self.plan.on_step()
        if event == "begin_measure":
            self._begin_measure()
        elif event == "end_measure":
            energy_sum, time_max = self._end_measure()
            window_s = self.plan.partial_time_s + time_max
            min_window_s = self.config.profile_min_window_s
            if not self.plan.extended and window_s < min_window_s:
                steps = self.plan.partial_steps + self.plan.steps_in_phase
                extra = min(100_000, math.ceil(steps * (min_window_s / max(window_s, 1e-6) - 1.0)))
                self.plan.extend(time_max, energy_sum, extra)
                self._begin_measure()
                return None
            energy_j = self.plan.partial_energy_j + energy_sum
            if self._counter_stalled(energy_j, window_s):
                return self._stalled_window(energy_j, window_s)
            self.plan.record_window(max(time_max, 1e-9), max(energy_sum, 1e-9))
            if self.plan.done:
                return self._finish_profiling()
            self._restart_profile_phase()
        return None

    def _counter_stalled(self, energy_j: float, time_s: float) -> bool:
        """Whether a window of at least :data:`STALLED_MIN_WINDOW_S` read under :data:`STALLED_POWER_W` per GPU.

        Every rank calls this with the same reduced values, and the GPU count is reduced too (a rank may
        meter none), so every rank gets the same answer.
        """
        mine = len(self.controller.gpu_indices) if self.controller is not None and self.meter is not None else 0
        gpus, _ = self._collective.sum_max(float(mine), 0.0)
        return gpus > 0 and time_s >= STALLED_MIN_WINDOW_S and energy_j < STALLED_POWER_W * gpus * time_s

    def _stalled_window(self, energy_j: float, window_s: float) -> dict[str, float] | None:
        """The energy counter did not advance over a profiling window: measure again, then leave the limit out.

        Decided from cross-rank reduced values, so every rank takes the same branch. The first stall of a limit
        measures it again; a second leaves it out of the profile. When that is the default limit (measured first),
        power control stops: no other limit can be compared with it.
        """
        assert self.plan is not None
        limit = self.plan.current_limit_w
        if not self.plan.retried:
            logger.info("chase: the GPU energy counter read %.3g J in %.1f s at %s W; measuring that limit again.",
                        energy_j, window_s, limit)
            self.plan.retry()
            self._begin_measure()
            return None
        what = (f"The GPU energy counter did not advance while profiling {limit} W "
                f"({energy_j:.3g} J in {window_s:.1f} s, twice)")
        if limit != self.plan.limits_w[0]:
            self.plan.skip_current()
            self.warner.warn("energy-stalled", f"{what}; that limit is left out of the profile.")
            self.notes.append(f"{what}; {limit} W left out of the profile.")
            if self.plan.done:
                return self._finish_profiling()
            self._restart_profile_phase()
            return None
        self.plan.skip_current(rest=True)
        self.warner.warn(
            "energy-stalled",
            f"{what}. Power control is off for this run (original limits restored); intensity is still logged, but the "
            "energy and carbon figures come from the same counter and undercount. Check the GPU's energy counter "
            "(nvidia-smi -q -d POWER).",
        )
        self.notes.append(f"{what}; power control off, energy and carbon figures unreliable.")
        self.restore()
        self.mode = "monitor"
        self.candidates_w = []
        original_w = next(iter(self.original_limits_w.values()), self.default_limit_w)
        self._switch_limit(original_w, forecast=None, phase="train")  # the intervals from here run at it
        self._next_decision_step = self.steps + _PROBE_STEPS if self.config.decision_interval_s else None
        return None

    def _finish_profiling(self) -> dict[str, float] | None:
        assert self.plan is not None
        self.profile = PowerProfile(self.plan.results)
        if self.rank == 0:
            logger.info("Profiled %d power limits: %r", len(self.profile), self.profile)
        if self.plan.skipped_w:
            logger.info(
                "Skipped limits %s W: dominated (slower and more energy per step than a higher limit).",
                self.plan.skipped_w,
            )
        if self.plan.skipped_w or self.plan.unmeasured_w:
            self.candidates_w = [w for w in self.candidates_w if w in self.profile]
        if self.config.profile_path and self.rank == 0:
            try:
                self.profile.save(
                    self.config.profile_path, {"gpu_indices": self.controller.gpu_indices if self.controller else []}
                )
            except OSError as e:
                self.warner.warn("profile-save", f"Could not save the profile to {self.config.profile_path!r}: {e}")
        return self._decide(reason="profiled")

    def _load_profile(self) -> None:
        path = self.config.profile_path
        if self.profile is not None or not path:
            return
        from pathlib import Path

        if not Path(path).exists():
            return
        profile = PowerProfile.load(path)
        missing = [w for w in self._needed_limits() if w not in profile]
        if self.config.policy != "static" and self.default_limit_w in profile and self.config.power_limits_w is None:
            missing = []  # a pruned profile still covers every limit worth using
        if missing:
            self.warner.warn("profile-stale", f"Saved profile {path!r} lacks limits {missing} W; profiling again.")
            return
        self.profile = profile
        self.candidates_w = [w for w in self.candidates_w if w in profile]
        logger.info("Loaded power profile from %s.", path)

    def _needed_limits(self) -> list[int]:
        cfg = self.config
        if cfg.policy == "static":
            return sorted({self.default_limit_w, cfg.static_power_limit_w})
        return list(self.candidates_w)

    # ================================================================ decisions
    def _decide(self, reason: str) -> dict[str, float]:
        """Close the interval, let rank 0 choose, broadcast, apply. Called on every rank at the same step."""
        now = self.clock.now()
        metrics = self._close_interval(now)
        payload = None
        if self.rank == 0:
            assert self.decider is not None
            est_step_s = self._estimated_step_s()
            payload = self.decider.decide(
                profile=self.profile,
                candidates_w=self.candidates_w,
                current_limit_w=self.current_limit_w,
                default_limit_w=self.default_limit_w,
                ledger=self.ledger,
                steps_done=self.steps,
                total_steps=self.total_steps,
                est_step_s=est_step_s,
            )
        payload = self._collective.broadcast(payload)
        if payload.get("prediction"):
            self.prediction = payload["prediction"]
            if self._fresh_metrics is not None:
                self._fresh_metrics["chase/predicted_total_carbon_g"] = float(self.prediction["total_carbon_g"])
        limit = payload["limit_w"]
        self._next_decision_step = (
            (self.steps + payload["steps_until_next"]) if payload.get("steps_until_next") else None
        )
        if limit is not None and limit != self.current_limit_w:
            self._switch_limit(limit, payload.get("forecast_g_per_kwh"), phase="train", now=now, close=False)
            if self.rank == 0:  # one line per job, not per rank
                logger.info(
                    "chase: power limit -> %d W (%s; forecast %s gCO2eq/kWh)",
                    limit,
                    reason,
                    _fmt(payload.get("forecast_g_per_kwh")),
                )
        else:
            self._open_interval(now, payload.get("forecast_g_per_kwh"))
        return metrics

    def _estimated_step_s(self) -> float | None:
        if self.profile is not None and self.current_limit_w is not None:
            try:
                return self.profile.time_per_step_s(self.current_limit_w)
            except ConfigurationError:
                pass
        recent = [i for i in self.ledger.intervals[-3:] if i.steps > 0]
        if recent:
            return sum(i.duration_s for i in recent) / sum(i.steps for i in recent)
        return None

    def _switch_limit(
        self, limit_w: int, forecast: float | None, phase: str, now: datetime | None = None, close: bool = True
    ) -> None:
        now = now or self.clock.now()
        if close:
            self._close_interval(now)
        self._apply_limit(limit_w)
        self._open_interval(now, forecast, phase=phase)

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
            self.warner.warn(
                "set-failed",
                f"Setting the GPU power limit failed mid-run ({e}); continuing in advisory mode (measuring and "
                "logging the limits it would set). Original limits are restored at the end.",
            )
            self.notes.append(str(e))
            self.restore()

    def _check_permission(self) -> None:
        assert self.controller is not None
        try:
            self.controller.check_permission()
        except PowerPermissionError as e:
            if self.config.strict:
                self.controller.restore()
                raise
            self.mode = "advisory"
            self.warner.warn(
                "advisory",
                f"No permission to set GPU power limits{self._where()} ({e}). Running in advisory mode: measuring and "
                f"logging the limit it would set, changing nothing{self._others()}. Pass strict=True to make this an "
                "error.",
            )
        except PowerControlError as e:
            if self.config.strict:
                self.controller.restore()
                raise
            self.mode = "advisory"
            self.warner.warn(
                "advisory",
                f"GPU power limits cannot be set{self._where()} ({e}); running in advisory mode{self._others()}.",
            )

    def _where(self) -> str:
        """`` on rank R (GPU [i])`` when the job has several ranks, else nothing (for messages)."""
        if self._collective.world_size == 1 or self.controller is None:
            return ""
        return f" on rank {self.rank} (GPU {self.controller.gpu_indices})"

    def _others(self) -> str:
        return " on this rank; the other ranks still set theirs" if self._collective.world_size > 1 else ""

    # ================================================================ accounting
    def _open_interval(self, now: datetime, forecast: float | None, phase: str = "train") -> None:
        self._interval = {
            "start": now,
            "t0": self.clock.monotonic(),
            "steps": 0,
            "forecast": forecast,
            "limit_w": self.current_limit_w,
            "phase": phase,
        }
        self._last_forecast = forecast
        if self.meter is not None:
            self.meter.begin("interval")

    def _close_interval(self, now: datetime) -> dict[str, float]:
        """Close the open interval on every rank: sum energy, rank 0 measures intensity, all record it."""
        iv = self._interval
        if iv is None:
            return {}
        self._interval = None
        reading = self.meter.end("interval") if self.meter is not None else None
        energy = reading.energy_j if reading is not None else 0.0
        duration = self.clock.monotonic() - iv["t0"]
        energy_sum, duration_max = self._collective.sum_max(energy, duration)
        cpu = reading.cpu_energy_j if reading is not None else None
        dram = reading.dram_energy_j if reading is not None else None
        # CPU/DRAM (RAPL) is measured by one process per node; every rank joins the same reductions.
        cpu_sum, cpu_measured = self._collective.sum_max(cpu or 0.0, 1.0 if cpu is not None else 0.0)
        dram_sum, dram_measured = self._collective.sum_max(dram or 0.0, 1.0 if dram is not None else 0.0)
        iv["cpu_energy_j"] = cpu_sum if cpu_measured else None
        iv["dram_energy_j"] = dram_sum if dram_measured else None
        measured = None
        if self.rank == 0:
            assert self.intensity is not None
            measured = self.intensity.interval_mean(iv["start"], now, iv["forecast"])
        measured = self._collective.broadcast(measured)
        return self._record(iv, now, energy_sum, duration_max, measured[0], measured[1])

    def _close_interval_local(self, now: datetime) -> dict[str, float]:
        """Close without collectives: on an abort, other ranks may be gone, so never block."""
        iv = self._interval
        if iv is None:
            return {}
        self._interval = None
        try:
            energy = self.meter.end("interval").energy_j if self.meter is not None else 0.0
        except Exception:  # aborting: never let accounting hide the real error
            energy = 0.0
        duration = self.clock.monotonic() - iv["t0"]
        if self.intensity is not None:
            value, source = self.intensity.interval_mean(iv["start"], now, iv["forecast"])
        else:
            value, source = (iv["forecast"] or 0.0), "unknown"
        return self._record(iv, now, energy * self._collective.world_size, duration, value, source)

    def _record(
        self, iv: dict, now: datetime, energy_j: float, duration_s: float, intensity: float, source: str
    ) -> dict[str, float]:
        if iv["steps"] == 0 and (duration_s <= 0 or energy_j == 0.0):
            return {}
        limit = iv["limit_w"] if iv["limit_w"] is not None else (self.default_limit_w or 0)
        e_ratio = t_ratio = 1.0
        if self.profile is not None and self.default_limit_w in self.profile and limit:
            with contextlib.suppress(ConfigurationError):
                t_ratio, e_ratio = self.profile.relative(limit)
        interval = Interval.account(
            iv["start"].isoformat(),
            now.isoformat(),
            limit,
            intensity,
            iv["forecast"],
            energy_j=energy_j,
            steps=iv["steps"],
            duration_s=duration_s,
            pue=self.config.pue,
            energy_ratio_to_default=e_ratio,
            time_ratio_to_default=t_ratio,
            phase=iv["phase"],
            intensity_source=source,
            cpu_energy_j=iv.get("cpu_energy_j"),
            dram_energy_j=iv.get("dram_energy_j"),
        )
        self.ledger.add(interval)
        carbon_g = self.ledger.carbon_g
        metrics = self._fresh_metrics = {
            "chase/power_limit_w": float(limit),
            "chase/intensity_g_per_kwh": interval.intensity_g_per_kwh,
            "chase/energy_j": self.ledger.energy_j,
            "chase/carbon_g": carbon_g,
            "chase/carbon_saved_g": self.ledger.baseline_carbon_g - carbon_g,  # Ledger.carbon_saved_g
        }
        if interval.forecast_g_per_kwh is not None:
            metrics["chase/forecast_g_per_kwh"] = interval.forecast_g_per_kwh
        self.last_metrics = metrics
        return metrics

    def pop_metrics(self) -> dict[str, float] | None:
        """Metrics of intervals closed since the last call (cumulative values), or ``None``."""
        metrics, self._fresh_metrics = self._fresh_metrics, None
        return metrics

    # ================================================================ helpers
    def _resolve_gpus(self):
        cfg = self.config
        if self.sim is not None:
            return self.sim.gpus
        if cfg.gpus is not None:
            return cfg.gpus
        try:
            from zeus.device import get_gpus

            gpus = get_gpus()
            if len(gpus) == 0:
                raise RuntimeError("no GPUs found")
            return gpus
        except Exception as e:
            if cfg.strict:
                raise PowerControlError(f"No GPU could be managed through Zeus: {e}") from e
            self.warner.warn(
                "no-gpu",
                f"No GPU could be managed through Zeus ({type(e).__name__}: {e}); chase-integrations records carbon "
                "intensity only. Pass strict=True to make this an error, or simulation=... to simulate a GPU.",
            )
            return None

    def _candidates(self, lo: int, hi: int) -> list[int]:
        given = self.config.power_limits_w
        if given is not None:
            bad = [w for w in given if not lo <= w <= hi]
            if bad:
                raise ConfigurationError.invalid(
                    "power_limits_w", given, f"limits within the GPU's range [{lo}, {hi}] W"
                )
            limits = set(given)
        else:
            limits = set(range(lo, hi + 1, 25))
        limits.add(hi)
        static = self.config.static_power_limit_w
        if self.config.policy == "static" and static is not None and not lo <= static <= hi:
            raise ConfigurationError.invalid("static_power_limit_w", static, f"within the GPU's range [{lo}, {hi}] W")
        return sorted(limits)

    # ================================================================ state
    def state_dict(self) -> dict:
        """JSON-safe state for checkpoints (derived quantities, no configuration, no secrets)."""
        return {
            "version": STATE_VERSION,
            "intervals": self.ledger.to_list(),
            "profile": self.profile.to_dict() if self.profile is not None else None,
            "profiling": self.plan.to_dict() if self.plan is not None and not self.plan.done else None,
            "steps": self.steps,
            "fallbacks": dict(self.intensity.fallbacks) if self.intensity is not None else {},
            "readings": [r.to_dict() for r in self.intensity.sorted_readings()[-48:]] if self.intensity else [],
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` (applied at train start, before any step)."""
        if not isinstance(state, dict):
            raise ConfigurationError.invalid("state", type(state).__name__, "a dict saved by ChaseSession.state_dict")
        try:
            version = int(state.get("version", 0))
        except (TypeError, ValueError):
            version = STATE_VERSION + 1  # unreadable: treat like a newer format
        if version > STATE_VERSION:
            self.warner.warn(
                "state-version",
                f"Checkpoint state version {version} is newer than this package's "
                f"({STATE_VERSION}); reading the keys it knows.",
            )
        self._restored_state = state
        if self.started:
            self._restore_from_state()

    def _restore_from_state(self) -> None:
        state, self._restored_state = self._restored_state, None
        if not state:
            return
        try:
            self._apply_state(state)
        except Exception as e:  # an old, newer or damaged checkpoint: start a fresh ledger, never crash
            self.ledger, self.profile, self.plan = Ledger(), None, None
            self.warner.warn(
                "state-unreadable",
                f"The chase-integrations state in the checkpoint could not be read ({type(e).__name__}: {e}); "
                "the carbon ledger and power profile start afresh from here (training resumes normally).",
            )
            self.notes.append(f"checkpoint state ignored: {type(e).__name__}: {e}")

    def _apply_state(self, state: dict) -> None:
        from collections import Counter

        from chase_integrations.carbon.reading import IntensityReading

        ledger = Ledger.from_list(state.get("intervals", []))
        for total in ("energy_j", "carbon_g", "time_s", "steps", "baseline_carbon_g", "baseline_time_s"):
            if not math.isfinite(float(getattr(ledger, total))):  # wrong types fail here, not mid-run
                raise ValueError(f"ledger total {total} is not finite")
        self.ledger = ledger
        if state.get("profile"):
            self.profile = PowerProfile.from_dict(state["profile"])
        if state.get("profiling") and self.profile is None:
            self.plan = ProfilingPlan.from_dict(state["profiling"])
        self.steps = int(state.get("steps", self.ledger.steps))
        if self.intensity is not None:
            self.intensity.fallbacks = Counter(state.get("fallbacks", {}))
            for r in state.get("readings", []):
                try:
                    self.intensity._remember(IntensityReading.from_dict(r))
                except (KeyError, ValueError):
                    continue
            if self.ledger.intervals:
                self.intensity.last_known = self.ledger.intervals[-1].intensity_g_per_kwh

    def report(self) -> dict:
        """The run report of API.md (plus extra fields)."""
        return build_report(self)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1f}"
