"""The profiling driver: runs the :class:`~chase_integrations.core.profiling.ProfilingPlan` on real steps.

It owns the plan, the ``"profile"`` Zeus window and the cross-rank reductions of each window, and it
never calls back into the session: each event returns the :data:`Action` list the session carries out,
in order. Every rank runs the same driver on the same reduced values, so all ranks take the same
actions at the same step. Its collectives, at step counts every rank shares: one ``sum_max`` per warm-up
step (the warm-up's duration: it ends after ``profile_min_window_s / 2``), one at the half of each
measurement window (the halves measure the noise) and one at its end.

Actions:

* :class:`SwitchLimit`: close the open interval, set the limit, open a ``"profile"`` interval.
* :class:`MarkProfiling`: the limit is already set; the open interval profiles it.
* :class:`BeginWindow`: call :meth:`Profiler.begin_window` (after the limit is set).
* :class:`ProfileDone`: every limit is measured; use :attr:`ProfileDone.profile` and decide.
* :class:`StopPowerControl`: the energy counter cannot be trusted; restore the original limits.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from chase_integrations._warnings import OnceWarner
from chase_integrations.core.collective import Collective
from chase_integrations.core.interfaces import EnergyMeter
from chase_integrations.core.ledger import Ledger
from chase_integrations.core.profile import PowerProfile
from chase_integrations.core.profiling import ProfilingPlan
from chase_integrations.core.profiling_cost import rebaseline

logger = logging.getLogger(__name__)

#: A profiling window whose GPUs averaged less than this (W per GPU) read an energy counter that did not
#: advance: a powered GPU draws tens of watts even idle.
STALLED_POWER_W = 5.0
#: Only windows at least this long are judged: shorter ones may read zero on a working counter (NVML updates
#: it every ~100 ms).
STALLED_MIN_WINDOW_S = 1.0


@dataclass(frozen=True)
class SwitchLimit:
    """Close the interval, set ``limit_w``, open a ``"profile"`` interval."""

    limit_w: int


@dataclass(frozen=True)
class MarkProfiling:
    """The limit is already in force: the open interval profiles it."""


@dataclass(frozen=True)
class BeginWindow:
    """Open the measurement window (call :meth:`Profiler.begin_window`)."""


@dataclass(frozen=True)
class ProfileDone:
    """Every limit is measured (or left out)."""

    profile: PowerProfile
    dropped_w: tuple[int, ...] = ()


@dataclass(frozen=True)
class StopPowerControl:
    """The energy counter of the default limit did not advance: stop setting limits for this run."""

    reason: str


Action = SwitchLimit | MarkProfiling | BeginWindow | ProfileDone | StopPowerControl


@dataclass(frozen=True)
class Rules:
    """What bounds one run's profiling (from the configuration and the job).

    Attributes:
        min_window_s: Shortest trusted measurement window, s (``profile_min_window_s``); a warm-up lasts at
            most half of it.
        max_slowdown: The budget policy's ``max_slowdown`` (``None``: another policy, no floor).
        job_steps: The job's length in optimizer steps, when known.
    """

    min_window_s: float = 0.0
    max_slowdown: float | None = None
    job_steps: int | None = None

    @classmethod
    def of(cls, config, policy, total_steps: int | None) -> Rules:
        """The rules for ``config``'s run of ``policy`` over ``total_steps`` steps."""
        budget = getattr(policy, "max_slowdown", None)
        return cls(float(config.profile_min_window_s), float(budget) if budget is not None else None, total_steps)


