"""Checkpoint state: what a resumed run needs (derived quantities; no configuration, no secrets).

Like Lightning's callbacks, the state holds the ledger, the measured profile, profiling progress, the
step count and rank 0's recent readings and fallback counts; new keys are read with defaults, and a
state that cannot be read starts a fresh ledger instead of failing the resume.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from chase_integrations._warnings import OnceWarner
from chase_integrations.core.ledger import Ledger
from chase_integrations.core.profile import PowerProfile
from chase_integrations.core.profiling import ProfilingPlan
from chase_integrations.core.reading import IntensityReading
from chase_integrations.errors import ConfigurationError

STATE_VERSION = 1
#: Readings kept in a checkpoint (two days of hourly values: enough to refit a forecaster's recent view).
_READINGS_KEPT = 48


@dataclass
class CheckpointState:
    """A session's resumable state.

    Attributes:
        ledger: Every interval accounted so far.
        profile: The measured profile (``None``: not measured yet).
        plan: Profiling progress when profiling was interrupted (``None``: not profiling).
        steps: Optimizer steps done.
        fallbacks: Intensity fallbacks counted so far, by kind.
        readings: Rank 0's most recent provider readings.
    """

    ledger: Ledger = field(default_factory=Ledger)
    profile: PowerProfile | None = None
    plan: ProfilingPlan | None = None
    steps: int = 0
    fallbacks: dict[str, int] = field(default_factory=dict)
    readings: list[IntensityReading] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-safe form (``load(to_dict())`` round-trips through ``json.dumps``)."""
        return {
            "version": STATE_VERSION,
            "intervals": self.ledger.to_list(),
            "profile": self.profile.to_dict() if self.profile is not None else None,
            "profiling": self.plan.to_dict() if self.plan is not None and not self.plan.done else None,
            "steps": self.steps,
            "fallbacks": dict(self.fallbacks),
            "readings": [r.to_dict() for r in self.readings[-_READINGS_KEPT:]],
        }

    def restore_readings(self, intensity) -> None:
        """Give rank 0's :class:`~chase_integrations.core.intensity.IntensitySource` back its readings and counts."""
        intensity.fallbacks = Counter(self.fallbacks)
        for reading in self.readings:
            intensity._remember(reading)
        if self.ledger.intervals:
            intensity.last_known = self.ledger.intervals[-1].intensity_g_per_kwh

    @classmethod
    def from_dict(cls, state: dict) -> CheckpointState:
        """Read a :meth:`to_dict`; raises on a damaged state (the caller starts afresh)."""
        ledger = Ledger.from_list(state.get("intervals", []))
        for total in ("energy_j", "carbon_g", "time_s", "steps", "baseline_carbon_g", "baseline_time_s"):
            if not math.isfinite(float(getattr(ledger, total))):  # wrong types fail here, not mid-run
                raise ValueError(f"ledger total {total} is not finite")
        profile = PowerProfile.from_dict(state["profile"]) if state.get("profile") else None
        plan = ProfilingPlan.from_dict(state["profiling"]) if state.get("profiling") else None
        readings = []
        for r in state.get("readings", []):
            try:
                readings.append(IntensityReading.from_dict(r))
            except (KeyError, ValueError):
                continue
        return cls(ledger, profile, plan, int(state.get("steps", ledger.steps)),
                   dict(Counter(state.get("fallbacks", {}))), readings)


def read_state(state: dict, warner: OnceWarner, notes: list[str]) -> CheckpointState | None:
    """:meth:`CheckpointState.from_dict`, or ``None`` (warned once, noted) for an old, newer or damaged state."""
    try:
        return CheckpointState.from_dict(state)
    except Exception as e:  # never crash a resume because of us
        warner.warn(
            "state-unreadable",
            f"The chase-integrations state in the checkpoint could not be read ({type(e).__name__}: {e}); "
            "the carbon ledger and power profile start afresh from here (training resumes normally).",
        )
        notes.append(f"checkpoint state ignored: {type(e).__name__}: {e}")
        return None


def check_state(state: object, warner: OnceWarner) -> None:
    """Raise for a state that is not a dict; warn once when it comes from a newer version of the package."""
    if not isinstance(state, dict):
        raise ConfigurationError.invalid("state", type(state).__name__, "a dict saved by ChaseSession.state_dict")
    version = state_version(state)
    if version > STATE_VERSION:
        warner.warn(
            "state-version",
            f"Checkpoint state version {version} is newer than this package's ({STATE_VERSION}); reading the keys "
            "it knows.",
        )


def state_version(state: object) -> int:
    """The format version of a saved state (a number above :data:`STATE_VERSION` when unreadable)."""
    if not isinstance(state, dict):
        return STATE_VERSION + 1
    try:
        return int(state.get("version", 0))
    except (TypeError, ValueError):
        return STATE_VERSION + 1
