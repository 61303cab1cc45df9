"""Replay a carbon-intensity trace from a CSV file."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from chase_integrations.carbon.base import CarbonIntensityProvider
from chase_integrations.carbon.formats import PROVIDER_ARGUMENTS, TraceArguments, TraceFormat, parse_trace
from chase_integrations.carbon.reading import IntensityReading
from chase_integrations.core.clock import Clock, SystemClock
from chase_integrations.errors import ConfigurationError, StaleDataError

logger = logging.getLogger(__name__)

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
        path: CSV file (``.csv`` or ``.csv.gz``) with a timestamp column and an intensity column, or the
            short name of a trace that comes with the package (``"US-CISO-2022"``; see
            :func:`chase_integrations.datasets.list_datasets`). The CSVs that Electricity Maps, EIA-930
            derivatives, NESO and WattTime publish are recognised by their columns
            (:mod:`chase_integrations.carbon.formats`); WattTime's lbs/MWh become gCO2eq/kWh.
        time_column: Name of the timestamp column; ``None``: the recognised format's, else the one
            column whose name looks like a time (``datetime_utc``, ``timestamp``, ...).
        value_column: Name of the intensity column (gCO2eq/kWh); ``None``: the recognised format's
            (Electricity Maps: direct), else the one intensity-looking column (forecast, MWh and
            ``estimated`` columns are skipped); a :class:`~chase_integrations.errors.ConfigurationError`
            when that is ambiguous.
        clock: Where "now" comes from. ``None`` replays from the trace's first timestamp, moving
            with wall time from the first call.
        arguments: How errors name the three arguments above; wrappers pass theirs (``Simulation``'s
            ``trace``/``trace_value_column``, the command line's ``--trace-value-column``).

    Timestamps without a zone are UTC; unsorted rows are sorted; duplicate timestamps are averaged;
    blank values are dropped (the previous value holds). Values that do not parse are dropped too, with a
    :class:`~chase_integrations.errors.ChaseWarning` that counts them (:attr:`dropped_rows`). A value
    column with no number at all, or a negative value, is an error.

    Example:
        >>> import tempfile, os
        >>> from chase_integrations.simulation.clock import SimulatedClock
        >>> path = os.path.join(tempfile.mkdtemp(), "t.csv")
        >>> _ = open(path, "w").write("datetime_utc,ci\n2024-01-01 00:00,100\n2024-01-01 01:00,200\n")
        >>> clock = SimulatedClock("2024-01-01T01:30:00Z")
        >>> TraceProvider(path, clock=clock).latest().g_per_kwh
        200.0
        >>> ciso = TraceProvider("US-CISO-2022", clock=SimulatedClock("2022-06-01T12:00:00Z"))
        >>> ciso.format.name, ciso.value_column, len(ciso)
        ('eia930', 'avg_CI', 8757)
    """

    name = "trace"

    def __init__(
        self,
        path: str | Path,
        time_column: str | None = None,
        value_column: str | None = None,
        clock: Clock | None = None,
        *,
        arguments: TraceArguments = PROVIDER_ARGUMENTS,
    ) -> None:
        import pandas as pd

        from chase_integrations.datasets import trace_path

        self.path = trace_path(path, argument=arguments.trace)
        try:
            frame = pd.read_csv(self.path)
        except Exception as e:
            raise ConfigurationError(f"`{arguments.trace}` {str(path)!r} could not be read as CSV: {e}") from e
        parsed = parse_trace(frame, self.path.name, time_column, value_column, arguments)
        self.time_column = parsed.time_column
        self.value_column = parsed.value_column
        #: The recognised layout (:mod:`~chase_integrations.carbon.formats`), or ``None`` for a generic CSV.
        self.format: TraceFormat | None = parsed.format
        #: Rows dropped because their time or value was blank or did not parse.
        self.dropped_rows = parsed.blank_rows + parsed.unparsable_rows
        times, values = parsed.times_s, parsed.values_g_per_kwh
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
        """One-line description (the run report's ``provider``): file, column, rows skipped (blank or unparsable)."""
        dropped = f", {self.dropped_rows} rows skipped" if self.dropped_rows else ""
        return f"trace({self.path.name}, column {self.value_column}{dropped})"

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
