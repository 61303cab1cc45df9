"""Time and energy per training step at each GPU power limit.

A :class:`PowerProfile` is what the policies decide with. It comes from live profiling (Zeus
windows over real steps), from a file saved by ``profile_path``, or from a Zeus trace CSV
(``summary_power_*.csv``: time per epoch and average power per limit).

Example:
    >>> p = PowerProfile({300: (1.0, 250.0), 250: (1.01, 230.0), 200: (1.07, 200.0)})
    >>> p.default_limit_w, p.limits_w
    (300, [200, 250, 300])
    >>> round(p.energy_per_step_j(250) / p.energy_per_step_j(300), 3)
    0.92
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from chase_integrations.errors import ConfigurationError

PROFILE_FORMAT_VERSION = 1


@dataclass(frozen=True)
class LimitMeasurement:
    """One power limit's cost of one training step.

    Attributes:
        power_limit_w: The limit, in W.
        time_per_step_s: Wall time of one step, in s (the slowest GPU of the job).
        energy_per_step_j: GPU energy of one step, in J (all GPUs of the job).
    """

    power_limit_w: int
    time_per_step_s: float
    energy_per_step_j: float

    @property
    def average_power_w(self) -> float:
        """Energy over time, in W."""
        return self.energy_per_step_j / self.time_per_step_s


class PowerProfile:
    """Per-limit time and energy of one step, with linear interpolation between measured limits.

    Args:
        measurements: ``{limit_w: (time_per_step_s, energy_per_step_j)}`` or
            ``{limit_w: LimitMeasurement}``; at least one entry, all values finite and > 0.
        host_measured_w: CPU + DRAM power measured (RAPL) while each limit was profiled, W, when it was
            readable: saved with the profile so that a run that loads it prices the host as the run
            that measured it did (``None``: not measured). Limits not in ``measurements`` are dropped.

    Example:
        >>> profile = PowerProfile({250: (1.0, 250.0), 200: (1.1, 210.0)}, host_measured_w={250: 72.0, 200: 70.5})
        >>> PowerProfile.from_dict(profile.to_dict()).host_measured_w
        {200: 70.5, 250: 72.0}
    """

    def __init__(self, measurements: Mapping[int, tuple[float, float] | LimitMeasurement],
                 host_measured_w: Mapping[int, float] | None = None) -> None:
        if not measurements:
            raise ConfigurationError("A power profile needs at least one measured power limit.")
        table: dict[int, LimitMeasurement] = {}
        for limit, value in measurements.items():
            m = value if isinstance(value, LimitMeasurement) else LimitMeasurement(int(limit), *map(float, value))
            if not (math.isfinite(m.time_per_step_s) and m.time_per_step_s > 0):
                raise ConfigurationError(f"Profile time per step at {limit} W must be > 0 s, got {m.time_per_step_s}.")
            if not (math.isfinite(m.energy_per_step_j) and m.energy_per_step_j > 0):
                raise ConfigurationError(
                    f"Profile energy per step at {limit} W must be > 0 J, got {m.energy_per_step_j}."
                )
            table[int(limit)] = LimitMeasurement(int(limit), m.time_per_step_s, m.energy_per_step_j)
        self._table = dict(sorted(table.items()))
        self.limits_w: list[int] = list(self._table)
        self.host_measured_w: dict[int, float] | None = None
        if host_measured_w is not None:
            host = {int(p): float(w) for p, w in host_measured_w.items() if int(p) in self._table}
            bad = {p: w for p, w in host.items() if not (math.isfinite(w) and w >= 0)}
            if bad:
                raise ConfigurationError(f"Profile host power must be finite and >= 0 W, got {bad}.")
            self.host_measured_w = dict(sorted(host.items())) or None
        self._memo: dict[tuple[float, str], float] = {}
        self._points: tuple[tuple[int, float, float], ...] | None = None

    # --- queries -------------------------------------------------------------------------------
    @property
    def default_limit_w(self) -> int:
        """The highest measured limit (what "running at the default limit" means)."""
        return self.limits_w[-1]

    def __contains__(self, limit_w: object) -> bool:
        return limit_w in self._table

    def __len__(self) -> int:
        return len(self._table)

    @property
    def points(self) -> tuple[tuple[int, float, float], ...]:
        """``(limit_w, time_per_step_s, energy_per_step_j)`` of each measured limit, ascending (hashable)."""
        if self._points is None:  # the profile is immutable: built once
            self._points = tuple(
                (m.power_limit_w, m.time_per_step_s, m.energy_per_step_j) for m in self._table.values()
            )
        return self._points

    def measurement(self, limit_w: int) -> LimitMeasurement:
        """The measurement at ``limit_w`` (interpolated between measured limits)."""
        if limit_w in self._table:
            return self._table[limit_w]
        return LimitMeasurement(
            int(limit_w), self._interp(limit_w, "time_per_step_s"), self._interp(limit_w, "energy_per_step_j")
        )

    def time_per_step_s(self, limit_w: float) -> float:
        """Seconds per step at ``limit_w``."""
        m = self._table.get(limit_w)  # type: ignore[call-overload]
        return m.time_per_step_s if m is not None else self._interp(limit_w, "time_per_step_s")

    def energy_per_step_j(self, limit_w: float) -> float:
        """Joules per step at ``limit_w``."""
        m = self._table.get(limit_w)  # type: ignore[call-overload]
        return m.energy_per_step_j if m is not None else self._interp(limit_w, "energy_per_step_j")

    def relative(self, limit_w: float) -> tuple[float, float]:
        """``(time, energy)`` per step at ``limit_w`` relative to the default limit."""
        d = self._table[self.default_limit_w]
        return self.time_per_step_s(limit_w) / d.time_per_step_s, self.energy_per_step_j(limit_w) / d.energy_per_step_j

    def _interp(self, limit_w: float, field: str) -> float:
        key = (float(limit_w), field)
        cached = self._memo.get(key)
        if cached is not None:
            return cached
        lo, hi = self.limits_w[0], self.limits_w[-1]
        if not lo <= limit_w <= hi:
            raise ConfigurationError.invalid("power_limit_w", limit_w, f"within the profiled range [{lo}, {hi}] W")
        i = bisect.bisect_left(self.limits_w, limit_w)
        above = self.limits_w[i]
        below = above if above == limit_w else self.limits_w[i - 1]
        a, b = getattr(self._table[below], field), getattr(self._table[above], field)
        value = a if above == below else a + (b - a) * (limit_w - below) / (above - below)
        if len(self._memo) < 4096:  # the profile is immutable: memoising is safe
            self._memo[key] = value
        return value

    def restricted(self, limits_w: list[int]) -> PowerProfile:
        """A profile with only the given limits (interpolated where not measured)."""
        return PowerProfile({int(p): self.measurement(int(p)) for p in limits_w}, self.host_measured_w)

    def with_host_measured_w(self, host_measured_w: Mapping[int, float] | None) -> PowerProfile:
        """This profile with the measured CPU + DRAM power per limit (``None``: keep what it has)."""
        if not host_measured_w:
            return self
        return PowerProfile(self._table, {**(self.host_measured_w or {}), **host_measured_w})

    # --- (de)serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-safe form."""
        return {
            "format_version": PROFILE_FORMAT_VERSION,
            "limits": [
                {
                    "power_limit_w": m.power_limit_w,
                    "time_per_step_s": m.time_per_step_s,
                    "energy_per_step_j": m.energy_per_step_j,
                }
                | ({"host_measured_w": self.host_measured_w[m.power_limit_w]}
                   if m.power_limit_w in (self.host_measured_w or {}) else {})
                for m in self._table.values()
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> PowerProfile:
        """Inverse of :meth:`to_dict`."""
        try:
            rows = data["limits"]
            return cls(
                {int(r["power_limit_w"]): (float(r["time_per_step_s"]), float(r["energy_per_step_j"])) for r in rows},
                {int(r["power_limit_w"]): float(r["host_measured_w"]) for r in rows if "host_measured_w" in r} or None,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigurationError(f"Not a chase-integrations power profile: {e!r}.") from e

    def save(self, path: str | Path, meta: Mapping | None = None) -> None:
        """Write the profile as JSON (atomically)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = self.to_dict() | {"meta": dict(meta or {})}
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(payload, indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> PowerProfile:
        """Read a profile saved by :meth:`save`."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigurationError(f"`profile_path` {str(path)!r} is not a readable profile: {e}") from e
        return cls.from_dict(data)

    def __repr__(self) -> str:
        rows = ", ".join(
            f"{m.power_limit_w} W: {m.time_per_step_s:.4g} s/{m.energy_per_step_j:.4g} J" for m in self._table.values()
        )
        return f"PowerProfile({rows})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PowerProfile) and self.to_dict() == other.to_dict()
