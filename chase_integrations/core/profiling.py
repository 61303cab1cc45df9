"""The profiling state machine: a short warm-up, then a measured window, for each candidate limit.

States and transitions (one instance per run)::

    WARMUP(k) --warm-up done--> MEASURE(k) --window done--> WARMUP(k+1) ... --> DONE
    MEASURE(k) --half the window--> MEASURE(k)   ("split": the two halves measure the noise)
    MEASURE(k) or WARMUP(k) --epoch ends (interrupt)--> WARMUP(k)   (resumes next epoch; measured steps
                                                                      so far are kept and count toward k)
    any --a limit clearly dominated, or slower than the budget could ever use--> DONE (the rest skipped)

Windows are bounded by time, not steps. A warm-up ends after ``warmup_steps`` steps or ``warmup_s``
seconds, whichever comes first, and is skipped when one step already lasts ``min_window_s`` (a limit
change settles in milliseconds; a long step dwarfs it). A measured window plans
``max(measure_steps, ceil(min_window_s / step time))`` steps, so it lasts ``min_window_s`` and holds at
least one full step at the new limit; the driver extends it once when it still came out short.

The machine is pure bookkeeping: the driver sets limits, opens/closes Zeus windows on the events it
returns and passes in only values reduced over ranks, so every rank moves in lockstep.

Example:
    >>> plan = ProfilingPlan([300, 250], warmup_steps=1, measure_steps=2)
    >>> plan.on_step(), plan.on_step()
    ('begin_measure', 'split')
    >>> plan.split(1.0, 250.0); plan.on_step()
    'end_measure'
    >>> plan.observe_noise(1.0, 260.0); plan.record_window(1.0, 260.0)
    >>> plan.results[300], plan.current_limit_w, round(plan.noise, 3)
    ((1.0, 255.0), 250, 0.02)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

#: A lower limit slower and dirtier than a higher one by more than this fraction ends the descent (when the
#: measured noise is smaller).
DOMINATED_MARGIN = 0.02
#: The margin is at least this many times the measured noise (the largest relative half-to-half difference).
NOISE_FACTOR = 3.0
#: The budget policy plans in slots of this length, s: a limit whose extra time over one slot (or over the
#: whole job, when shorter) exceeds the job's slowdown budget cannot be used for one slot, so no lower limit
#: is profiled after it.
PLAN_SLOT_S = 3600.0
#: Job length assumed for that floor when the job's length is unknown, s (the budget policy's rolling horizon).
UNKNOWN_JOB_S = 24 * 3600.0
#: Assumed bound on the ratio of the dirtiest to the cleanest hour a plan spans (the 99th percentile of the
#: 48-hour max/min over 2021-2024 is 3.1-6.8 on DE-LU, ES, US-CAL-CISO and US-TEX-ERCO; GB's is 12.7).
INTENSITY_RANGE = 10.0
_MAX_WINDOW_STEPS = 100_000


@dataclass
class ProfilingPlan:
    """Bookkeeping of which limit is being profiled and where in its warm-up/measurement we are.

    Set by the driver (not checkpointed): ``min_window_s`` and ``warmup_s`` (s), ``max_slowdown`` (the
    budget's fraction, ``None``: no floor) and ``job_steps`` (the job's length in steps, when known).
    """

    limits_w: list[int]
    warmup_steps: int = 3
    measure_steps: int = 1
    index: int = 0
    phase: str = "warmup"
    steps_in_phase: int = 0
    interruptions: int = 0
    results: dict[int, tuple[float, float]] = field(default_factory=dict)
    prune_dominated: bool = True
    partial_time_s: float = 0.0
    partial_energy_j: float = 0.0
    partial_steps: int = 0
    limit_interruptions: int = 0
    window_steps: int = 0
    extended: bool = False
    skipped_w: list[int] = field(default_factory=list)
    retried: bool = False
    unmeasured_w: list[int] = field(default_factory=list)
    min_window_s: float = 0.0
    warmup_s: float = 0.0
    max_slowdown: float | None = None
    job_steps: int | None = None
    step_estimate_s: float | None = None
    noise: float = 0.0
    half: tuple[float, float, int] | None = None
    split_at: int = 0
    skip_warmup: bool = False
    stopped_by: str | None = None

    @classmethod
    def resumed(cls, plan: ProfilingPlan | None, limits_w: list[int], warmup_steps: int,
                measure_steps: int) -> ProfilingPlan:
        """``plan`` when it profiles the same limits (a resumed run), else a new plan, highest limit first."""
        ordered = sorted(set(limits_w), reverse=True)
        if plan is not None and plan.limits_w == ordered:
            return plan
        return cls(ordered, warmup_steps, measure_steps)

    @property
    def done(self) -> bool:
        """All limits measured."""
        return self.index >= len(self.limits_w)

    @property
    def current_limit_w(self) -> int | None:
        """The limit being profiled (``None`` when done)."""
        return None if self.done else self.limits_w[self.index]

    @property
    def effective_warmup_steps(self) -> int:
        """Warm-up before measuring; none when one step outlasts a window or after two interruptions."""
        return 0 if self.skip_warmup or self.limit_interruptions >= 2 else self.warmup_steps

    @property
    def margin(self) -> float:
        """How much slower and dirtier a limit must be to count as clearly dominated (a fraction)."""
        return max(DOMINATED_MARGIN, NOISE_FACTOR * self.noise)

    @property
    def reach(self) -> float | None:
        """The largest slowdown (a fraction) the budget could spend on one plan slot; ``None``: no floor."""
        if self.max_slowdown is None or not self.results:
            return None
        job_s = self.job_steps * self.results[max(self.results)][0] if self.job_steps else UNKNOWN_JOB_S
        return self.max_slowdown * max(1.0, job_s / PLAN_SLOT_S)  # a job shorter than a slot is one slot

    def start_limit(self) -> str | None:
        """A limit starts (or restarts after an epoch end). Returns ``begin_measure`` when no warm-up is due.

        The warm-up is skipped once a step is known to last ``min_window_s`` (measured in this run: the
        first limit of a run, or of a resumed run, always warms up).
        """
        if self.done or self.phase != "warmup" or self.steps_in_phase:
            return None
        est = self.step_estimate_s
        self.skip_warmup = est is not None and est >= self.min_window_s
        if self.effective_warmup_steps == 0:
            self._enter_measure()
            return "begin_measure"
        return None

    def on_step(self, warmup_elapsed_s: float | None = None) -> str | None:
        """Count one step; return ``"begin_measure"``, ``"split"``, ``"end_measure"`` or ``None``.

        ``warmup_elapsed_s``: the warm-up's duration so far (max over ranks), ending it once it reaches
        ``warmup_s``. ``begin_measure`` comes after the last warm-up step (the window covers the next
        steps); ``split`` halfway through the window (the driver closes the first half and opens the
        second); ``end_measure`` after the last measured step (the driver closes the window and calls
        :meth:`record_window`, or :meth:`extend`).
        """
        if self.done:
            return None
        self.steps_in_phase += 1
        if self.phase == "warmup":
            timed_out = warmup_elapsed_s is not None and self.warmup_s > 0 and warmup_elapsed_s >= self.warmup_s
            if self.steps_in_phase >= self.effective_warmup_steps or timed_out:
                if warmup_elapsed_s is not None:
                    self.step_estimate_s = warmup_elapsed_s / self.steps_in_phase
                self._enter_measure()
                return "begin_measure"
            return None
        if (self.split_at and self.half is None and not self.extended and self.partial_steps == 0
                and self.steps_in_phase == self.split_at):
            return "split"
        if self.partial_steps + self.steps_in_phase >= (self.window_steps or self.measure_steps):
            return "end_measure"
        return None

    def _enter_measure(self) -> None:
        self.phase, self.steps_in_phase = "measure", 0
        if self.extended:
            return
        steps = self.measure_steps
        est = self.step_estimate_s
        if est is not None and est > 0 and self.min_window_s > 0:
            steps = max(steps, min(_MAX_WINDOW_STEPS, math.ceil(self.min_window_s / est - 1e-9)))
        self.window_steps = max(steps, self.partial_steps + 1)
        self.split_at = self.window_steps // 2 if self.window_steps >= 2 and self.partial_steps == 0 else 0

    def split(self, time_s: float, energy_j: float) -> None:
        """Keep the first half of the window (reduced over ranks); the second half starts now."""
        self.half = (time_s, energy_j, self.steps_in_phase)
        self.add_partial(time_s, energy_j)
        self.steps_in_phase = 0

    def observe_noise(self, time_s: float, energy_j: float) -> None:
        """Compare the second half (``time_s``, ``energy_j`` over the current steps) with the first."""
        if self.half is None or self.steps_in_phase == 0:
            return
        t1, e1, n1 = self.half
        n2 = self.steps_in_phase
        a, b = (t1 / n1, time_s / n2), (e1 / n1, energy_j / n2)
        spread = max(abs(x - y) / (x + y) if x + y > 0 else 0.0 for x, y in (a, b))
        self.noise = max(self.noise, spread)
        self.half = None

    def add_partial(self, time_s: float, energy_j: float) -> None:
        """Keep what an interrupted measurement window saw (its steps count toward the limit)."""
        if self.phase == "measure" and self.steps_in_phase > 0:
            self.partial_time_s += time_s
            self.partial_energy_j += energy_j
            self.partial_steps += self.steps_in_phase

    def extend(self, time_s: float, energy_j: float, extra_steps: int) -> None:
        """Keep the window just closed and measure ``extra_steps`` more steps of the same limit.

        Called at ``end_measure`` when the window was too short to trust (NVML energy counters update
        every few tens of milliseconds). Decided from cross-rank reduced values, so every rank extends
        identically.
        """
        self.add_partial(time_s, energy_j)
        self.steps_in_phase = 0
        self.window_steps = self.partial_steps + max(1, int(extra_steps))
        self.extended = True

    def retry(self) -> None:
        """Throw away what the current limit's windows measured and measure it again (same steps)."""
        self.partial_time_s = self.partial_energy_j = 0.0
        self.partial_steps = self.steps_in_phase = 0
        self.half = None
        self.extended = False
        self.split_at = 0
        self.retried = True

    def skip_current(self, rest: bool = False) -> None:
        """Leave the current limit (``rest``: and every limit after it) out of the profile, unmeasured."""
        stop = len(self.limits_w) if rest else self.index + 1
        self.unmeasured_w += list(self.limits_w[self.index : stop])
        self.index = stop
        self._next_limit()

    def _next_limit(self) -> None:
        self.phase, self.steps_in_phase = "warmup", 0
        self.partial_time_s = self.partial_energy_j = 0.0
        self.partial_steps = self.limit_interruptions = 0
        self.window_steps = self.split_at = 0
        self.half = None
        self.extended = self.retried = self.skip_warmup = False

    def record_window(self, time_s: float, energy_j: float) -> None:
        """Record the closing window of the current limit (plus any partial windows) and move on."""
        steps = self.partial_steps + self.steps_in_phase
        self.record((self.partial_time_s + time_s) / steps, (self.partial_energy_j + energy_j) / steps)

    def record(self, time_per_step_s: float, energy_per_step_j: float) -> None:
        """Store the current limit's result and advance to the next limit, or stop the descent.

        Limits are profiled from the highest down. Energy per step is U-shaped in the limit while time
        only grows as the limit falls. A limit that is both slower and dirtier than some higher limit, each
        by more than :attr:`margin` (the measured noise, at least ``DOMINATED_MARGIN``), can never be
        chosen by any policy, and neither can the limits below it: the bottom of the U is behind us. A
        limit slower than the default by more than :attr:`reach` is the last one the budget could use, so
        none below it is profiled either.
        """
        limit = self.limits_w[self.index]
        higher = dict(self.results)
        self.results[limit] = (time_per_step_s, energy_per_step_j)
        self.step_estimate_s = time_per_step_s
        self.index += 1
        self._next_limit()
        m = self.margin
        dominated = any(time_per_step_s > t * (1 + m) and energy_per_step_j > e * (1 + m)
                        for t, e in higher.values())
        reach = self.reach
        t_default = self.results[max(self.results)][0]
        beyond = bool(higher) and reach is not None and time_per_step_s > t_default * (1 + reach)
        beyond = beyond or self._never_worth_it(higher, t_default, time_per_step_s, energy_per_step_j)
        if self.prune_dominated and (dominated or beyond) and not self.done:
            self.stopped_by = "dominated" if dominated else "budget"
            self.skipped_w = list(self.limits_w[self.index :])
            self.index = len(self.limits_w)

    def _never_worth_it(self, higher: dict[int, tuple[float, float]], t_default: float, t: float, e: float) -> bool:
        """Whether the budget policy can never choose the limit just measured (nor, so, any lower one).

        The policy runs, in each hour h, the limit minimising ``CI_h·e(p) + μ·t(p)``: a vertex of the
        profile's lower convex hull whose energy saved per extra second ``s`` beats the hour's price,
        ``CI_h·s > μ``. A vertex j slower than ``max_slowdown`` cannot run in every hour, so the cleanest
        hour runs a faster one: ``μ >= CI_min·s_j``. The new limit then needs ``s > s_j·CI_min/CI_h``,
        which fails when ``s <= s_j / INTENSITY_RANGE``.
        """
        if self.max_slowdown is None or not higher:
            return False
        hull = _lower_hull(higher)
        t_last, e_last, _ = hull[-1]
        if e >= e_last or t <= t_last:
            return False  # no saving over the hull: domination decides
        rate = (e_last - e) / (t - t_last)
        return any(s_j >= INTENSITY_RANGE * rate and t_j > t_default * (1 + self.max_slowdown)
                   for t_j, _, s_j in hull[1:])

    def interrupt(self) -> None:
        """The epoch ended mid-profile: the current limit restarts its warm-up next epoch."""
        if not self.done and (self.phase != "warmup" or self.steps_in_phase):
            self.interruptions += 1
            self.limit_interruptions += 1
        self.phase, self.steps_in_phase = "warmup", 0
        self.half = None

    def to_dict(self) -> dict:
        """JSON-safe state."""
        return {
            "limits_w": list(self.limits_w),
            "warmup_steps": self.warmup_steps,
            "measure_steps": self.measure_steps,
            "index": self.index,
            "interruptions": self.interruptions,
            "results": {str(k): list(v) for k, v in self.results.items()},
            "unmeasured_w": list(self.unmeasured_w),
            "noise": self.noise,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ProfilingPlan:
        """Inverse of :meth:`to_dict` (a restored plan restarts the current limit's warm-up)."""
        plan = cls(list(data["limits_w"]), int(data["warmup_steps"]), int(data["measure_steps"]))
        plan.index = int(data.get("index", 0))
        plan.interruptions = int(data.get("interruptions", 0))
        plan.results = {int(k): (float(v[0]), float(v[1])) for k, v in data.get("results", {}).items()}
        plan.unmeasured_w = [int(w) for w in data.get("unmeasured_w", [])]
        plan.noise = float(data.get("noise", 0.0))
        return plan


def _lower_hull(points: dict[int, tuple[float, float]]) -> list[tuple[float, float, float]]:
    """The lower convex hull of ``{limit: (time, energy)}``, fastest first: ``(time, energy, rate)`` per vertex.

    ``rate`` is the energy saved per extra second from the previous vertex (``inf`` for the first).
    """
    hull: list[tuple[float, float]] = []
    for t, e in sorted(points.values()):
        if hull and e >= hull[-1][1]:
            continue
        while len(hull) >= 2:
            (t1, e1), (t2, e2) = hull[-2], hull[-1]
            if (e2 - e1) * (t - t1) >= (e - e1) * (t2 - t1):
                hull.pop()
            else:
                break
        hull.append((t, e))
    return [(t, e, math.inf if i == 0 else (hull[i - 1][1] - e) / max(t - hull[i - 1][0], 1e-300))
            for i, (t, e) in enumerate(hull)]
