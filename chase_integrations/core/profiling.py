"""The profiling state machine: warm-up steps, then measured steps, for each candidate limit.

States and transitions (one instance per run)::

    WARMUP(k) --warmup_steps done--> MEASURE(k) --measure_steps done--> WARMUP(k+1) ... --> DONE
    MEASURE(k) or WARMUP(k) --epoch ends (interrupt)--> WARMUP(k)   (resumes next epoch; measured steps
                                                                      so far are kept and count toward k)

The machine is pure bookkeeping: the engine sets limits and opens/closes Zeus windows on the events
it returns. Steps are counted identically on every rank, so ranks move in lockstep without talking.

Example:
    >>> plan = ProfilingPlan([300, 250], warmup_steps=1, measure_steps=2)
    >>> [plan.on_step() for _ in range(3)]
    ['begin_measure', None, 'end_measure']
    >>> plan.record(1.0, 250.0); plan.current_limit_w
    250
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: A lower limit whose energy per step exceeds a higher limit's by this fraction ends profiling.
DOMINATED_MARGIN = 0.02
#: How many dominated limits in a row end profiling.
DOMINATED_RUN = 3


@dataclass
class ProfilingPlan:
    """Bookkeeping of which limit is being profiled and where in its warm-up/measurement we are."""

    limits_w: list[int]
    warmup_steps: int = 3
    measure_steps: int = 10
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
    dominated_run: int = 0
    measure_steps_current: int = 0
    extended: bool = False
    skipped_w: list[int] = field(default_factory=list)
    retried: bool = False
    unmeasured_w: list[int] = field(default_factory=list)

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
        """Warm-up before measuring; dropped after two interruptions of the same limit (short epochs)."""
        return self.warmup_steps if self.limit_interruptions < 2 else 0

    def start_event(self) -> str | None:
        """Event due before the first step of the current phase (``begin_measure`` when no warm-up is due)."""
        if not self.done and self.phase == "warmup" and self.effective_warmup_steps == 0 and self.steps_in_phase == 0:
            self.phase = "measure"
            return "begin_measure"
        return None

    def on_step(self) -> str | None:
        """Count one step; return ``"begin_measure"``, ``"end_measure"`` or ``None``.

        ``begin_measure`` is returned after the last warm-up step (the window covers the next steps);
        ``end_measure`` after the last measured step (the caller closes the window and calls
        :meth:`record`).
        """
        if self.done:
            return None
        self.steps_in_phase += 1
        if self.phase == "warmup" and self.steps_in_phase >= self.effective_warmup_steps:
            self.phase, self.steps_in_phase = "measure", 0
            return "begin_measure"
        target = self.measure_steps_current if self.extended else self.measure_steps
        if self.phase == "measure" and self.partial_steps + self.steps_in_phase >= target:
            return "end_measure"
        return None

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
        self.measure_steps_current = self.partial_steps + max(1, int(extra_steps))
        self.extended = True

    def retry(self) -> None:
        """Throw away what the current limit's windows measured and measure it again (same steps)."""
        self.partial_time_s = self.partial_energy_j = 0.0
        self.partial_steps = self.steps_in_phase = 0
        self.measure_steps_current = 0
        self.extended = False
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
        self.extended = self.retried = False

    def record_window(self, time_s: float, energy_j: float) -> None:
        """Record the closing window of the current limit (plus any partial windows) and move on."""
        steps = self.partial_steps + self.steps_in_phase
        self.record((self.partial_time_s + time_s) / steps, (self.partial_energy_j + energy_j) / steps)

    def record(self, time_per_step_s: float, energy_per_step_j: float) -> None:
        """Store the current limit's result and advance to the next limit.

        Limits are profiled from the highest down. Energy per step is U-shaped in the limit while time
        only grows as the limit falls. A limit that is both slower and dirtier than some higher limit
        (each by more than ``DOMINATED_MARGIN``) can never be chosen by any policy. Once
        ``DOMINATED_RUN`` limits in a row are dominated, the bottom of the U is behind us and profiling
        stops early. One dominated limit alone is not enough: real measurements are noisy (an H200 sweep
        in bench/results shows single limits 15 % off their neighbours).
        """
        limit = self.limits_w[self.index]
        self.results[limit] = (time_per_step_s, energy_per_step_j)
        self.index += 1
        self._next_limit()
        dominated = any(
            time_per_step_s > t * (1 + DOMINATED_MARGIN) and energy_per_step_j > e * (1 + DOMINATED_MARGIN)
            for w, (t, e) in self.results.items()
            if w > limit
        )
        self.dominated_run = self.dominated_run + 1 if dominated else 0
        if self.prune_dominated and self.dominated_run >= DOMINATED_RUN:
            self.skipped_w = list(self.limits_w[self.index :])
            self.index = len(self.limits_w)

    def interrupt(self) -> None:
        """The epoch ended mid-profile: the current limit restarts its warm-up next epoch."""
        if not self.done and (self.phase != "warmup" or self.steps_in_phase):
            self.interruptions += 1
            self.limit_interruptions += 1
        self.phase, self.steps_in_phase = "warmup", 0

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
        }

    @classmethod
    def from_dict(cls, data: dict) -> ProfilingPlan:
        """Inverse of :meth:`to_dict` (a restored plan restarts the current limit's warm-up)."""
        plan = cls(list(data["limits_w"]), int(data["warmup_steps"]), int(data["measure_steps"]))
        plan.index = int(data.get("index", 0))
        plan.interruptions = int(data.get("interruptions", 0))
        plan.results = {int(k): (float(v[0]), float(v[1])) for k, v in data.get("results", {}).items()}
        plan.unmeasured_w = [int(w) for w in data.get("unmeasured_w", [])]
        return plan
