"""Replay a carbon-intensity trace from a CSV file."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from chase_integrations.carbon.base import CarbonIntensityProvider
from chase_integrations.carbon.reading import IntensityReading
from chase_integrations.core.clock import Clock, SystemClock
from chase_integrations.errors import ConfigurationError, StaleDataError

logger = logging.getLogger(__name__)

_TIME_NAME = re.compile(r"(time|date|timestamp|period|from)", re.IGNORECASE)
_VALUE_NAME = re.compile(r"(^|_)(ci|carbon|intensity|gco2\w*|g_per_kwh|moer|hist)($|_)", re.IGNORECASE)
_NOT_VALUE = re.compile(r"(pred|forecast|mwh|estimated)", re.IGNORECASE)
_STALE_AFTER_S = 3 * 3600.0


class _ReplayClock:
    """Maps wall time elapsed since first use onto the trace's first timestamp."""

    def __init__(self, origin: datetime) -> None:
        self._origin = origin
        self._system = SystemClock()
        self._t0: float | None = None

    def now(self) -> datetime:
        if self._t0 is None:
            self._t0 = self._system.monotonic()
        return self._origin + timedelta(seconds=self._system.monotonic() - self._t0)

    def monotonic(self) -> float:
        return self._system.monotonic()


class TraceProvider(CarbonIntensityProvider):
    r"""Replays an hourly (or any-step) CSV trace on a clock.

    Each row holds from its timestamp until the next row's. ``latest()`` is the row in force at the
    clock's ``now()``; ``history()`` only returns rows up to now, and ``forecast()`` is always empty:
    a replayed trace never reveals its future.

    Args:
        path: CSV file with a timestamp column and an intensity column (gCO2eq/kWh).
        time_column: Name of the timestamp column; ``None`` picks the one column whose name
            looks like a time (``datetime_utc``, ``timestamp``, ...).
        value_column: Name of the intensity column; ``None`` picks the one intensity-looking
            numeric column (forecast, MWh, ``estimated`` and LCA columns are skipped) and raises
            :class:`~chase_integrations.errors.ConfigurationError` when that is ambiguous.
        clock: Where "now" comes from. ``None`` replays from the trace's first timestamp, moving
            with wall time from the first call.

    Timestamps without a zone are UTC; unsorted rows are sorted; duplicate timestamps are averaged;
    blank or non-numeric values are dropped (the previous value holds). Negative values are an error.

    Example:
        >>> import tempfile, os
        >>> from chase_integrations.simulation.clock import SimulatedClock
        >>> path = os.path.join(tempfile.mkdtemp(), "t.csv")
        >>> _ = open(path, "w").write("datetime_utc,ci\n2024-01-01 00:00,100\n2024-01-01 01:00,200\n")
        >>> clock = SimulatedClock("2024-01-01T01:30:00Z")
        >>> TraceProvider(path, clock=clock).latest().g_per_kwh
        200.0
    """

    name = "trace"

    def __init__(
        self,
        path: str | Path,
        time_column: str | None = None,
        value_column: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        import pandas as pd

        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigurationError.invalid("path", str(path), "an existing CSV file")
        try:
            frame = pd.read_csv(self.path)
        except Exception as e:
            raise ConfigurationError(f"`path` {str(path)!r} could not be read as CSV: {e}") from e
        self.time_column = _pick_time_column(frame, time_column, self.path)
        self.value_column = _pick_value_column(frame, value_column, self.time_column, self.path)
        times, values = _clean(frame, self.time_column, self.value_column, self.path)
        self._times_s = times  # int64 seconds since epoch, sorted unique
        #: The same times as float64, for searching: ``np.searchsorted`` of a float in an int64 array
        #: converts the whole array on every call (~15 µs for a 4-year hourly trace).
        self._search_s = times.astype(float)
        self._values = values
        if len(times) >= 2:
            self.resolution_s = float(np.median(np.diff(times)))
        self.name = f"trace:{self.path.name}"
        self._clock = clock if clock is not None else _ReplayClock(self.start)

    def with_clock(self, clock: Clock) -> TraceProvider:
        """A provider over the same parsed trace on another clock (no re-parsing)."""
        import copy

        other = copy.copy(self)
        other._clock = clock
        return other

    # --- inspection -------------------------------------------------------------------------
    @property
    def start(self) -> datetime:
        """Timestamp of the first row (UTC)."""
        return datetime.fromtimestamp(int(self._times_s[0]), tz=timezone.utc)

    @property
    def end(self) -> datetime:
        """Timestamp of the last row (UTC)."""
        return datetime.fromtimestamp(int(self._times_s[-1]), tz=timezone.utc)

    @property
    def times_s(self) -> np.ndarray:
        """Row timestamps, seconds since the epoch (read-only view)."""
        view = self._times_s.view()
        view.flags.writeable = False
        return view

    @property
    def values_g_per_kwh(self) -> np.ndarray:
        """Row values in gCO2eq/kWh (read-only view)."""
        view = self._values.view()
        view.flags.writeable = False
        return view

    def __len__(self) -> int:
        return len(self._times_s)

    def value_at(self, when: datetime) -> float:
        """Return the trace value in force at ``when`` (no clock involved)."""
        i = self._index_at(when.timestamp())
        if i < 0:
            raise StaleDataError(f"{self.name}: {when.isoformat()} is before the trace starts ({self.start}).")
        return float(self._values[i])

    def mean_between(self, start: datetime, end: datetime) -> float:
        """Time-weighted mean of the trace over ``[start, end)`` (the past only when used live)."""
        return float(_step_mean(self._search_s, self._values, start.timestamp(), end.timestamp()))

    # --- provider API -----------------------------------------------------------------------
    def now(self) -> datetime:
        """The clock's current time."""
        return self._clock.now()

    def latest(self) -> IntensityReading:
        """Return the row in force now; :class:`StaleDataError` past the end or before the start."""
        now_s = self._clock.now().timestamp()
        i = self._index_at(now_s)
        if i < 0:
            raise StaleDataError(f"{self.name}: now is before the trace starts ({self.start.isoformat()}).")
        if now_s - self._times_s[i] > max(_STALE_AFTER_S, 2 * self.resolution_s):
            raise StaleDataError(
                f"{self.name}: the trace ends at {self.end.isoformat()}, now is {self._clock.now().isoformat()}."
            )
        return self._reading(i)

    def history(self, hours: float = 24) -> list[IntensityReading]:
        """Return the rows of the last ``hours`` hours up to now, oldest first."""
        now_s = self._clock.now().timestamp()
        hi = self._index_at(now_s)
        if hi < 0:
            return []
        lo = int(self._search_s.searchsorted(now_s - hours * 3600.0, side="right"))
        lo = max(0, min(lo, hi))
        times_s, values = self._times_s[lo : hi + 1].tolist(), self._values[lo : hi + 1].tolist()
        return [IntensityReading(datetime.fromtimestamp(t, tz=timezone.utc), v, False) for t, v in zip(times_s, values)]

    def describe(self) -> str:
        """One-line description."""
        return f"trace({self.path.name}, column {self.value_column})"

    # --- internals --------------------------------------------------------------------------
    def _index_at(self, t_s: float) -> int:
        return int(self._search_s.searchsorted(t_s, side="right")) - 1

    def _reading(self, i: int) -> IntensityReading:
        when = datetime.fromtimestamp(int(self._times_s[i]), tz=timezone.utc)
        return IntensityReading(when, float(self._values[i]), False)


def _step_mean(times_s: np.ndarray, values: np.ndarray, start_s: float, end_s: float) -> float:
    """Time-weighted mean of a step function (value i holds on [t_i, t_{i+1})).

    ``times_s`` is float64 (searching an int64 array for a float converts the whole array).
    """
    lo = max(0, int(times_s.searchsorted(start_s, side="right")) - 1)
    if end_s <= start_s:
        return float(values[lo])
    hi = max(lo, int(times_s.searchsorted(end_s, side="left")) - 1)
    # rows lo+1..hi start strictly inside (start, end): the edges need no clipping
    edges = np.concatenate(([start_s], times_s[lo + 1 : hi + 1], [end_s]))
    widths = edges[1:] - edges[:-1]
    return float(np.dot(widths, values[lo : hi + 1]) / (end_s - start_s))


def _pick_time_column(frame, requested: str | None, path: Path) -> str:
    columns = list(frame.columns)
    if requested is not None:
        if requested not in columns:
            raise ConfigurationError.invalid("time_column", requested, f"one of the columns of {path.name}: {columns}")
        return requested
    candidates = [c for c in columns if _TIME_NAME.search(str(c))]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ConfigurationError(
            f"`time_column` could not be inferred for {path.name}: no column looks like a timestamp "
            f"among {columns}. HINT: pass time_column=..."
        )
    exact = [c for c in candidates if str(c).lower() in ("datetime_utc", "timestamp", "time", "datetime", "date")]
    if len(exact) == 1:
        return exact[0]
    raise ConfigurationError(
        f"`time_column` is ambiguous for {path.name}: candidates {candidates}. HINT: pass time_column=..."
    )


def _pick_value_column(frame, requested: str | None, time_column: str, path: Path) -> str:
    import pandas as pd

    columns = [c for c in frame.columns if c != time_column]
    if requested is not None:
        if requested not in columns:
            raise ConfigurationError.invalid(
                "value_column", requested, f"one of the value columns of {path.name}: {columns}"
            )
        return requested
    numeric = [c for c in columns if pd.api.types.is_numeric_dtype(frame[c])]
    candidates = [c for c in numeric if _VALUE_NAME.search(str(c)) and not _NOT_VALUE.search(str(c))]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates and len(numeric) == 1:
        return numeric[0]
    if not candidates:
        raise ConfigurationError(
            f"`value_column` could not be inferred for {path.name}: no numeric column looks like carbon "
            f"intensity among {columns}. HINT: pass value_column=..."
        )
    raise ConfigurationError(
        f"`value_column` is ambiguous for {path.name}: candidates {candidates}. HINT: pass value_column=..."
    )


def _clean(frame, time_column: str, value_column: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    times = pd.to_datetime(frame[time_column], utc=True, errors="coerce", format="mixed")
    values = pd.to_numeric(frame[value_column], errors="coerce")
    data = pd.DataFrame({"t": times, "v": values}).dropna()
    dropped = len(frame) - len(data)
    if dropped:
        logger.info("%s: dropped %d rows with a blank or unparsable time or value.", path.name, dropped)
    if data.empty:
        raise ConfigurationError(
            f"`path` {path.name} has no usable rows in columns {time_column!r} and {value_column!r} (`time_column`, "
            "`value_column`): every row needs a parsable time and a numeric intensity."
        )
    if (data["v"] < 0).any():
        bad = data.loc[data["v"] < 0].iloc[0]
        raise ConfigurationError(
            f"`value_column` {value_column!r} of {path.name} has a negative intensity {bad['v']} at {bad['t']}; "
            "carbon intensity must be >= 0 gCO2eq/kWh."
        )
    if not data["t"].is_monotonic_increasing:
        logger.info("%s: rows are not in time order; sorting.", path.name)
    data = data.groupby("t", sort=True)["v"].mean()
    times_s = np.asarray(data.index.as_unit("s").asi8, dtype=np.int64)
    return times_s, data.to_numpy(dtype=float)
