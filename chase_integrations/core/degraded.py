"""Degradations: every stretch of a run where a fallback changed what the run did.

A degradation has a kind (``what``), a start (``since``) and an end (``until``, ``None`` while it lasts);
the report lists them with the number of accounting intervals each covered, so that a run that ran
without intensity data, without permission or without a GPU says so, and for how long.

Example:
    >>> d = Degradations()
    >>> d.begin("no carbon intensity", "2024-01-01T00:00:00+00:00")
    True
    >>> d.begin("no carbon intensity", "2024-01-01T01:00:00+00:00")  # still the same episode
    False
    >>> d.end("no carbon intensity", "2024-01-01T03:00:00+00:00")
    >>> d.to_list(["2024-01-01T00:00:00+00:00", "2024-01-01T01:00:00+00:00", "2024-01-01T05:00:00+00:00"])
    [{'what': 'no carbon intensity', 'since': '2024-01-01T00:00:00+00:00', 'until': '2024-01-01T03:00:00+00:00', 'intervals': 2}]
"""  # noqa: E501

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

#: The kinds of degradation the engine records.
NO_INTENSITY = "no carbon intensity: running at the least-energy limit within the budget"
NO_INTENSITY_NO_PROFILE = "no carbon intensity and no profile: running at the original limit"
NO_PERMISSION = "no permission to set power limits: advisory mode"
SET_FAILED = "setting the power limit failed: advisory mode, original limits restored"
COUNTER_STALLED = "GPU energy counter stalled: power control off, original limits restored"
INTERNAL_ERROR = "internal error: power control off, original limits restored"


@dataclass
class Degradation:
    """One episode: ``what`` from ``since`` until ``until`` (ISO-8601 UTC; ``None`` while it lasts)."""

    what: str
    since: str
    until: str | None = None


@dataclass
class Degradations:
    """The run's degradations, in the order they began."""

    episodes: list[Degradation] = field(default_factory=list)

    def begin(self, what: str, since: str) -> bool:
        """Start an episode of ``what`` unless one is open; returns whether a new one began."""
        if any(e.what == what and e.until is None for e in self.episodes):
            return False
        self.episodes.append(Degradation(what, since))
        return True

    def end(self, what: str, until: str) -> None:
        """End the open episode of ``what``, if any."""
        for e in self.episodes:
            if e.what == what and e.until is None:
                e.until = until

    def follow(self, current: str | None, now: str, warn) -> None:
        """After a decision: begin the episode of the decision's fallback ``current`` and end the others.

        ``warn(key, message)`` is called once per kind (the session's once-per-run warner).
        """
        for what in (NO_INTENSITY, NO_INTENSITY_NO_PROFILE):
            if what != current:
                self.end(what, now)
        if current is not None and self.begin(current, now):
            warn(f"degraded:{current}", f"chase-integrations: {current} (since {now}). It recovers by itself when "
                 "the provider answers again; listed in the report's `degraded`.")

    def is_open(self, what: str) -> bool:
        """Whether an episode of ``what`` is under way."""
        return any(e.what == what and e.until is None for e in self.episodes)

    def to_list(self, interval_starts: list[str]) -> list[dict]:
        """JSON-safe episodes, each with the number of intervals that started within it."""
        starts = [datetime.fromisoformat(s) for s in interval_starts]
        out = []
        for e in self.episodes:
            since = datetime.fromisoformat(e.since)
            until = datetime.fromisoformat(e.until) if e.until is not None else None
            n = sum(1 for s in starts if s >= since and (until is None or s < until))
            out.append({"what": e.what, "since": e.since, "until": e.until, "intervals": n})
        return out