class Profiler:
    """Drives one run's profiling.

    Args:
        plan: The plan (new, or restored from a checkpoint).
        clock: The session's clock.
        collective: Cross-rank operations.
        meter: This rank's energy meter (``None``: it owns no GPU).
        gpus_metered: GPUs this rank meters (for the stalled-counter check).
        warner: The session's once-per-run warnings.
        notes: The session's report notes (appended to).
        rules: Window length, budget floor and job length (:class:`Rules`).
        ledger: The run's ledger: once the profile is known, its profiling intervals get their baseline
            (until then the limit's slowdown is unknown), so profiling counts against the budget.
    """

    def __init__(self, plan: ProfilingPlan, clock, collective: Collective, meter: EnergyMeter | None,
                 gpus_metered: int, warner: OnceWarner, notes: list[str], rules: Rules = Rules(),
                 ledger: Ledger | None = None) -> None:
        self.plan = plan
        self.clock = clock
        self.collective = collective
        self.meter = meter
        self.gpus_metered = gpus_metered
        self.min_window_s = rules.min_window_s
        self.warner = warner
        self.notes = notes
        self.ledger = ledger
        plan.min_window_s, plan.warmup_s = rules.min_window_s, rules.min_window_s / 2
        plan.max_slowdown, plan.job_steps = rules.max_slowdown, rules.job_steps
        self._t0_s = 0.0
        self._warm_t0_s = clock.monotonic()

    @property
    def done(self) -> bool:
        """Whether profiling has finished."""
        return self.plan.done

    # ------------------------------------------------------------------ events
    def start(self, current_limit_w: int | None) -> list[Action]:
        """Begin (or resume) profiling."""
        if self.plan.done:
            return self._finish()
        return self._restart(current_limit_w)

    def on_step(self, current_limit_w: int | None) -> list[Action]:
        """One optimizer step while profiling."""
        plan = self.plan
        warmup_s = None
        if not plan.done and plan.phase == "warmup":  # every rank is in the warm-up at the same step
            warmup_s = self.collective.sum_max(0.0, self.clock.monotonic() - self._warm_t0_s)[1]
        event = plan.on_step(warmup_s)
        if event == "begin_measure":
            self.begin_window()
        elif event == "split":
            energy_sum, time_max = self._end_window()
            plan.split(time_max, energy_sum)
            self.begin_window()
        elif event == "end_measure":
            energy_sum, time_max = self._end_window()
            plan.observe_noise(time_max, energy_sum)
            window_s = plan.partial_time_s + time_max
            if not plan.extended and window_s < self.min_window_s * (1 - 1e-9):
                steps = plan.partial_steps + plan.steps_in_phase
                extra = min(100_000, math.ceil(steps * (self.min_window_s / max(window_s, 1e-6) - 1.0)))
                plan.extend(time_max, energy_sum, extra)
                self.begin_window()
                return []
            energy_j = plan.partial_energy_j + energy_sum
            if self._counter_stalled(energy_j, window_s):
                return self._stalled(energy_j, window_s, current_limit_w)
            plan.record_window(max(time_max, 1e-9), max(energy_sum, 1e-9))
            if plan.done:
                return self._finish()
            return self._restart(current_limit_w)
        return []

    def on_epoch_end(self, current_limit_w: int | None) -> list[Action]:
        """The epoch ended mid-profile: keep what was measured, restart the limit's warm-up next epoch."""
        if self.plan.phase == "measure":
            energy, elapsed = self._end_window()
            self.plan.add_partial(elapsed, energy)
        self.plan.interrupt()
        return self._restart(current_limit_w)

    def begin_window(self) -> None:
        """Open the ``"profile"`` window."""
        if self.meter is not None:
            self.meter.begin("profile")
        self._t0_s = self.clock.monotonic()

    # ------------------------------------------------------------------ internals
    def _restart(self, current_limit_w: int | None) -> list[Action]:
        limit = self.plan.current_limit_w
        if limit is None:
            return []
        actions: list[Action] = [SwitchLimit(limit) if limit != current_limit_w else MarkProfiling()]
        self._warm_t0_s = self.clock.monotonic()
        if self.plan.start_limit() == "begin_measure":
            actions.append(BeginWindow())
        return actions

    def _end_window(self) -> tuple[float, float]:
        """Close the profiling window: (energy summed over ranks, time max over ranks)."""
        energy = self.meter.end("profile").energy_j if self.meter is not None else 0.0
        elapsed = self.clock.monotonic() - self._t0_s
        return self.collective.sum_max(energy, elapsed)

    def _finish(self) -> list[Action]:
        plan = self.plan
        profile = PowerProfile(plan.results)
        if self.collective.rank == 0:
            logger.info("Profiled %d power limits: %r", len(profile), profile)
        if plan.skipped_w:
            why = ("slower than the slowdown budget could use for one hour" if plan.stopped_by == "budget" else
                   "a higher limit was faster and took less energy per step, beyond the measured noise")
            logger.info("Skipped limits %s W: %s.", plan.skipped_w, why)
        if self.ledger is not None and len(profile):
            rebaseline(self.ledger, profile)
        return [ProfileDone(profile, tuple(plan.skipped_w) + tuple(plan.unmeasured_w))]

    def _counter_stalled(self, energy_j: float, time_s: float) -> bool:
        """Whether a window of at least :data:`STALLED_MIN_WINDOW_S` read under :data:`STALLED_POWER_W` per GPU.

        Every rank calls this with the same reduced values, and the GPU count is reduced too (a rank may
        meter none), so every rank gets the same answer.
        """
        mine = self.gpus_metered if self.meter is not None else 0
        gpus, _ = self.collective.sum_max(float(mine), 0.0)
        return gpus > 0 and time_s >= STALLED_MIN_WINDOW_S and energy_j < STALLED_POWER_W * gpus * time_s

    def _stalled(self, energy_j: float, window_s: float, current_limit_w: int | None) -> list[Action]:
        """The energy counter did not advance over a profiling window: measure again, then leave the limit out.

        The first stall of a limit measures it again; a second leaves it out of the profile. When that is
        the default limit (measured first), power control stops: no other limit can be compared with it.
        """
        plan = self.plan
        limit = plan.current_limit_w
        if not plan.retried:
            logger.info("chase: the GPU energy counter read %.3g J in %.1f s at %s W; measuring that limit again.",
                        energy_j, window_s, limit)
            plan.retry()
            self.begin_window()
            return []
        what = (f"The GPU energy counter did not advance while profiling {limit} W "
                f"({energy_j:.3g} J in {window_s:.1f} s, twice)")
        if limit != plan.limits_w[0]:
            plan.skip_current()
            self.warner.warn("energy-stalled", f"{what}; that limit is left out of the profile.")
            self.notes.append(f"{what}; {limit} W left out of the profile.")
            if plan.done:
                return self._finish()
            return self._restart(current_limit_w)
        plan.skip_current(rest=True)
        self.warner.warn(
            "energy-stalled",
            f"{what}. Power control is off for this run (original limits restored); intensity is still logged, but the "
            "energy and carbon figures come from the same counter and undercount. Check the GPU's energy counter "
            "(nvidia-smi -q -d POWER).",
        )
        self.notes.append(f"{what}; power control off, energy and carbon figures unreliable.")
        return [StopPowerControl(what)]
